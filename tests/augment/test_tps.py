"""Tests for fgbg_tf.augment.tps: TPS fit/interpolation, warp direction and sampling, release parameter ranges."""

import math
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from fgbg_tf.augment.tps import random_tps_targets, random_tps_warp, tps_map, tps_warp

S = 64
NO_PERTURBATION = {"rotation": 0.0, "scale": (1.0, 1.0), "translation": 0.0, "point_jitter": 0.0}


def _smooth_image(seed, size=S, channels=3):
    coarse = np.random.default_rng(seed).uniform(size=(1, 8, 8, channels)).astype(np.float32)
    return tf.image.resize(coarse, [size, size])[0]


def _grid(size):
    xs, ys = np.meshgrid(np.arange(size), np.arange(size))
    return np.stack([xs.ravel(), ys.ravel()], axis=-1).astype(np.float64)


def _numpy_bilinear(image, coords):
    """Reference bilinear sampling with edge clamping; coords [..., 2] (x, y), pixel i at coordinate i."""
    h, w = image.shape[:2]
    x = np.clip(coords[..., 0], 0, w - 1)
    y = np.clip(coords[..., 1], 0, h - 1)
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    x1, y1 = np.minimum(x0 + 1, w - 1), np.minimum(y0 + 1, h - 1)
    wx, wy = (x - x0)[..., None], (y - y0)[..., None]
    return (
        image[y0, x0] * (1 - wx) * (1 - wy)
        + image[y0, x1] * wx * (1 - wy)
        + image[y1, x0] * (1 - wx) * wy
        + image[y1, x1] * wx * wy
    )


def _fit_affine(source, target):
    """Least-squares [x y 1] A = target; returns (M [2, 2], offset [2])."""
    design = np.c_[source, np.ones(len(source))]
    solution = np.linalg.lstsq(design, target, rcond=None)[0]
    return solution[:2], solution[2]


def test_identity_without_perturbation():
    image = tf.random.stateless_uniform([S, S, 3], seed=[1, 2])
    out = random_tps_warp(image, tf.constant([7, 7]), **NO_PERTURBATION)
    np.testing.assert_allclose(out.numpy(), image.numpy(), atol=1e-5)


def test_affine_related_points_give_the_affine_warp():
    image = _smooth_image(0).numpy()
    source, _ = random_tps_targets(tf.constant([0, 0]), S)
    source = source.numpy().astype(np.float64)
    angle, sx, sy, centre = 0.3, 1.12, 1.06, np.array([30.0, 27.0])
    matrix = np.array([[sx * math.cos(angle), -math.sin(angle)], [math.sin(angle), sy * math.cos(angle)]])
    target = (source - centre) @ matrix + centre
    out = tps_warp(image, source, target).numpy()

    pixels = _grid(S)
    mapped = (pixels - centre) @ matrix + centre
    expected = _numpy_bilinear(image, mapped).reshape(S, S, 3)
    interior = np.all((mapped > 1) & (mapped < S - 2), axis=-1).reshape(S, S)
    assert interior.mean() > 0.5
    np.testing.assert_allclose(out[interior], expected[interior], atol=1e-4)
    # Replicate border: samples beyond the edge take the edge value.
    np.testing.assert_allclose(out, expected, atol=1e-4)


def test_tps_interpolates_control_points():
    for i in range(3):
        source, target = random_tps_targets(tf.constant([i, 5]), 128)
        np.testing.assert_allclose(tps_map(source, source, target).numpy(), target.numpy(), atol=1e-3)
    # Non-grid control points and a non-affine target configuration.
    rng = np.random.default_rng(1)
    source = rng.uniform(0, 100, size=(12, 2))
    target = rng.uniform(0, 100, size=(12, 2))
    np.testing.assert_allclose(tps_map(source, source, target).numpy(), target, atol=1e-3)


def test_tps_map_matches_float64_thin_plate_spline():
    source, target = (p.numpy().astype(np.float64) for p in random_tps_targets(tf.constant([2, 9]), S))

    def kernel(d2):
        return d2 * np.log(np.where(d2 > 0, d2, 1.0))

    n = len(source)
    system = np.zeros((n + 3, n + 3))
    system[:n, :n] = kernel(((source[:, None] - source[None]) ** 2).sum(-1))
    system[:n, n:] = np.c_[np.ones(n), source]
    system[n:, :n] = system[:n, n:].T
    coefficients = np.linalg.solve(system, np.r_[target, np.zeros((3, 2))])
    pixels = _grid(S)
    basis = np.c_[kernel(((pixels[:, None] - source[None]) ** 2).sum(-1)), np.ones(len(pixels)), pixels]
    np.testing.assert_allclose(tps_map(pixels, source, target).numpy(), basis @ coefficients, atol=5e-4)


