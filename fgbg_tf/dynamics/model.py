"""The LSTM that predicts how the landmarks move (docs/video-prediction.md section 1.3).

It works on normalised states only (`state.py`): appearance and background stay those of a seed frame, so the
video's motion is the sequence of its Gaussians. Each step reads one state s_t, updates two stacked LSTM cells and
predicts s_{t+1} as s_t plus a residual, so an untrained model (zero head) holds the landmarks still, the "copy the
last frame" baseline, and training learns only the motion.

Training generalises the seed paper's "N input, M future" (App. E) as `unroll`: on a window of N + M frames the
first N inputs are ground truth and the rest are the model's own predictions, as at test time, where `rollout`
warms up on the seed frames and then runs free. The time loop is a Python loop over the window's static length,
so under tf.function each length traces one unrolled graph (at most some 40 steps: KTH's 10 seeds and 30 frames).

Example:
    model = LandmarkDynamics(num_landmarks=10)
    loss = dynamics_loss(model.unroll(windows, num_input=10), windows[:, 1:])   # windows [B, N + M, 50]
    future = model.rollout(seeds, horizon=30)                                    # seeds [B, 10, 50] -> [B, 30, 50]
"""

from __future__ import annotations

import keras
import tensorflow as tf

from fgbg_tf.dynamics.state import VALUES_PER_LANDMARK


@keras.saving.register_keras_serializable("fgbg_tf")
class LandmarkDynamics(keras.Model):
    """Linear embedding -> stacked LSTM cells -> linear head predicting s_{t+1} - s_t, in normalised state units.

    Args:
        num_landmarks: K; states have 5K values (`state.encode_state`).
        hidden: H, the embedding width and every LSTM cell's units.
        layers: how many LSTM cells are stacked.
        per_landmark: one LSTM shared by the K landmarks, each landmark's 5 values a sequence of its own (a batch
            of B x K sequences), instead of one LSTM over all 5K values. It sees K times as many sequences through
            a 5-wide input: on the synthetic videos the whole-state LSTM learnt its training clips by heart and
            the shared one generalised (docs/video_prediction.md).

    Shapes: `unroll` [B, T, 5K] -> [B, T - 1, 5K] (predictions of s_1 .. s_{T-1}); `rollout` [B, S, 5K] seeds ->
    [B, horizon, 5K] (s_S .. s_{S + horizon - 1}); calling the model is `unroll` with every input ground truth.
    Example: `LandmarkDynamics(3, hidden=32).rollout(seeds, horizon=5)`.
    """

    def __init__(self, num_landmarks: int, hidden: int = 256, layers: int = 2, per_landmark: bool = False, **kwargs):
        super().__init__(**kwargs)
        if num_landmarks < 1 or hidden < 1 or layers < 1:
            raise ValueError(f"num_landmarks, hidden and layers must be >= 1, got {num_landmarks}, {hidden}, {layers}")
        # `layers` is stored under another name: keras.Model already has a `layers` property.
        self.num_landmarks, self.hidden, self.lstm_layers = num_landmarks, hidden, layers
        self.per_landmark = per_landmark
        self.state_dim = VALUES_PER_LANDMARK * num_landmarks
        # The width of one sequence's values: a landmark's, or the whole state's.
        self.step_dim = VALUES_PER_LANDMARK if per_landmark else self.state_dim
        dtype = self.dtype_policy
        self.embed = keras.layers.Dense(hidden, dtype=dtype, name="embed")
        self.cells = [keras.layers.LSTMCell(hidden, dtype=dtype, name=f"lstm_{i}") for i in range(layers)]
        self.head = keras.layers.Dense(self.step_dim, kernel_initializer="zeros", dtype=dtype, name="residual")
        self.build()

    def build(self, input_shape=None):
        # Every shape follows from the constructor's arguments, so the weights exist from the start (parameter
        # counts, checkpoints) without tracing `call`; Keras' loader calls this again, hence the guards.
        for layer, width in [(self.embed, self.step_dim), *[(cell, self.hidden) for cell in self.cells],
                             (self.head, self.hidden)]:
            if not layer.built:
                layer.build((None, width))

    def call(self, states, training=False):
        return self.unroll(states, states.shape[1])

    def unroll(self, states, num_input: int):
        """Predicts s_1 .. s_{T-1} of `states` [B, T, 5K], ground truth as input for the first `num_input` steps.

        The input at step t (0-based, t = 0 .. T-2) is s_t when t < num_input, else the prediction of s_t made at
        step t - 1. Frames after s_{num_input - 1} are never read: only their count matters. Gradients flow through
        the fed-back predictions, as through any other step.
        """
        length = states.shape[1]
        if length is None or length < 2:
            raise ValueError(f"states need a static length T >= 2, got shape {states.shape}")
        if not 1 <= num_input <= length:
            raise ValueError(f"num_input must be in [1, {length}], got {num_input}")
        return self._run(states[:, :num_input], length - 1)

    def rollout(self, seed_states, horizon: int):
        """Warms up on `seed_states` [B, S, 5K] and predicts the next `horizon` states, [B, horizon, 5K]."""
        seeds = seed_states.shape[1]
        if seeds is None or seeds < 1 or horizon < 1:
            raise ValueError(f"need a static number of seeds >= 1 and horizon >= 1, got {seed_states.shape}, {horizon}")
        # The step that reads the last seed predicts s_S; the earlier steps only warm the LSTM up.
        return self._run(seed_states, seeds + horizon - 1)[:, seeds - 1:]

    def _run(self, truth, steps: int):
        """`steps` steps from a zero LSTM state, reading truth[:, t] while there is one, else the last prediction."""
        truth = tf.cast(truth, self.compute_dtype)
        if self.per_landmark:  # [B, t, 5K] -> [B K, t, 5]: each landmark a sequence of the batch
            batch, length = tf.shape(truth)[0], truth.shape[1]
            per = tf.reshape(tf.transpose(tf.reshape(truth, [batch, length, self.num_landmarks, -1]), [0, 2, 1, 3]),
                             [batch * self.num_landmarks, length, VALUES_PER_LANDMARK])
            out = self._run_sequences(per, steps)  # [B K, steps, 5]
            out = tf.transpose(tf.reshape(out, [batch, self.num_landmarks, steps, VALUES_PER_LANDMARK]), [0, 2, 1, 3])
            return tf.reshape(out, [batch, steps, self.state_dim])
        return self._run_sequences(truth, steps)

    def _run_sequences(self, truth, steps: int):
        batch = tf.shape(truth)[0]
        carries = [cell.get_initial_state(batch) for cell in self.cells]
        predictions = []
        for t in range(steps):
            current = truth[:, t] if t < truth.shape[1] else predictions[-1]
            features = self.embed(current)
            for i, cell in enumerate(self.cells):
                features, carries[i] = cell(features, carries[i])
            predictions.append(current + self.head(features))
        return tf.stack(predictions, axis=1)

    def get_config(self):
        return {**super().get_config(), "num_landmarks": self.num_landmarks, "hidden": self.hidden,
                "layers": self.lstm_layers, "per_landmark": self.per_landmark}


def dynamics_loss(predictions, targets, weights=None) -> tf.Tensor:
    """Mean squared error over every predicted value, in normalised state units (a scalar).

    `weights` [5K], if given, scale each dimension's squared error (`training.step_weights`).
    """
    squared = tf.square(tf.cast(predictions, tf.float32) - tf.cast(targets, tf.float32))
    if weights is not None:
        squared = squared * tf.constant(weights, tf.float32)
    return tf.reduce_mean(squared)
