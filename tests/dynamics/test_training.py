import numpy as np
import pytest

from fgbg_tf.config import DynamicsConfig
from fgbg_tf.dynamics.state import StateNormaliser
from fgbg_tf.dynamics.training import load_dynamics, step_weights, train_dynamics


def _config(**changes):
    values = dict(seed_frames=3, predicted_frames=4, train_input=3, train_future=2, hidden=8, layers=1, batch_size=4,
                  learning_rate=1e-2, max_steps=4, log_every=2)
    return DynamicsConfig(**{**values, **changes})


def _sequences():
    rng = np.random.default_rng(0)
    return [np.cumsum(rng.normal(size=(12, 10)), axis=0).astype(np.float32) for _ in range(3)]


def test_step_weights_are_the_inverse_variance_of_each_dimensions_step():
    # With unit statistics, dimension 0 steps by +-1 (step variance 1) and dimension 1 by +-2 (variance 4).
    steps = np.array([[1.0, 2.0], [-1.0, -2.0]] * 4)
    sequence = np.cumsum(steps, axis=0)
    normaliser = StateNormaliser(mean=np.zeros(2), std=np.array([1.0, 1.0]))
    weights = step_weights([sequence], normaliser)
    # Step variances 1 and 4 -> inverse 1 and 1/4, scaled to mean 1: 1.6 and 0.4.
    np.testing.assert_allclose(weights, [1.6, 0.4], rtol=1e-6)


def test_a_resumed_run_reaches_the_weights_of_an_uninterrupted_one(tmp_path):
    sequences = _sequences()
    straight, _ = train_dynamics(sequences, _config(), tmp_path / "straight")
    train_dynamics(sequences, _config(max_steps=2), tmp_path / "resumed")
    resumed, _ = train_dynamics(sequences, _config(), tmp_path / "resumed")
    for a, b in zip(straight.get_weights(), resumed.get_weights()):
        np.testing.assert_array_equal(a, b)
    # Training moved the weights (the head starts at zero).
    assert np.abs(straight.head.get_weights()[0]).max() > 0


def test_a_trained_run_loads_back_with_its_normaliser(tmp_path):
    sequences = _sequences()
    model, normaliser = train_dynamics(sequences, _config(), tmp_path)
    loaded, loaded_normaliser = load_dynamics(tmp_path, 2, _config())
    seeds = normaliser.normalise(sequences[0][None, :3])
    np.testing.assert_allclose(loaded.rollout(seeds, 4), model.rollout(seeds, 4), atol=1e-6)
    np.testing.assert_array_equal(loaded_normaliser.std, normaliser.std)
    with pytest.raises(FileNotFoundError, match="no trained dynamics model"):
        load_dynamics(tmp_path / "missing", 2, _config())
