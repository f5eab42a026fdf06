import keras
import numpy as np
import pytest
import tensorflow as tf

from fgbg_tf.dynamics.model import LandmarkDynamics, dynamics_loss
from fgbg_tf.dynamics.state import StateNormaliser, encode_state


def random_model(num_landmarks=3, hidden=16, layers=2, seed=0, per_landmark=False):
    """A model with random weights everywhere, the residual head included (it starts at zero)."""
    model = LandmarkDynamics(num_landmarks, hidden=hidden, layers=layers, per_landmark=per_landmark, name="dynamics")
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(0.0, 0.3, w.shape).astype(np.float32) for w in model.get_weights()])
    return model


def sequences(batch=2, length=7, size=15, seed=1):
    return np.random.default_rng(seed).normal(0.0, 1.0, (batch, length, size)).astype(np.float32)


def test_an_untrained_model_holds_the_last_state_it_reads():
    states = sequences()
    held = np.concatenate([states[:, :3], np.repeat(states[:, 2:3], 3, axis=1)], axis=1)
    np.testing.assert_array_equal(LandmarkDynamics(3, hidden=16).unroll(states, num_input=3), held)


def test_teacher_forced_predictions_depend_only_on_the_frames_before_them():
    model, states = random_model(), sequences()
    predictions = model.unroll(states, num_input=7).numpy()
    assert predictions.shape == (2, 6, 15)
    np.testing.assert_array_equal(model(states), predictions)
    changed = states.copy()
    changed[:, -1] += 1.0  # the last frame is only ever a target
    np.testing.assert_array_equal(model.unroll(changed, num_input=7), predictions)
    changed[:, 3] += 1.0
    moved = model.unroll(changed, num_input=7).numpy()
    np.testing.assert_array_equal(moved[:, :3], predictions[:, :3])
    assert np.all(np.abs(moved[:, 3:] - predictions[:, 3:]).max(axis=-1) > 1e-3)


def test_free_running_steps_read_the_models_own_predictions_not_the_ground_truth():
    model, states = random_model(), sequences()
    predictions = model.unroll(states, num_input=3).numpy()
    teacher_forced = model.unroll(states, num_input=7).numpy()
    np.testing.assert_array_equal(predictions[:, :3], teacher_forced[:, :3])
    assert np.abs(predictions[:, 3:] - teacher_forced[:, 3:]).min() > 0
    changed = states.copy()
    changed[:, 3:] = -changed[:, 3:]  # frames after s_2 are never inputs
    np.testing.assert_array_equal(model.unroll(changed, num_input=3), predictions)
    # Teacher forcing on a sequence whose frames after s_2 are the model's own predictions gives the same outputs.
    own = states.copy()
    own[:, 3:] = predictions[:, 2:]
    np.testing.assert_allclose(model.unroll(own, num_input=7), predictions, atol=1e-6)


def test_a_per_landmark_model_runs_one_shared_lstm_on_each_landmark_alone():
    model, states = random_model(per_landmark=True), sequences()
    assert model.embed.kernel.shape == (5, 16) and model.head.kernel.shape == (16, 5)
    future = model.rollout(states[:, :3], horizon=4).numpy()
    assert future.shape == (2, 4, 15)
    changed = states.copy()
    changed[..., 5:10] += 1.0  # landmark 1 only
    moved = model.rollout(changed[:, :3], horizon=4).numpy()
    np.testing.assert_array_equal(moved[..., :5], future[..., :5])
    np.testing.assert_array_equal(moved[..., 10:], future[..., 10:])
    assert np.abs(moved[..., 5:10] - future[..., 5:10]).max() > 1e-3
    # Landmark 2's sequence alone through the same weights, as a model of one landmark.
    single = LandmarkDynamics(1, hidden=16, layers=2, per_landmark=True)
    single.set_weights(model.get_weights())
    np.testing.assert_allclose(single.rollout(states[:, :3, 10:], horizon=4), future[..., 10:], atol=1e-6)


def test_rollout_predicts_the_frames_after_the_seeds():
    model, states = random_model(), sequences()
    future = model.rollout(states[:, :3], horizon=4).numpy()
    assert future.shape == (2, 4, 15)
    np.testing.assert_allclose(future, model.unroll(states, num_input=3)[:, 2:], atol=1e-6)
    with pytest.raises(ValueError, match="num_input"):
        model.unroll(states, num_input=8)


def test_unroll_runs_inside_a_tf_function():
    model, states = random_model(), sequences()
    compiled = tf.function(lambda s: model.unroll(s, num_input=3))
    np.testing.assert_allclose(compiled(tf.constant(states)), model.unroll(states, num_input=3), atol=1e-5)


def test_config_round_trip_rebuilds_the_same_model():
    model = random_model(num_landmarks=2, hidden=24, layers=3)
    clone = LandmarkDynamics.from_config(model.get_config())
    assert clone.get_config() == model.get_config()
    assert clone.count_params() == model.count_params() == 10 * 24 + 24 + 3 * (4 * 24 * 48 + 4 * 24) + 24 * 10 + 10
    clone.set_weights(model.get_weights())
    states = sequences(size=10)
    np.testing.assert_array_equal(clone.rollout(states[:, :2], 3), model.rollout(states[:, :2], 3))


def test_loss_is_the_mean_squared_error():
    predictions = np.zeros((2, 3, 5), np.float32)
    targets = np.arange(30, dtype=np.float32).reshape(2, 3, 5)
    assert float(dynamics_loss(predictions, targets)) == pytest.approx(np.mean(targets ** 2))


def moving_landmarks(count, frames=10, seed=0):
    """States [count, frames, 10] of two landmarks, each moving from near the centre at its own constant velocity."""
    rng = np.random.default_rng(seed)
    start = rng.uniform(-0.05, 0.05, (count, 1, 2, 2))
    velocity = rng.uniform(-0.06, 0.06, (count, 1, 2, 2))
    means = start + velocity * np.arange(frames)[None, :, None, None]
    covariances = rng.uniform(0.02, 0.1, (count, 1, 2, 1, 1)) * np.eye(2)
    return encode_state(means, np.broadcast_to(covariances, (count, frames, 2, 2, 2))).numpy()


def test_a_short_training_extrapolates_constant_velocity():
    keras.utils.set_random_seed(0)
    train = moving_landmarks(512)
    normaliser = StateNormaliser.fit(train)
    train = tf.constant(normaliser.normalise(train))
    model = LandmarkDynamics(2, hidden=16)
    optimizer = keras.optimizers.Adam(1e-2)

    @tf.function
    def step(windows):
        # 5 input, 5 future: the last four inputs are the model's own predictions.
        with tf.GradientTape() as tape:
            loss = dynamics_loss(model.unroll(windows, num_input=5), windows[:, 1:])
        optimizer.apply(tape.gradient(loss, model.trainable_variables), model.trainable_variables)

    rng = np.random.default_rng(1)
    for _ in range(250):
        step(tf.gather(train, rng.choice(512, 128, replace=False)))
    test = normaliser.normalise(moving_landmarks(64, seed=5))
    future = model.rollout(test[:, :5], horizon=5).numpy()
    error = np.sqrt(np.mean((future[:, 4] - test[:, 9]) ** 2))
    hold = np.sqrt(np.mean((test[:, 4] - test[:, 9]) ** 2))  # what the untrained model predicts
    assert error < hold / 5
