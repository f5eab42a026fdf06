"""The per-dataset scoring protocols, for landmarks from any detector (paper section 4.2, reference doc section 8).

    bbc        accuracy within 6 px of the halved frame (origin at the centre and the top-left, Table 3)
    h36m       mean error / image side, %
    celeba,    mean error / inter-ocular distance, %
    faces5pt
    synthetic  mean error / image side, % and accuracy within 6 px at 128 px (scaled to the image side)
    images,    a user's CSV (data/annotations.py): mean error / image side, %, and with a named pair of points
    videos     mean error / their distance, % (missing points left out)

Each dataset is scored by our protocol; bbc, h36m and celeba also by a "release" protocol that reproduces the released
evaluation code (`Protocol.release` names it; the readers' data.options.protocol builds its splits, this module scores
them; docs/protocols.md has the audit). For BBC the release differs here too: its regression origin (S / 2 in the
crop pixels of `data/release_crops.py`) and its map from crop to frame pixels.

`landmark_report` fits the linear regressor (no intercept) on one split's landmark means and scores the other, with
the protocol's coordinate origin and the paper's two (Table 3), the mean-pose reference, BBC's accuracy per joint and,
where masks exist, Figure 2b's containment;
`factorisation_scores` rates masks and backgrounds against the truth; `format_table` prints a report. The runner
that produces the landmarks from a checkpoint is `fgbg_tf/evaluation/runner.py`; `tools/release_control/score.py` feeds
these functions another implementation's landmarks.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from sklearn.model_selection import KFold

from fgbg_tf.data import DatasetError, release_crops
from fgbg_tf.data.pipeline import to_model_range
from fgbg_tf.data.video_frames import frame_coordinates
from fgbg_tf.evaluation import metrics
from fgbg_tf.evaluation.regression import apply_regressor, fit_regressor


@dataclasses.dataclass(frozen=True)
class Protocol:
    """How one dataset is scored: the paper's origin and the metric Figure 2a-style studies plot; for the benchmark
    datasets, what their release protocol reproduces and the regression origin it uses."""

    origin: str
    headline: str
    higher_is_better: bool
    release: str = ""
    release_origin: str = ""


PROTOCOLS = {
    "bbc": Protocol("centre", "accuracy_pct", True,
                    release="NVIDIA's released scripts (BBCPoseLandmarkEvalDataset's crops, "
                            "map_to_supervised_landmarks_bbc.py, eval_supervised_landmarks_bbc.py)",
                    release_origin="release"),
    "h36m": Protocol("centre", "error_by_image_size_pct", False,
                     release="our reading of the paper's Appendix A and Zhang et al. (no code was released)",
                     release_origin="centre"),
    "celeba": Protocol("top_left", "error_by_iod_pct", False,
                       release="IMM's scripts/test.py (Jakab et al.), which the paper follows: fit on the first 90 % "
                               "of MAFL's training list", release_origin="top_left"),
    "faces5pt": Protocol("top_left", "error_by_iod_pct", False),
    "synthetic": Protocol("centre", "accuracy_pct", True),
    "images": Protocol("centre", "error_by_image_size_pct", False),
    "videos": Protocol("centre", "error_by_image_size_pct", False),
}
# The headline when a user's annotations name a pair of points to normalise by (data.options.normalise_by).
PAIR_HEADLINE = "error_by_pair_pct"
# The origins of the paper's Table 3, reported next to the protocol's own.
TABLE3_ORIGINS = ("centre", "top_left")
# Folds of the report split's self-fitted reference (`self_fit_reference`).
SELF_FIT_FOLDS = 5


@dataclasses.dataclass
class SplitLandmarks:
    """What the pose encoder gives on one split, invalid frames removed.

    Attributes:
        means_pixels: [N, K, 2] landmark means in pixels of the S x S input.
        keypoints: [N, J, 2] annotated keypoints, same pixels.
        boxes: [N, 3] crop boxes (x0, y0, side) in frame pixels, or the release protocol's [N, 4] (x0, y0, width,
            height), for datasets that have them.
        containment: [N, K] foreground containment, for splits with masks.
        foreground_fraction: mean share of mask pixels, the containment of a uniform part map.
        dropped: (source, reason) of the frames left out.
        sample: the first few valid frames: "image" uint8, "part_maps", "means_pixels".
    """

    means_pixels: np.ndarray
    keypoints: np.ndarray
    boxes: np.ndarray | None
    containment: np.ndarray | None
    foreground_fraction: float | None
    dropped: list[tuple[str, str]]
    sample: dict


def bbc_joints_correct(predicted: np.ndarray, landmarks: SplitLandmarks, image_size: int,
                       protocol: str = "ours") -> np.ndarray:
    """Whether each predicted BBC joint [N, 7, 2] (crop pixels) is within 6 px of the truth in the toolkit's halved
    frame, bool [N, 7]: the crop boxes map both back to the frame as the `protocol`'s crops were cut."""
    if landmarks.boxes is None:
        raise DatasetError("bbc eval frames must carry their crop 'box' to map keypoints back to frame pixels")
    if protocol == "release":  # frame coordinates that are the MATLAB values themselves
        to_frame = release_crops.frame_coordinates
        return metrics.bbc_correct(to_frame(predicted, landmarks.boxes, image_size),
                                   to_frame(landmarks.keypoints, landmarks.boxes, image_size), one_based=True)
    return metrics.bbc_correct(frame_coordinates(predicted, landmarks.boxes, image_size),
                               frame_coordinates(landmarks.keypoints, landmarks.boxes, image_size))


