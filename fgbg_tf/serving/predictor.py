"""The prediction behind `python -m fgbg_tf.predict`: landmarks for images, folders and videos, and transfer.

`Predictor` runs a SavedModel or a training checkpoint on S x S uint8 images; `predict` walks the input, writes the
tables and pictures, and `transfer` renders one image's pose with another's appearance. The outputs, names and the
image size policy are described in `fgbg_tf/predict.py` (the command's help).

Example:
    summary = predict("exported", "clips/", "predictions")   # summary["items"], summary["skipped"]
"""

from __future__ import annotations

import collections
import csv
import json
import logging
import math
import sys
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from fgbg_tf.data.pipeline import to_uint8
from fgbg_tf.data.sources import framing_record, read_record
from fgbg_tf.data.media import (
    MediaError,
    VideoWriter,
    check_framing,
    frame_image,
    input_files,
    is_video,
    overlay,
    read_image,
    to_original_pixels,
    video_fps,
    video_frames,
    video_length,
    write_image,
)
from fgbg_tf.serving import REPORT_FILE
from fgbg_tf.serving.module import SAVED_MODEL_DIR, InferenceModule

logger = logging.getLogger("fgbg_tf.predict")

VIDEO_CHUNK = 16


class Predictor:
    """The exported signatures of a SavedModel, or the same functions built from a checkpoint.

    Args:
        path: a SavedModel folder, an export output folder holding `saved_model/`,
            a training output folder or a checkpoint prefix.
        regressor_path: optional regressor file, used with a checkpoint only (a
            SavedModel carries its regressor in its `keypoints` signature).

    Attributes: `image_size` (S), `has_keypoints`, `factors` (which of "mask", "background"
    the model's variant outputs), `framing` (how the training images were made square, from the
    run's config or the export report beside the SavedModel; None where the dataset had no choice),
    `source_sizes` (the training images' or videos' [[width, height, count], ...] before framing, from
    the run's sources.json or the export report; None where none were recorded).
    Example: `Predictor("export/saved_model").landmarks(images)["means_pixels"]`.
    """

    def __init__(self, path: str | Path, regressor_path: str | Path | None = None):
        path = Path(path)
        saved = path / SAVED_MODEL_DIR if (path / SAVED_MODEL_DIR / "saved_model.pb").is_file() else path
        if (saved / "saved_model.pb").is_file():
            if regressor_path:
                raise ValueError("--regressor applies to checkpoints; a SavedModel has its keypoints signature "
                                 "from `fgbg_tf.export --regressor`")
            self._loaded = tf.saved_model.load(str(saved))
            self.functions = dict(self._loaded.signatures)
            self.image_size = int(self.functions["landmarks"].structured_input_signature[1]["images"].shape[1])
            report = saved.parent / REPORT_FILE
            record = read_record(report) if report.is_file() else {}
        else:
            from fgbg_tf.training.checkpoints import load_trained_model, resolve_checkpoint

            model, config, _ = load_trained_model(path)
            record = framing_record(config.data, resolve_checkpoint(path)[0])
            regressor = None
            if regressor_path:
                from fgbg_tf.evaluation.regression import load_regressor

                regressor = load_regressor(regressor_path)
            self.functions = InferenceModule(model, regressor).signatures()
            self.image_size = model.image_size
        self.framing, self.source_sizes = record.get("framing"), record.get("source_sizes")
        self.has_keypoints = "keypoints" in self.functions
        self.factors = tuple(k for k in ("mask", "background") if k in self.functions["reconstruct"].structured_outputs)

    def _run(self, name: str, **inputs) -> dict:
        outputs = self.functions[name](**{k: tf.constant(v) for k, v in inputs.items()})
        return {k: v.numpy() for k, v in outputs.items()}

    def landmarks(self, images: np.ndarray) -> dict:
        """uint8 [B, S, S, 3] -> means, means_pixels, covariances, part_maps (and keypoints)."""
        result = self._run("landmarks", images=images)
        if self.has_keypoints:
            result["keypoints"] = self._run("keypoints", images=images)["keypoints"]
        return result

    def reconstruct(self, pose: np.ndarray, appearance: np.ndarray) -> dict:
        return self._run("reconstruct", pose=pose, appearance=appearance)

    def render(self, means: np.ndarray, covariances: np.ndarray, appearance: np.ndarray) -> dict:
        return self._run("render", means=means, covariances=covariances, appearance=appearance)


