"""Export: a SavedModel with named signatures and TFLite landmark detectors.

`python -m fgbg_tf.export --checkpoint RUN --output DIR [--formats saved_model,tflite]
[--quantize none,float16,int8] [--regressor FILE] [--calibration-dir DIR]` writes

    DIR/saved_model/                 the SavedModel (signatures below)
    DIR/landmarks_<variant>.tflite   the landmark detector: float32 ("none"), float16, int8
    DIR/export_report.json           per artefact: size, ms/image here, largest deviation from Keras

SavedModel signatures. B is any batch size, S the model's image size (fixed: a
wrong size, rank or dtype is refused by the signature, never resized), K the
landmarks, J the regressor's keypoints. Landmark coordinates are (x, y); "normalised"
means the model's [-1, 1) frame (pixel j at -1 + 2j/S), "pixels" means pixel j at j.

    landmarks(images: uint8 [B, S, S, 3])              (also `serving_default`)
        -> means [B, K, 2] normalised, means_pixels [B, K, 2],
           covariances [B, K, 2, 2] normalised (pixels: times (S/2)^2),
           part_maps [B, S/2, S/2, K] (each map sums to 1)
    landmarks_float(images: float32 [B, S, S, 3] in [0, 1])  -> the same
    keypoints(images: uint8 [B, S, S, 3])              (only with --regressor)
        -> keypoints [B, J, 2] pixels, means_pixels [B, K, 2]
    reconstruct(pose: uint8 [B, S, S, 3], appearance: uint8 [B, S, S, 3])
        -> reconstruction, foreground [B, S, S, 3] float32 in [0, 1]
           and, as the variant has them, background [B, S, S, 3], mask [B, S, S, 1]
    render(means: float32 [B, K, 2] normalised, covariances: float32 [B, K, 2, 2],
           appearance: uint8 [B, S, S, 3])
        -> image (the rendering, eq. 7), foreground (, background, mask) as reconstruct

The TFLite files hold `landmarks` only (a signature of that name, uint8 input
[1, S, S, 3]; the batch can be resized). int8 is full-integer quantisation where
the converter can, calibrated on images from --calibration-dir or from the run's
dataset; float16 stores float16 weights.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import tensorflow as tf

from fgbg_tf.checkpoints import load_trained_model
from fgbg_tf.data.pipeline import from_model_range, to_model_range
from fgbg_tf.model.factorized import FactorizedLandmarkModel
from fgbg_tf.model.landmarks import render_heatmaps, to_pixels

logger = logging.getLogger("fgbg_tf.export")

FORMATS = ("saved_model", "tflite")
QUANTIZATIONS = ("none", "float16", "int8")
SAVED_MODEL_DIR = "saved_model"
REPORT_FILE = "export_report.json"


def tflite_name(quantization: str) -> str:
    return f"landmarks_{'float32' if quantization == 'none' else quantization}.tflite"


class InferenceModule:
    """The exported functions of a trained model, with fixed input signatures.

    Args:
        model: a built `FactorizedLandmarkModel` (float32).
        regressor: optional `fgbg_tf.evaluation.regression.Regressor` for the `keypoints` function.

    Attributes `landmarks`, `landmarks_float`, `reconstruct`, `render` (and
    `keypoints`) are `tf.function`s with the signatures of the module docstring;
    `signatures()` returns their concrete functions by signature name. The same
    object serves `fgbg_tf.predict` on a training checkpoint, so a SavedModel and
    a checkpoint give the same results.

    Example: `save_saved_model(InferenceModule(model, regressor), "out/saved_model")`.
    """

    def __init__(self, model: FactorizedLandmarkModel, regressor=None):
        if model.dtype_policy.compute_dtype != "float32":
            raise ValueError(f"export needs a float32 model, got compute dtype {model.dtype_policy.compute_dtype}")
        self.model = model
        self.regressor = regressor
        size, k = model.image_size, model.num_landmarks
        if regressor is not None and (regressor.num_landmarks != k or regressor.image_size != size):
            raise ValueError(
                f"regressor maps {regressor.num_landmarks} landmarks at {regressor.image_size} px, "
                f"the model has {k} landmarks at {size} px"
            )
        images = lambda name, dtype=tf.uint8: tf.TensorSpec([None, size, size, 3], dtype, name=name)
        self.landmarks = tf.function(self._landmarks, input_signature=[images("images")])
        self.landmarks_float = tf.function(self._landmarks_float, input_signature=[images("images", tf.float32)])
        self.reconstruct = tf.function(self._reconstruct, input_signature=[images("pose"), images("appearance")])
        self.render = tf.function(
            self._render,
            input_signature=[
                tf.TensorSpec([None, k, 2], tf.float32, name="means"),
                tf.TensorSpec([None, k, 2, 2], tf.float32, name="covariances"),
                images("appearance"),
            ],
        )
        if regressor is not None:
            self.keypoints = tf.function(self._keypoints, input_signature=[images("images")])

    def signatures(self) -> dict:
        functions = {
            "serving_default": self.landmarks,
            "landmarks": self.landmarks,
            "landmarks_float": self.landmarks_float,
            "reconstruct": self.reconstruct,
            "render": self.render,
        }
        if self.regressor is not None:
            functions["keypoints"] = self.keypoints
        return {name: fn.get_concrete_function() for name, fn in functions.items()}

    def _detect(self, model_range_images):
        found = self.model.detect(model_range_images)
        return {
            "means": found["mean"],
            "means_pixels": to_pixels(found["mean"], self.model.image_size),
            "covariances": found["covariance"],
            "part_maps": found["part_maps"],
        }

    def _checked(self, images, name: str):
        # A loaded SavedModel signature checks only the dtype, not the shape: without this an
        # image of the wrong size fails deep inside a reshape, and one of the wrong rank aborts
        # the process in oneDNN's convolution.
        size = self.model.image_size
        return tf.ensure_shape(images, [None, size, size, 3], name=f"check_{name}_is_batch_{size}x{size}x3")

    def _landmarks(self, images):
        return self._detect(to_model_range(self._checked(images, "images")))

    def _landmarks_float(self, images):
        images = self._checked(images, "images")
        checks = [
            tf.debugging.assert_greater_equal(images, 0.0, message="landmarks_float: images must be in [0, 1]"),
            tf.debugging.assert_less_equal(images, 1.0, message="landmarks_float: images must be in [0, 1]"),
        ]
        with tf.control_dependencies(checks):
            return self._detect(images * 2.0 - 1.0)

    def _keypoints(self, images):
        from fgbg_tf.evaluation.regression import apply_regressor

        means_pixels = self._landmarks(images)["means_pixels"]
        return {"keypoints": apply_regressor(self.regressor, means_pixels), "means_pixels": means_pixels}

    def _reconstruct(self, pose, appearance):
        pose, appearance = self._checked(pose, "pose"), self._checked(appearance, "appearance")
        outputs = self.model({"pose": to_model_range(pose), "appearance": to_model_range(appearance)})
        return _display(outputs)

    def _render(self, means, covariances, appearance):
        k = self.model.num_landmarks
        means = tf.ensure_shape(means, [None, k, 2], name=f"check_means_is_batch_{k}x2")
        covariances = tf.ensure_shape(covariances, [None, k, 2, 2], name=f"check_covariances_is_batch_{k}x2x2")
        appearance = to_model_range(self._checked(appearance, "appearance"))
        heatmaps = render_heatmaps(means, covariances, self.model.image_size)  # eq. 2
        outputs = self.model.render(heatmaps, appearance)
        outputs["image"] = outputs.pop("reconstruction")
        return _display(outputs)


def _display(outputs: dict) -> dict:
    """Images from [-1, 1] to [0, 1] (clipped); the mask is already in [0, 1]."""
    shown = {name: from_model_range(outputs[name]) for name in ("reconstruction", "image", "foreground", "background")
             if name in outputs}
    if "mask" in outputs:
        shown["mask"] = outputs["mask"]
    return shown


def keras_landmarks(model: FactorizedLandmarkModel, images: np.ndarray) -> dict:
    """The Keras model's landmarks of uint8 images [N, S, S, 3], the reference for every export."""
    found = model.detect(to_model_range(tf.constant(images)))
    return {"means": found["mean"].numpy(), "covariances": found["covariance"].numpy(),
            "part_maps": found["part_maps"].numpy()}


