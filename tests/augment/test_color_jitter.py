"""Tests for fgbg_tf.augment.color_jitter: torchvision ColorJitter formulas, factor ranges, random order, statelessness."""

import numpy as np
import pytest
import tensorflow as tf

from fgbg_tf.augment.color_jitter import (
    adjust_brightness,
    adjust_contrast,
    adjust_hue,
    adjust_saturation,
    apply_color_jitter,
    color_jitter,
    color_jitter_params,
)

OPS = (adjust_brightness, adjust_contrast, adjust_saturation, adjust_hue)


def _image(seed, size=8):
    return tf.constant(np.random.default_rng(seed).uniform(size=(size, size, 3)), tf.float32)


def _torchvision_adjust_hue(img, hue_factor):
    """NumPy port of torchvision.transforms.functional_tensor adjust_hue (_rgb2hsv / _hsv2rgb) on HWC."""
    r, g, b = img[..., 0], img[..., 1], img[..., 2]
    maxc, minc = img.max(-1), img.min(-1)
    eqc = maxc == minc
    cr = maxc - minc
    s = cr / np.where(eqc, 1.0, maxc)
    cr_divisor = np.where(eqc, 1.0, cr)
    rc, gc, bc = (maxc - r) / cr_divisor, (maxc - g) / cr_divisor, (maxc - b) / cr_divisor
    hr = (maxc == r) * (bc - gc)
    hg = ((maxc == g) & (maxc != r)) * (2.0 + rc - bc)
    hb = ((maxc != g) & (maxc != r)) * (4.0 + gc - rc)
    h = np.fmod((hr + hg + hb) / 6.0 + 1.0, 1.0)
    h = (h + hue_factor) % 1.0
    v = maxc
    i = np.floor(h * 6.0)
    f = h * 6.0 - i
    i = i.astype(np.int32) % 6
    p = np.clip(v * (1.0 - s), 0, 1)
    q = np.clip(v * (1.0 - s * f), 0, 1)
    t = np.clip(v * (1.0 - s * (1.0 - f)), 0, 1)
    table = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)]
    out = np.zeros_like(img)
    for k, channels in enumerate(table):
        out[i == k] = np.stack(channels, -1)[i == k]
    return out


def test_brightness_scales_and_clips():
    img = tf.constant([[[0.2, 0.5, 0.8]]])
    np.testing.assert_allclose(adjust_brightness(img, 1.5).numpy(), [[[0.3, 0.75, 1.0]]], atol=1e-6)


def test_contrast_blends_with_grayscale_mean_not_channel_means():
    # Red and blue pixels: grayscale mean (0.2989 + 0.114) / 2 = 0.20645, channel means (0.5, 0, 0.5).
    img = tf.constant([[[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]])
    mean = (0.2989 + 0.114) / 2
    expected = 0.5 * img.numpy() + 0.5 * mean
    np.testing.assert_allclose(adjust_contrast(img, 0.5).numpy(), expected, atol=1e-6)
    assert not np.allclose(tf.image.adjust_contrast(img, 0.5).numpy(), expected, atol=1e-2)


def test_saturation_blends_with_per_pixel_gray():
    img = tf.constant([[[1.0, 0.5, 0.0]]])
    gray = 0.2989 + 0.587 * 0.5
    np.testing.assert_allclose(adjust_saturation(img, 0.0).numpy(), [[[gray] * 3]], atol=1e-6)
    np.testing.assert_allclose(adjust_saturation(img, 2.0).numpy(), [[[1.0, 1.0 - gray, 0.0]]], atol=1e-6)


def test_hue_shift_is_in_turns():
    red = tf.constant([[[1.0, 0.0, 0.0]]])
    np.testing.assert_allclose(adjust_hue(red, 1 / 3).numpy(), [[[0.0, 1.0, 0.0]]], atol=1e-5)
    np.testing.assert_allclose(adjust_hue(red, -1 / 3).numpy(), [[[0.0, 0.0, 1.0]]], atol=1e-5)
    np.testing.assert_allclose(adjust_hue(red, 0.5).numpy(), [[[0.0, 1.0, 1.0]]], atol=1e-5)


@pytest.mark.parametrize("factor", [-0.5, -0.3, -0.07, 0.11, 0.3, 0.5])
def test_hue_matches_torchvision_formula(factor):
    img = _image(0, size=16).numpy()
    img[0, 0] = [0.4, 0.4, 0.4]  # gray pixel: undefined hue branch
    img[0, 1] = [0.9, 0.9, 0.2]  # max shared by R and G
    expected = _torchvision_adjust_hue(img.astype(np.float64), factor)
    np.testing.assert_allclose(adjust_hue(tf.constant(img), factor).numpy(), expected, atol=2e-5)


def test_factor_ranges_respected():
    seeds = [tf.constant([i, 3]) for i in range(300)]
    factors = np.stack([color_jitter_params(s)[1].numpy() for s in seeds])
    for column, (low, high) in enumerate([(0.6, 1.4), (0.6, 1.4), (0.6, 1.4), (-0.3, 0.3)]):
        assert factors[:, column].min() >= low and factors[:, column].max() <= high
        assert factors[:, column].min() < low + 0.05 and factors[:, column].max() > high - 0.05

    gray = tf.fill([4, 4, 3], 0.5)
    implied = [color_jitter(gray, s, contrast=0, saturation=0, hue=0)[0, 0, 0].numpy() / 0.5 for s in seeds[:100]]
    assert 0.6 <= min(implied) < 0.65 and 1.35 < max(implied) <= 1.4
    # Strength above 1: the lower end clamps at 0 like torchvision's max(0, 1 - x).
    strong = np.stack([color_jitter_params(s, brightness=1.5)[1].numpy()[0] for s in seeds[:100]])
    assert strong.min() >= 0.0 and strong.max() <= 2.5 and strong.min() < 0.2


def test_contrast_and_saturation_factors_recovered_from_images():
    two_grays = tf.constant([[[0.4] * 3, [0.6] * 3]])
    colourful = tf.constant([[[0.6, 0.5, 0.4]]])
    gray = 0.2989 * 0.6 + 0.587 * 0.5 + 0.114 * 0.4
    for i in range(40):
        seed = tf.constant([i, 9])
        out = color_jitter(two_grays, seed, brightness=0, saturation=0, hue=0).numpy()
        contrast = (out[0, 1, 0] - out[0, 0, 0]) / 0.2
        np.testing.assert_allclose(contrast, color_jitter_params(seed)[1][1].numpy(), atol=1e-4)
        out = color_jitter(colourful, seed, brightness=0, contrast=0, hue=0).numpy()
        saturation = (out[0, 0, 0] - gray) / (0.6 - gray)
        np.testing.assert_allclose(saturation, color_jitter_params(seed)[1][2].numpy(), atol=1e-4)


def test_zero_strengths_are_identity():
    img = _image(1)
    out = color_jitter(img, tf.constant([5, 5]), brightness=0, contrast=0, saturation=0, hue=0)
    np.testing.assert_array_equal(out.numpy(), img.numpy())


def test_same_seed_same_output_different_seed_different():
    img = _image(2)
    a = color_jitter(img, tf.constant([1, 2])).numpy()
    b = color_jitter(img, tf.constant([1, 2], tf.int64)).numpy()
    c = color_jitter(img, tf.constant([1, 3])).numpy()
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).max() > 1e-2