def score(dataset: str, predicted: np.ndarray, landmarks: SplitLandmarks, image_size: int,
          pair: tuple[int, int] | None = None, protocol: str = "ours") -> dict:
    """The dataset's metrics (module docstring) of predicted keypoints [N, J, 2] in crop pixels; `pair`: the
    indices of the points whose distance normalises the error too; `protocol`: the one the split was built by."""
    truth = landmarks.keypoints
    if dataset == "bbc":
        return {
            "accuracy_pct": 100.0 * float(np.mean(bbc_joints_correct(predicted, landmarks, image_size, protocol))),
            "accuracy_threshold_px": metrics.BBC_THRESHOLD,
        }
    if dataset in ("celeba", "faces5pt"):
        return {"error_by_iod_pct": metrics.mean_error_by_interocular(predicted, truth)}
    results = {"error_by_image_size_pct": metrics.mean_error_by_image_size(predicted, truth, image_size)}
    if pair is not None:
        results[PAIR_HEADLINE] = metrics.mean_error_by_pair(predicted, truth, *pair)
    if dataset == "synthetic":
        threshold = metrics.SYNTHETIC_THRESHOLD_AT_128 * image_size / 128
        results["accuracy_pct"] = 100.0 * metrics.pixel_accuracy(predicted, truth, threshold)
        results["accuracy_threshold_px"] = threshold
    return results


def self_fit_reference(dataset: str, test: SplitLandmarks, origin: str, image_size: int, keypoint_names=(),
                       pair: tuple[int, int] | None = None, protocol: str = "ours") -> dict | None:
    """The report split's metrics with a regressor fitted on the report split itself, 5-fold cross-validated.

    The protocol fits on another split (for faces5pt: other photographs, smaller faces), so its error mixes how well
    the landmarks follow the keypoints with how well a regressor fitted on one split transfers to the other; this
    reference has only the first. None when a fold leaves fewer frames to fit than the regressor has inputs (2K),
    or a keypoint that no frame of a fold's fitting part has.
    """
    frames, inputs = test.means_pixels.shape[0], 2 * test.means_pixels.shape[1]
    if frames < SELF_FIT_FOLDS or frames - math.ceil(frames / SELF_FIT_FOLDS) < inputs:  # the largest fold held out
        return None
    predicted = np.zeros(test.keypoints.shape)
    for fit_rows, held_out in KFold(SELF_FIT_FOLDS, shuffle=True, random_state=0).split(test.means_pixels):
        try:
            regressor = fit_regressor(test.means_pixels[fit_rows], test.keypoints[fit_rows], origin, image_size,
                                      keypoint_names)
        except ValueError:
            return None
        predicted[held_out] = apply_regressor(regressor, test.means_pixels[held_out])
    return score(dataset, predicted, test, image_size, pair, protocol)