def save_saved_model(module: InferenceModule, path: str | Path, names=None) -> Path:
    """Writes the module's signatures (or those in `names`) as a SavedModel at `path`."""
    path = Path(path)
    signatures = {name: f for name, f in module.signatures().items() if names is None or name in names}
    root = tf.Module()
    # Track the tf.Variables the functions capture, not the Keras model: saved through the
    # Keras objects, the weights stay uninitialised resource variables in the TFLite
    # conversion (NaN outputs); this is what keras.export.ExportArchive does too.
    captured = {id(v): v for function in signatures.values() for v in function.variables}
    root.captured_variables = list(captured.values())
    for name, function in signatures.items():
        setattr(root, name, function)
    tf.saved_model.save(root, str(path), signatures=signatures)
    return path


def convert_tflite(saved_model: str | Path, quantization: str, calibration_images: np.ndarray | None = None) -> bytes:
    """Converts the SavedModel's `landmarks` signature to a TFLite flatbuffer.

    Args:
        saved_model: a folder written by `save_saved_model`.
        quantization: "none" (float32), "float16" (float16 weights) or "int8"
            (integer weights and activations where the converter can, float elsewhere).
        calibration_images: uint8 [N, S, S, 3], the representative dataset for "int8".
    """
    if quantization not in QUANTIZATIONS:
        raise ValueError(f"quantization must be one of {QUANTIZATIONS}, got {quantization!r}")
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model), signature_keys=["landmarks"])
    if quantization == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif quantization == "int8":
        if calibration_images is None or len(calibration_images) == 0:
            raise ValueError("int8 quantisation needs calibration images (a representative dataset)")
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ({"images": image[None]} for image in calibration_images)
    return converter.convert()


