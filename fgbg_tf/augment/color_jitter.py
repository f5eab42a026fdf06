"""Colour jitter T_cj: torchvision ``ColorJitter`` semantics as stateless TensorFlow ops.

The pose image of every training pair is colour-jittered (T_cj(x) in paper Eq. 3 and Appendix A; reference doc 7.1) with
torchvision ``ColorJitter(brightness=0.4, contrast=0.4, saturation=0.4, hue=0.3)``. TensorFlow's own
``tf.image.adjust_contrast`` blends with per-channel means, while torchvision blends with the mean of the
grayscale image (reference doc 14), so the blends are written out here with torchvision's formulas for float
tensors in [0, 1]:

* brightness: ``clip(b * img)``
* contrast:   ``clip(c * img + (1 - c) * mean(gray(img)))``, one scalar mean per image
* saturation: ``clip(s * img + (1 - s) * gray(img))``
* hue:        rotate the HSV hue by ``h`` turns (``h`` in [-0.5, 0.5]).

with ``gray = 0.2989 R + 0.587 G + 0.114 B``. ``tf.image.adjust_hue(img, h)`` is torchvision's
``adjust_hue(img, h)`` on float tensors (both convert to HSV, add ``h`` to the hue expressed in turns modulo 1
and convert back); ``tests/augment/test_color_jitter.py`` checks it to 2e-5 against a NumPy port of torchvision's
``_rgb2hsv``/``_hsv2rgb``. The release jittered PIL uint8 crops before resizing; PIL's 8-bit arithmetic (integer
contrast mean, hue shift rounded to 1/255 turn) is not reproduced, only its quantisation-level effect is lost.

Randomness is stateless: everything is a pure function of ``seed`` (int32/int64 tensor of shape [2]).
"""

import numbers

import tensorflow as tf

from fgbg_tf.seeds import check_seed

_GRAY_WEIGHTS = (0.2989, 0.587, 0.114)
_NUM_OPS = 4


def _check_image(image):
    image = tf.convert_to_tensor(image)
    if not image.dtype.is_floating:
        raise ValueError(f"image: expected a floating-point tensor in [0, 1], got dtype {image.dtype.name}")
    if image.shape.rank is not None and image.shape.rank < 3:
        raise ValueError(f"image: expected shape [..., H, W, 3], got {image.shape}")
    if image.shape[-1] is not None and image.shape[-1] != 3:
        raise ValueError(f"image: expected 3 (RGB) channels in the last axis, got shape {image.shape}")
    return image


def rgb_to_grayscale(image):
    """Torchvision's luma ``0.2989 R + 0.587 G + 0.114 B``; shape [..., H, W, 3] -> [..., H, W, 1]."""
    weights = tf.constant(_GRAY_WEIGHTS, dtype=image.dtype)
    return tf.reduce_sum(image * weights, axis=-1, keepdims=True)


def _blend(image, other, factor):
    factor = tf.cast(factor, image.dtype)
    return tf.clip_by_value(factor * image + (1.0 - factor) * other, 0.0, 1.0)


def adjust_brightness(image, factor):
    """Scale intensities: ``clip(factor * image, 0, 1)``.

    Args:
        image: float tensor [..., H, W, 3] in [0, 1].
        factor: non-negative scalar; 1 leaves the image unchanged.

    Returns:
        Tensor of the same shape and dtype.
    """
    image = _check_image(image)
    return _blend(image, tf.zeros_like(image), factor)


def adjust_contrast(image, factor):
    """Blend with the image's mean grayscale value (one scalar per image, not per channel).

    Args:
        image: float tensor [..., H, W, 3] in [0, 1].
        factor: non-negative scalar; 0 gives a uniform gray image, 1 the input.

    Returns:
        Tensor of the same shape and dtype.
    """
    image = _check_image(image)
    mean = tf.reduce_mean(rgb_to_grayscale(image), axis=[-3, -2, -1], keepdims=True)
    return _blend(image, mean, factor)


def adjust_saturation(image, factor):
    """Blend with the per-pixel grayscale image.

    Args:
        image: float tensor [..., H, W, 3] in [0, 1].
        factor: non-negative scalar; 0 gives the grayscale image, 1 the input.

    Returns:
        Tensor of the same shape and dtype.
    """
    image = _check_image(image)
    return _blend(image, rgb_to_grayscale(image), factor)


def adjust_hue(image, factor):
    """Rotate the HSV hue by ``factor`` turns (torchvision ``adjust_hue`` on float tensors).

    Args:
        image: float tensor [..., H, W, 3] in [0, 1].
        factor: scalar in [-0.5, 0.5]; a fraction of the hue circle.

    Returns:
        Tensor of the same shape and dtype.
    """
    image = _check_image(image)
    return tf.image.adjust_hue(image, tf.cast(factor, image.dtype))