class Results:
    """Collects per-frame rows, skipped files and each video's frame counts; writes landmarks.csv and landmarks.json."""

    def __init__(self, predictor: Predictor, model_path: str):
        self.predictor, self.model_path = predictor, model_path
        self.items: list[dict] = []
        self.skipped: list[dict] = []
        self.videos: list[dict] = []

    def add(self, source: Path, frame: int | None, shape: tuple[int, int], box: tuple, output: dict,
            index: int) -> dict:
        size = self.predictor.image_size
        item = {
            "source": str(source),
            "frame": frame,
            "width": shape[1],
            "height": shape[0],
            "resized": shape != (size, size) or tuple(box) != (0, 0, size, size),
            "box": list(box),
            "landmarks": to_original_pixels(output["means_pixels"][index], size, box).round(3).tolist(),
        }
        if "keypoints" in output:
            item["keypoints"] = to_original_pixels(output["keypoints"][index], size, box).round(3).tolist()
        self.items.append(item)
        return item

    def skip(self, source, error: Exception) -> None:
        logger.warning("skipped %s", error)
        self.skipped.append({"source": str(source), "error": str(error)})

    def video(self, source: Path, read: int, declared: int) -> None:
        """Records how many frames a video gave against how many its container declares (0: unknown)."""
        self.videos.append({"source": str(source), "frames_read": read, "frames_declared": declared})
        if read < declared:
            logger.warning("%s: %d of the %d frames its container declares could be decoded (a truncated or "
                           "damaged file?); the rest is missing from the results", source, read, declared)

    @property
    def short_videos(self) -> list[dict]:
        return [v for v in self.videos if v["frames_read"] < v["frames_declared"]]

    def write(self, output_dir: Path) -> None:
        num_landmarks = len(self.items[0]["landmarks"]) if self.items else 0
        num_keypoints = len(self.items[0].get("keypoints", [])) if self.items else 0
        header = ["source", "frame", "width", "height", "resized"]  # the framing's box is in landmarks.json
        header += [f"landmark{k}_{axis}" for k in range(num_landmarks) for axis in "xy"]
        header += [f"keypoint{j}_{axis}" for j in range(num_keypoints) for axis in "xy"]
        with open(output_dir / "landmarks.csv", "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(header)
            for item in self.items:
                points = [c for p in item["landmarks"] + item.get("keypoints", []) for c in p]
                frame = "" if item["frame"] is None else item["frame"]
                writer.writerow([item["source"], frame, item["width"], item["height"], int(item["resized"])] + points)
        summary = {
            "model": self.model_path,
            "image_size": self.predictor.image_size,
            "coordinates": "(x, y) in pixels of the original image, pixel i at coordinate i",
            "items": self.items,
            "skipped": self.skipped,
            "videos": self.videos,
        }
        (output_dir / "landmarks.json").write_text(json.dumps(summary, indent=1))


def _prepare(image: np.ndarray, size: int, framing, source, frame=None,
             source_sizes=None) -> tuple[np.ndarray, tuple, tuple]:
    """(the S x S input, the framing's box, the image's (height, width)); once per file (its first frame), the input
    is compared with the training sources' `source_sizes` (None: not compared) and a framing is logged."""
    shape = image.shape[:2]
    if frame in (None, 0):
        compare_with_sources(source, shape, framing, source_sizes)
    fitted, box = frame_image(image, size, framing, source if frame is None else f"{source} frame {frame}")
    if shape != (size, size) and frame in (None, 0):
        logger.info("%s: %dx%d framed by %s (box %s) -> %dx%d", source, shape[1], shape[0], framing, list(box),
                    size, size)
    return fitted, box, shape


# Encoders round frame sizes to whole (often even) pixels: 1280x720 and 854x480 are both 16:9 to within 0.1 %.
ASPECT_TOLERANCE = 0.01


def compare_with_sources(source, shape: tuple[int, int], framing, source_sizes) -> None:
    """Refuses an input that a box framing would cut unlike every training source, and warns where another framing
    shows its subject at another scale or squashed (an aspect ratio unlike every training source's). Silent for the
    size of a training source, and without `source_sizes` ([[width, height, count], ...] or None)."""
    height, width = shape
    if not source_sizes or [width, height] in [size[:2] for size in source_sizes]:
        return
    trained = ", ".join(f"{w}x{h}" for w, h, _ in source_sizes)
    if not isinstance(framing, str):
        raise MediaError(f"{source}: {width}x{height}, but the model's framing box {list(framing)} was set on training "
                         f"sources of {trained}: on another size it shows another part of the scene. Give inputs of a "
                         "training size, or name this input's framing with --framing X,Y,SIDE,SIDE (the box around the "
                         "same region) or --framing centre_crop / pad / resize")
    if all(abs(math.log(width * h / (height * w))) > ASPECT_TOLERANCE for w, h, _ in source_sizes):
        logger.warning("%s: %dx%d has another aspect ratio than the training sources (%s): framed by %s, its subject "
                       "appears at another scale or squashed than in training", source, width, height, trained,
                       framing)


def output_names(files: list[Path]) -> dict[Path, str]:
    """Each input's name in the output folder: its stem, or stem_ext where two inputs share a stem (clip.avi and
    clip.mp4 become clip_avi and clip_mp4), so that no output overwrites another."""
    stems = collections.Counter(p.stem for p in files)
    return {p: p.stem if stems[p.stem] == 1 else f"{p.stem}_{p.suffix.lstrip('.')}" for p in files}


def predict_image(predictor: Predictor, path: Path, name: str, output_dir: Path, results: Results,
                  framing, source_sizes) -> None:
    image = read_image(path)
    fitted, box, shape = _prepare(image, predictor.image_size, framing, path, source_sizes=source_sizes)
    output = predictor.landmarks(fitted[None])
    item = results.add(path, None, shape, box, output, 0)
    keypoints = np.array(item["keypoints"]) if "keypoints" in item else None
    write_image(output_dir / "overlays" / f"{name}.png", overlay(image, np.array(item["landmarks"]), keypoints))
    if predictor.factors:
        factors = predictor.reconstruct(fitted[None], fitted[None])
        for factor in predictor.factors:
            write_image(output_dir / f"{factor}s" / f"{name}.png", to_uint8(factors[factor][0], low=0.0))


def predict_video(predictor: Predictor, path: Path, name: str, output_dir: Path, results: Results, framing,
                  source_sizes, progress: bool) -> None:
    size, fps, declared = predictor.image_size, video_fps(path), video_length(path)
    bar = keras.utils.Progbar(declared or None, unit_name="frame") if progress else None
    writers: dict[str, VideoWriter] = {}
    frames, count = [], 0

    def flush():
        fitted = np.stack([f for f, _, _, _ in frames])
        output = predictor.landmarks(fitted)
        factors = predictor.reconstruct(fitted, fitted) if predictor.factors else {}
        for i, (_, box, shape, image) in enumerate(frames):
            item = results.add(path, count - len(frames) + i, shape, box, output, i)
            keypoints = np.array(item["keypoints"]) if "keypoints" in item else None
            shown = {"overlay": overlay(image, np.array(item["landmarks"]), keypoints)}
            shown.update({name: to_uint8(factors[name][i], low=0.0) for name in predictor.factors})
            for kind, picture in shown.items():
                if kind not in writers:
                    writers[kind] = VideoWriter(output_dir / f"{name}_{kind}", fps, (picture.shape[1], picture.shape[0]))
                writers[kind].write(picture)
        frames.clear()

    try:
        for image in video_frames(path):
            frames.append((*_prepare(image, size, framing, path, count, source_sizes), image))
            count += 1
            if len(frames) == VIDEO_CHUNK:
                flush()
            if bar is not None:
                bar.update(count)
        if frames:
            flush()
        results.video(path, count, declared)
    finally:
        for writer in writers.values():
            writer.close()


def predict(model_path: str | Path, input_path: str | Path, output_dir: str | Path, framing=None,
            regressor_path: str | Path | None = None, progress: bool = True) -> dict:
    """Runs the model on an image, a video or a folder of both; returns the JSON summary written.

    `framing` (data/media.py): "resize", "centre_crop", "pad" or a box [x, y, side, side]; coordinates
    are mapped back through it. None takes the model's own (`Predictor.framing`: the `images` or `videos`
    dataset's data.options.framing), and where it has none refuses inputs of another size than the model's.
    With the model's own framing, each input is compared with the training sources' sizes where the run
    recorded them (`compare_with_sources`): a box refuses another size, the other framings warn of
    another aspect ratio.
    """
    if framing is not None:
        check_framing(framing, "--framing")
    output_dir = Path(output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        raise MediaError(f"--output {output_dir} is a file; name a folder (it is created if missing)")
    files = input_files(input_path)
    if not files:
        raise MediaError(f"--input {input_path} holds no image or video files")
    predictor = Predictor(model_path, regressor_path)
    trained = predictor.framing
    # Inputs are compared with the training sources only under the model's own framing: --framing is the override.
    source_sizes = None
    if framing is None and trained is not None:
        framing, source_sizes = trained, predictor.source_sizes
        logger.info("framing new images as the training images were: %s (from the model; --framing overrides)",
                    framing)
    elif framing is not None and trained is not None and _plain(framing) != _plain(trained):
        logger.warning("--framing %s differs from the framing the model was trained with (%s): landmarks of "
                       "differently framed images are not what it learnt", framing, trained)
    output_dir.mkdir(parents=True, exist_ok=True)
    results = Results(predictor, str(model_path))
    names = output_names(files)
    bar = keras.utils.Progbar(len(files), unit_name="file") if progress and len(files) > 1 else None
    for number, path in enumerate(files, 1):
        try:
            if is_video(path):
                predict_video(predictor, path, names[path], output_dir, results, framing, source_sizes,
                              progress and bar is None)
            else:
                predict_image(predictor, path, names[path], output_dir, results, framing, source_sizes)
        except MediaError as error:
            results.skip(path, error)
        if bar is not None:
            bar.update(number)
    results.write(output_dir)
    for video in results.short_videos:
        print(f"{video['source']}: {video['frames_read']} of {video['frames_declared']} declared frames decoded",
              file=sys.stderr)
    if results.skipped:
        print(f"skipped {len(results.skipped)} file(s):", file=sys.stderr)
        for entry in results.skipped:
            print(f"  {entry['error']}", file=sys.stderr)
    return json.loads((output_dir / "landmarks.json").read_text())


def transfer(model_path: str | Path, pose_path: str | Path, appearance_path: str | Path, output_dir: str | Path,
             framing=None) -> np.ndarray:
    """Renders the pose of `pose_path` with the appearance and background of `appearance_path`.

    Returns the uint8 [S, S, 3] rendering, also written as `transfer.png` with a panel.
    """
    predictor = Predictor(model_path)
    size = predictor.image_size
    pose = _prepare(read_image(pose_path), size, framing, pose_path)[0]
    appearance = _prepare(read_image(appearance_path), size, framing, appearance_path)[0]
    found = predictor.landmarks(pose[None])
    rendered = to_uint8(predictor.render(found["means"], found["covariances"], appearance[None])["image"][0], low=0.0)
    output_dir = Path(output_dir)
    write_image(output_dir / "transfer.png", rendered)
    panel = np.concatenate([overlay(pose, found["means_pixels"][0]), appearance, rendered], axis=1)
    write_image(output_dir / "transfer_panel.png", panel)
    return rendered


def _plain(framing):
    """A framing as a comparable value: a name, or a box as a list of ints."""
    return framing if isinstance(framing, str) else [int(v) for v in framing]