def run_tflite(model_content: bytes, images: np.ndarray) -> tuple[dict, float]:
    """Runs a TFLite landmark detector on uint8 images one by one; returns (outputs, ms per image)."""
    from ai_edge_litert.interpreter import Interpreter

    runner = Interpreter(model_content=model_content).get_signature_runner("landmarks")
    runner(images=images[:1])  # the first call allocates and warms up
    outputs, started = [], time.perf_counter()
    for image in images:
        outputs.append(runner(images=image[None]))
    milliseconds = 1000.0 * (time.perf_counter() - started) / len(images)
    return {name: np.concatenate([o[name] for o in outputs]) for name in outputs[0]}, milliseconds


def time_signature(function, images: np.ndarray) -> tuple[dict, float]:
    """Runs a SavedModel signature on uint8 images one by one; returns (outputs, ms per image)."""
    function(images=tf.constant(images[:1]))
    outputs, started = [], time.perf_counter()
    for image in images:
        outputs.append({k: v.numpy() for k, v in function(images=tf.constant(image[None])).items()})
    milliseconds = 1000.0 * (time.perf_counter() - started) / len(images)
    return {name: np.concatenate([o[name] for o in outputs]) for name in outputs[0]}, milliseconds


def _deviation(outputs: dict, reference: dict, image_size: int) -> dict:
    means = float(np.max(np.abs(outputs["means"] - reference["means"])))
    return {
        "max_mean_deviation": means,
        "max_mean_deviation_pixels": means * image_size / 2.0,
        "max_covariance_deviation": float(np.max(np.abs(outputs["covariances"] - reference["covariances"]))),
    }


