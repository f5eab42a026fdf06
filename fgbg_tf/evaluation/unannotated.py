"""What `evaluate` reports on a user's videos that carry no annotations.

Without keypoints there is no regression to fit, but two things still say whether a model learnt something, both
on the held-out videos (never trained on):

* reconstruction: each frame rendered from its own landmarks and the look of the frame `data.temporal_offset[0]`
  later (the training task, eq. 7), PSNR in dB against the frame; the same PSNR of that partner frame itself
  (copying the appearance image, which ignores the pose) is the reference a model must beat;
* landmark stability: the mean distance each landmark moves between neighbouring frames, in pixels of the S x S
  input and in % of its side; the same distance of the pixels' own motion is not known without annotations, so the
  report also gives how far the landmarks spread over a video (a constant constellation has a small step only
  because it does not move at all).

Example:
    report = unannotated_video_report(model, reader.held_out_clips(), offset=3)
    print(format_unannotated(report))
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from fgbg_tf.data.pipeline import to_model_range
from fgbg_tf.evaluation import metrics
from fgbg_tf.model.landmarks import to_pixels


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


def format_unannotated(report: dict) -> str:
    """The human-readable summary written to report.txt."""
    return "\n".join([
        f"fgbg_tf evaluation: {report['dataset']} without annotations | checkpoint {report['checkpoint']} "
        f"(step {report['step']}, variant {report['variant']}, K={report['num_landmarks']}, "
        f"{report['image_size']} px)",
        f"held-out videos: {len(report['videos'])} ({', '.join(report['videos'][:5])}"
        f"{' ...' if len(report['videos']) > 5 else ''}), {report['frames']} frames",
        f"reconstruction from the frame {report['appearance_offset']} later: {report['reconstruction_psnr_db']:.2f} dB "
        f"PSNR (copying that frame: {report['copy_appearance_psnr_db']:.2f} dB)",
        (f"landmark step between neighbouring frames: {report['landmark_step_px']:.3f} px "
         f"({report['landmark_step_pct']:.3f} % of the side)" if report["landmark_step_px"] is not None
         else "landmark step: no two neighbouring valid frames")
        + f"; spread over a video {report['landmark_spread_px']:.3f} px",
        "no keypoints given (data.options.keypoints), so no regression error; see fgbg_tf/data/annotations.py",
    ])
