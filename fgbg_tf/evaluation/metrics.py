"""Landmark-evaluation metrics of the paper's protocols, in plain numpy.

Points are (x, y) float arrays [N, J, 2]: N frames, J keypoints, in pixels of one
coordinate frame (pixel i at coordinate i) unless a function says otherwise.

    bbc        `bbc_accuracy`: share of joints within 6 px after the MATLAB toolkit's
               halving (reference doc 8.1, paper Table 1b / Table 3); `bbc_correct` per joint
    h36m       `mean_error_by_image_size`: mean distance / image side, in percent (Table 1a)
    celeba /   `mean_error_by_interocular`: mean distance / distance of GT points 0 and 1,
    faces5pt   in percent (reference doc 8.2, Table 2)
    synthetic  both of `mean_error_by_image_size` and `pixel_accuracy`
    Figure 2b  `foreground_containment` + `containment_curve` (reference doc 8.4)
    fg/bg      `mask_agreement` (predicted vs true masks) and `psnr` (BGNet vs the true background)
    video      `psnr_each`, per predicted frame (`fgbg_tf/evaluation/video_metrics.py`)

Example:
    error = mean_error_by_interocular(predicted, ground_truth)   # percent
"""

from __future__ import annotations

import numpy as np

# The BBC MATLAB toolkit measures in frames halved from the original resolution.
BBC_THRESHOLD = 6.0
# Synthetic pixel-accuracy radius: the BBC radius at the paper's 128 px, scaled to the image side.
SYNTHETIC_THRESHOLD_AT_128 = 6.0


def _points(name: str, value) -> np.ndarray:
    array = np.asarray(value, np.float64)
    if array.ndim != 3 or array.shape[-1] != 2:
        raise ValueError(f"{name} must be [frames, keypoints, 2] (x, y), got shape {array.shape}")
    return array


def point_errors(predicted, ground_truth) -> np.ndarray:
    """Euclidean distances [N, J] between predicted and ground-truth points [N, J, 2]."""
    predicted, ground_truth = _points("predicted", predicted), _points("ground_truth", ground_truth)
    if predicted.shape != ground_truth.shape:
        raise ValueError(f"predicted {predicted.shape} and ground_truth {ground_truth.shape} must have the same shape")
    return np.linalg.norm(predicted - ground_truth, axis=-1)


def interocular_distance(ground_truth, left: int = 0, right: int = 1, label: str = "eyes") -> np.ndarray:
    """Distance [N] between GT keypoints `left` and `right` (the eyes in MAFL's order; `label` names them in the
    error for coincident points). NaN where a point is missing."""
    ground_truth = _points("ground_truth", ground_truth)
    distance = np.linalg.norm(ground_truth[:, left] - ground_truth[:, right], axis=-1)
    if np.any(distance <= 0):
        raise ValueError(f"ground_truth has {int(np.sum(distance <= 0))} frame(s) with coincident {label} "
                         f"(points {left}, {right})")
    return distance


def mean_error_by_interocular(predicted, ground_truth) -> float:
    """MAFL error (reference doc 8.2): mean over frames and points of distance / IOD, in percent."""
    errors = point_errors(predicted, ground_truth)
    return float(100.0 * np.mean(errors / interocular_distance(ground_truth)[:, None]))


def mean_error_by_image_size(predicted, ground_truth, image_size: int) -> float:
    """Human3.6M error (paper Table 1a): mean distance / image side, in percent."""
    if image_size <= 0:
        raise ValueError(f"image_size must be positive, got {image_size}")
    return float(100.0 * _mean_present(point_errors(predicted, ground_truth)) / image_size)


def mean_error_by_pair(predicted, ground_truth, first: int, second: int) -> float:
    """Mean distance / the distance between GT points `first` and `second` of the frame, in percent (MAFL's
    inter-ocular normalisation for a user's named pair). Missing (NaN) points and frames without the pair are left
    out of the mean."""
    distance = interocular_distance(ground_truth, first, second, label="points")
    return float(100.0 * _mean_present(point_errors(predicted, ground_truth) / distance[:, None]))