def export_model(
    model: FactorizedLandmarkModel,
    output_dir: str | Path,
    formats=FORMATS,
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
        formats: any of "saved_model", "tflite".
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
        if "saved_model" in formats:
            saved = save_saved_model(module, output_dir / SAVED_MODEL_DIR)
            loaded = tf.saved_model.load(str(saved))
            outputs, ms = time_signature(loaded.signatures["landmarks"], evaluation_images)
            report["artefacts"]["saved_model"] = {"path": str(saved), "bytes": _folder_bytes(saved),
                                                  "signatures": sorted(loaded.signatures.keys()),
                                                  "ms_per_image": ms, **_deviation(outputs, reference, size)}
        if "tflite" in formats:
            # The converter loads every function of a SavedModel: one with `landmarks` alone converts 3x faster.
            landmarks_only = save_saved_model(module, Path(scratch) / "landmarks", names=("landmarks",))
            for quantization in quantizations:
                content = convert_tflite(landmarks_only, quantization, calibration_images)
                path = output_dir / tflite_name(quantization)
                path.write_bytes(content)
                outputs, ms = run_tflite(content, evaluation_images)
                report["artefacts"][path.stem] = {"path": str(path), "bytes": len(content), "ms_per_image": ms,
                                                  **_deviation(outputs, reference, size)}
    (output_dir / REPORT_FILE).write_text(json.dumps(report, indent=1))
    return report


def _check_batch(name: str, images: np.ndarray, size: int) -> None:
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != (size, size, 3):
        raise ValueError(f"{name} must be uint8 [N, {size}, {size}, 3], got {images.dtype} {images.shape}")


def _folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def dataset_images(config, split_index: int, count: int) -> np.ndarray:
    """Up to `count` readable images of the run's evaluation split (0: regression fit split, 1: report split)."""
    from fgbg_tf.data import get_dataset

    dataset = get_dataset(config.data)
    split = dataset.regression_splits[split_index]
    images = [np.asarray(e["image"]) for e in dataset.eval_split(split).take(4 * count).as_numpy_iterator()
              if bool(e.get("valid", True))]
    if not images:
        raise ValueError(f"the {split!r} split of {config.data.name} has no readable images")
    return np.stack(images[:count])


def folder_images(folder: str | Path, size: int, count: int) -> np.ndarray:
    """Up to `count` images of a folder, resized to S x S (logged: calibration only needs statistics)."""
    from fgbg_tf.data.media import MediaError, fit_to_model, image_files, read_image

    images = []
    for path in image_files(folder)[:count]:
        try:
            images.append(fit_to_model(read_image(path), size, resize=True, source=path)[0])
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
    return "\n".join(lines)


def _list(text: str, allowed: tuple, flag: str) -> tuple:
    items = tuple(t.strip() for t in text.split(",") if t.strip())
    bad = [t for t in items if t not in allowed]
    if bad or not items:
        raise argparse.ArgumentTypeError(f"{flag} takes a comma-separated subset of {','.join(allowed)}, got {text!r}")
    return items


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m fgbg_tf.export", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="training output folder or checkpoint prefix")
    parser.add_argument("--output", required=True, help="folder for the exported artefacts")
    parser.add_argument("--formats", default="saved_model,tflite", type=lambda t: _list(t, FORMATS, "--formats"))
    parser.add_argument("--quantize", default="none,float16,int8",
                        type=lambda t: _list(t, QUANTIZATIONS, "--quantize"), help="TFLite variants")
    parser.add_argument("--regressor", help="regressor .json/.npz (fgbg_tf.evaluation.regression) for the keypoints signature")
    parser.add_argument("--calibration-dir", help="images for int8 calibration (default: the run's dataset)")
    parser.add_argument("--num-calibration", type=int, default=100, help="calibration images (default 100)")
    parser.add_argument("--num-evaluation", type=int, default=16,
                        help="images on which deviations and speed are measured (default 16)")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        model, config, step = load_trained_model(args.checkpoint)
        regressor = None
        if args.regressor:
            from fgbg_tf.evaluation.regression import load_regressor

            regressor = load_regressor(args.regressor)
        size = model.image_size
        if args.calibration_dir:
            calibration = folder_images(args.calibration_dir, size, args.num_calibration)
            evaluation = calibration[: args.num_evaluation]
        else:
            calibration = dataset_images(config, 0, args.num_calibration)
            evaluation = dataset_images(config, 1, args.num_evaluation)
        report = export_model(model, args.output, args.formats, args.quantize, regressor, calibration, evaluation,
                              metadata={"checkpoint": str(args.checkpoint), "checkpoint_step": step})
    except (FileNotFoundError, ValueError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(format_report(report))
    print(f"report: {Path(args.output) / REPORT_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
