"""The exported functions of a trained model: `InferenceModule` and its SavedModel.

SavedModel signatures. B is any batch size from 1 (an empty batch is refused), S the model's image size (fixed: a
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
    render(means: float32 [B, K, 2] normalised, covariances: float32 [B, K, 2, 2] symmetric positive semidefinite,
           appearance: uint8 [B, S, S, 3])
        -> image (the rendering, eq. 7), foreground (, background, mask) as reconstruct

Example:
    save_saved_model(InferenceModule(model, regressor), "out/saved_model")
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import tensorflow as tf

from fgbg_tf.data.pipeline import from_model_range, to_model_range
from fgbg_tf.model.factorized import FactorizedLandmarkModel
from fgbg_tf.model.landmarks import render_heatmaps, to_pixels

SAVED_MODEL_DIR = "saved_model"
# The detector alone, for servers that need only landmarks: no decoder, MaskNet or BGNet weights.
LANDMARKS_SAVED_MODEL_DIR = "landmarks_saved_model"
LANDMARK_SIGNATURES = ("serving_default", "landmarks", "landmarks_float", "keypoints")


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
        return _checked_shape(images, [size, size, 3], name, f"{size}x{size}x3 image")

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
        means = _checked_shape(means, [k, 2], "means", f"{k}x2 array of landmark means")
        covariances = _checked_shape(covariances, [k, 2, 2], "covariances", f"{k}x2x2 array of covariances")
        appearance = to_model_range(self._checked(appearance, "appearance"))
        # Eq. 2 inverts each covariance: NaN means, or a matrix that is not a covariance, would render NaN or
        # nonsense without a word. Singular ones are allowed: a part map on one pixel fits a zero covariance, and
        # eq. 2 clamps the determinant (landmarks.precision_matrix), so the model's own outputs always render.
        c00, c11, det = covariances[..., 0, 0], covariances[..., 1, 1], tf.linalg.det(covariances)
        not_covariance = "render: covariances must be positive semidefinite"
        checks = [
            tf.debugging.assert_all_finite(means, "render: means must be finite"),
            tf.debugging.assert_all_finite(covariances, "render: covariances must be finite"),
            tf.debugging.assert_near(covariances, tf.linalg.matrix_transpose(covariances), rtol=1e-4, atol=1e-8,
                                     message="render: covariances must be symmetric"),
            tf.debugging.assert_non_negative(tf.minimum(c00, c11), message=not_covariance),
            tf.debugging.assert_greater_equal(det, -1e-6 * c00 * c11, message=not_covariance),
        ]
        with tf.control_dependencies(checks):
            heatmaps = render_heatmaps(means, covariances, self.model.image_size)  # eq. 2
        outputs = self.model.render(heatmaps, appearance)
        outputs["image"] = outputs.pop("reconstruction")
        return _display(outputs)


def _checked_shape(tensor, item_shape: list, name: str, item: str):
    """`tensor` once it is known to be a non-empty batch of `item_shape`, else an InvalidArgumentError naming it.

    Written with Assert rather than tf.ensure_shape: TF.js' converter cannot parse EnsureShape (tfjs#7690) and
    strips Assert, and TFLite and ONNX drop it too, so the exported graphs convert everywhere. An empty batch is
    refused too: it would otherwise fail as an internal error inside a kernel.
    """
    shape = tf.shape(tensor, out_type=tf.int64)
    rank = len(item_shape) + 1
    padded = tf.concat([shape, tf.zeros([rank], tf.int64)], 0)[:rank]  # a wrong rank still compares elementwise
    fits = tf.logical_and(tf.equal(tf.size(shape), rank), tf.reduce_all(tf.equal(padded[1:], item_shape)))
    checks = [
        tf.debugging.Assert(fits, [f"{name} must be a batch of shape [B, {', '.join(map(str, item_shape))}], got",
                                   shape]),
        tf.debugging.Assert(padded[0] > 0, [f"{name}: an empty batch; pass at least one {item}"]),
    ]
    with tf.control_dependencies(checks):
        return tf.identity(tensor)


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


def run_per_image(call, images: np.ndarray) -> tuple[dict, float]:
    """Calls `call` on each image as a batch of one, after one untimed warm-up call; returns (outputs, ms per image).

    One image at a time is how a deployed detector is timed (docs/benchmarks.md); outputs are concatenated.
    """
    call(images[:1])
    outputs, started = [], time.perf_counter()
    for image in images:
        outputs.append(call(image[None]))
    milliseconds = 1000.0 * (time.perf_counter() - started) / len(images)
    return {name: np.concatenate([o[name] for o in outputs]) for name in outputs[0]}, milliseconds