def landmark_report(dataset: str, split_names: tuple[str, str], fit: SplitLandmarks, test: SplitLandmarks,
                    image_size: int, keypoint_names=(), pair: tuple[int, int] | None = None,
                    protocol: str = "ours") -> tuple[dict, dict]:
    """The protocol's numbers for landmarks found on the fit and report splits, whatever model found them.

    Fits a regressor per origin on `fit` and scores `test` (and `fit`, which shows how much of
    the error is under-fitting), adds the mean-pose reference, the report split fitted on itself
    (`self_fit_reference`) and, for splits with masks,
    the containment. `pair`: indices of two keypoints whose distance normalises the error as well (then the
    headline). `protocol`: "ours", or "release" for splits a reader built by the release protocol.
    Returns (the report's protocol part, {origin: Regressor}).
    """
    spec = PROTOCOLS[dataset]
    if protocol == "release" and not spec.release:
        raise ValueError(f"{dataset} has no release protocol, only ours")
    origin = spec.release_origin if protocol == "release" else spec.origin
    headline = PAIR_HEADLINE if pair is not None else spec.headline
    results, fit_results, regressors, predicted = {}, {}, {}, {}
    for name in (origin, *(o for o in TABLE3_ORIGINS if o != origin)):
        regressors[name] = fit_regressor(fit.means_pixels, fit.keypoints, name, image_size, keypoint_names)
        predicted[name] = apply_regressor(regressors[name], test.means_pixels)
        results[name] = score(dataset, predicted[name], test, image_size, pair, protocol)
        fit_results[name] = score(dataset, apply_regressor(regressors[name], fit.means_pixels), fit, image_size,
                                  pair, protocol)
    # What a model without landmarks gets: every test frame predicted as the fit split's mean pose (of the frames
    # that have each point, where a user's annotations leave some out).
    mean_pose = np.broadcast_to(np.nanmean(fit.keypoints, axis=0), test.keypoints.shape)
    splits = {}
    for role, name, part in (("fit", split_names[0], fit), ("report", split_names[1], test)):
        splits[role] = {"name": name, "frames": len(part.keypoints), "dropped": len(part.dropped),
                        "dropped_sources": [s for s, _ in part.dropped]}
    report = {
        "dataset": dataset,
        "protocol": protocol,
        "image_size": image_size,
        "keypoint_names": list(keypoint_names),
        "splits": splits,
        "origin": origin,
        "results": results,
        "fit_split_results": fit_results,
        "mean_pose_reference": score(dataset, mean_pose, test, image_size, pair, protocol),
        "self_fit_reference": self_fit_reference(dataset, test, origin, image_size, keypoint_names, pair, protocol),
        "normalised_by": None if pair is None else [list(keypoint_names)[i] for i in pair],
        "headline": {"metric": headline, "value": results[origin][headline],
                     "higher_is_better": spec.higher_is_better},
        "containment": (containment_report(test.containment, test.foreground_fraction)
                        if test.containment is not None else None),
    }
    if dataset == "bbc":  # the protocol origin's accuracy of each joint on the report split
        by_joint = 100.0 * bbc_joints_correct(predicted[origin], test, image_size, protocol).mean(axis=0)
        report["accuracy_by_joint_pct"] = dict(zip(keypoint_names, by_joint.tolist()))
    return report, regressors


def protocol_line(dataset: str, protocol: str) -> str:
    """The report's line that names the protocol its numbers come from."""
    release = PROTOCOLS[dataset].release
    if protocol == "release":
        return f"protocol: release, reproducing {release} (docs/protocols.md)"
    if release:
        return f"protocol: ours (docs/protocols.md; --protocol release reproduces {release})"
    return "protocol: ours (the only one for this dataset)"


def containment_report(containment: np.ndarray, foreground_fraction: float) -> dict:
    """Figure 2b numbers, in percent of each landmark's part-map mass on the ground-truth foreground."""
    order, sorted_mean = metrics.containment_curve(containment)
    return {
        "uniform_map_percent": 100.0 * foreground_fraction,
        "landmarks_sorted": order.tolist(),
        "percent_sorted": (100.0 * sorted_mean).tolist(),
        "min_percent": float(100.0 * sorted_mean[0]),
        "mean_percent": float(100.0 * sorted_mean.mean()),
        "frames": int(containment.shape[0]),
        "method": "mask averaged over the 2x2 pixel blocks of each part-map cell (S -> S/2)",
    }