def _mean_present(values: np.ndarray) -> float:
    """The mean of the finite values (points a user's annotations leave out are NaN); an error if there is none."""
    values = np.asarray(values, np.float64)
    present = np.isfinite(values)
    if not present.any():
        raise ValueError("no annotated point to score")
    return float(values[present].mean())


def pixel_accuracy(predicted, ground_truth, threshold: float) -> float:
    """Share of points (in [0, 1]) whose distance to the ground truth is at most `threshold` pixels."""
    return float(np.mean(point_errors(predicted, ground_truth) <= threshold))


def matlab_halve(points) -> np.ndarray:
    """The BBC toolkit's p -> 0.5 (p - 1) + 1 on 1-based MATLAB pixel coordinates."""
    return 0.5 * (np.asarray(points, np.float64) - 1.0) + 1.0


def bbc_correct(predicted_frame, ground_truth_frame, threshold: float = BBC_THRESHOLD,
                one_based: bool = False) -> np.ndarray:
    """Whether each BBC Pose joint is correct (reference doc 8.1 step 3), bool [N, J], from frame pixels [N, J, 2].

    Both sets are halved as MATLAB's 1-based pixels, after a shift from 0-based
    pixels unless `one_based` (the MATLAB values, which the release's predictions
    and files hold); a joint is correct when within `threshold` of the ground
    truth there (about 12 original pixels).
    """
    shift = 0.0 if one_based else 1.0
    predicted = matlab_halve(_points("predicted_frame", predicted_frame) + shift)
    ground_truth = matlab_halve(_points("ground_truth_frame", ground_truth_frame) + shift)
    return point_errors(predicted, ground_truth) <= threshold


def bbc_accuracy(predicted_frame, ground_truth_frame, threshold: float = BBC_THRESHOLD) -> float:
    """BBC Pose accuracy from 0-based frame pixels: the share of `bbc_correct` joints over all joints and frames."""
    return float(np.mean(bbc_correct(predicted_frame, ground_truth_frame, threshold)))


