"""The export behind `python -m fgbg_tf.export`: write a trained model's SavedModel and TFLite detectors, and
measure each artefact against the Keras model (size, ms/image, largest landmark deviation).

Example:
    report = export_model(model, "exported", calibration_images=images, evaluation_images=images[:16])
"""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path

import numpy as np
import tensorflow as tf

from fgbg_tf.model.factorized import FactorizedLandmarkModel
from fgbg_tf.serving import DEFAULT_FORMATS, FORMATS, QUANTIZATIONS, REPORT_FILE
from fgbg_tf.serving.module import (LANDMARK_SIGNATURES, LANDMARKS_SAVED_MODEL_DIR, SAVED_MODEL_DIR, InferenceModule,
                                    keras_landmarks, run_per_image, save_saved_model)
from fgbg_tf.serving.onnx import ONNX_FILE, convert_onnx, require_onnx, run_onnx
from fgbg_tf.serving.tflite import convert_tflite, run_tflite, tflite_name

logger = logging.getLogger("fgbg_tf.export")


def time_signature(function, images: np.ndarray) -> tuple[dict, float]:
    """Runs a SavedModel signature on uint8 images one by one; returns (outputs, ms per image)."""
    return run_per_image(lambda image: {k: v.numpy() for k, v in function(images=tf.constant(image)).items()}, images)


# An exported detector whose landmarks move further than this from the Keras model's (int8 can) is reported with a
# warning: the user decides whether the size and speed are worth it.
DEVIATION_WARNING_PIXELS = 1.0


def deviation_from_keras(outputs: dict, reference: dict, image_size: int, name: str = "") -> dict:
    """How far an artefact's landmarks (`outputs`) are from the Keras model's (`reference`), with a "warning" entry
    (also logged) when a mean moves more than DEVIATION_WARNING_PIXELS."""
    means = float(np.max(np.abs(outputs["means"] - reference["means"])))
    deviation = {
        "max_mean_deviation": means,
        "max_mean_deviation_pixels": means * image_size / 2.0,
        "max_covariance_deviation": float(np.max(np.abs(outputs["covariances"] - reference["covariances"]))),
    }
    if deviation["max_mean_deviation_pixels"] > DEVIATION_WARNING_PIXELS:
        deviation["warning"] = (f"{name}: a landmark moves up to {deviation['max_mean_deviation_pixels']:.2f} px "
                                f"from the Keras model's on a {image_size} px image (more than "
                                f"{DEVIATION_WARNING_PIXELS:g} px); check it on your images before shipping it")
        logger.warning("%s", deviation["warning"])
    return deviation


