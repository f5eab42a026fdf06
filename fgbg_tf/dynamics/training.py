"""Training the landmark LSTM on state sequences (docs/video-prediction.md section 1.3, "Training regime").

Every step draws a batch of windows of N + M consecutive states (`dynamics.train_input`, `train_future`) from the
training clips, z-scores them with the training set's statistics and minimises the squared error of
`LandmarkDynamics.unroll`: N ground-truth inputs, then M of the model's own predictions. A step's windows are a
function of (seed, step) alone and the optimizer's state is checkpointed with the weights, so a run that stops
resumes to the same weights it would have reached without stopping.

Example:
    model, normaliser = train_dynamics(sequences, config.dynamics, Path("runs/dynamics"), seed=0)
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from fgbg_tf.config import DynamicsConfig
from fgbg_tf.dynamics.model import LandmarkDynamics, dynamics_loss
from fgbg_tf.dynamics.sequences import sample_windows
from fgbg_tf.dynamics.state import VALUES_PER_LANDMARK, StateNormaliser
from fgbg_tf.training.checkpoints import RunState

logger = logging.getLogger("fgbg_tf.video_prediction")

NORMALISER_FILE = "normaliser.json"
CHECKPOINTS = "checkpoints"


def build_dynamics(num_landmarks: int, config: DynamicsConfig) -> LandmarkDynamics:
    return LandmarkDynamics(num_landmarks, hidden=config.hidden, layers=config.layers, per_landmark=config.per_landmark)


def step_weights(sequences, normaliser: StateNormaliser) -> np.ndarray:
    """Per-dimension loss weights [5K]: 1 / the variance of the dimension's frame-to-frame change, mean 1.

    In z-scored units a landmark's position moves by a small fraction of its spread from one frame to the next,
    while a fitted covariance's entries jitter by much more of theirs; an unweighted squared error is then mostly
    the covariances' unpredictable jitter and barely sees the motion. Weighted, every dimension's typical step
    counts the same.
    """
    steps = np.concatenate([np.diff(normaliser.normalise(np.asarray(s, np.float64)), axis=0) for s in sequences])
    weights = 1.0 / np.maximum(steps.var(axis=0), 1e-12)
    return (weights / weights.mean()).astype(np.float32)


def step_windows(sequences, normaliser: StateNormaliser, config: DynamicsConfig, seed: int, step: int) -> np.ndarray:
    """The normalised training windows of one step, [B, N + M, 5K] float32: a function of (seed, step) only."""
    rng = np.random.default_rng([seed, step])
    windows = sample_windows(sequences, config.train_input + config.train_future, config.batch_size, rng)
    return normaliser.normalise(windows).astype(np.float32)


def train_dynamics(sequences, config: DynamicsConfig, output: Path, seed: int = 0, on_step=None):
    """Trains (or resumes) the LSTM in `output`; returns (model, normaliser).

    Args:
        sequences: training clips' states, float32 [T_i, 5K] each.
        config: the `dynamics` section.
        output: the run folder: `normaliser.json` and `checkpoints/` (weights, optimizer, step).
        seed: the initial weights and the windows (`step_windows`).
        on_step: called as on_step(step, loss) after every step (1-based), once the step's checkpoint (every
            `config.log_every` steps and at the end) is written.
    """
    state_size = sequences[0].shape[-1]
    keras.utils.set_random_seed(seed)  # the initial weights, so that a run is a function of its seed
    model = build_dynamics(state_size // VALUES_PER_LANDMARK, config)
    normaliser_path = output / NORMALISER_FILE
    if normaliser_path.is_file():
        normaliser = StateNormaliser.from_dict(json.loads(normaliser_path.read_text()))
    else:
        normaliser = StateNormaliser.fit(np.concatenate(sequences))
        output.mkdir(parents=True, exist_ok=True)
        normaliser_path.write_text(json.dumps(normaliser.to_dict()))
    optimizer = keras.optimizers.Adam(config.learning_rate)
    optimizer.build(model.trainable_variables)
    step_counter = tf.Variable(0, dtype=tf.int64, trainable=False)
    state = RunState(model, optimizer, step=step_counter)
    manager = tf.train.CheckpointManager(state.checkpoint, str(output / CHECKPOINTS), max_to_keep=2)
    if manager.latest_checkpoint:
        state.restore(manager.latest_checkpoint)
        logger.info("resuming the dynamics run in %s at step %d", output, int(step_counter))

    num_input = config.train_input
    weights = step_weights(sequences, normaliser) if config.weight_by_step else None

    @tf.function
    def train_step(windows):
        with tf.GradientTape() as tape:
            loss = dynamics_loss(model.unroll(windows, num_input), windows[:, 1:], weights)
        optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
        return loss

    for step in range(int(step_counter), config.max_steps):
        loss = float(train_step(step_windows(sequences, normaliser, config, seed, step)))
        step_counter.assign(step + 1)
        if (step + 1) % config.log_every == 0 or step + 1 == config.max_steps:
            manager.save(checkpoint_number=step + 1)
        if on_step is not None:
            on_step(step + 1, loss)
    return model, normaliser


def load_dynamics(output: Path, num_landmarks: int, config: DynamicsConfig):
    """The trained LSTM and normaliser of a run folder (its newest checkpoint)."""
    normaliser_path = output / NORMALISER_FILE
    latest = tf.train.latest_checkpoint(str(output / CHECKPOINTS))
    if latest is None or not normaliser_path.is_file():
        raise FileNotFoundError(f"{output} holds no trained dynamics model (expected {NORMALISER_FILE} and "
                                f"{CHECKPOINTS}/); train one with `python -m fgbg_tf.video_prediction train`")
    model = build_dynamics(num_landmarks, config)
    RunState(model).restore(latest, partial=True)
    return model, StateNormaliser.from_dict(json.loads(normaliser_path.read_text()))