def test_warp_samples_input_at_mapped_position():
    # A linear ramp is reproduced exactly by bilinear sampling, so output(p) reads off T(p) = input position.
    ramp = np.stack([*np.meshgrid(np.arange(S), np.arange(S)), np.zeros((S, S))], axis=-1) / S
    source, target = random_tps_targets(tf.constant([4, 1]), S)
    out = tps_warp(tf.constant(ramp, tf.float32), source, target).numpy()
    # At 64 px the grid is linspace(5, 59, 10): integer pixels, so the control points are output pixels.
    cols, rows = source.numpy().astype(int).T
    np.testing.assert_allclose(source.numpy(), np.stack([cols, rows], -1))
    inside = np.all((target.numpy() >= 0) & (target.numpy() <= S - 1), axis=-1)
    assert inside.mean() > 0.75
    np.testing.assert_allclose(out[rows, cols, :2][inside] * S, target.numpy()[inside], atol=1e-3)


@pytest.mark.parametrize("scale, area_ratio", [(1.1, 1 / 1.1**2), (0.9, 1 / 0.9**2)])
def test_scale_above_one_shrinks_content(scale, area_ratio):
    image = np.zeros((S, S, 3), np.float32)
    image[20:44, 20:44] = 1.0
    kwargs = dict(NO_PERTURBATION, scale=(scale, scale))
    out = random_tps_warp(tf.constant(image), tf.constant([0, 3]), **kwargs).numpy()
    np.testing.assert_allclose(out.sum() / image.sum(), area_ratio, rtol=0.03)
    bright_columns = np.flatnonzero(out[:, :, 0].max(axis=0) > 0.5)
    width = bright_columns[-1] - bright_columns[0] + 1
    assert (width < 24) if scale > 1 else (width > 24)


def test_random_parameters_within_configured_ranges():
    size = 128
    draw = tf.function(lambda seed, jitter: random_tps_targets(seed, size, point_jitter=jitter)[1])
    draw_rigid = tf.function(lambda seed: random_tps_targets(seed, size, point_jitter=0.0))
    angles, scales, shifts, jitters = [], [], [], []
    for i in range(150):
        seed = tf.constant([i, 11])
        source, target = (p.numpy().astype(np.float64) for p in draw_rigid(seed))
        matrix, offset = _fit_affine(source, target)
        np.testing.assert_allclose(source @ matrix + offset, target, atol=1e-3)
        angle = math.asin(matrix[1, 0])
        np.testing.assert_allclose(matrix[0, 1], -matrix[1, 0], atol=1e-6)
        angles.append(angle)
        scales += [matrix[0, 0] / math.cos(angle), matrix[1, 1] / math.cos(angle)]
        # offset = c (I - M) with c = 59 + t (half the largest grid coordinate 118, plus the translation).
        centre = offset @ np.linalg.inv(np.eye(2) - matrix)
        shifts += list(centre - 59.0)
        jitters.append(draw(seed, 2 / 128).numpy() - target)
    angles, scales, shifts, jitters = map(np.asarray, (angles, scales, shifts, jitters))
    assert np.abs(angles).max() <= math.pi / 8 + 1e-6 and np.abs(angles).max() > 0.9 * math.pi / 8
    assert scales.min() >= 1.05 - 1e-5 and scales.max() <= 1.15 + 1e-5
    assert scales.min() < 1.06 and scales.max() > 1.14
    assert np.abs(shifts).max() <= 10 + 1e-3 and np.abs(shifts).max() > 9
    assert np.abs(jitters).max() <= 2 + 1e-4 and np.abs(jitters).max() > 1.9
    np.testing.assert_allclose(source[[0, -1]], [[10, 10], [118, 118]], atol=1e-5)


def test_pixel_quantities_scale_with_image_size():
    seed = tf.constant([8, 8])
    source_128, target_128 = random_tps_targets(seed, 128)
    source_32, target_32 = random_tps_targets(seed, 32)
    np.testing.assert_allclose(source_32.numpy() * 4, source_128.numpy(), atol=1e-4)
    np.testing.assert_allclose(target_32.numpy() * 4, target_128.numpy(), atol=1e-3)