def export_model(
    model: FactorizedLandmarkModel,
    output_dir: str | Path,
    formats=DEFAULT_FORMATS,
    quantizations=QUANTIZATIONS,
    regressor=None,
    calibration_images: np.ndarray | None = None,
    evaluation_images: np.ndarray | None = None,
    metadata: dict | None = None,
) -> dict:
    """Writes the requested artefacts and returns the report (also written as JSON).

    Args:
        model: the trained float32 model.
        output_dir: created if missing.
        formats: any of FORMATS ("onnx" needs the onnx extra: checked before anything is written).
        quantizations: TFLite variants, any of "none", "float16", "int8".
        regressor: optional `Regressor` for the `keypoints` signature.
        calibration_images: uint8 [N, S, S, 3] for int8 calibration.
        evaluation_images: uint8 [N, S, S, 3] on which deviations and speed are
            measured (default: the calibration images).
        metadata: extra entries for the report (e.g. the checkpoint's step).
    """
    unknown = sorted(set(formats) - set(FORMATS)) + sorted(set(quantizations) - set(QUANTIZATIONS))
    if unknown or not formats:
        raise ValueError(f"unknown or no formats/quantizations {unknown}; formats: {FORMATS}, quantize: {QUANTIZATIONS}")
    if "onnx" in formats:
        require_onnx()
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    evaluation_images = calibration_images if evaluation_images is None else evaluation_images
    if evaluation_images is None or len(evaluation_images) == 0:
        raise ValueError("export needs evaluation images to measure the exported models against Keras")
    size = model.image_size
    _check_batch("evaluation_images", evaluation_images, size)
    if calibration_images is not None:
        _check_batch("calibration_images", calibration_images, size)
    reference = keras_landmarks(model, evaluation_images)
    report = {"image_size": size, "num_landmarks": model.num_landmarks, "variant": model.variant,
              "evaluation_images": len(evaluation_images), **(metadata or {}), "artefacts": {}}

    module = InferenceModule(model, regressor)
    with tempfile.TemporaryDirectory() as scratch:
        for name, folder, names in (("saved_model", SAVED_MODEL_DIR, None),
                                    ("landmarks_saved_model", LANDMARKS_SAVED_MODEL_DIR, LANDMARK_SIGNATURES)):
            if name in formats:
                saved = save_saved_model(module, output_dir / folder, names)
                loaded = tf.saved_model.load(str(saved))
                outputs, ms = time_signature(loaded.signatures["landmarks"], evaluation_images)
                report["artefacts"][name] = {"path": str(saved), "bytes": folder_bytes(saved),
                                             "signatures": sorted(loaded.signatures.keys()), "ms_per_image": ms,
                                             **deviation_from_keras(outputs, reference, size, name)}
        if "onnx" in formats:
            content = convert_onnx(module)
            path = output_dir / ONNX_FILE
            path.write_bytes(content)
            outputs, ms = run_onnx(content, evaluation_images)
            report["artefacts"]["onnx"] = {"path": str(path), "bytes": len(content), "ms_per_image": ms,
                                           **deviation_from_keras(outputs, reference, size, path.name)}
        if "tflite" in formats:
            # The converter loads every function of a SavedModel: one with `landmarks` alone converts 3x faster.
            landmarks_only = save_saved_model(module, Path(scratch) / "landmarks", names=("landmarks",))
            for quantization in quantizations:
                content = convert_tflite(landmarks_only, quantization, calibration_images)
                path = output_dir / tflite_name(quantization)
                path.write_bytes(content)
                outputs, ms = run_tflite(content, evaluation_images)
                report["artefacts"][path.stem] = {"path": str(path), "bytes": len(content), "ms_per_image": ms,
                                                  **deviation_from_keras(outputs, reference, size, path.name)}
    (output_dir / REPORT_FILE).write_text(json.dumps(report, indent=1))
    return report


def _check_batch(name: str, images: np.ndarray, size: int) -> None:
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != (size, size, 3):
        raise ValueError(f"{name} must be uint8 [N, {size}, {size}, 3], got {images.dtype} {images.shape}")


def folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def dataset_images(config, split_index: int, count: int) -> np.ndarray:
    """Up to `count` readable images of the run's evaluation split (0: regression fit split, 1: report split)."""
    from fgbg_tf.data import get_dataset

    dataset = get_dataset(config.data)
    if not dataset.regression_splits:
        raise ValueError(f"{config.data.name} has no evaluation split to calibrate and check the export on; "
                         "name a folder of images with --calibration-dir")
    split = dataset.regression_splits[split_index]
    images = [np.asarray(e["image"]) for e in dataset.eval_split(split).take(4 * count).as_numpy_iterator()
              if bool(e.get("valid", True))]
    if not images:
        raise ValueError(f"the {split!r} split of {config.data.name} has no readable images")
    return np.stack(images[:count])


def folder_images(folder: str | Path, size: int, count: int) -> np.ndarray:
    """Up to `count` images of a folder, resized to S x S (logged: calibration only needs statistics)."""
    from fgbg_tf.data.media import MediaError, frame_image, image_files, read_image

    images = []
    for path in image_files(folder)[:count]:
        try:
            images.append(frame_image(read_image(path), size, "resize", source=path)[0])
        except MediaError as error:
            logger.warning("calibration: skipped %s", error)
    if not images:
        raise ValueError(f"--calibration-dir {folder} holds no readable images")
    return np.stack(images)


def format_report(report: dict) -> str:
    lines = [f"{'artefact':<20} {'size':>10} {'ms/image':>9} {'max |mean - keras|':>19} {'(pixels)':>9}"]
    for name, entry in report["artefacts"].items():
        lines.append(f"{name:<20} {entry['bytes'] / 1e6:>8.2f}MB {entry['ms_per_image']:>9.2f} "
                     f"{entry['max_mean_deviation']:>19.2e} {entry['max_mean_deviation_pixels']:>9.4f}")
    lines += [f"warning: {entry['warning']}" for entry in report["artefacts"].values() if "warning" in entry]
    return "\n".join(lines)
