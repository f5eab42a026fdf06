"""Shared machinery of the readers of annotated video frames (BBC Pose, Human3.6M).

A video dataset is indexed once, in Python, into a `FrameIndex`: one row per
usable annotated frame, grouped by video, with the square crop box of the frame.
Frames are decoded in the tf.data graph through `load_crop`, which never raises:
a missing, truncated or undecodable JPEG yields zeros and ok=False, so the
element keeps its place in the stream with valid=False (see `base.py`).

Crop geometry of our protocol (paper Appendix A): a `crop_size` x `crop_size`
square of original pixels whose corner (x0, y0) is the rounded centre of the
keypoints' bounding box minus crop_size / 2. Where the square crosses the frame
border it is padded with zeros rather than clipped, so every crop keeps the same
scale and aspect and the map between frame and crop pixels is one exact affine map:

    x_crop = (x_frame - x0 + 0.5) * S / crop_size - 0.5      (S = image_size)

for 0-based pixel coordinates (pixel i at coordinate i) and the half-pixel
convention of `tf.image.resize`. `frame_coordinates` is its inverse. The eval
splits of the release protocol are cut otherwise (`release_crops.py`); both are
`EvalCrops`, and training always uses the squares.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import cv2
import numpy as np
import tensorflow as tf

from fgbg_tf.data.base import Shard, DatasetError, LandmarkDataset, element_seed, partner_frame, shuffled_items
from fgbg_tf.data.media import MediaError, decode_image


# JPEG start-of-image / end-of-image markers. Inside entropy-coded data 0xFF is
# always followed by 0x00 or a restart marker, so FF D9 near the end means the
# file was written to the end, and its absence means truncation.
_SOI = b"\xff\xd8"
_EOI = b"\xff\xd9"
_EOI_SEARCH = 64


def require_dir(path: Path, what: str, layout: str) -> Path:
    if not path.is_dir():
        raise DatasetError(f"{what}: expected the folder {path}, which does not exist.\n{layout}")
    return path


def require_file(path: Path, what: str, layout: str) -> Path:
    if not path.is_file():
        raise DatasetError(f"{what}: expected the file {path}, which does not exist.\n{layout}")
    return path


def centred_corners(keypoints: np.ndarray, crop_size: int) -> np.ndarray:
    """Integer top-left corners [..., 2] of crop squares centred on the keypoints' bounding boxes.

    Args:
        keypoints: float [..., J, 2] (x, y), 0-based frame pixels.
        crop_size: side of the square in frame pixels.
    """
    centre = (keypoints.min(axis=-2) + keypoints.max(axis=-2)) / 2
    return np.floor(centre - crop_size / 2 + 0.5).astype(np.int64)


def crop_coordinates(keypoints: np.ndarray, corners: np.ndarray, crop_size: int, image_size: int) -> np.ndarray:
    """Frame pixels [..., J, 2] -> pixels of the resized crop (the module docstring's map)."""
    scale = image_size / crop_size
    return ((keypoints - corners[..., None, :] + 0.5) * scale - 0.5).astype(np.float32)


def frame_coordinates(points, box, image_size: int):
    """Inverse of `crop_coordinates` for an eval element's "box" [x0, y0, crop_size]: crop -> frame pixels."""
    return (points + 0.5) * box[..., None, 2:3] / image_size - 0.5 + box[..., None, 0:2]


def is_complete_jpeg(data: bytes) -> bool:
    return data[:2] == _SOI and _EOI in data[-_EOI_SEARCH:]


def _read_crop(path: bytes, corner: np.ndarray, size: np.ndarray):
    crop = np.zeros((size[0], size[1], 3), np.uint8)
    try:
        data = Path(path.decode()).read_bytes()
        if not is_complete_jpeg(data):
            return crop, False
        # A frame with corrupt JPEG data (which decodes without an error, to wrong pixels) is invalid too.
        image = decode_image(np.frombuffer(data, np.uint8), path.decode())
    except (OSError, cv2.error, MediaError):
        return crop, False
    paste_window(image, corner, crop)
    return crop, True


def paste_window(image: np.ndarray, corner, out: np.ndarray) -> None:
    """Copies the window of `image` at `corner` (x0, y0) with `out`'s size into `out`; outside stays as is."""
    x0, y0 = int(corner[0]), int(corner[1])
    height, width = out.shape[:2]
    sx0, sy0 = max(x0, 0), max(y0, 0)
    sx1, sy1 = min(x0 + width, image.shape[1]), min(y0 + height, image.shape[0])
    if sx1 > sx0 and sy1 > sy0:
        out[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = image[sy0:sy1, sx0:sx1]


def resize_image(image, image_size: int):
    """uint8 [h, w, C] -> uint8 [S, S, C], bilinear with antialiasing (as PIL downscales)."""
    resized = tf.image.resize(image, [image_size, image_size], method="bilinear", antialias=True)
    return tf.cast(tf.clip_by_value(tf.round(resized), 0, 255), tf.uint8)


def load_crop(path, corner, size, image_size: int):
    """Decodes the JPEG at `path`, cuts the window of `size` (height, width) frame pixels whose top-left is
    `corner` (x0, y0), zeros where it leaves the frame, and resizes it to S x S.

    Never raises: returns (uint8 [S, S, 3], ok), ok=False with zeros when the file
    is missing, truncated (no end-of-image marker) or not decodable.
    """
    crop, ok = tf.numpy_function(_read_crop, [path, corner, size], [tf.uint8, tf.bool], stateful=False)
    crop = tf.ensure_shape(crop, [None, None, 3])
    image = resize_image(crop, image_size)
    return image, tf.ensure_shape(ok, [])


@dataclasses.dataclass
class FrameIndex:
    """Annotated frames of one split, grouped by video (rows of a video are consecutive, in time order).

    Attributes:
        paths: str [N], the JPEG of each frame.
        keypoints: float32 [N, J, 2], 0-based frame pixels.
        corners: int64 [N, 2], top-left (x0, y0) of each frame's crop square.
        video: int64 [N], the dataset's id of the frame's video.
        first: int64 [N], row of the first frame of the frame's video.
        length: int64 [N], number of rows of the frame's video.
    """

    paths: np.ndarray
    keypoints: np.ndarray
    corners: np.ndarray
    video: np.ndarray
    first: np.ndarray
    length: np.ndarray

    @classmethod
    def from_videos(cls, videos: list[tuple[int, list[str], np.ndarray]], crop_size: int, num_joints: int):
        """Builds the index from (video id, frame paths, keypoints [n, J, 2]) per video."""
        paths, keypoints, video, first, length = [], [], [], [], []
        for video_id, frame_paths, points in videos:
            n = len(frame_paths)
            first += [len(paths)] * n
            paths += frame_paths
            keypoints.append(np.asarray(points, np.float32).reshape(n, num_joints, 2))
            video += [video_id] * n
            length += [n] * n
        keypoints = np.concatenate(keypoints) if keypoints else np.zeros((0, num_joints, 2), np.float32)
        return cls(
            paths=np.asarray(paths, dtype=object).astype(str),
            keypoints=keypoints,
            corners=centred_corners(keypoints, crop_size).reshape(-1, 2),
            video=np.asarray(video, np.int64),
            first=np.asarray(first, np.int64),
            length=np.asarray(length, np.int64),
        )

    def __len__(self) -> int:
        return len(self.paths)


@dataclasses.dataclass
class EvalCrops:
    """Where each eval frame of a `FrameIndex` is cut and where its keypoints land in the S x S crop.

    Attributes:
        corners: int64 [N, 2], top-left (x0, y0) of the window of frame pixels cut (zeros outside the frame).
        sizes: int64 [N, 2], (height, width) of the window, resized to S x S.
        keypoints: float32 [N, J, 2], the keypoints in pixels of the resized crop.
        boxes: float32 [N, B], what maps crop pixels back to frame pixels: [x0, y0, side] of our squares
            (`frame_coordinates`) or [x0, y0, width, height] of the release's boxes (`release_crops.py`).
    """

    corners: np.ndarray
    sizes: np.ndarray
    keypoints: np.ndarray
    boxes: np.ndarray


def square_crops(index: FrameIndex, crop_size: int, image_size: int) -> EvalCrops:
    """Our protocol's crops of an index: its zero-padded squares (the module docstring's geometry)."""
    count = len(index)
    return EvalCrops(
        corners=index.corners,
        sizes=np.full((count, 2), crop_size, np.int64),
        keypoints=crop_coordinates(index.keypoints, index.corners, crop_size, image_size),
        boxes=np.concatenate([index.corners, np.full((count, 1), crop_size)], axis=1).astype(np.float32),
    )


def temporal_pairs(
    index: FrameIndex,
    seed: int,
    start: int,
    offsets: tuple[int, int],
    crop_size: int,
    image_size: int,
    shard: Shard | None = None,
):
    """The `train_pairs` stream of a `FrameIndex`: frame t and a partner of its video, both in t's crop box.

    The partner is drawn `offsets` (low, high) rows away in the video's list of
    annotated frames (paper section 3.2, T_temp); an element is invalid, with
    the path of the file that failed in "source", if either frame fails to decode.
    """
    if len(index) == 0:
        raise DatasetError("the training split has no usable annotated frames")
    # int64 to match the positions: partner_frame mixes them with the bounds.
    low, high = (tf.constant(v, tf.int64) for v in offsets)
    size = tf.constant([crop_size, crop_size], tf.int64)
    paths = tf.constant(index.paths)
    corners = tf.constant(index.corners)
    first = tf.constant(index.first)
    length = tf.constant(index.length)

    def pair(i, item):
        position = item - first[item]
        partner = first[item] + partner_frame(element_seed(seed, i, salt=1), position, length[item], low, high)
        frame, frame_ok = load_crop(paths[item], corners[item], size, image_size)
        other, other_ok = load_crop(paths[partner], corners[item], size, image_size)
        valid = frame_ok & other_ok
        zeros = tf.zeros_like(frame)
        return {
            "index": i,
            "frame": tf.where(valid, frame, zeros),
            "partner": tf.where(valid, other, zeros),
            "valid": valid,
            "source": tf.where(frame_ok, tf.where(other_ok, paths[item], paths[partner]), paths[item]),
        }

    return shuffled_items(len(index), seed, start, shard).map(pair, num_parallel_calls=tf.data.AUTOTUNE)


def eval_frames(index: FrameIndex, crops: EvalCrops, image_size: int) -> tf.data.Dataset:
    """Ordered eval elements of a `FrameIndex`, cut as `crops` says.

    Each has "image" uint8 [S, S, 3], "keypoints" float32 [J, 2] (crop pixels),
    "box" float32 (`EvalCrops.boxes`), "video" and "position" (row within the
    video's annotated frames), "valid", "source".
    """
    columns = {
        "path": index.paths,
        "corner": crops.corners,
        "size": crops.sizes,
        "keypoints": crops.keypoints,
        "box": crops.boxes,
        "video": index.video,
        "position": np.arange(len(index), dtype=np.int64) - index.first,
    }

    def element(row):
        image, ok = load_crop(row["path"], row["corner"], row["size"], image_size)
        return {
            "image": image,
            "keypoints": row["keypoints"],
            "box": row["box"],
            "video": row["video"],
            "position": row["position"],
            "valid": ok,
            "source": row["path"],
        }

    return tf.data.Dataset.from_tensor_slices(columns).map(element, num_parallel_calls=tf.data.AUTOTUNE)


class CroppedVideoDataset(LandmarkDataset):
    """Shared serving of the crop-around-the-keypoints video datasets (BBC Pose, Human3.6M).

    Subclasses build `self.train_index` (the training stream's frames), `self.splits`
    ({eval split: FrameIndex}, whose "train" is the training index under our
    protocol) and set `self.crop_size`; `eval_crops` says how eval frames are cut.
    """

    train_index: FrameIndex
    splits: dict
    crop_size: int

    @property
    def num_train_items(self) -> int:
        return len(self.train_index)

    def train_pairs(self, seed: int, start: int, shard: Shard | None = None) -> tf.data.Dataset:
        return temporal_pairs(
            self.train_index, seed, start, self.config.temporal_offset, self.crop_size, self.image_size, shard
        )

    def eval_crops(self, split: str) -> EvalCrops:
        """How the eval frames of `split` are cut: our squares (a reader with other crops overrides this)."""
        return square_crops(self.splits[split], self.crop_size, self.image_size)

    def eval_split(self, split: str) -> tf.data.Dataset:
        if split not in self.splits:
            raise DatasetError(f"{self.name} has eval splits {sorted(self.splits)}, not {split!r}")
        return eval_frames(self.splits[split], self.eval_crops(split), self.image_size)
