import json

import numpy as np
import pytest
import tensorflow as tf

from fgbg_tf.dynamics.state import StateNormaliser, decode_state, encode_state


def random_covariances(shape, seed=0):
    """Symmetric positive definite [*shape, 2, 2] at the scale of fitted landmarks (entries ~1e-3..1e-2)."""
    rng = np.random.default_rng(seed)
    factor = rng.normal(0.0, 0.06, (*shape, 2, 2))
    return (factor @ np.swapaxes(factor, -1, -2) + 1e-3 * np.eye(2)).astype(np.float32)


def test_hand_computed_cholesky_encoding():
    # Sigma = [[4, 2], [2, 5]] = L L^T with L = [[2, 0], [1, 2]]; the second landmark follows the first.
    means = np.array([[[0.5, -0.25], [0.0, 0.75]]], np.float32)
    covariances = np.array([[[[4.0, 2.0], [2.0, 5.0]], [[1.0, 0.0], [0.0, 9.0]]]], np.float32)
    state = encode_state(means, covariances).numpy()
    assert state.shape == (1, 10) and state.dtype == np.float32
    eps = 1e-6  # subtracted from a and c, which decode_state adds back
    expected = [0.5, -0.25, np.log(2 - eps), 1.0, np.log(2 - eps), 0.0, 0.75, np.log(1 - eps), 0.0, np.log(3 - eps)]
    np.testing.assert_allclose(state[0], expected, atol=1e-7)


def test_means_and_covariances_round_trip_through_the_state():
    means = np.random.default_rng(1).uniform(-1, 1, (2, 4, 3, 2)).astype(np.float32)  # [B, T, K, 2]
    covariances = random_covariances((2, 4, 3))
    state = encode_state(means, covariances)
    assert state.shape == (2, 4, 15)
    a = np.sqrt(covariances[..., 0, 0])
    np.testing.assert_allclose(state.numpy()[..., 2::5], np.log(a - 1e-6), rtol=1e-5)  # log a, as numpy factors it
    np.testing.assert_allclose(state.numpy()[..., 3::5], np.linalg.cholesky(covariances)[..., 1, 0], rtol=1e-5)
    decoded_means, decoded_covariances = decode_state(state)
    np.testing.assert_array_equal(decoded_means, means)
    np.testing.assert_allclose(decoded_covariances, covariances, rtol=1e-5, atol=1e-9)


def test_any_real_state_decodes_to_a_symmetric_positive_definite_covariance_and_back():
    state = np.random.default_rng(2).normal(0.0, 1.0, (64, 15)).astype(np.float32)
    means, covariances = decode_state(state)
    covariances = covariances.numpy()
    assert means.shape == (64, 3, 2) and covariances.shape == (64, 3, 2, 2)
    np.testing.assert_array_equal(covariances, np.swapaxes(covariances, -1, -2))
    assert np.linalg.eigvalsh(covariances.astype(np.float64)).min() > 0
    np.testing.assert_allclose(encode_state(means, covariances), state, atol=2e-5)


def test_a_singular_covariance_encodes_to_finite_values():
    # A one-pixel part map's covariance is singular; tf.linalg.cholesky would give NaN.
    covariances = tf.constant([[[0.0, 0.0], [0.0, 0.0]], [[1.0, 1.0], [1.0, 1.0]]])
    state = encode_state(tf.zeros([2, 2]), covariances).numpy()
    assert np.all(np.isfinite(state))
    _, decoded = decode_state(state)
    np.testing.assert_allclose(decoded[1], [[1.0, 1.0], [1.0, 1.0]], atol=1e-5)


def test_normaliser_fits_the_statistics_of_every_frame():
    # Dimension 0 takes 1, 3, 5, 7 (mean 4, std sqrt(5)); dimension 1 never varies, so its std is the floor.
    states = np.array([[[1.0, 10.0], [3.0, 10.0]], [[5.0, 10.0], [7.0, 10.0]]])
    normaliser = StateNormaliser.fit(states)
    np.testing.assert_allclose(normaliser.mean, [4.0, 10.0])
    np.testing.assert_allclose(normaliser.std, [np.sqrt(5.0), 1e-6])
    flat = StateNormaliser.fit(states.reshape(4, 2))
    np.testing.assert_array_equal(flat.mean, normaliser.mean)
    np.testing.assert_array_equal(flat.std, normaliser.std)
    np.testing.assert_allclose(normaliser.normalise(states)[..., 0], np.array([[-3, -1], [1, 3]]) / np.sqrt(5.0))


def test_normaliser_round_trips_arrays_tensors_and_json():
    states = np.random.default_rng(3).normal(2.0, 3.0, (5, 4, 10)).astype(np.float32)
    normaliser = StateNormaliser.fit(states)
    normalised = normaliser.normalise(states)
    assert normalised.dtype == np.float32
    np.testing.assert_allclose(normalised.reshape(-1, 10).mean(0), 0.0, atol=1e-5)
    np.testing.assert_allclose(normalised.reshape(-1, 10).std(0), 1.0, atol=1e-5)
    np.testing.assert_allclose(normaliser.denormalise(normalised), states, atol=1e-5)
    tensor = normaliser.normalise(tf.constant(states))
    assert tf.is_tensor(tensor) and tensor.dtype == tf.float32
    np.testing.assert_allclose(tensor, normalised, atol=1e-6)
    np.testing.assert_allclose(normaliser.denormalise(tensor), states, atol=1e-5)
    restored = StateNormaliser.from_dict(json.loads(json.dumps(normaliser.to_dict())))
    np.testing.assert_array_equal(restored.mean, normaliser.mean)
    np.testing.assert_array_equal(restored.std, normaliser.std)


def test_normaliser_rejects_inconsistent_statistics():
    with pytest.raises(ValueError, match="one length"):
        StateNormaliser(np.zeros(10), np.ones(5))
    with pytest.raises(ValueError, match="positive"):
        StateNormaliser(np.zeros(5), np.zeros(5))
