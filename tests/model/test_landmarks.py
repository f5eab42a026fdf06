import numpy as np
import pytest
import tensorflow as tf

from fgbg_tf.model.landmarks import (
    coordinate_grid,
    fit_gaussians,
    precision_matrix,
    render_heatmaps,
    spatial_softmax,
    to_pixels,
)


def one_hot_maps(points, size=4):
    """[1, size, size, K] maps with equal mass on the given (row, col) cells of each part."""
    maps = np.zeros((1, size, size, len(points)), np.float32)
    for k, cells in enumerate(points):
        for r, c in cells:
            maps[0, r, c, k] = 1.0 / len(cells)
    return tf.constant(maps)


def test_grid_uses_the_release_left_edge_convention():
    np.testing.assert_allclose(coordinate_grid(4), [-1.0, -0.5, 0.0, 0.5])
    np.testing.assert_allclose(coordinate_grid(64)[:2], [-1.0, -0.96875])


def test_softmax_sums_to_one_and_survives_huge_logits():
    logits = tf.constant(np.random.default_rng(0).normal(size=(2, 5, 5, 3)) * 1e4, tf.float32)
    probs = spatial_softmax(logits).numpy()
    assert np.all(np.isfinite(probs))
    np.testing.assert_allclose(probs.sum(axis=(1, 2)), 1.0, atol=1e-6)


def test_gaussian_fit_on_hand_computable_maps():
    # Part 0: all mass at row 1, col 2 -> (x, y) = (0, -0.5), zero covariance.
    # Part 1: half at (0, 0), half at (0, 2) -> x in {-1, 0}: mean -0.5, var 0.25, y var 0.
    # Part 2: half at (0, 0), half at (2, 2) -> x = y in {-1, 0}: full covariance 0.25 everywhere.
    probs = one_hot_maps([[(1, 2)], [(0, 0), (0, 2)], [(0, 0), (2, 2)]])
    mean, cov = fit_gaussians(probs)
    np.testing.assert_allclose(mean[0], [[0.0, -0.5], [-0.5, -1.0], [-0.5, -0.5]], atol=1e-6)
    np.testing.assert_allclose(cov[0, 0], np.zeros((2, 2)), atol=1e-6)
    np.testing.assert_allclose(cov[0, 1], [[0.25, 0.0], [0.0, 0.0]], atol=1e-6)
    np.testing.assert_allclose(cov[0, 2], [[0.25, 0.25], [0.25, 0.25]], atol=1e-6)


def test_fixed_covariance_is_a_scaled_identity():
    _, cov = fit_gaussians(one_hot_maps([[(1, 1)], [(0, 3)]]), covariance="fixed", fixed_covariance=0.08)
    np.testing.assert_allclose(cov[0], 0.08 * np.stack([np.eye(2)] * 2), atol=1e-7)


def test_precision_matches_numpy_inverse():
    cov = np.array([[[0.3, 0.1], [0.1, 0.2]], [[0.05, -0.02], [-0.02, 0.04]]], np.float32)
    np.testing.assert_allclose(precision_matrix(tf.constant(cov)), np.linalg.inv(cov), rtol=1e-5)


def test_heatmap_is_eq2():
    # Mean (0, 0), covariance 0.25 I on a 4-pixel grid [-1, -0.5, 0, 0.5]:
    # at (x=0.5, y=0): 1 / (1 + 0.25 / 0.25) = 0.5; at (x=-1, y=-1): 1 / (1 + 2 / 0.25) = 1/9.
    mean = tf.zeros([1, 1, 2])
    cov = tf.constant([[[[0.25, 0.0], [0.0, 0.25]]]])
    heat = render_heatmaps(mean, cov, image_size=4).numpy()[0, :, :, 0]
    assert heat[2, 2] == pytest.approx(1.0)
    assert heat[2, 3] == pytest.approx(0.5)
    assert heat[0, 0] == pytest.approx(1 / 9)


def test_heatmap_with_full_covariance_matches_direct_formula():
    rng = np.random.default_rng(1)
    mean = rng.uniform(-0.5, 0.5, size=(2, 3, 2)).astype(np.float32)
    a = rng.normal(size=(2, 3, 2, 2)).astype(np.float32) * 0.3
    cov = a @ np.swapaxes(a, -1, -2) + 0.01 * np.eye(2, dtype=np.float32)
    heat = render_heatmaps(tf.constant(mean), tf.constant(cov), image_size=16).numpy()
    grid = -1 + 2 * np.arange(16) / 16
    for b in range(2):
        for k in range(3):
            inv = np.linalg.inv(cov[b, k])
            for row, col in [(0, 0), (5, 11), (15, 3)]:
                d = np.array([grid[col], grid[row]]) - mean[b, k]
                assert heat[b, row, col, k] == pytest.approx(1 / (1 + d @ inv @ d), rel=1e-4)


def test_to_pixels_maps_grid_coordinates_to_pixel_indices():
    np.testing.assert_allclose(to_pixels(coordinate_grid(8), 8), np.arange(8), atol=1e-6)


def test_heatmaps_of_a_singular_covariance_stay_in_unit_range():
    # A part map on a diagonal line fits a singular covariance; eq. 2's clamped determinant then makes the
    # precision ~1e10, and in a graph (as in training) float32 cancellation took the quadratic form to -1 on the
    # line: 124 of 4 x 32 x 32 heatmap values were inf before the fix.
    line = tf.constant(np.tile(np.float32([[0.01, 0.01], [0.01, 0.01]]), [1, 4, 1, 1]))
    heatmaps = tf.function(render_heatmaps)(tf.zeros([1, 4, 2]), line, 32).numpy()
    assert np.all(np.isfinite(heatmaps)) and heatmaps.min() >= 0.0 and heatmaps.max() <= 1.0
