"""The per-frame landmark state the dynamics model reads and predicts (docs/video-prediction.md section 1.3).

A frame's K Gaussians become one vector of 5K values, per landmark (mu_x, mu_y, log a, b, log c), where
L = [[a, 0], [b, c]] is the Cholesky factor of the covariance (Sigma = L L^T). The logarithms make the encoding
unconstrained: whatever the LSTM outputs decodes to a positive definite covariance, which a model predicting
Sigma's entries directly could not promise. Raw covariance entries are some 1e-3..1e-2 against means near 1, so
`StateNormaliser` z-scores every dimension with training-set statistics before a squared error compares them.

Example:
    state = encode_state(mean, cov)                      # [B, K, 2], [B, K, 2, 2] -> [B, 5K]
    normaliser = StateNormaliser.fit(train_states)       # train_states [N, T, 5K]
    mean, cov = decode_state(normaliser.denormalise(normaliser.normalise(state)))
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tensorflow as tf

# Values per landmark: mu_x, mu_y, log a, b, log c.
VALUES_PER_LANDMARK = 5

# A dimension that never varies over the training set (a fixed covariance, a landmark that never moves) would
# otherwise be divided by zero.
_MIN_STD = 1e-6


def encode_state(means, covariances, eps: float = 1e-6) -> tf.Tensor:
    """Encodes landmarks as states, float32.

    Args:
        means: [..., K, 2] (x, y) in [-1, 1].
        covariances: [..., K, 2, 2] symmetric positive (semi-)definite.
        eps: the floor `decode_state` adds to a and c; subtracted here so that the two are inverses.

    Returns:
        [..., 5K] states, per landmark (mu_x, mu_y, log(a - eps), b, log(c - eps)).
    """
    means = tf.cast(means, tf.float32)
    covariances = tf.cast(covariances, tf.float32)
    # The 2 x 2 Cholesky factor in closed form, not tf.linalg.cholesky: a one-pixel part map has a singular
    # covariance, for which tf.linalg.cholesky returns NaN on CPU. The floors keep such a landmark finite (it
    # decodes with a = c = 2 eps); any covariance whose a and c exceed 2 eps is factored exactly.
    xy = 0.5 * (covariances[..., 0, 1] + covariances[..., 1, 0])
    a = tf.sqrt(tf.maximum(covariances[..., 0, 0], eps * eps))
    b = xy / a
    c = tf.sqrt(tf.maximum(covariances[..., 1, 1] - b * b, eps * eps))
    log_a = tf.math.log(tf.maximum(a - eps, eps))
    log_c = tf.math.log(tf.maximum(c - eps, eps))
    per_landmark = tf.stack([means[..., 0], means[..., 1], log_a, b, log_c], axis=-1)  # [..., K, 5]
    size = VALUES_PER_LANDMARK * means.shape[-2]
    return tf.reshape(per_landmark, tf.concat([tf.shape(per_landmark)[:-2], [size]], axis=0))


def decode_state(state, eps: float = 1e-6):
    """Decodes states [..., 5K] (any real values) into means [..., K, 2] and covariances [..., K, 2, 2], float32.

    a = exp(log a) + eps and c = exp(log c) + eps are positive, so every covariance L L^T is symmetric positive
    definite.
    """
    state = tf.cast(state, tf.float32)
    size = state.shape[-1]
    if size is None or size % VALUES_PER_LANDMARK:
        raise ValueError(f"a state's last dimension must be 5K (a multiple of {VALUES_PER_LANDMARK}), got {size}")
    shape = tf.concat([tf.shape(state)[:-1], [size // VALUES_PER_LANDMARK, VALUES_PER_LANDMARK]], axis=0)
    per_landmark = tf.reshape(state, shape)
    means = per_landmark[..., 0:2]
    a = tf.exp(per_landmark[..., 2]) + eps
    b = per_landmark[..., 3]
    c = tf.exp(per_landmark[..., 4]) + eps
    ab = a * b
    covariances = tf.stack([tf.stack([a * a, ab], -1), tf.stack([ab, b * b + c * c], -1)], -2)
    return means, covariances


@dataclass(eq=False)
class StateNormaliser:
    """Per-dimension z-scoring of states with training-set statistics.

    Attributes:
        mean: [5K] float64.
        std: [5K] float64, positive.

    `normalise` and `denormalise` take numpy arrays or tensors of shape [..., 5K] and return the same kind in the
    same floating dtype. Example: `StateNormaliser.fit(states).normalise(states)`.
    """

    mean: np.ndarray
    std: np.ndarray

    def __post_init__(self):
        self.mean = np.asarray(self.mean, np.float64)
        self.std = np.asarray(self.std, np.float64)
        if self.mean.ndim != 1 or self.mean.shape != self.std.shape:
            raise ValueError(f"mean and std must be vectors of one length, got {self.mean.shape} and {self.std.shape}")
        if not np.all(self.std > 0):
            raise ValueError("std must be positive")

    @classmethod
    def fit(cls, states) -> StateNormaliser:
        """Statistics of training states [N, T, 5K] or [M, 5K], over every frame; std floored at 1e-6."""
        values = np.asarray(states, np.float64)
        if values.ndim < 2:
            raise ValueError(f"states must be [N, T, 5K] or [M, 5K], got shape {values.shape}")
        values = values.reshape(-1, values.shape[-1])
        return cls(values.mean(axis=0), np.maximum(values.std(axis=0), _MIN_STD))

    def normalise(self, states):
        mean, std, states = self._statistics_like(states)
        return (states - mean) / std

    def denormalise(self, states):
        mean, std, states = self._statistics_like(states)
        return states * std + mean

    def _statistics_like(self, states):
        if tf.is_tensor(states):
            return tf.constant(self.mean, states.dtype), tf.constant(self.std, states.dtype), states
        states = np.asarray(states)
        dtype = states.dtype if np.issubdtype(states.dtype, np.floating) else np.float64
        return self.mean.astype(dtype), self.std.astype(dtype), states

    def to_dict(self) -> dict:
        """Plain lists, for JSON."""
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, values: dict) -> StateNormaliser:
        return cls(values["mean"], values["std"])
