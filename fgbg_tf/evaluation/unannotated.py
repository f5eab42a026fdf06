"""What `evaluate` reports on a user's images or videos that carry no annotations.

Without keypoints there is no regression to fit, but some numbers still say whether a model learnt something, all on
the held-out images or videos (never trained on).

Videos (`unannotated_video_report`):

* reconstruction: each frame rendered from its own landmarks and the look of the frame `data.temporal_offset[0]`
  later (the training task, eq. 7), PSNR in dB against the frame; the same PSNR of that partner frame itself
  (copying the appearance image, which ignores the pose) is the reference a model must beat;
* landmark stability: the mean distance each landmark moves between neighbouring frames, in pixels of the S x S
  input and in % of its side; the same distance of the pixels' own motion is not known without annotations, so the
  report also gives how far the landmarks spread over a video (a constant constellation has a small step only
  because it does not move at all).

Still images (`unannotated_image_report`) have no neighbouring frames; their views are training's perturbations
instead, drawn with the run's data.color_jitter and data.tps settings from a fixed seed (the same views on every
evaluation):

* reconstruction: each image rendered from the landmarks of its colour-jittered copy and the look of its TPS-warped
  copy (the training task), PSNR in dB against the image, next to the PSNR of the warped copy itself;
* landmark stability under colour jitter: how far the landmarks move when only the colours change (they should not);
* landmark equivariance under the TPS warp: the warp is known, so the landmarks of the warped image, mapped back
  through it, can be compared with the image's own: the mean distance, in pixels and in % of the side, next to how
  far the warp itself moves the image's landmarks (what a constellation that ignores the image would score).

Example:
    report = unannotated_video_report(model, reader.held_out_clips(), offset=3)
    print(format_unannotated(report))
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

from fgbg_tf.augment.color_jitter import color_jitter
from fgbg_tf.augment.tps import random_tps_targets, tps_map, tps_warp
from fgbg_tf.config import DataConfig
from fgbg_tf.data.base import element_seed
from fgbg_tf.data.pipeline import to_model_range
from fgbg_tf.evaluation import metrics
from fgbg_tf.model.landmarks import to_pixels

# The seed of the held-out images' views: fixed, so that every checkpoint is scored on the same views.
VIEW_SEED = 0
_JITTER_SALT, _TPS_SALT = 1, 2


def unannotated_video_report(model, clips: list[tuple[str, dict]], offset: int, batch_size: int = 32,
                             max_frames: int | None = None) -> dict:
    """Reconstruction and stability numbers (module docstring) over `clips` [(name, {"frames", "valid"})]; at most
    `max_frames` frames of each video."""
    size = model.image_size

    @tf.function(input_signature=[tf.TensorSpec([None, size, size, 3], tf.uint8)] * 2)
    def render(pose, appearance):
        pose, appearance = to_model_range(pose), to_model_range(appearance)
        outputs = model({"pose": pose, "appearance": appearance}, training=False)
        return outputs["reconstruction"], to_pixels(outputs["mean"], size)

    ours, copies, steps, spreads, frames_used = [], [], [], [], 0
    for _, clip in clips:
        frames, valid = clip["frames"], clip["valid"]
        count = len(frames) if max_frames is None else min(len(frames), max_frames)
        means = []
        for start in range(0, count, batch_size):
            index = np.arange(start, min(start + batch_size, count))
            partner = np.minimum(index + offset, len(frames) - 1)
            reconstruction, batch_means = render(frames[index], frames[partner])
            truth = to_model_range(frames[index]).numpy()
            usable = valid[index] & valid[partner] & (partner != index)
            if usable.any():
                ours.append(metrics.psnr_each(reconstruction.numpy()[usable], truth[usable]))
                copies.append(metrics.psnr_each(to_model_range(frames[partner[usable]]).numpy(), truth[usable]))
            means.append(np.where(valid[index, None, None], batch_means.numpy(), np.nan))
        means = np.concatenate(means)
        moved = np.linalg.norm(np.diff(means, axis=0), axis=-1)  # [T - 1, K]; NaN next to an invalid frame
        steps.append(moved[np.isfinite(moved).all(axis=1)])
        spreads.append(np.nanstd(means, axis=0).mean())
        frames_used += count
    if not ours:
        raise ValueError(f"no held-out video has two valid frames {offset} apart to reconstruct")
    ours, copies, steps = np.concatenate(ours), np.concatenate(copies), np.concatenate(steps)
    return {
        "videos": [name for name, _ in clips],
        "frames": frames_used,
        "image_size": size,
        "appearance_offset": offset,
        "reconstruction_psnr_db": float(ours.mean()),
        "copy_appearance_psnr_db": float(copies.mean()),
        "landmark_step_px": float(steps.mean()) if steps.size else None,
        "landmark_step_pct": float(100.0 * steps.mean() / size) if steps.size else None,
        "landmark_spread_px": float(np.mean(spreads)),
    }


def unannotated_image_report(model, names: list[str], images: np.ndarray, data: DataConfig,
                             batch_size: int = 32) -> dict:
    """Reconstruction, colour-jitter stability and TPS equivariance (module docstring) over held-out `images`
    (uint8 [N, S, S, 3], named by `names`), with the perturbations `data` trained with."""
    size = model.image_size
    jitter, warp = dataclasses.asdict(data.color_jitter), dataclasses.asdict(data.tps)

    def views(index, image):
        image = tf.cast(image, tf.float32) / 255.0
        jittered = color_jitter(image, element_seed(VIEW_SEED, index, _JITTER_SALT), **jitter)
        source, target = random_tps_targets(element_seed(VIEW_SEED, index, _TPS_SALT), size, **warp)
        return image * 2.0 - 1.0, jittered * 2.0 - 1.0, tps_warp(image, source, target) * 2.0 - 1.0, source, target

    @tf.function(input_signature=[tf.TensorSpec([None, size, size, 3], tf.float32)] * 3)
    def render(image, jittered, warped):
        outputs = model({"pose": jittered, "appearance": warped}, training=False)
        own, of_warped = (to_pixels(model.detect(x)["mean"], size) for x in (image, warped))
        return outputs["reconstruction"], to_pixels(outputs["mean"], size), own, of_warped

    ours, copies, shifts, errors, displacements = [], [], [], [], []
    batches = tf.data.Dataset.from_tensor_slices((tf.range(len(images), dtype=tf.int64), images))
    for image, jittered, warped, source, target in batches.map(views).batch(batch_size):
        reconstruction, of_jittered, own, of_warped = render(image, jittered, warped)
        ours.append(metrics.psnr_each(reconstruction.numpy(), image.numpy()))
        copies.append(metrics.psnr_each(warped.numpy(), image.numpy()))
        shifts.append(np.linalg.norm(of_jittered.numpy() - own.numpy(), axis=-1))
        # tps_warp shows the image at T(p) in the warped image's pixel p, so T maps the warped image's landmarks back.
        errors.append(np.linalg.norm(tps_map(of_warped, source, target).numpy() - own.numpy(), axis=-1))
        displacements.append(np.linalg.norm(tps_map(own, source, target).numpy() - own.numpy(), axis=-1))
    error = float(np.concatenate(errors).mean())
    return {
        "images": list(names),
        "image_size": size,
        "reconstruction_psnr_db": float(np.concatenate(ours).mean()),
        "copy_appearance_psnr_db": float(np.concatenate(copies).mean()),
        "landmark_jitter_shift_px": float(np.concatenate(shifts).mean()),
        "landmark_tps_error_px": error,
        "landmark_tps_error_pct": 100.0 * error / size,
        "tps_displacement_px": float(np.concatenate(displacements).mean()),
    }


def format_unannotated(report: dict) -> str:
    """The human-readable summary written to report.txt (of a video or an image report)."""
    header = (f"fgbg_tf evaluation: {report['dataset']} without annotations | checkpoint {report['checkpoint']} "
              f"(step {report['step']}, variant {report['variant']}, K={report['num_landmarks']}, "
              f"{report['image_size']} px)")
    footer = "no keypoints given (data.options.keypoints), so no regression error; see fgbg_tf/data/annotations.py"
    body = _video_lines(report) if "videos" in report else _image_lines(report)
    return "\n".join([header, *body, footer])


def _image_lines(report: dict) -> list[str]:
    names = report["images"]
    return [
        f"held-out images: {len(names)} ({', '.join(names[:5])}{' ...' if len(names) > 5 else ''})",
        f"reconstruction from the colour-jittered image's landmarks and the TPS-warped image's look: "
        f"{report['reconstruction_psnr_db']:.2f} dB PSNR (copying the warped image: "
        f"{report['copy_appearance_psnr_db']:.2f} dB)",
        f"landmark shift under colour jitter: {report['landmark_jitter_shift_px']:.3f} px",
        f"landmark error under the TPS warp (the warped image's landmarks mapped back): "
        f"{report['landmark_tps_error_px']:.3f} px ({report['landmark_tps_error_pct']:.3f} % of the side); "
        f"landmarks that ignore the image: {report['tps_displacement_px']:.3f} px",
    ]


def _video_lines(report: dict) -> list[str]:
    return [
        f"held-out videos: {len(report['videos'])} ({', '.join(report['videos'][:5])}"
        f"{' ...' if len(report['videos']) > 5 else ''}), {report['frames']} frames",
        f"reconstruction from the frame {report['appearance_offset']} later: {report['reconstruction_psnr_db']:.2f} dB "
        f"PSNR (copying that frame: {report['copy_appearance_psnr_db']:.2f} dB)",
        (f"landmark step between neighbouring frames: {report['landmark_step_px']:.3f} px "
         f"({report['landmark_step_pct']:.3f} % of the side)" if report["landmark_step_px"] is not None
         else "landmark step: no two neighbouring valid frames")
        + f"; spread over a video {report['landmark_spread_px']:.3f} px",
    ]