def _check_strength(name, value, upper=None):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name}: expected a non-negative number, got {value!r}")
    if value < 0:
        raise ValueError(f"{name}: expected a non-negative number, got {value}")
    if upper is not None and value > upper:
        raise ValueError(f"{name}: expected a value in [0, {upper}], got {value}")
    return float(value)


def color_jitter_params(seed, brightness=0.4, contrast=0.4, saturation=0.4, hue=0.3):
    """Draw torchvision ``ColorJitter.get_params`` as a pure function of ``seed``.

    Args:
        seed: int32/int64 tensor of shape [2].
        brightness, contrast, saturation: strengths x >= 0; factors ~ U[max(0, 1 - x), 1 + x].
        hue: strength in [0, 0.5]; shift ~ U[-hue, hue] turns.

    Returns:
        ``(order, factors)``: ``order`` int32 [4], a permutation of op indices (0 brightness, 1 contrast,
        2 saturation, 3 hue) in application order; ``factors`` float32 [4] = (b, c, s, h).

    Example:
        order, factors = color_jitter_params(tf.constant([1, 2]))
    """
    brightness = _check_strength("brightness", brightness)
    contrast = _check_strength("contrast", contrast)
    saturation = _check_strength("saturation", saturation)
    hue = _check_strength("hue", hue, upper=0.5)
    seed = check_seed(seed)
    order_seed, factor_seed = tf.unstack(tf.random.experimental.stateless_split(seed, num=2))
    # argsort of i.i.d. uniforms is a uniformly random permutation, like torch.randperm(4).
    order = tf.argsort(tf.random.stateless_uniform([_NUM_OPS], seed=order_seed))
    low = tf.constant([max(0.0, 1.0 - brightness), max(0.0, 1.0 - contrast), max(0.0, 1.0 - saturation), -hue])
    high = tf.constant([1.0 + brightness, 1.0 + contrast, 1.0 + saturation, hue])
    factors = low + (high - low) * tf.random.stateless_uniform([_NUM_OPS], seed=factor_seed)
    return order, factors


def _op_branches(image, factors, hue_enabled):
    """One zero-argument callable per op index, for ``tf.switch_case``."""
    hue_branch = (lambda: adjust_hue(image, factors[3])) if hue_enabled else (lambda: image)
    return [
        lambda: adjust_brightness(image, factors[0]),
        lambda: adjust_contrast(image, factors[1]),
        lambda: adjust_saturation(image, factors[2]),
        hue_branch,
    ]


def apply_color_jitter(image, order, factors, hue_enabled=True):
    """Apply brightness/contrast/saturation/hue with the given factors in the given order.

    Args:
        image: float tensor [H, W, 3] (or [..., H, W, 3]) in [0, 1].
        order: int tensor [4], a permutation of (0 brightness, 1 contrast, 2 saturation, 3 hue).
        factors: float tensor [4] = (b, c, s, h).
        hue_enabled: False skips the hue op (an HSV round trip is not bit-exact even for h = 0).

    Returns:
        Tensor of the same shape and dtype as ``image``.

    Example:
        out = apply_color_jitter(img, tf.constant([3, 0, 1, 2]), tf.constant([1.2, 0.8, 1.0, 0.1]))
    """
    image = _check_image(image)
    order = tf.convert_to_tensor(order, dtype=tf.int32)
    factors = tf.convert_to_tensor(factors, dtype=tf.float32)
    for step in range(_NUM_OPS):
        image = tf.switch_case(order[step], _op_branches(image, factors, hue_enabled))
    return image


def color_jitter(image, seed, brightness=0.4, contrast=0.4, saturation=0.4, hue=0.3):
    """T_cj: torchvision ``ColorJitter`` with factors and op order drawn statelessly from ``seed``.

    Args:
        image: float tensor [H, W, 3] in [0, 1].
        seed: int32/int64 tensor of shape [2]; the output is a pure function of (image, seed).
        brightness, contrast, saturation: strengths x >= 0; factors ~ U[max(0, 1 - x), 1 + x].
        hue: strength in [0, 0.5]; hue shift ~ U[-hue, hue] turns.

    Returns:
        Float tensor [H, W, 3] in [0, 1], same dtype as ``image``.

    Example:
        pose_image = color_jitter(frame, tf.constant([7, 0], tf.int64))
    """
    image = _check_image(image)
    if image.shape.rank is not None and image.shape.rank != 3:
        raise ValueError(f"image: expected a single image of shape [H, W, 3], got {image.shape}")
    order, factors = color_jitter_params(seed, brightness, contrast, saturation, hue)
    return apply_color_jitter(image, order, factors, hue_enabled=hue > 0)
