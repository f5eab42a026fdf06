"""Scoring video prediction (paper section 4.3, docs/video-prediction.md sections 2-4): rollouts on test clips.

Each test clip is cut into non-overlapping windows of `seed_frames + predicted_frames` frames from its start (a
BAIR clip of 30 frames is one window 2 -> 28, as SAVP scores it; SAVP draws one random 40-frame window per KTH
segment, we take every whole window in order, so that the set is the same on every run). For each window:

- the LSTM warms up on the seed frames' landmark states and predicts the next `predicted_frames` states;
- landmarks: the predicted means against the landmark model's own detections on the true future frames, in pixels
  (mean over landmarks), next to holding the last seed frame's landmarks still;
- frames: the predicted states rendered with the appearance and background of one seed frame
  (`dynamics.appearance_frame`), scored against the true frames by PSNR, SSIM and LPIPS (`video_metrics`), next to
  the anchors of the spec (section 4.3): the last seed frame copied, and the true future frames' own landmarks
  rendered the same way (what the renderer allows when the motion is predicted perfectly).

Example:
    report, strips = evaluate_rollouts(landmark_model, dynamics, normaliser, clips, states, config.dynamics)
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from fgbg_tf.config import DynamicsConfig
from fgbg_tf.data import DatasetError
from fgbg_tf.dynamics.render import make_state_renderer, render_states
from fgbg_tf.dynamics.state import VALUES_PER_LANDMARK
from fgbg_tf.evaluation.lpips import NO_WEIGHTS
from fgbg_tf.evaluation.video_metrics import frame_metrics, summarise

# The frame sources scored against the truth, in the report's order.
METHODS = ("predicted", "copy_last_frame", "true_landmarks")


def scored_windows(clips, length: int) -> list[tuple[int, int]]:
    """(clip index, start) of every non-overlapping window of `length` frames, clip by clip from frame 0."""
    windows = [(i, start) for i, (_, frames) in enumerate(clips) for start in range(0, len(frames) - length + 1, length)]
    if not windows:
        raise DatasetError(f"no test clip has the {length} frames a window needs (dynamics.seed_frames + "
                           f"dynamics.predicted_frames); the longest has {max(len(f) for _, f in clips)}")
    return windows


def predict_states(dynamics, normaliser, seed_states, horizon: int) -> np.ndarray:
    """Raw states [B, horizon, 5K] after the raw seed states [B, N, 5K]."""
    seeds = tf.constant(normaliser.normalise(np.asarray(seed_states, np.float64)), tf.float32)
    return normaliser.denormalise(dynamics.rollout(seeds, horizon).numpy().astype(np.float64)).astype(np.float32)


def landmark_distance(states, reference, image_size: int) -> np.ndarray:
    """Mean distance in pixels over landmarks between the means of two state arrays [..., 5K] -> [...]."""
    def means(values):
        values = np.asarray(values, np.float64)
        return values.reshape(values.shape[:-1] + (-1, VALUES_PER_LANDMARK))[..., :2]

    # Means live in [-1, 1] over the S-pixel side.
    return np.linalg.norm(means(states) - means(reference), axis=-1).mean(axis=-1) * image_size / 2.0


def scored_frames(videos: np.ndarray, config: DynamicsConfig) -> np.ndarray:
    """uint8 videos [N, T, S, S, 3] as the protocol scores them: resized (area) to `score_size`, grey if asked."""
    if config.score_size is not None and config.score_size != videos.shape[2]:
        flat = videos.reshape((-1,) + videos.shape[2:])
        resized = tf.image.resize(flat, [config.score_size] * 2, method="area").numpy()
        videos = np.clip(np.round(resized), 0, 255).astype(np.uint8).reshape(videos.shape[:2] + resized.shape[1:])
    if config.score_grey:
        videos = np.round(videos.mean(axis=-1, keepdims=True)).astype(np.uint8)
    return videos


def evaluate_rollouts(landmark_model, dynamics, normaliser, clips, states, config: DynamicsConfig, lpips=None,
                      max_windows: int | None = None, strip_count: int = 4):
    """Scores every test window (module docstring).

    Args:
        landmark_model: the frozen `FactorizedLandmarkModel` whose states the LSTM was trained on.
        dynamics, normaliser: the trained `LandmarkDynamics` and its `StateNormaliser`.
        clips: [(name, uint8 [T, S, S, 3])] test clips; states: their states [T, 5K] (`extract_states`).
        lpips: an `LPIPS` or None (no weights: LPIPS is reported as null).
        max_windows: score at most this many windows.
        strip_count: how many windows' frames to return for pictures.

    Returns:
        (report, strips): the JSON-ready report, and for the first `strip_count` windows a dict of uint8 frame
        arrays "seed" [N, S, S, 3], "truth", "predicted", "true_landmarks" [H, S, S, 3] and "name".
    """
    seeds, horizon = config.seed_frames, config.predicted_frames
    windows = scored_windows(clips, seeds + horizon)[:max_windows]
    seed_states = np.stack([states[c][s:s + seeds] for c, s in windows])
    true_states = np.stack([states[c][s + seeds:s + seeds + horizon] for c, s in windows])
    predicted_states = predict_states(dynamics, normaliser, seed_states, horizon)
    held_states = np.repeat(seed_states[:, -1:], horizon, axis=1)
    size = landmark_model.image_size

    renderer = make_state_renderer(landmark_model)
    appearance_index = seeds - 1 if config.appearance_frame == "last" else 0
    frames = {method: [] for method in ("truth", *METHODS)}
    strips = []
    for i, (c, s) in enumerate(windows):
        clip = clips[c][1]
        seed_frame = clip[s + appearance_index]
        window = {
            "truth": clip[s + seeds:s + seeds + horizon],
            "predicted": render_states(landmark_model, predicted_states[i], seed_frame, renderer),
            "copy_last_frame": np.repeat(clip[s + seeds - 1][None], horizon, axis=0),
            "true_landmarks": render_states(landmark_model, true_states[i], seed_frame, renderer),
        }
        for key, value in window.items():
            frames[key].append(value)
        if i < strip_count:
            strips.append({"name": f"{clips[c][0]}@{s}", "seed": clip[s:s + seeds], **window})
    truth = scored_frames(np.stack(frames["truth"]), config)
    images = {method: summarise(frame_metrics(scored_frames(np.stack(frames[method]), config), truth, lpips))
              for method in METHODS}

    predicted_error = landmark_distance(predicted_states, true_states, size)
    held_error = landmark_distance(held_states, true_states, size)
    report = {
        "windows": len(windows),
        "seed_frames": seeds,
        "predicted_frames": horizon,
        "appearance_frame": config.appearance_frame,
        "scored_at": f"{truth.shape[2]} x {truth.shape[3]}, {'grey' if config.score_grey else 'RGB'}",
        "lpips": "LPIPS v0.1, AlexNet" if lpips is not None else NO_WEIGHTS,
        "landmarks": {
            "unit": "pixels of the model input, mean over landmarks, against the landmark model's detections",
            "predicted": summarise({"error": predicted_error})["error"],
            "hold_last": summarise({"error": held_error})["error"],
        },
        "frames": images,
    }
    return report, strips


def format_report(report: dict) -> str:
    """A short table: the landmark error at a few horizons and each method's mean PSNR, SSIM and LPIPS."""
    horizon = report["predicted_frames"]
    marks = sorted({1, min(5, horizon), min(10, horizon), horizon})
    landmarks = report["landmarks"]
    lines = [f"video prediction: {report['windows']} windows, {report['seed_frames']} seed -> {horizon} predicted "
             f"frames, appearance from the {report['appearance_frame']} seed frame",
             "landmark error (px) at frame " + ", ".join(f"+{m}" for m in marks) + ":"]
    for name in ("predicted", "hold_last"):
        curve = landmarks[name]["curve"]
        lines.append(f"  {name:<16}" + "  ".join(f"{curve[m - 1]:7.3f}" for m in marks)
                     + f"   mean {landmarks[name]['mean']:.3f}")
    lines.append(f"frames (mean over predicted frames +/- 95 % CI; {report['lpips']}):")
    for method, scores in report["frames"].items():
        cells = []
        for metric in ("psnr", "ssim", "lpips"):
            value = scores.get(metric)
            cells.append(f"{metric} " + ("n/a" if value is None else f"{value['mean']:.3f} +/- {value['ci95']:.3f}"))
        lines.append(f"  {method:<16}" + "   ".join(cells))
    return "\n".join(lines)
