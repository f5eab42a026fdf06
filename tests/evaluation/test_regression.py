"""The no-intercept regressor: exact recovery, origin dependence, saving and applying."""

import numpy as np
import pytest
import tensorflow as tf

from fgbg_tf.evaluation.regression import Regressor, apply_regressor, fit_regressor, load_regressor, save_regressor


def _translated_square():
    """Landmark means on the corners {0, 64}^2 of a 65 px image; keypoint = landmark + (10, 0)."""
    means = np.array([[[0, 0]], [[64, 0]], [[0, 64]], [[64, 64]]], np.float64)
    return means, means + np.array([10.0, 0.0])


def test_origin_changes_the_no_intercept_fit():
    means, keypoints = _translated_square()
    # Centre origin (32, 32): the centred corners are symmetric, so the translation is
    # unexplainable and least squares gives the identity -> every keypoint 10 px off.
    centre = fit_regressor(means, keypoints, "centre", image_size=65)
    np.testing.assert_allclose(centre.coefficients, np.eye(2), atol=1e-12)
    centre_error = np.linalg.norm(apply_regressor(centre, means) - keypoints, axis=-1)
    np.testing.assert_allclose(centre_error, 10.0)
    # Top-left origin: kx = (53 x + 5 y) / 48 solves the normal equations
    # [[2, 1], [1, 2]] w = [2.3125, 1.3125]; errors 10, 10/3, 10/3, 10/3 -> mean 5 px.
    top_left = fit_regressor(means, keypoints, "top_left", image_size=65)
    np.testing.assert_allclose(top_left.coefficients, [[53 / 48, 0.0], [5 / 48, 1.0]], atol=1e-12)
    errors = np.linalg.norm(apply_regressor(top_left, means) - keypoints, axis=-1)
    np.testing.assert_allclose(errors[:, 0], [10, 10 / 3, 10 / 3, 10 / 3], atol=1e-9)


def test_fit_recovers_an_exact_linear_map_and_predicts_new_frames():
    rng = np.random.default_rng(0)
    coefficients = rng.normal(size=(6, 4))
    means = rng.uniform(0, 64, size=(40, 3, 2))
    offset = 31.5
    keypoints = ((means - offset).reshape(40, 6) @ coefficients).reshape(40, 2, 2) + offset
    regressor = fit_regressor(means[:30], keypoints[:30], "centre", 64, ("a", "b"))
    np.testing.assert_allclose(regressor.coefficients, coefficients, atol=1e-9)
    np.testing.assert_allclose(apply_regressor(regressor, means[30:]), keypoints[30:], atol=1e-9)


@pytest.mark.parametrize("suffix", [".json", ".npz"])
def test_save_and_load_round_trip(tmp_path, suffix):
    means, keypoints = _translated_square()
    regressor = fit_regressor(means, keypoints, "top_left", 65, ("nose",))
    loaded = load_regressor(save_regressor(regressor, tmp_path / f"r{suffix}"))
    assert (loaded.origin, loaded.image_size, loaded.keypoint_names) == ("top_left", 65, ("nose",))
    np.testing.assert_array_equal(loaded.coefficients, regressor.coefficients)


def test_apply_on_tensors_inside_a_tf_function_matches_numpy():
    means, keypoints = _translated_square()
    regressor = fit_regressor(means, keypoints, "centre", 65)
    graph = tf.function(lambda m: apply_regressor(regressor, m))
    np.testing.assert_allclose(graph(tf.constant(means, tf.float32)).numpy(), apply_regressor(regressor, means), atol=1e-4)


def test_bad_files_and_shapes_fail_clearly(tmp_path):
    (tmp_path / "other.json").write_text('{"coefficients": [[1, 0], [0, 1]]}')
    with pytest.raises(ValueError, match="not a regressor saved by fgbg_tf"):
        load_regressor(tmp_path / "other.json")
    with pytest.raises(ValueError, match="must end in .json or .npz"):
        save_regressor(Regressor(np.eye(2), "centre", 8, ()), tmp_path / "r.pkl")
    with pytest.raises(ValueError, match="origin must be one of"):
        Regressor(np.eye(2), "middle", 8, ())
    with pytest.raises(ValueError, match="means_pixels must be"):
        apply_regressor(Regressor(np.eye(2), "centre", 8, ()), np.zeros((3, 2, 2)))


def test_missing_points_are_fitted_on_the_frames_that_have_them():
    # Keypoints an exact linear map of the means; a third of the frames miss point 1. The fit recovers the map
    # (NaN rows left out per coordinate), and a fit on those rows alone is no better.
    rng = np.random.default_rng(4)
    means = rng.uniform(0, 32, (60, 3, 2))
    truth = rng.normal(size=(6, 4))
    keypoints = (means.reshape(60, 6) @ truth).reshape(60, 2, 2)
    keypoints[::3, 1] = np.nan
    regressor = fit_regressor(means, keypoints, "top_left", 32)
    np.testing.assert_allclose(regressor.coefficients, truth, atol=1e-9)
    keypoints[:, 0] = np.nan
    with pytest.raises(ValueError, match="keypoint 0 is missing in every frame"):
        fit_regressor(means, keypoints, "top_left", 32)
