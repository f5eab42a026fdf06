"""Landmark evaluation: `python -m fgbg_tf.evaluate --checkpoint RUN [--dataset NAME] [--output DIR]`.

The paper's protocol (section 4.2, reference doc section 8): run the trained pose
encoder over the dataset's regression splits, fit a linear regressor without
intercept from the landmark means (pixels) to the annotated keypoints on the
first split, predict the second and score it:

    bbc        accuracy within 6 px of the halved frame (origin at the centre and the top-left, Table 3)
    h36m       mean error / image side, %
    celeba,    mean error / inter-ocular distance, %
    faces5pt
    synthetic  mean error / image side, % and accuracy within 6 px at 128 px (scaled to the image side)

Every dataset is scored with both coordinate origins; the paper's origin (centre
for the video datasets, top-left for MAFL, appendix "Regression coordinates") is
marked and its regressor saved. For datasets with foreground masks (h36m,
synthetic) the per-landmark foreground containment of Figure 2b is reported too.

Outputs in --output (default `<run>/eval/<dataset>-<step>`): report.json,
report.txt (the table printed), regressor.json (see `regression.py`),
figure3.png, and containment.png where it applies; with --log-dir, the
scalars and pictures also go to TensorBoard. The model's weights are only read.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import logging
import sys
from pathlib import Path

import numpy as np
import tensorflow as tf

from fgbg_tf.checkpoints import load_run_config, load_trained_model
from fgbg_tf.evaluation import metrics
from fgbg_tf.config import (
    DATASET_NAMES,
    Config,
    ConfigError,
    DataConfig,
    dataset_config_path,
    load_config,
)
from fgbg_tf.data import DatasetError, LandmarkDataset, get_dataset
from fgbg_tf.data.pipeline import to_model_range
from fgbg_tf.data.video_frames import frame_coordinates
from fgbg_tf.evaluation.figures import figure3_grid, line_plot, save_png
from fgbg_tf.evaluation.regression import ORIGINS, Regressor, apply_regressor, fit_regressor, save_regressor
from fgbg_tf.model.landmarks import to_pixels

logger = logging.getLogger("fgbg_tf.evaluate")


@dataclasses.dataclass(frozen=True)
class Protocol:
    """How one dataset is scored: the paper's origin and the metric Figure 2a-style studies plot."""

    origin: str
    headline: str
    higher_is_better: bool


PROTOCOLS = {
    "bbc": Protocol("centre", "accuracy_pct", True),
    "h36m": Protocol("centre", "error_by_image_size_pct", False),
    "celeba": Protocol("top_left", "error_by_iod_pct", False),
    "faces5pt": Protocol("top_left", "error_by_iod_pct", False),
    "synthetic": Protocol("centre", "accuracy_pct", True),
}


@dataclasses.dataclass
class SplitLandmarks:
    """What the pose encoder gives on one split, invalid frames removed.

    Attributes:
        means_pixels: [N, K, 2] landmark means in pixels of the S x S input.
        keypoints: [N, J, 2] annotated keypoints, same pixels.
        boxes: [N, 3] crop boxes (x0, y0, side) in frame pixels, for datasets that have them.
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


def data_config(config: Config, dataset: str | None, data_dir: str | None) -> DataConfig:
    """The run's data settings, or another dataset's defaults at the run's image size."""
    if dataset is None or dataset == config.data.name:
        data = copy.deepcopy(config.data)
    else:
        has_yaml = dataset_config_path(dataset).is_file()
        data = (load_config(dataset) if has_yaml else load_config(None, overrides=[f"data.name={dataset}"])).data
        data.image_size = config.data.image_size
    if data_dir is not None:
        data.data_dir = data_dir
    return data


def make_detector(model, image_size: int):
    """A tf.function from uint8 images [B, S, S, 3] to (means in pixels, part maps), float32."""

    @tf.function(input_signature=[tf.TensorSpec([None, image_size, image_size, 3], tf.uint8)])
    def detect(images):
        landmarks = model.detect(to_model_range(images))
        return to_pixels(landmarks["mean"], image_size), landmarks["part_maps"]

    return detect