def downsample_mask(mask, factor: int) -> np.ndarray:
    """Averages `factor` x `factor` blocks of masks [N, H, W] (0/1 or soft) -> [N, H/f, W/f] in [0, 1]."""
    mask = np.asarray(mask, np.float64)
    if mask.ndim != 3 or mask.shape[1] % factor or mask.shape[2] % factor:
        raise ValueError(f"mask must be [frames, H, W] with H and W multiples of {factor}, got {mask.shape}")
    n, h, w = mask.shape
    return mask.reshape(n, h // factor, factor, w // factor, factor).mean(axis=(2, 4))


def foreground_containment(part_maps, masks) -> np.ndarray:
    """Per frame and landmark, the share of each normalised part map inside the foreground (paper Fig. 2b).

    Part maps live at half the image resolution; each map cell covers a 2 x 2 block
    of image pixels, so the mask is averaged over those blocks (exactly the mass a
    nearest-upsampled map would put on the mask's pixels).

    Args:
        part_maps: [N, h, w, K] maps, each summing to 1 over h x w.
        masks: [N, H, W] ground-truth foreground (1 = foreground), H an integer multiple of h.

    Returns:
        [N, K] containment in [0, 1].
    """
    part_maps = np.asarray(part_maps, np.float64)
    masks = np.asarray(masks)
    if part_maps.ndim != 4:
        raise ValueError(f"part_maps must be [frames, h, w, landmarks], got shape {part_maps.shape}")
    if masks.ndim != 3 or masks.shape[0] != part_maps.shape[0]:
        raise ValueError(f"masks must be [frames, H, W] with {part_maps.shape[0]} frames, got shape {masks.shape}")
    factor = masks.shape[1] // part_maps.shape[1]
    if factor < 1 or masks.shape[1] != factor * part_maps.shape[1] or masks.shape[2] != factor * part_maps.shape[2]:
        raise ValueError(f"masks {masks.shape[1:]} must be an integer multiple of the part maps {part_maps.shape[1:3]}")
    weights = downsample_mask(masks, factor)
    return np.einsum("nhwk,nhw->nk", part_maps, weights)


def containment_curve(containment) -> tuple[np.ndarray, np.ndarray]:
    """Figure 2b's curve: landmark ids sorted by mean containment over frames, ascending, and those means."""
    containment = np.asarray(containment, np.float64)
    if containment.ndim != 2:
        raise ValueError(f"containment must be [frames, landmarks], got shape {containment.shape}")
    mean = containment.mean(axis=0)
    order = np.argsort(mean, kind="stable")
    return order, mean[order]


def mask_agreement(predicted, truth, threshold: float = 0.5) -> dict:
    """How well predicted soft masks [N, S, S] follow ground-truth binary masks [N, S, S].

    Returns per-frame means of: "iou" of (predicted > threshold) with the truth;
    "correlation", Pearson's r between the soft mask and the truth over a frame's
    pixels (a soft mask that follows the figure scores high even below the threshold;
    a template that does not move with the figure scores low; a constant frame 0);
    "iou_at_area", the IoU of each frame's n highest-scoring pixels, n the number of its true figure pixels
    (threshold-free: it rates the mask's ranking of pixels, not its calibration, which the loss leaves free);
    and "mean" of the predicted mask.
    """
    predicted = np.asarray(predicted, np.float64).reshape(len(predicted), -1)
    truth = (np.asarray(truth).reshape(len(truth), -1) > 0).astype(np.float64)
    if predicted.shape != truth.shape:
        raise ValueError(f"predicted masks {predicted.shape} and true masks {truth.shape} differ in shape")
    hard = predicted > threshold
    union = np.logical_or(hard, truth > 0).sum(1)
    iou = np.where(union > 0, np.logical_and(hard, truth > 0).sum(1) / np.maximum(union, 1), 1.0)
    area = (truth > 0).sum(1)
    # Each frame's `area` highest-scoring pixels (ties broken by position): as many as its figure has.
    top = np.argsort(np.argsort(-predicted, axis=1, kind="stable"), axis=1) < area[:, None]
    overlap = np.logical_and(top, truth > 0).sum(1)
    iou_at_area = np.where(area > 0, overlap / np.maximum(2 * area - overlap, 1), 1.0)
    p = predicted - predicted.mean(1, keepdims=True)
    t = truth - truth.mean(1, keepdims=True)
    denominator = np.sqrt((p * p).sum(1) * (t * t).sum(1))
    correlation = np.where(denominator > 0, (p * t).sum(1) / np.maximum(denominator, 1e-12), 0.0)
    return {"iou": float(iou.mean()), "iou_at_area": float(iou_at_area.mean()), "correlation": float(correlation.mean()),
            "mean": float(predicted.mean())}


def psnr_each(predicted, truth, data_range: float = 2.0) -> np.ndarray:
    """PSNR in dB [N] of each image [N, ...] against the truth: 10 log10(range^2 / MSE), the MSE over all of an
    image's pixels and channels, as `tf.image.psnr` (default range: [-1, 1] images). The MSE is floored at 1e-12, so
    identical images score 10 log10(range^2) + 120 dB instead of infinity and means stay finite."""
    predicted, truth = np.asarray(predicted, np.float64), np.asarray(truth, np.float64)
    mse = np.mean(np.square(predicted - truth).reshape(len(predicted), -1), axis=1)
    return 10.0 * np.log10(data_range**2 / np.maximum(mse, 1e-12))


def psnr(predicted, truth, data_range: float = 2.0) -> float:
    """Mean per-image PSNR in dB (`psnr_each`) of images [N, ...] against the truth."""
    return float(np.mean(psnr_each(predicted, truth, data_range)))
