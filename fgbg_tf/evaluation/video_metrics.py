"""Scores of predicted videos frame by frame, and the curves and summaries the video-prediction figures show.

Per-frame metrics follow SAVP (docs/video-prediction.md 3.1), on frames as floats in [0, 1]:
    psnr    10 log10(1 / MSE), the MSE over a frame's pixels and channels (`tf.image.psnr(max_val=1.0)`)
    ssim    `tf.image.ssim(max_val=1.0)` with TF's defaults (11 x 11 Gaussian window, sigma 1.5, K1 0.01, K2 0.03)
    lpips   LPIPS v0.1, AlexNet trunk (`fgbg_tf/evaluation/lpips.py`); grey frames tiled to RGB
Only predicted frames are passed in: [N videos, T predicted frames, H, W, C], C = 1 (KTH) or 3 (BAIR), uint8 or
float in [0, 1]. Every video is scored on its own, so a long test set can be scored batch by batch and the [N, T]
arrays concatenated along N before `summarise`.

Example:
    report = summarise(frame_metrics(predicted, truth, lpips.load_lpips(weights_path)))   # JSON-ready
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from fgbg_tf.evaluation import metrics

# Two-sided 95 % quantile of the normal distribution, for the confidence interval of a mean over many videos.
_Z_95 = 1.96


def _unit_frames(name: str, frames) -> np.ndarray:
    """Video frames [N, T, H, W, C] as float32 in [0, 1]: uint8 divided by 255, floats checked to be in [0, 1].

    Floats out of range are refused rather than clipped: model output in [-1, 1] must be mapped with (x + 1) / 2
    first, and a silent clip would hide that. `name` labels the errors.
    """
    frames = np.asarray(frames)
    if frames.ndim != 5:
        raise ValueError(f"{name} must be [videos, frames, H, W, C], got shape {frames.shape}")
    if frames.dtype == np.uint8:
        return frames.astype(np.float32) / 255.0
    if not np.issubdtype(frames.dtype, np.floating):
        raise ValueError(f"{name} must be uint8 or float in [0, 1], got dtype {frames.dtype}")
    frames = frames.astype(np.float32)
    if frames.size and (frames.min() < 0.0 or frames.max() > 1.0):
        raise ValueError(f"{name} must lie in [0, 1], got values in [{frames.min():.3g}, {frames.max():.3g}]; "
                         f"clip them, or map [-1, 1] output with (x + 1) / 2")
    return frames


def _pair(predicted, truth) -> tuple[np.ndarray, np.ndarray]:
    predicted, truth = _unit_frames("predicted", predicted), _unit_frames("truth", truth)
    if predicted.shape != truth.shape:
        raise ValueError(f"predicted {predicted.shape} and truth {truth.shape} must have the same shape")
    return predicted, truth


def frame_psnr(predicted, truth) -> np.ndarray:
    """PSNR in dB [N, T] of each predicted frame [N, T, H, W, C] against the true one (identical: 120 dB).

    Example: `frame_psnr(np.full(shape, 0.5), np.full(shape, 0.6))   # all 20.0`.
    """
    predicted, truth = _pair(predicted, truth)
    frames = predicted.shape[:2]
    return metrics.psnr_each(predicted.reshape(-1, *predicted.shape[2:]), truth.reshape(-1, *truth.shape[2:]),
                             data_range=1.0).reshape(frames)


def frame_ssim(predicted, truth) -> np.ndarray:
    """SSIM [N, T] of each predicted frame [N, T, H, W, C] (H, W >= 11) against the true one.

    Example: `frame_ssim(video, video)   # all 1.0`.
    """
    predicted, truth = _pair(predicted, truth)
    return tf.image.ssim(tf.constant(predicted), tf.constant(truth), max_val=1.0).numpy().astype(np.float64)


def frame_lpips(predicted, truth, lpips) -> np.ndarray:
    """LPIPS distance [N, T] of each predicted frame [N, T, H, W, 1 or 3] to the true one (lower is better).

    Args:
        lpips: an `fgbg_tf.evaluation.lpips.LPIPS`.
    Example: `frame_lpips(predicted, truth, load_lpips(path))`.
    """
    predicted, truth = _pair(predicted, truth)
    # One video per call bounds AlexNet's activations to T frames.
    return np.stack([lpips(p, t).numpy() for p, t in zip(predicted, truth)]).astype(np.float64)


def frame_metrics(predicted, truth, lpips=None) -> dict[str, np.ndarray | None]:
    """{"psnr", "ssim", "lpips"}: [N, T] per-frame scores; "lpips" is None where `lpips` is None (no weights).

    Example: `per_frame = frame_metrics(predicted, truth, lpips.load_lpips(None))   # per_frame["lpips"] is None`.
    """
    return {"psnr": frame_psnr(predicted, truth), "ssim": frame_ssim(predicted, truth),
            "lpips": None if lpips is None else frame_lpips(predicted, truth, lpips)}


def summarise(per_frame: dict) -> dict:
    """Per-frame curves and scalar summaries of each metric, as plain lists and floats (ready for json.dump).

    For each metric's scores x [N videos, T predicted frames], with std the population standard deviation over the
    N videos (numpy's default, ddof=0, as in SAVP's plot_results.py):
        "curve"         [T]: mean over videos at each predicted frame (SAVP's and the paper's plots)
        "curve_stderr"  [T]: std over videos at each frame / sqrt(N) (SAVP's error bars)
        "mean"          mean over videos and frames (the scalar SRVP-style tables report)
        "ci95"          1.96 * std of the N per-video means (each over its T frames) / sqrt(N): the 95 %
                        confidence half-width of "mean"
        "videos", "frames": N and T
    Where "lpips" is given, "one_minus_lpips" is added: the paper plots 1 - LPIPS (Figs. 5 and 9) so that, like
    PSNR and SSIM, higher is better; its curve and mean are 1 minus LPIPS's, its error bars are the same.
    A metric given as None (LPIPS without weights) is None in the result (null in JSON), and so is 1 - LPIPS.

    Args:
        per_frame: {name: [N, T] array or None}, e.g. from `frame_metrics`.
    Example: `summarise({"psnr": [[20.0, 18.0]]})["psnr"]["curve"]   # [20.0, 18.0]`.
    """
    summaries = {name: None if scores is None else _summary(name, scores) for name, scores in per_frame.items()}
    if "lpips" in per_frame:
        lpips_scores = per_frame["lpips"]
        summaries["one_minus_lpips"] = None if lpips_scores is None else _summary(
            "lpips", 1.0 - np.asarray(lpips_scores, np.float64))
    return summaries


def _summary(name: str, scores) -> dict:
    scores = np.asarray(scores, np.float64)
    if scores.ndim != 2 or scores.size == 0:
        raise ValueError(f"{name} scores must be a non-empty [videos, frames] array, got shape {scores.shape}")
    if not np.all(np.isfinite(scores)):
        raise ValueError(f"{name} scores hold non-finite values")
    videos, frames = scores.shape
    root_n = np.sqrt(videos)
    return {
        "curve": scores.mean(axis=0).tolist(),
        "curve_stderr": (scores.std(axis=0) / root_n).tolist(),
        "mean": float(scores.mean()),
        "ci95": float(_Z_95 * scores.mean(axis=1).std() / root_n),
        "videos": videos,
        "frames": frames,
    }
