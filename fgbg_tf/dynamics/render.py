"""Frames from landmark states: the landmark model's renderer with a seed frame's appearance (paper section 4.3).

Each predicted state becomes K Gaussians, their heatmaps (eq. 2) and a frame rendered by the landmark model with
the appearance of one seed frame. For the full model that frame also fixes the background: BGNet sees the seed
frame without its own foreground, the same for every step, while the foreground and the blending mask follow each
step's heatmaps (the paper: one background for the sequence, a new foreground and mask per step). The baseline
draws the foreground alone.

Example:
    frames = render_states(model, predicted_states, seed_frame)    # [T, 5K], uint8 [S, S, 3] -> uint8 [T, S, S, 3]
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from fgbg_tf.data.pipeline import to_model_range, to_uint8
from fgbg_tf.dynamics.state import decode_state
from fgbg_tf.model.landmarks import render_heatmaps


def make_state_renderer(model):
    """A tf.function (states [T, 5K], seed frame uint8 [S, S, 3]) -> the model's outputs for the T frames.

    Returns a dict with "reconstruction" (and, by variant, "foreground", "background", "mask") in model range.
    """
    size = model.image_size
    state_size = 5 * model.num_landmarks

    @tf.function(input_signature=[tf.TensorSpec([None, state_size], tf.float32),
                                  tf.TensorSpec([size, size, 3], tf.uint8)])
    def render(states, seed_frame):
        mean, covariance = decode_state(states)
        heatmaps = render_heatmaps(mean, covariance, size)
        appearance = tf.repeat(to_model_range(seed_frame)[None], tf.shape(states)[0], axis=0)
        return model.render(heatmaps, appearance)

    return render


def render_states(model, states, seed_frame, renderer=None, batch_size: int = 32) -> np.ndarray:
    """uint8 [T, S, S, 3] frames of `states` [T, 5K] (raw, not normalised) with `seed_frame`'s appearance."""
    renderer = renderer or make_state_renderer(model)
    states = np.asarray(states, np.float32)
    parts = [renderer(states[i:i + batch_size], seed_frame)["reconstruction"].numpy()
             for i in range(0, len(states), batch_size)]
    return to_uint8(np.concatenate(parts))
