"""The evaluation behind `python -m fgbg_tf.evaluate`: `evaluate_checkpoint(run)` and its parts.

`run_split` runs a detector over a split, `factorisation_report` scores the mask and
the background against ground truth where a dataset has it (also used by training's
probe), and `evaluate_checkpoint` writes the report, regressor and figures that the
command's help describes (`fgbg_tf/evaluate.py`).

Example:
    report = evaluate_checkpoint("runs/synthetic")   # report["metrics"], also printed as a table
"""

from __future__ import annotations

import copy
import json
import logging
from pathlib import Path

import numpy as np
import tensorflow as tf

from fgbg_tf.config import Config, DataConfig, dataset_config_path, load_config
from fgbg_tf.data import DatasetError, LandmarkDataset, dataset_options, get_dataset
from fgbg_tf.data.pipeline import to_model_range
from fgbg_tf.evaluation import metrics
from fgbg_tf.evaluation.figures import figure3_grid, label_rows, line_plot, save_png
from fgbg_tf.evaluation.protocols import (
    PROTOCOLS,
    SplitLandmarks,
    factorisation_scores,
    format_table,
    landmark_report,
)
from fgbg_tf.evaluation.regression import Regressor, apply_regressor, save_regressor
from fgbg_tf.evaluation.summaries import log_evaluation
from fgbg_tf.evaluation.unannotated import format_unannotated, unannotated_image_report, unannotated_video_report
from fgbg_tf.model.landmarks import to_pixels
from fgbg_tf.training.checkpoints import load_run_config, load_trained_model

logger = logging.getLogger("fgbg_tf.evaluate")


# The protocol `evaluate` scores the benchmark datasets by when neither the command nor the run names one.
DEFAULT_PROTOCOL = "release"


def data_config(config: Config, dataset: str | None, data_dir: str | None, options: dict | None = None) -> DataConfig:
    """The run's data settings, or another dataset's defaults at the run's image size; `options` update
    data.options (a user's annotations given to `evaluate`)."""
    if dataset is None or dataset == config.data.name:
        data = copy.deepcopy(config.data)
    else:
        has_yaml = dataset_config_path(dataset).is_file()
        data = (load_config(dataset) if has_yaml else load_config(None, overrides=[f"data.name={dataset}"])).data
        data.image_size = config.data.image_size
    if data_dir is not None:
        data.data_dir = data_dir
    data.options = {**data.options, **(options or {})}
    return data


def choose_protocol(data: DataConfig, protocol: str | None) -> None:
    """Sets data.options.protocol for a benchmark dataset (bbc, h36m, celeba): `protocol`, else the run's, else
    DEFAULT_PROTOCOL. Other datasets have our protocol only: asking them for "release" is an error."""
    if "protocol" in dataset_options(data):
        data.options["protocol"] = protocol or data.options.get("protocol") or DEFAULT_PROTOCOL
    elif protocol == "release":
        raise DatasetError(f"{data.name} has no released evaluation to reproduce, only our protocol; the release "
                           "protocol exists for bbc, h36m and celeba (docs/protocols.md)")


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
    transform=None,
) -> SplitLandmarks:
    """Runs `detect` over one evaluation split; frames marked invalid or with non-finite keypoints are dropped.

    `transform`, if given, is mapped over the split's frames first (a diagnostic that changes the frames, e.g.
    tools/faces5pt_transfer.py's zoom; it must keep each frame's keys).
    """
    frames = dataset.eval_split(split)
    if transform is not None:
        frames = frames.map(transform)
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
        # A user's CSV may leave single points out (scored without them); the named datasets need every point.
        finite = np.isfinite(points).all(axis=2)
        finite = finite.any(axis=1) if dataset.partial_keypoints else finite.all(axis=1)
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


def make_renderer(model, image_size: int):
    """A tf.function from uint8 (pose, appearance) images [B, S, S, 3] to the model's "background" and, for the full
    variant, "mask" [B, S, S] (float32); traced once, so a training loop can score a probe every few steps cheaply."""
    spec = tf.TensorSpec([None, image_size, image_size, 3], tf.uint8)

    @tf.function(input_signature=[spec, spec])
    def render(pose, appearance):
        outputs = model({"pose": to_model_range(pose), "appearance": to_model_range(appearance)}, training=False)
        return {"background": outputs["background"],
                **({"mask": outputs["mask"][..., 0]} if "mask" in outputs else {})}

    return render


def factorisation_report(model, arrays: dict, batch_size: int = 32, max_frames: int | None = None,
                         render=None) -> dict | None:
    """The fg/bg metrics on frames with known masks and backgrounds (the embedded `synthetic` set).

    Each frame is rendered with its temporal partner as the appearance image, as in
    training, and scored by `factorisation_scores`. None for the baseline, which has
    neither a mask nor a background. `render`: the model's `make_renderer`, when the caller keeps one.
    """
    if model.variant == "baseline":
        return None
    render = render or make_renderer(model, arrays["image"].shape[1])
    count = len(arrays["image"]) if max_frames is None else min(max_frames, len(arrays["image"]))
    masks, backgrounds = [], []
    for start in range(0, count, batch_size):
        part = slice(start, min(start + batch_size, count))
        outputs = render(arrays["image"][part], arrays["partner"][part])
        backgrounds.append(outputs["background"].numpy())
        if "mask" in outputs:
            masks.append(outputs["mask"].numpy())
    return factorisation_scores(np.concatenate(masks) if masks else None, np.concatenate(backgrounds),
                                {k: v[:count] for k, v in arrays.items()})


