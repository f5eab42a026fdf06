"""Weights files for the loss tests, made here with random values: nothing is downloaded.

A random keras.applications VGG19 notop in both accepted formats, and files in the legacy `torch.save` layout
written without torch (stand-ins registered as torch's globals make pickle emit the opcodes torch does).
"""

import collections
import io
import pickle
import struct
import sys
import types

import h5py
import keras
import numpy as np
import tensorflow as tf

from fgbg_tf.loss import torch_legacy


def make_vgg_files(directory):
    """A random keras.applications VGG19 notop, saved in both accepted formats."""
    keras.utils.set_random_seed(0)
    reference = keras.applications.VGG19(include_top=False, weights=None)
    keras3_path = str(directory / "vgg19_random.weights.h5")
    reference.save_weights(keras3_path)
    # The layout of Keras' own vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5 (order-based legacy format).
    legacy_path = str(directory / "vgg19_random_notop.h5")
    with h5py.File(legacy_path, "w") as f:
        f.attrs["layer_names"] = [layer.name.encode() for layer in reference.layers]
        for layer in reference.layers:
            group = f.create_group(layer.name)
            names = [f"{layer.name}/kernel:0", f"{layer.name}/bias:0"] if layer.weights else []
            group.attrs["weight_names"] = [n.encode() for n in names]
            for name, value in zip(names, layer.get_weights()):
                group.create_dataset(name, data=value)
    return {"keras3": keras3_path, "legacy": legacy_path, "model": reference}



def _images(seed, shape=(2, 32, 32, 3)):
    return tf.random.stateless_uniform(shape, (seed, 7), -1.0, 1.0)


class _FakeStorage:
    def __init__(self, key, values):
        self.key, self.values = key, values


class _FakeTensor:
    def __init__(self, storage, offset, shape, stride):
        self.args = (storage, offset, shape, stride, False, collections.OrderedDict())

    def __reduce__(self):
        return sys.modules["torch._utils"]._rebuild_tensor_v2, self.args


def _legacy_torch_bytes(state, storages, monkeypatch):
    """Writes `state` in the legacy torch.save layout without torch: stand-ins registered as torch's globals make
    pickle emit the same opcodes torch does; the storages follow as int64 count + raw bytes."""
    fake_torch, fake_utils = types.ModuleType("torch"), types.ModuleType("torch._utils")
    storage_classes = {}
    for name in ("ByteStorage", "FloatStorage"):
        storage_classes[name] = type(name, (), {"__module__": "torch"})
        setattr(fake_torch, name, storage_classes[name])

    def _rebuild_tensor_v2(*args):
        raise AssertionError("only used as a pickled reference")

    _rebuild_tensor_v2.__module__, _rebuild_tensor_v2.__qualname__ = "torch._utils", "_rebuild_tensor_v2"
    fake_utils._rebuild_tensor_v2 = _rebuild_tensor_v2
    monkeypatch.setitem(sys.modules, "torch", fake_torch)
    monkeypatch.setitem(sys.modules, "torch._utils", fake_utils)

    class TorchLikePickler(pickle.Pickler):
        def persistent_id(self, obj):
            if isinstance(obj, _FakeStorage):
                kind = "ByteStorage" if obj.values.dtype == np.uint8 else "FloatStorage"
                return ("storage", storage_classes[kind], obj.key, "cpu", obj.values.size, None)
            return None

    stream = io.BytesIO()
    for value in (torch_legacy._TORCH_LEGACY_MAGIC, torch_legacy._TORCH_LEGACY_PROTOCOL,
                  {"protocol_version": 1001, "little_endian": True, "type_sizes": {"short": 2, "int": 4, "long": 4}}):
        pickle.dump(value, stream, protocol=2)
    TorchLikePickler(stream, protocol=2).dump(state)
    keys = sorted(s.key for s in storages)
    pickle.dump(keys, stream, protocol=2)
    for key in keys:
        values = next(s.values for s in storages if s.key == key)
        stream.write(struct.pack("<q", values.size) + values.tobytes())
    return stream.getvalue()
