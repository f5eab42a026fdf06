"""The paper's linear landmark-to-keypoint regressor (no intercept), saved as plain JSON or .npz.

Protocol (paper section 4.2, reference doc 8.1-8.2): flatten the K landmark means
of a frame to 2K numbers and regress the 2J keypoint coordinates from them by
ordinary least squares WITHOUT an intercept. Without an intercept the result
depends on where the coordinate origin is (paper Table 3), so the regressor
records it:

    "top_left": pixel coordinates as they are (MAFL / CelebA, following Jakab et al.);
    "centre":   pixel coordinates minus (S - 1) / 2, the geometric centre of the
                S x S crop in the pixel-i-at-i convention (BBC Pose, Human3.6M).
    "release":  pixel coordinates minus S / 2, the origin of the released BBC
                scripts (BBC's release protocol): their inputs are the means in
                [-1, 1], 0 at S / 2 (`landmarks.to_pixels`), their targets the joints
                minus the box centre over the box side, 0 at S / 2 in the crop pixels
                of `data/release_crops.py`. The scales are absorbed by the linear map,
                so the fit is the release's.

Inputs are landmark means in pixels of the model's S x S input (`landmarks.to_pixels`),
outputs keypoints in the same pixels; the origin shift happens inside, so callers
never see it. Flattening is row-major over [K, 2]: (x1, y1, x2, y2, ...).

Example:
    regressor = fit_regressor(means_px, keypoints, origin="centre", image_size=64)
    predicted = apply_regressor(regressor, new_means_px)          # [N, J, 2]
    save_regressor(regressor, "regressor.json")
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import tensorflow as tf
from sklearn.linear_model import LinearRegression

ORIGINS = ("centre", "top_left", "release")
FORMAT = "fgbg_tf.regressor/1"


@dataclasses.dataclass
class Regressor:
    """A fitted no-intercept linear map from K landmark means to J keypoints.

    Attributes:
        coefficients: float64 [2K, 2J]; keypoints_flat = means_flat @ coefficients,
            both relative to the origin.
        origin: "centre", "top_left" or "release" (see the module docstring).
        image_size: S, the side of the crop both coordinate sets live in.
        keypoint_names: the J keypoint names, in order.
    """

    coefficients: np.ndarray
    origin: str
    image_size: int
    keypoint_names: tuple[str, ...]

    @property
    def num_landmarks(self) -> int:
        return self.coefficients.shape[0] // 2

    @property
    def num_keypoints(self) -> int:
        return self.coefficients.shape[1] // 2

    def __post_init__(self):
        self.coefficients = np.asarray(self.coefficients, np.float64)
        self.keypoint_names = tuple(self.keypoint_names)
        if self.origin not in ORIGINS:
            raise ValueError(f"origin must be one of {ORIGINS}, got {self.origin!r}")
        shape = self.coefficients.shape
        if len(shape) != 2 or shape[0] % 2 or shape[1] % 2:
            raise ValueError(f"coefficients must be [2K, 2J], got shape {shape}")
        if self.keypoint_names and len(self.keypoint_names) != shape[1] // 2:
            raise ValueError(f"{len(self.keypoint_names)} keypoint_names for {shape[1] // 2} keypoints")
        if int(self.image_size) <= 0:
            raise ValueError(f"image_size must be positive, got {self.image_size}")
        self.image_size = int(self.image_size)


def origin_offset(origin: str, image_size: int) -> float:
    """Pixel coordinate of the origin along either axis (the crop is square)."""
    if origin not in ORIGINS:
        raise ValueError(f"origin must be one of {ORIGINS}, got {origin!r}")
    return {"centre": (image_size - 1) / 2.0, "top_left": 0.0, "release": image_size / 2.0}[origin]


def fit_regressor(means_pixels, keypoints, origin: str, image_size: int, keypoint_names=()) -> Regressor:
    """Least squares without intercept from means [N, K, 2] to keypoints [N, J, 2], both in pixels.

    A keypoint that is NaN in some frames (a user's CSV may leave points out) is fitted on the frames that have it.
    """
    means_pixels = np.asarray(means_pixels, np.float64)
    keypoints = np.asarray(keypoints, np.float64)
    if means_pixels.ndim != 3 or means_pixels.shape[-1] != 2:
        raise ValueError(f"means_pixels must be [frames, landmarks, 2], got shape {means_pixels.shape}")
    if keypoints.ndim != 3 or keypoints.shape[-1] != 2 or keypoints.shape[0] != means_pixels.shape[0]:
        raise ValueError(
            f"keypoints must be [frames, keypoints, 2] with {means_pixels.shape[0]} frames, got shape {keypoints.shape}"
        )
    if not np.all(np.isfinite(means_pixels)):
        raise ValueError("means_pixels must be finite")
    offset = origin_offset(origin, image_size)
    inputs = (means_pixels - offset).reshape(len(means_pixels), -1)
    targets = (keypoints - offset).reshape(len(keypoints), -1)
    present = np.isfinite(targets)
    if present.all():
        linear = LinearRegression(fit_intercept=False).fit(inputs, targets)
        return Regressor(linear.coef_.T, origin, image_size, keypoint_names)
    # A user's annotations may leave points out (NaN): each coordinate is fitted on the frames that have it.
    coefficients = np.zeros([inputs.shape[1], targets.shape[1]])
    for column in range(targets.shape[1]):
        rows = present[:, column]
        if not rows.any():
            name = keypoint_names[column // 2] if keypoint_names else column // 2
            raise ValueError(f"keypoint {name!r} is missing in every frame of the fit split")
        coefficients[:, column] = LinearRegression(fit_intercept=False).fit(inputs[rows], targets[rows, column]).coef_
    return Regressor(coefficients, origin, image_size, keypoint_names)


def apply_regressor(regressor: Regressor, means_pixels):
    """Keypoints [N, J, 2] in pixels from landmark means [N, K, 2] in pixels.

    Accepts numpy arrays (returns numpy) or TF tensors (returns a float32 tensor,
    usable inside a tf.function such as a SavedModel signature).
    """
    offset = origin_offset(regressor.origin, regressor.image_size)
    if tf.is_tensor(means_pixels):
        means = tf.cast(means_pixels, tf.float32)
        flat = tf.reshape(means - offset, [-1, 2 * regressor.num_landmarks])
        out = tf.matmul(flat, tf.constant(regressor.coefficients, tf.float32))
        return tf.reshape(out, [-1, regressor.num_keypoints, 2]) + offset
    means = np.asarray(means_pixels, np.float64)
    if means.ndim != 3 or means.shape[1:] != (regressor.num_landmarks, 2):
        raise ValueError(f"means_pixels must be [frames, {regressor.num_landmarks}, 2], got shape {means.shape}")
    flat = (means - offset).reshape(len(means), -1)
    return (flat @ regressor.coefficients).reshape(len(means), regressor.num_keypoints, 2) + offset


def save_regressor(regressor: Regressor, path: str | Path) -> Path:
    """Writes `path` as JSON (.json) or a numpy archive (.npz, no pickled objects)."""
    path = Path(path)
    meta = {
        "format": FORMAT,
        "origin": regressor.origin,
        "image_size": regressor.image_size,
        "keypoint_names": list(regressor.keypoint_names),
        "num_landmarks": regressor.num_landmarks,
        "convention": "inputs: landmark means [K, 2] (x, y) in pixels of the S x S model input, pixel i at i, "
        "flattened row-major; outputs: keypoints [J, 2] in the same pixels; "
        "keypoints_flat - o = (means_flat - o) @ coefficients, o = (S - 1) / 2 for origin 'centre', 0 for 'top_left', "
        "S / 2 for 'release'",
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".json":
        path.write_text(json.dumps({**meta, "coefficients": regressor.coefficients.tolist()}, indent=1))
    elif path.suffix == ".npz":
        np.savez(path, coefficients=regressor.coefficients, meta=np.array(json.dumps(meta)))
    else:
        raise ValueError(f"regressor path {path} must end in .json or .npz")
    return path


def load_regressor(path: str | Path) -> Regressor:
    """Reads a regressor written by `save_regressor`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"regressor file {path} does not exist")
    if path.suffix == ".json":
        try:
            values = json.loads(path.read_text())
        except json.JSONDecodeError as error:
            raise ValueError(f"{path} is not valid JSON: {error}") from None
        coefficients = values.get("coefficients") if isinstance(values, dict) else None
    elif path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as archive:
            if "meta" not in archive or "coefficients" not in archive:
                raise ValueError(f"{path} lacks the 'meta' and 'coefficients' arrays of a saved regressor")
            values = json.loads(str(archive["meta"]))
            coefficients = archive["coefficients"]
    else:
        raise ValueError(f"regressor path {path} must end in .json or .npz")
    if not isinstance(values, dict) or values.get("format") != FORMAT or coefficients is None:
        raise ValueError(f"{path} is not a regressor saved by fgbg_tf (expected format {FORMAT!r})")
    try:
        return Regressor(np.asarray(coefficients, np.float64), values["origin"], values["image_size"],
                         values["keypoint_names"])
    except (KeyError, ValueError) as error:
        raise ValueError(f"{path}: malformed regressor: {error}") from None