def factorisation_scores(masks: np.ndarray | None, backgrounds: np.ndarray, arrays: dict) -> dict:
    """Scores predicted masks [N, S, S] (None for the nomask variant) and backgrounds [N, S, S, 3] in [-1, 1].

    `arrays` as `factorisation_split` returns them, first N frames. The mask against the
    true figure (`metrics.mask_agreement`: IoU at 0.5, IoU at the figure's area,
    per-frame correlation, mean); the background's PSNR in dB against the true one.
    """
    true_background = to_model_range(arrays["background"]).numpy()
    report = {"frames": len(backgrounds), "background_psnr_db": metrics.psnr(backgrounds, true_background)}
    if masks is not None:
        agreement = metrics.mask_agreement(masks, arrays["mask"])
        report.update({f"mask_{k}": v for k, v in agreement.items()})
        report["true_mask_mean"] = float((arrays["mask"] > 0).mean())
    return report


def format_table(report: dict) -> str:
    """The human-readable summary written to report.txt."""
    lines = [
        f"fgbg_tf evaluation: {report['dataset']} | checkpoint {report['checkpoint']} (step {report['step']}, "
        f"variant {report['variant']}, K={report['num_landmarks']}, {report['image_size']} px)",
        protocol_line(report["dataset"], report["protocol"]),
    ]
    fit, test = report["splits"]["fit"], report["splits"]["report"]
    excluded = fit.get("excluded")
    excluded = f"; {excluded['frames']} excluded: {', '.join(excluded['reasons'])}" if excluded else ""
    lines.append(
        f"regression (no intercept): fit on '{fit['name']}' ({fit['frames']} frames{excluded}), "
        f"report on '{test['name']}' ({test['frames']} frames); "
        f"{fit['dropped'] + test['dropped']} invalid frame(s) dropped"
    )
    names = [k for k in report["results"][report["origin"]] if not k.endswith("threshold_px")]
    threshold = report["results"][report["origin"]].get("accuracy_threshold_px")
    header = ["origin"] + [f"{n} (<= {threshold:g} px)" if n == "accuracy_pct" and threshold else n for n in names]
    widths = [max(12, len(h)) for h in header]
    lines.append("  ".join(h.ljust(w) for h, w in zip(header, widths)))
    for origin, values in report["results"].items():
        label = origin + (" *" if origin == report["origin"] else "")
        cells = [label] + [f"{values[n]:.3f}" for n in names]
        lines.append("  ".join(c.ljust(w) for c, w in zip(cells, widths)))
    for label, values, note in (
        ("mean pose", report["mean_pose_reference"], "(reference: no landmarks)"),
        ("fit split", report["fit_split_results"][report["origin"]], f"(reference: '{fit['name']}' scored by the "
         "regressor fitted on it)"),
        ("self-fitted", report.get("self_fit_reference"), f"(reference: '{test['name']}' scored by regressors fitted "
         f"on itself, {SELF_FIT_FOLDS}-fold cross-validated: the landmarks without the transfer between splits)"),
    ):
        if values:
            cells = [label] + [f"{values[n]:.3f}" for n in names]
            lines.append("  ".join(c.ljust(w) for c, w in zip(cells, widths)) + "  " + note)
    lines.append("* the protocol's origin (ours: the paper's appendix A, 'Regression coordinates'; release: the "
                 "released code's); its regressor is saved")
    by_joint = report.get("accuracy_by_joint_pct")
    if by_joint:
        lines.append(f"accuracy per joint, % ({report['origin']} origin): "
                     + ", ".join(f"{name} {value:.1f}" for name, value in by_joint.items()))
    factorisation = report.get("factorisation")
    if factorisation:
        text = f"fg/bg on {factorisation['frames']} frames: background PSNR {factorisation['background_psnr_db']:.2f} dB"
        if "mask_iou" in factorisation:
            text += (f"; mask IoU (> 0.5) {factorisation['mask_iou']:.3f}, IoU of the figure-sized top "
                     f"{factorisation['mask_iou_at_area']:.3f}, per-frame correlation "
                     f"{factorisation['mask_correlation']:.3f}, mean {factorisation['mask_mean']:.3f} "
                     f"(true {factorisation['true_mask_mean']:.3f})")
        lines.append(text)
    containment = report.get("containment")
    if containment:
        lines.append(f"foreground containment (% of part-map mass inside the GT mask, {containment['frames']} frames, "
                     f"ascending): min {containment['min_percent']:.3f}, mean {containment['mean_percent']:.3f}; "
                     f"a uniform map would hold {containment['uniform_map_percent']:.3f}")
        lines.append("  landmark " + " ".join(f"{i:>7d}" for i in containment["landmarks_sorted"]))
        lines.append("  percent  " + " ".join(f"{p:7.3f}" for p in containment["percent_sorted"]))
    return "\n".join(lines)