def test_same_seed_identical_warp_different_seed_differs():
    image = _smooth_image(3)
    a = random_tps_warp(image, tf.constant([1, 2])).numpy()
    b = random_tps_warp(image, tf.constant([1, 2], tf.int64)).numpy()
    c = random_tps_warp(image, tf.constant([2, 2])).numpy()
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).max() > 0.05


def test_batched_warp_matches_single_images():
    images = tf.stack([_smooth_image(i) for i in range(3)])
    seed = tf.constant([6, 1])
    batched = random_tps_warp(images, seed).numpy()
    seeds = tf.random.experimental.stateless_split(tf.constant([6, 1], tf.int64), num=3)
    for i in range(3):
        np.testing.assert_allclose(batched[i], random_tps_warp(images[i], seeds[i]).numpy(), atol=1e-5)

    points = [random_tps_targets(s, S) for s in seeds]
    source = tf.stack([p[0] + 0.5 * i for i, p in enumerate(points)])  # per-image source grids
    target = tf.stack([p[1] for p in points])
    per_image = tps_warp(images, source, target).numpy()
    for i in range(3):
        np.testing.assert_allclose(per_image[i], tps_warp(images[i], source[i], target[i]).numpy(), atol=1e-5)


def test_graph_mode_and_tf_data_match_eager():
    image = _smooth_image(4)
    seeds = tf.constant([[i, 2] for i in range(3)], tf.int64)
    eager = np.stack([random_tps_warp(image, s).numpy() for s in seeds])
    graph = tf.function(random_tps_warp)
    np.testing.assert_allclose(graph(image, seeds[0]).numpy(), eager[0], atol=1e-5)
    dataset = tf.data.Dataset.from_tensor_slices(seeds).map(lambda s: random_tps_warp(image, s))
    np.testing.assert_allclose(np.stack(list(dataset.as_numpy_iterator())), eager, atol=1e-5)


def test_matches_opencv_thin_plate_spline():
    # OpenCV's own TPS warp of a smooth 32 px image by the release's control points (seed [3, 4]), computed once with
    # opencv-contrib-python-headless 5.0.0 (the pinned headless OpenCV has no shape module); the file says how.
    reference = np.load(Path(__file__).parent / "data" / "opencv_tps_warp.npz")
    source, target = (p.numpy() for p in random_tps_targets(tf.constant([3, 4]), 32))
    np.testing.assert_allclose(source, reference["source"], atol=1e-5)
    np.testing.assert_allclose(target, reference["target"], atol=1e-4)
    warped = tps_warp(reference["image"], reference["source"], reference["target"]).numpy()
    assert np.abs(reference["expected"] - reference["image"]).max() > 0.3  # the warp moves content
    np.testing.assert_allclose(warped, reference["expected"], atol=2e-3)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"grid_size": 1}, "grid_size"),
        ({"rotation": -0.1}, "rotation"),
        ({"scale": (1.1, 1.0)}, "scale"),
        ({"scale": 1.1}, "scale"),
        ({"translation": -1.0}, "translation"),
        ({"point_jitter": -0.01}, "point_jitter"),
        ({"margin": 0.5}, "margin"),
    ],
)
def test_invalid_parameters_raise(kwargs, name):
    with pytest.raises(ValueError, match=name):
        random_tps_targets(tf.constant([0, 0]), S, **kwargs)


def test_invalid_inputs_raise():
    source, target = random_tps_targets(tf.constant([0, 0]), S)
    with pytest.raises(ValueError, match="image_size"):
        random_tps_targets(tf.constant([0, 0]), 0)
    with pytest.raises(ValueError, match="seed"):
        random_tps_targets(tf.constant([0, 0, 0]), S)
    with pytest.raises(ValueError, match="image"):
        random_tps_warp(tf.zeros([S, S + 1, 3]), tf.constant([0, 0]))
    with pytest.raises(ValueError, match="image"):
        tps_warp(tf.zeros([S, S, 3], tf.int32), source, target)
    with pytest.raises(ValueError, match="source_points"):
        tps_warp(tf.zeros([S, S, 3]), source[None], target)
    with pytest.raises(ValueError, match="target_points"):
        tps_warp(tf.zeros([S, S, 3]), source, target[:-1])
    with pytest.raises(ValueError, match="source_points"):
        tps_warp(tf.zeros([S, S, 3]), source[:2], target[:2])