def run_split(
    detect,
    dataset: LandmarkDataset,
    split: str,
    batch_size: int = 32,
    max_frames: int | None = None,
    with_masks: bool = False,
    sample_size: int = 0,
) -> SplitLandmarks:
    """Runs `detect` over one evaluation split; frames marked invalid or with non-finite keypoints are dropped."""
    frames = dataset.eval_split(split)
    if max_frames is not None:
        frames = frames.take(max_frames)
    total = int(frames.cardinality())
    # Sampled frames are spread over the split (e.g. over its videos), not its first few.
    stride = max(1, total // sample_size) if total > 0 and sample_size > 0 else 1
    means, keypoints, boxes, containment, coverage, dropped = [], [], [], [], [], []
    sample = {"image": [], "part_maps": [], "means_pixels": []}
    position = 0
    for batch in frames.batch(batch_size).prefetch(2):
        images = batch["image"]
        count = int(images.shape[0])
        valid = batch["valid"].numpy() if "valid" in batch else np.ones(count, bool)
        points = batch["keypoints"].numpy()
        finite = np.all(np.isfinite(points), axis=(1, 2))
        sources = batch["source"].numpy() if "source" in batch else np.array([b"?"] * count)
        dropped += [(s.decode(), "unreadable") for s in sources[~valid]]
        dropped += [(s.decode(), "keypoints not finite") for s in sources[valid & ~finite]]
        keep = valid & finite
        if not keep.any():
            position += count
            continue
        batch_means, part_maps = (t.numpy() for t in detect(images))
        means.append(batch_means[keep])
        keypoints.append(points[keep])
        if "box" in batch:
            boxes.append(batch["box"].numpy()[keep])
        if with_masks:
            masks = (batch["mask"].numpy()[keep] > 0).astype(np.float32)
            containment.append(metrics.foreground_containment(part_maps[keep], masks))
            coverage.append(masks.mean(axis=(1, 2)))
        picked = keep & ((position + np.arange(count)) % stride == 0)
        position += count
        missing = sample_size - len(sample["image"])
        if missing > 0 and picked.any():
            sample["image"] += list(images.numpy()[picked][:missing])
            sample["part_maps"] += list(part_maps[picked][:missing])
            sample["means_pixels"] += list(batch_means[picked][:missing])
    if not means:
        raise DatasetError(f"{dataset.name} split {split!r} has no valid frames ({len(dropped)} dropped)")
    return SplitLandmarks(
        means_pixels=np.concatenate(means),
        keypoints=np.concatenate(keypoints),
        boxes=np.concatenate(boxes) if boxes else None,
        containment=np.concatenate(containment) if with_masks else None,
        foreground_fraction=float(np.mean(np.concatenate(coverage))) if with_masks else None,
        dropped=dropped,
        sample={k: np.stack(v) if v else None for k, v in sample.items()},
    )


def score(dataset: str, predicted: np.ndarray, landmarks: SplitLandmarks, image_size: int) -> dict:
    """The dataset's metrics (module docstring) of predicted keypoints [N, J, 2] in crop pixels."""
    truth = landmarks.keypoints
    if dataset == "bbc":
        if landmarks.boxes is None:
            raise DatasetError("bbc eval frames must carry their crop 'box' to map keypoints back to frame pixels")
        predicted_frame = frame_coordinates(predicted, landmarks.boxes, image_size)
        truth_frame = frame_coordinates(truth, landmarks.boxes, image_size)
        return {
            "accuracy_pct": 100.0 * metrics.bbc_accuracy(predicted_frame, truth_frame),
            "accuracy_threshold_px": metrics.BBC_THRESHOLD,
        }
    if dataset in ("celeba", "faces5pt"):
        return {"error_by_iod_pct": metrics.mean_error_by_interocular(predicted, truth)}
    results = {"error_by_image_size_pct": metrics.mean_error_by_image_size(predicted, truth, image_size)}
    if dataset == "synthetic":
        threshold = metrics.SYNTHETIC_THRESHOLD_AT_128 * image_size / 128
        results["accuracy_pct"] = 100.0 * metrics.pixel_accuracy(predicted, truth, threshold)
        results["accuracy_threshold_px"] = threshold
    return results


def landmark_report(dataset: str, split_names: tuple[str, str], fit: SplitLandmarks, test: SplitLandmarks,
                    image_size: int, keypoint_names=()) -> tuple[dict, dict]:
    """The protocol's numbers for landmarks found on the fit and report splits, whatever model found them.

    Fits a regressor per origin on `fit` and scores `test` (and `fit`, which shows how much of
    the error is under-fitting), adds the mean-pose reference and, for splits with masks,
    the containment. Returns (the report's protocol part, {origin: Regressor}).
    """
    protocol = PROTOCOLS[dataset]
    results, fit_results, regressors = {}, {}, {}
    for origin in (protocol.origin, *(o for o in ORIGINS if o != protocol.origin)):
        regressors[origin] = fit_regressor(fit.means_pixels, fit.keypoints, origin, image_size, keypoint_names)
        results[origin] = score(dataset, apply_regressor(regressors[origin], test.means_pixels), test, image_size)
        fit_results[origin] = score(dataset, apply_regressor(regressors[origin], fit.means_pixels), fit, image_size)
    # What a model without landmarks gets: every test frame predicted as the fit split's mean pose.
    mean_pose = np.broadcast_to(fit.keypoints.mean(axis=0), test.keypoints.shape)
    splits = {}
    for role, name, part in (("fit", split_names[0], fit), ("report", split_names[1], test)):
        splits[role] = {"name": name, "frames": len(part.keypoints), "dropped": len(part.dropped),
                        "dropped_sources": [s for s, _ in part.dropped]}
    report = {
        "dataset": dataset,
        "image_size": image_size,
        "keypoint_names": list(keypoint_names),
        "splits": splits,
        "origin": protocol.origin,
        "results": results,
        "fit_split_results": fit_results,
        "mean_pose_reference": score(dataset, mean_pose, test, image_size),
        "headline": {"metric": protocol.headline, "value": results[protocol.origin][protocol.headline],
                     "higher_is_better": protocol.higher_is_better},
        "containment": (containment_report(test.containment, test.foreground_fraction)
                        if test.containment is not None else None),
    }
    return report, regressors


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


def factorisation_report(model, arrays: dict, batch_size: int = 32, max_frames: int | None = None) -> dict | None:
    """The fg/bg metrics on frames with known masks and backgrounds (the embedded `synthetic` set).

    Each frame is rendered with its temporal partner as the appearance image, as in
    training, and scored by `factorisation_scores`. None for the baseline, which has
    neither a mask nor a background.
    """
    if model.variant == "baseline":
        return None
    count = len(arrays["image"]) if max_frames is None else min(max_frames, len(arrays["image"]))
    masks, backgrounds = [], []
    for start in range(0, count, batch_size):
        part = slice(start, min(start + batch_size, count))
        outputs = model({"pose": to_model_range(arrays["image"][part]),
                         "appearance": to_model_range(arrays["partner"][part])}, training=False)
        backgrounds.append(outputs["background"].numpy())
        if "mask" in outputs:
            masks.append(outputs["mask"].numpy()[..., 0])
    return factorisation_scores(np.concatenate(masks) if masks else None, np.concatenate(backgrounds),
                                {k: v[:count] for k, v in arrays.items()})


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
    ]
    fit, test = report["splits"]["fit"], report["splits"]["report"]
    lines.append(
        f"regression (no intercept): fit on '{fit['name']}' ({fit['frames']} frames), "
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
    reference = report["mean_pose_reference"]
    cells = ["mean pose"] + [f"{reference[n]:.3f}" for n in names]
    lines.append("  ".join(c.ljust(w) for c, w in zip(cells, widths)) + "  (reference: no landmarks)")
    lines.append("* the paper's origin for this dataset (appendix A, 'Regression coordinates'); its regressor is saved")
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


def figure3(model, landmarks: SplitLandmarks, regressor: Regressor) -> np.ndarray:
    """Figure 3 for the sampled frames: regressed keypoints, predicted mask (if any), part maps."""
    images = landmarks.sample["image"]
    x = to_model_range(tf.constant(images))
    # The mask of the image itself: pose and appearance are the same frame.
    outputs = model({"pose": x, "appearance": x}, training=False)
    mask = outputs["mask"].numpy() if "mask" in outputs else None
    keypoints = apply_regressor(regressor, landmarks.sample["means_pixels"])
    return figure3_grid(images, keypoints, landmarks.sample["part_maps"], mask)


def evaluate_checkpoint(
    checkpoint: str | Path,
    dataset: str | None = None,
    data_dir: str | None = None,
    output: str | Path | None = None,
    max_frames: int | None = None,
    batch_size: int = 32,
    num_images: int = 8,
    log_dir: str | Path | None = None,
    untrained: bool = False,
) -> dict:
    """Evaluates a trained run or checkpoint; writes the outputs listed in the module docstring.

    With `untrained=True` the run's model is evaluated at its initial weights (step 0),
    the baseline that shows what training bought. Returns the report (report.json).
    """
    run_config, run_dir, prefix = load_run_config(checkpoint)
    data = data_config(run_config, dataset, data_dir)
    if data.name not in PROTOCOLS:
        raise DatasetError(
            f"{data.name} has no keypoint annotations, so the regression protocol does not apply; "
            f"evaluate one of {sorted(PROTOCOLS)}"
        )
    reader = get_dataset(data)
    model, config, step = load_trained_model(prefix, initial=untrained)
    model.trainable = False
    protocol = PROTOCOLS[data.name]
    size = data.image_size
    label = "untrained" if untrained else step
    output = Path(output) if output is not None else run_dir / "eval" / f"{data.name}-{label}"
    output.mkdir(parents=True, exist_ok=True)

    detect = make_detector(model, size)
    fit_split, report_split = reader.regression_splits
    with_masks = bool(reader.has_masks)
    fit = run_split(detect, reader, fit_split, batch_size, max_frames)
    test = run_split(detect, reader, report_split, batch_size, max_frames, with_masks, num_images)
    for name, part in ((fit_split, fit), (report_split, test)):
        if part.dropped:
            logger.warning("%s/%s: dropped %d invalid frame(s), e.g. %s", data.name, name, len(part.dropped),
                           "; ".join(f"{s} ({r})" for s, r in part.dropped[:5]))

    report, regressors = landmark_report(data.name, reader.regression_splits, fit, test, size, reader.keypoint_names)
    regressor_path = save_regressor(regressors[protocol.origin], output / "regressor.json")
    report.update({
        "checkpoint": prefix,
        "step": step,
        "variant": config.model.variant,
        "num_landmarks": config.model.num_landmarks,
        "factorisation": (
            factorisation_report(model, reader.factorisation_split(report_split), batch_size, max_frames)
            if hasattr(reader, "factorisation_split") else None
        ),
        "files": {"regressor": str(regressor_path)},
    })

    pictures = {}
    if num_images > 0:
        pictures["figure3"] = figure3(model, test, regressors[protocol.origin])
    if with_masks:
        curve = report["containment"]
        pictures["containment"] = line_plot(
            {f"{config.model.variant} K={config.model.num_landmarks}":
             (np.arange(len(curve["percent_sorted"])), curve["percent_sorted"])},
            title=f"Foreground containment ({data.name}, step {step})",
            x_label="landmark, sorted by containment", y_label="% of mass in foreground", log_y=True,
        )
    for name, image in pictures.items():
        report["files"][name] = str(save_png(output / f"{name}.png", image))

    table = format_table(report)
    (output / "report.txt").write_text(table + "\n")
    report["files"]["report"] = str(output / "report.json")
    (output / "report.json").write_text(json.dumps(report, indent=1))
    if log_dir is not None:
        write_summaries(log_dir, report, pictures, step)
    print(table)
    return report


def write_summaries(log_dir: str | Path, report: dict, pictures: dict, step: int) -> None:
    """Scalars of every origin's metrics and the pictures, under eval/<dataset>/ in TensorBoard."""
    writer = tf.summary.create_file_writer(str(log_dir))
    prefix = f"eval/{report['dataset']}"
    with writer.as_default(step=step):
        for origin, values in report["results"].items():
            for name, value in values.items():
                tf.summary.scalar(f"{prefix}/{origin}/{name}", value)
        if report["containment"]:
            tf.summary.scalar(f"{prefix}/containment_min_pct", report["containment"]["min_percent"])
        for name, value in (report.get("factorisation") or {}).items():
            tf.summary.scalar(f"{prefix}/factorisation/{name}", value)
        for name, image in pictures.items():
            tf.summary.image(f"{prefix}/{name}", image[None], max_outputs=1)
    writer.flush()


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m fgbg_tf.evaluate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True,
                        help="training output folder, its checkpoints/ folder, or a prefix such as RUN/checkpoints/ckpt-600")
    parser.add_argument("--dataset", choices=DATASET_NAMES, help="dataset to evaluate on (default: the run's)")
    parser.add_argument("--data-dir", help="where the dataset lives (default: the run's data.data_dir)")
    parser.add_argument("--output", help="output folder (default: RUN/eval/<dataset>-<step>)")
    parser.add_argument("--max-frames", type=int, help="use at most this many frames of each split")
    parser.add_argument("--batch-size", type=int, default=32, help="frames per pose-encoder call (default 32)")
    parser.add_argument("--num-images", type=int, default=8, help="test images in figure3.png (default 8; 0: none)")
    parser.add_argument("--log-dir", help="also write the metrics and pictures to this TensorBoard folder")
    parser.add_argument("--untrained", action="store_true",
                        help="evaluate the run's model at its initial weights (step 0), the baseline for the trained one")
    args = parser.parse_args(argv)
    if args.max_frames is not None and args.max_frames < 1:
        parser.error(f"--max-frames must be >= 1, got {args.max_frames}")
    if args.batch_size < 1 or args.num_images < 0:
        parser.error("--batch-size must be >= 1 and --num-images >= 0")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        evaluate_checkpoint(args.checkpoint, args.dataset, args.data_dir, args.output, args.max_frames,
                            args.batch_size, args.num_images, args.log_dir, args.untrained)
    except (ConfigError, DatasetError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