def test_order_is_random_and_applied():
    img = _image(3)
    orders = {tuple(color_jitter_params(tf.constant([i, 0]))[0].numpy()) for i in range(60)}
    assert all(sorted(order) == [0, 1, 2, 3] for order in orders)
    assert len(orders) >= 12  # 60 draws of a uniform permutation of 4 hit ~21 of the 24 orders

    for i in range(6):
        seed = tf.constant([i, 0])
        order, factors = color_jitter_params(seed)
        expected = img
        for op in order.numpy():
            expected = OPS[op](expected, factors[op])
        reversed_order = img
        for op in order.numpy()[::-1]:
            reversed_order = OPS[op](reversed_order, factors[op])
        out = color_jitter(img, seed).numpy()
        np.testing.assert_allclose(out, expected.numpy(), atol=1e-6)
        assert np.abs(out - reversed_order.numpy()).max() > 1e-3


def test_output_stays_in_unit_range():
    img = _image(4, size=16)
    for i in range(10):
        out = color_jitter(img, tf.constant([i, 1]), brightness=1.0, contrast=1.0, saturation=1.0, hue=0.5).numpy()
        assert out.min() >= 0.0 and out.max() <= 1.0


def test_graph_mode_and_tf_data_match_eager():
    img = _image(5)
    seeds = tf.constant([[i, 4] for i in range(4)], tf.int64)
    eager = np.stack([color_jitter(img, s).numpy() for s in seeds])
    graph = tf.function(color_jitter)
    np.testing.assert_allclose(graph(img, seeds[0]).numpy(), eager[0], atol=1e-6)
    dataset = tf.data.Dataset.from_tensor_slices(seeds).map(lambda s: color_jitter(img, s))
    np.testing.assert_allclose(np.stack(list(dataset.as_numpy_iterator())), eager, atol=1e-6)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"brightness": -0.1}, "brightness"),
        ({"contrast": -1}, "contrast"),
        ({"saturation": "0.4"}, "saturation"),
        ({"hue": 0.6}, "hue"),
        ({"hue": -0.1}, "hue"),
    ],
)
def test_invalid_strengths_raise(kwargs, name):
    with pytest.raises(ValueError, match=name):
        color_jitter(_image(6), tf.constant([0, 0]), **kwargs)


def test_invalid_image_and_seed_raise():
    with pytest.raises(ValueError, match="image"):
        color_jitter(tf.zeros([4, 4, 1]), tf.constant([0, 0]))
    with pytest.raises(ValueError, match="image"):
        color_jitter(tf.zeros([4, 4, 3], tf.uint8), tf.constant([0, 0]))
    with pytest.raises(ValueError, match="seed"):
        color_jitter(_image(7), tf.constant([0, 0, 0]))
    with pytest.raises(ValueError, match="seed"):
        color_jitter(_image(7), tf.constant([0.0, 1.0]))


def test_apply_color_jitter_skips_hue_when_disabled():
    img = _image(8)
    factors = tf.constant([1.0, 1.0, 1.0, 0.25])
    out = apply_color_jitter(img, tf.constant([3, 2, 1, 0]), factors, hue_enabled=False)
    np.testing.assert_array_equal(out.numpy(), img.numpy())
