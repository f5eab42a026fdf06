"""The exported video predictor: seed frames in, future landmarks and frames out, as one SavedModel signature.

    predict_video(seed_frames: uint8 [B, N, S, S, 3])      (also `serving_default`)
        -> means [B, H, K, 2] normalised, means_pixels [B, H, K, 2], covariances [B, H, K, 2, 2] normalised,
           frames uint8 [B, H, S, S, 3]

N is the run's `dynamics.seed_frames`, S the landmark model's size, K its landmarks, H the horizon fixed at export;
the landmark conventions are those of the landmark SavedModel (`module.py`). The graph is the Python pipeline's
(`fgbg_tf/dynamics/`): the landmark model's `landmarks` signature reads the seeds' Gaussians, the normaliser's
statistics (constants in the graph) z-score their states, the LSTM rolls out H steps, and the landmark model's
`render` signature draws each predicted pose with the appearance (and background) of the seed frame
`dynamics.appearance_frame` names.

H is static: `LandmarkDynamics.rollout` is a Python loop, so the graph holds H unrolled steps. A `horizon` input
would need a tf.while_loop copy of that loop, a second implementation of the LSTM step to keep equal to the one
that was trained and evaluated; a longer horizon is another export (`--horizon`).

Example:
    module = VideoPredictionModule(model, dynamics, normaliser, seed_frames=10, horizon=30, appearance_index=9)
    report = export_video_model(module, "exported", windows, reference_rollout(module, seed_states, appearance))
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import tensorflow as tf

from fgbg_tf.dynamics.evaluation import predict_states
from fgbg_tf.dynamics.render import make_state_renderer, render_states
from fgbg_tf.dynamics.state import VALUES_PER_LANDMARK, decode_state, encode_state
from fgbg_tf.model.landmarks import to_pixels
from fgbg_tf.serving import REPORT_FILE
from fgbg_tf.serving.export import folder_bytes
from fgbg_tf.serving.module import SAVED_MODEL_DIR, InferenceModule, run_per_image, save_saved_model

# How far the SavedModel may be from the Python pipeline: float32 rounding in means (normalised units), and one grey
# level in frames, where a value within rounding of a level's boundary may round either way.
MEANS_TOLERANCE = 1e-4
FRAMES_TOLERANCE = 1


class VideoPredictionModule:
    """The `predict_video` function of a landmark model and its trained LSTM (module docstring).

    Args:
        model: the frozen float32 `FactorizedLandmarkModel` the LSTM was trained on.
        dynamics: the trained `LandmarkDynamics`.
        normaliser: its `StateNormaliser`.
        seed_frames: N, the seed frames per window.
        horizon: H, the frames predicted.
        appearance_index: which seed frame (0 .. N - 1) lends its appearance and background to every frame.

    `predict_video` is a `tf.function` with the signature above; `signatures()` returns its concrete function by
    signature name, as `InferenceModule.signatures` does, so `save_saved_model` writes it.
    """

    def __init__(self, model, dynamics, normaliser, seed_frames: int, horizon: int, appearance_index: int):
        if seed_frames < 1 or horizon < 1 or not 0 <= appearance_index < seed_frames:
            raise ValueError(f"need seed_frames >= 1, horizon >= 1 and 0 <= appearance_index < seed_frames, got "
                             f"{seed_frames}, {horizon}, {appearance_index}")
        self.landmark_module = InferenceModule(model)
        self.dynamics, self.normaliser = dynamics, normaliser
        self.seed_frames, self.horizon, self.appearance_index = seed_frames, horizon, appearance_index
        self.image_size, self.num_landmarks = model.image_size, model.num_landmarks
        size = model.image_size
        self.predict_video = tf.function(self._predict_video, input_signature=[
            tf.TensorSpec([None, seed_frames, size, size, 3], tf.uint8, name="seed_frames")])

    def signatures(self) -> dict:
        concrete = self.predict_video.get_concrete_function()
        return {"serving_default": concrete, "predict_video": concrete}

    def _predict_video(self, seed_frames):
        n, h, k, size = self.seed_frames, self.horizon, self.num_landmarks, self.image_size
        state_size = VALUES_PER_LANDMARK * k
        # A loaded signature checks only the dtype: a wrong N or size would otherwise fail inside a reshape.
        seed_frames = tf.ensure_shape(seed_frames, [None, n, size, size, 3],
                                      name=f"check_seed_frames_is_batch_{n}x{size}x{size}x3")
        batch = tf.shape(seed_frames)[0]
        found = self.landmark_module.landmarks(tf.reshape(seed_frames, [-1, size, size, 3]))
        seeds = tf.reshape(encode_state(found["means"], found["covariances"]), [batch, n, state_size])
        states = self.normaliser.denormalise(self.dynamics.rollout(self.normaliser.normalise(seeds), h))
        means, covariances = decode_state(tf.reshape(states, [batch * h, state_size]))
        appearance = tf.repeat(seed_frames[:, self.appearance_index], h, axis=0)  # [B H, S, S, 3]
        image = self.landmark_module.render(means, covariances, appearance)["image"]  # [0, 1]
        # Rounded as `data.pipeline.to_uint8` rounds the Python pipeline's frames.
        frames = tf.cast(tf.clip_by_value(image * 255.0 + 0.5, 0.0, 255.0), tf.uint8)
        return {
            "means": tf.reshape(means, [batch, h, k, 2]),
            "means_pixels": tf.reshape(to_pixels(means, size), [batch, h, k, 2]),
            "covariances": tf.reshape(covariances, [batch, h, k, 2, 2]),
            "frames": tf.reshape(frames, [batch, h, size, size, 3]),
        }


def reference_rollout(module: VideoPredictionModule, seed_states: np.ndarray, appearance: np.ndarray) -> dict:
    """What the Python pipeline (`dynamics.evaluation`) predicts for windows: the reference of `export_video_model`.

    Args:
        module: the module whose landmark model, LSTM and normaliser roll out.
        seed_states: raw states [W, N, 5K] of the windows' seed frames (`sequences.extract_states`).
        appearance: uint8 [W, S, S, 3], each window's appearance frame.

    Returns:
        {"means": float32 [W, H, K, 2] normalised, "frames": uint8 [W, H, S, S, 3]}.
    """
    model = module.landmark_module.model
    states = predict_states(module.dynamics, module.normaliser, seed_states, module.horizon)
    renderer = make_state_renderer(model)
    frames = [render_states(model, window, frame, renderer) for window, frame in zip(states, appearance)]
    return {"means": decode_state(states)[0].numpy(), "frames": np.stack(frames)}


def export_video_model(module: VideoPredictionModule, output_dir, windows: np.ndarray, reference: dict,
                       metadata: dict | None = None) -> dict:
    """Writes OUTPUT/saved_model and, once it reproduces `reference`, OUTPUT/export_report.json; returns the report.

    Args:
        module: what to export.
        output_dir: created if missing.
        windows: uint8 seed frames [W, N, S, S, 3] the SavedModel is run on, one window at a time.
        reference: `reference_rollout` of the same windows.
        metadata: extra report entries (the run, its landmark checkpoint).

    Raises:
        RuntimeError: the loaded SavedModel's means or frames differ from the reference by more than
            MEANS_TOLERANCE or FRAMES_TOLERANCE (`deviation_from_pipeline`); the SavedModel is left in place for
            inspection, the report is not written.
    """
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    saved = save_saved_model(module, output_dir / SAVED_MODEL_DIR)
    loaded = tf.saved_model.load(str(saved))
    predict = loaded.signatures["predict_video"]
    outputs, ms = run_per_image(lambda w: {k: v.numpy() for k, v in predict(seed_frames=tf.constant(w)).items()},
                                windows)
    deviation = deviation_from_pipeline(outputs, reference, module.image_size, str(saved))
    report = {"seed_frames": module.seed_frames, "horizon": module.horizon, "image_size": module.image_size,
              "num_landmarks": module.num_landmarks, "variant": module.landmark_module.model.variant,
              "appearance_seed_frame": module.appearance_index, **(metadata or {}),
              "saved_model": {"path": str(saved), "bytes": folder_bytes(saved),
                              "signatures": sorted(loaded.signatures.keys()), "ms_per_window": ms,
                              "checked_windows": len(windows), **deviation}}
    (output_dir / REPORT_FILE).write_text(json.dumps(report, indent=1))
    return report


def deviation_from_pipeline(outputs: dict, reference: dict, image_size: int, name: str) -> dict:
    """The largest differences of an export's "means" and "frames" from `reference_rollout`'s.

    Raises RuntimeError, naming `name`, beyond MEANS_TOLERANCE or FRAMES_TOLERANCE: an export that does not
    reproduce the pipeline is a bug to fix, not a deviation to weigh.
    """
    means = float(np.max(np.abs(outputs["means"] - reference["means"])))
    frames = int(np.max(np.abs(outputs["frames"].astype(np.int16) - reference["frames"])))
    if not (means <= MEANS_TOLERANCE and frames <= FRAMES_TOLERANCE):
        raise RuntimeError(f"{name} does not reproduce the Python pipeline on {len(outputs['means'])} windows: "
                           f"means differ by up to {means:.3g} (tolerance {MEANS_TOLERANCE:g}), frames by up to "
                           f"{frames} grey levels (tolerance {FRAMES_TOLERANCE}); do not use it")
    return {"max_mean_deviation": means, "max_mean_deviation_pixels": means * image_size / 2.0,
            "max_frame_deviation": frames}
