"""TensorBoard pictures and scalars: the paper's Figure 6 layout with landmark overlays, and evaluation reports.

Columns, left to right: input x, T_cj(x) (pose), T_tps(x) / T_temp(x)
(appearance), background, foreground, mask, reconstruction; landmarks of the pose
image drawn on the first two.

Example:
    grid = figure6_grid(batch, outputs)   # uint8 [rows * S, 7 * S, 3]
"""

from __future__ import annotations

import colorsys

import cv2
import numpy as np
import tensorflow as tf

from fgbg_tf.data.pipeline import to_uint8
from fgbg_tf.model.landmarks import to_pixels

COLUMNS = ("input", "pose (T_cj)", "appearance", "background", "foreground", "mask", "reconstruction")


def landmark_colours(count: int) -> np.ndarray:
    """`count` distinct RGB uint8 colours (evenly spaced hues), stable across calls."""
    hues = np.arange(count) / max(count, 1)
    return np.array([[int(255 * c) for c in colorsys.hsv_to_rgb(h, 0.9, 1.0)] for h in hues], np.uint8)


def draw_landmarks(image: np.ndarray, points: np.ndarray, radius: int = 2) -> np.ndarray:
    """Draws (x, y) pixel `points` [K, 2] on a uint8 RGB image as filled dots with a dark rim."""
    image = np.ascontiguousarray(image.copy())
    colours = landmark_colours(len(points))
    for (x, y), colour in zip(points, colours):
        centre = (int(round(float(x))), int(round(float(y))))
        cv2.circle(image, centre, radius + 1, (0, 0, 0), -1, cv2.LINE_AA)
        cv2.circle(image, centre, radius, tuple(int(c) for c in colour), -1, cv2.LINE_AA)
    return image


def figure6_grid(batch: dict, outputs: dict, rows: int = 4) -> np.ndarray:
    """Lays out `rows` examples of a batch and the model's outputs in Figure 6's columns."""
    size = np.asarray(batch["target"]).shape[1]
    rows = min(rows, np.asarray(batch["target"]).shape[0])
    points = np.asarray(to_pixels(outputs["mean"], size))
    blank = np.zeros((rows, size, size, 3), np.float32) - 1.0
    mask = outputs.get("mask")
    columns = [
        batch["target"],
        batch["pose"],
        batch["appearance"],
        outputs.get("background", blank),
        outputs["foreground"],
        blank if mask is None else np.repeat(np.asarray(mask) * 2.0 - 1.0, 3, axis=-1),
        outputs["reconstruction"],
    ]
    tiles = [to_uint8(np.asarray(column)[:rows]) for column in columns]
    for c in (0, 1):
        tiles[c] = np.stack([draw_landmarks(tile, p) for tile, p in zip(tiles[c], points[:rows])])
    return np.concatenate([np.concatenate(list(column), axis=0) for column in tiles], axis=1)


def log_figure6(writer, model, batch, step: int) -> None:
    """Writes the Figure 6 grid of `model` on `batch` to the TensorBoard `writer` at `step`."""
    outputs = model({"pose": batch["pose"], "appearance": batch["appearance"]}, training=False)
    grid = figure6_grid({k: v.numpy() for k, v in batch.items()}, {k: v.numpy() for k, v in outputs.items()})
    with writer.as_default(step=step):
        tf.summary.image("figure6 (input, T_cj, appearance, background, foreground, mask, reconstruction)",
                         grid[None], max_outputs=1)


def log_evaluation(log_dir, report: dict, pictures: dict, step: int) -> None:
    """Scalars of every origin's metrics and the pictures, under eval/<dataset>/ in TensorBoard."""
    writer = tf.summary.create_file_writer(str(log_dir))
    prefix = f"eval/{report['dataset']}"
    with writer.as_default(step=step):
        for origin, values in report.get("results", {}).items():
            for name, value in values.items():
                tf.summary.scalar(f"{prefix}/{origin}/{name}", value)
        # A user's images or videos without annotations (evaluation/unannotated.py).
        for name in ("reconstruction_psnr_db", "copy_appearance_psnr_db", "landmark_step_px", "landmark_spread_px",
                     "landmark_jitter_shift_px", "landmark_tps_error_px", "tps_displacement_px"):
            if report.get(name) is not None:
                tf.summary.scalar(f"{prefix}/{name}", report[name])
        if report.get("containment"):
            tf.summary.scalar(f"{prefix}/containment_min_pct", report["containment"]["min_percent"])
        for name, value in (report.get("factorisation") or {}).items():
            tf.summary.scalar(f"{prefix}/factorisation/{name}", value)
        for name, image in pictures.items():
            tf.summary.image(f"{prefix}/{name}", image[None], max_outputs=1)
    writer.flush()