def figure3(model, landmarks: SplitLandmarks, regressor: Regressor) -> np.ndarray:
    """Figure 3 for the sampled frames: regressed keypoints, predicted mask (if any), part maps."""
    images = landmarks.sample["image"]
    x = to_model_range(tf.constant(images))
    # The mask of the image itself: pose and appearance are the same frame.
    outputs = model({"pose": x, "appearance": x}, training=False)
    mask = outputs["mask"].numpy() if "mask" in outputs else None
    keypoints = apply_regressor(regressor, landmarks.sample["means_pixels"])
    labels = ["regressed keypoints"] + (["predicted mask"] if mask is not None else []) + ["part maps"]
    return label_rows(figure3_grid(images, keypoints, landmarks.sample["part_maps"], mask), labels)


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
    annotations: dict | None = None,
    protocol: str | None = None,
) -> dict:
    """Evaluates a trained run or checkpoint; writes the outputs listed in the module docstring.

    With `untrained=True` the run's model is evaluated at its initial weights (step 0),
    the baseline that shows what training bought. `annotations`: data.options of a user's keypoints, masks and
    normalise_by (the `images` and `videos` datasets). `protocol`: "release" or "ours" for bbc, h36m and celeba
    (`choose_protocol`). Returns the report (report.json).
    """
    run_config, run_dir, prefix = load_run_config(checkpoint)
    data = data_config(run_config, dataset, data_dir, annotations)
    if data.name not in PROTOCOLS:
        raise DatasetError(
            f"{data.name} has no keypoint annotations, so the regression protocol does not apply; "
            f"evaluate one of {sorted(PROTOCOLS)}"
        )
    choose_protocol(data, protocol)
    reader = get_dataset(data)
    model, config, step = load_trained_model(checkpoint, initial=untrained)
    if Path(checkpoint).is_dir() and not untrained:
        prefix = str(Path(prefix).with_name(f"ckpt-{step}"))  # the newest that reads (fgbg_tf.train numbers by step)
    model.trainable = False
    size = data.image_size
    label = "untrained" if untrained else step
    output = Path(output) if output is not None else run_dir / "eval" / f"{data.name}-{label}"
    output.mkdir(parents=True, exist_ok=True)
    header = {"dataset": data.name, "checkpoint": prefix, "step": step, "variant": config.model.variant,
              "num_landmarks": config.model.num_landmarks}
    if not reader.regression_splits:  # a user's images or videos without a keypoints CSV: what can be said without
        logger.info("%s: no keypoints (data.options.keypoints), so no regression; reporting reconstruction and "
                    "landmark stability on the held-out %s", data.name, data.name)
        if reader.is_video:
            found = unannotated_video_report(model, reader.held_out_clips(), data.temporal_offset[0], batch_size,
                                             max_frames)
        else:
            found = unannotated_image_report(model, *reader.held_out_images(max_frames), data, batch_size)
        report = {**header, **found}
        return _write_report(report, format_unannotated(report), output, {}, log_dir, step)

    detect = make_detector(model, size)
    fit_split, report_split = reader.regression_splits
    with_masks = bool(reader.has_masks)
    fit = run_split(detect, reader, fit_split, batch_size, max_frames)
    test = run_split(detect, reader, report_split, batch_size, max_frames, with_masks, num_images)
    for name, part in ((fit_split, fit), (report_split, test)):
        if part.dropped:
            logger.warning("%s/%s: dropped %d invalid frame(s), e.g. %s", data.name, name, len(part.dropped),
                           "; ".join(f"{s} ({r})" for s, r in part.dropped[:5]))

    try:
        report, regressors = landmark_report(data.name, reader.regression_splits, fit, test, size,
                                             reader.keypoint_names, reader.normalise_pair, reader.protocol)
    except ValueError as error:  # annotations that cannot be scored (a point never annotated, a coincident pair)
        raise DatasetError(f"{data.name}: the annotations cannot be scored: {error}") from None
    regressor_path = save_regressor(regressors[report["origin"]], output / "regressor.json")
    if reader.excluded_from_fit:
        reasons = sorted({reason for _, reason in reader.excluded_from_fit})
        report["splits"]["fit"]["excluded"] = {"frames": len(reader.excluded_from_fit), "reasons": reasons,
                                               "sources": [s for s, _ in reader.excluded_from_fit]}
    report.update({
        **header,
        "factorisation": (
            factorisation_report(model, reader.factorisation_split(report_split), batch_size, max_frames)
            if hasattr(reader, "factorisation_split") else None
        ),
        "files": {"regressor": str(regressor_path)},
    })

    pictures = {}
    if num_images > 0:
        pictures["figure3"] = figure3(model, test, regressors[report["origin"]])
    if with_masks:
        curve = report["containment"]
        ranks = np.arange(len(curve["percent_sorted"]))
        pictures["containment"] = line_plot(
            {f"{config.model.variant} K={config.model.num_landmarks}": (ranks, curve["percent_sorted"]),
             "uniform map": (ranks, np.full(len(ranks), curve["uniform_map_percent"]))},
            title=f"Foreground containment ({data.name}, step {step})",
            x_label="landmark, sorted by containment", y_label="% of mass in foreground", log_y=True,
        )
    return _write_report(report, format_table(report), output, pictures, log_dir, step)


def _write_report(report: dict, table: str, output: Path, pictures: dict, log_dir, step: int) -> dict:
    """Writes report.json, report.txt and the pictures to `output` (and TensorBoard), prints the table."""
    report.setdefault("files", {})
    for name, image in pictures.items():
        report["files"][name] = str(save_png(output / f"{name}.png", image))
    (output / "report.txt").write_text(table + "\n")
    report["files"]["report"] = str(output / "report.json")
    (output / "report.json").write_text(json.dumps(report, indent=1))
    if log_dir is not None:
        log_evaluation(log_dir, report, pictures, step)
    print(table)
    return report
