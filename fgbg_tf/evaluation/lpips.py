"""LPIPS v0.1 (Zhang et al. 2018), "net-lin" on the AlexNet trunk: the perceptual distance SAVP reports.

Both images go through the convolutional part of torchvision's AlexNet (`alexnet.features`); at each of its five
ReLUs the features are normalised to unit length over channels, the two images' squared difference is weighted per
channel by the learned non-negative "lin" vector, averaged over space, and the five taps are summed
(docs/video-prediction.md 3.3). Identical images are at distance 0.

Weights are not shipped and cannot be downloaded here. `tools/lpips_weights.py`, run where torch is installed,
writes them into one .npz from torchvision's AlexNet state dict and the `lpips` wheel's `lpips/weights/v0.1/alex.pth`.
The file's keys and shapes (`WEIGHT_SHAPES`), all float:
    conv{i}_kernel   the i-th convolution, HWIO [kh, kw, in, out] (torch's OIHW transposed), i = 1..5
    conv{i}_bias     [out]
    lin{i-1}         [out of conv i], >= 0: the lin layer's 1x1 weights for tap i
An OIHW kernel is rejected by its shape. Where no file is given, `load_lpips(None)` returns None and reports print
`NO_WEIGHTS` instead of a number.

Example:
    distances = load_lpips("lpips_alex_v0.1.npz")(predicted, truth)   # [B]; images [B, H, W, 1 or 3] in [0, 1]
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

NO_WEIGHTS = "LPIPS: no weights"

# torchvision alexnet.features up to its fifth ReLU: (out channels, kernel side, stride, padding) of each
# convolution. Each is followed by a ReLU, whose output is an LPIPS tap; a 3x3 stride-2 max pool precedes conv2
# and conv3.
ALEXNET_CONVS = ((64, 11, 4, 2), (192, 5, 1, 2), (384, 3, 1, 1), (256, 3, 1, 1), (256, 3, 1, 1))
_POOLED_BEFORE = (2, 3)

# LPIPS v0.1's scaling layer: per-RGB-channel statistics of ImageNet in LPIPS' [-1, 1] input range.
_SHIFT = (-0.030, -0.088, -0.188)
_SCALE = (0.458, 0.448, 0.450)
# lpips.normalize_tensor's guard against zero-length feature vectors (all-zero ReLU outputs).
_EPS = 1e-10


def _weight_shapes() -> dict[str, tuple[int, ...]]:
    shapes, channels = {}, 3
    for i, (out, side, _, _) in enumerate(ALEXNET_CONVS, start=1):
        shapes[f"conv{i}_kernel"] = (side, side, channels, out)
        shapes[f"conv{i}_bias"] = (out,)
        shapes[f"lin{i - 1}"] = (out,)
        channels = out
    return shapes


WEIGHT_SHAPES = _weight_shapes()


def check_lpips_weights(weights, source: str) -> dict[str, np.ndarray]:
    """The weights as float32 arrays, after checking every key of `WEIGHT_SHAPES` is there with its shape.

    Args:
        weights: mapping {key: array}, e.g. an opened .npz.
        source: what to name in errors (the file).
    Raises:
        ValueError naming `source` and the key: a key missing or unknown, a wrong shape, a non-finite value, or a
        negative lin weight (LPIPS trains them clamped at 0, so one means a wrong file).
    Example: `check_lpips_weights(np.load("lpips.npz"), "lpips.npz")`.
    """
    unknown = sorted(set(weights) - set(WEIGHT_SHAPES))
    if unknown:
        raise ValueError(f"{source}: unexpected key(s) {unknown}; LPIPS weights have exactly {list(WEIGHT_SHAPES)}")
    checked = {}
    for key, shape in WEIGHT_SHAPES.items():
        if key not in weights:
            raise ValueError(f"{source}: missing key {key!r} (expected shape {shape})")
        value = np.asarray(weights[key], np.float32)
        if value.shape != shape:
            layout = " (HWIO: [kh, kw, in, out])" if key.endswith("_kernel") else ""
            raise ValueError(f"{source}: key {key!r} has shape {value.shape}, expected {shape}{layout}")
        if not np.all(np.isfinite(value)):
            raise ValueError(f"{source}: key {key!r} holds non-finite values")
        if key.startswith("lin") and np.any(value < 0):
            raise ValueError(f"{source}: key {key!r} has negative weights; LPIPS lin weights are >= 0")
        checked[key] = value
    return checked


def load_lpips_weights(path) -> dict[str, np.ndarray]:
    """Reads and checks the LPIPS weights .npz written by `tools/lpips_weights.py` (keys in the module docstring).

    Args:
        path: the .npz file.
    Returns:
        {key: float32 array} with the shapes of `WEIGHT_SHAPES`.
    Raises:
        ValueError (see `check_lpips_weights`); OSError if the file cannot be read.
    Example: `weights = load_lpips_weights("lpips_alex_v0.1.npz")`.
    """
    # allow_pickle=False: a weights file holds plain arrays and must not be able to run code.
    with np.load(path, allow_pickle=False) as stored:
        return check_lpips_weights({key: stored[key] for key in stored.files}, str(path))


class LPIPS:
    """LPIPS v0.1 AlexNet distance between two batches of images; plain TF ops, so it also runs in a tf.function.

    Args:
        weights: {key: array} as `load_lpips_weights` returns (checked again here).
    Example: `LPIPS(load_lpips_weights(path))(first, second)   # [B]`.
    """

    def __init__(self, weights):
        weights = check_lpips_weights(weights, "LPIPS weights")
        self._convs = [(tf.constant(weights[f"conv{i}_kernel"]), tf.constant(weights[f"conv{i}_bias"]), stride, pad)
                       for i, (_, _, stride, pad) in enumerate(ALEXNET_CONVS, start=1)]
        self._lins = [tf.constant(weights[f"lin{i}"]) for i in range(len(ALEXNET_CONVS))]

    def features(self, images) -> list[tf.Tensor]:
        """The five AlexNet taps (ReLU outputs) of images [B, H, W, 1 or 3] in [0, 1]; grey is tiled to RGB.

        At 64 x 64 input they are 15, 7, 3, 3 and 3 pixels wide, with 64, 192, 384, 256 and 256 channels.
        """
        x = tf.convert_to_tensor(images, tf.float32)
        if x.shape[-1] not in (1, 3):
            raise ValueError(f"LPIPS: images must be [batch, H, W, 1 or 3], got shape {x.shape}")
        if x.shape[-1] == 1:
            x = tf.tile(x, [1, 1, 1, 3])
        x = (x * 2.0 - 1.0 - tf.constant(_SHIFT)) / tf.constant(_SCALE)
        taps = []
        for i, (kernel, bias, stride, pad) in enumerate(self._convs, start=1):
            if i in _POOLED_BEFORE:
                x = tf.nn.max_pool2d(x, 3, 2, "VALID")  # torch's MaxPool2d(3, 2): no padding, floor
            # torch pads both sides equally. TF's "SAME" would pad conv1's 64 px input by 3 before and 4 after and
            # give 16 px, not torchvision's 15, so the padding is explicit and the convolution VALID.
            x = tf.pad(x, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
            x = tf.nn.relu(tf.nn.conv2d(x, kernel, stride, "VALID") + bias)
            taps.append(x)
        return taps

    def __call__(self, first, second) -> tf.Tensor:
        """Distances [B] (float32, >= 0, symmetric) between images `first` and `second` [B, H, W, C], C 1 or 3."""
        first, second = tf.convert_to_tensor(first, tf.float32), tf.convert_to_tensor(second, tf.float32)
        # One pass through the trunk for both batches; each image's taps depend on it alone.
        taps = self.features(tf.concat([first, second], axis=0))
        distance = 0.0
        for tap, lin in zip(taps, self._lins):
            a, b = tf.split(_unit_length(tap), 2, axis=0)
            distance += tf.reduce_mean(tf.reduce_sum(tf.square(a - b) * lin, axis=-1), axis=[1, 2])
        return distance


def _unit_length(features):
    return features / (tf.sqrt(tf.reduce_sum(tf.square(features), axis=-1, keepdims=True)) + _EPS)


def load_lpips(path) -> LPIPS | None:
    """The LPIPS metric from a weights .npz, or None where no path is given (an empty string counts as none).

    Callers test for None and report `NO_WEIGHTS` ("LPIPS: no weights") instead of a number, so a run without the
    weights still scores PSNR and SSIM. A path that is given but unreadable or wrong still raises.
    Example: `lpips = load_lpips(args.lpips_weights)   # None -> print(NO_WEIGHTS)`.
    """
    return LPIPS(load_lpips_weights(path)) if path else None
