"""Human3.6M: the protocol of Zhang et al. 2018 that Lorenz et al. and the paper follow.

Subjects S1, S5, S6, S7, S8, S9 train, S11 test; the six activities Directions,
Discussion, Posing, Waiting, Greeting, Walking (every numbered take of each, e.g.
"Directions 1"; WalkDog / WalkTogether are other activities); all four cameras.
Frames are extracted from the official videos as JPEGs (any subset of frame
numbers: every frame, every 5th, ...); 2-D poses are the official D2_Positions
converted from CDF to .npy (cdflib is not a dependency). Crops as for BBC Pose
(paper Appendix A): 300 x 300 frame pixels centred on the centre of the 32
joints' bounding box, zero-padded at the border, resized to `image_size`; see
`video_frames`. Temporal partners are drawn among the extracted frames of the
same take and camera, cropped with frame t's box. Ground-truth foreground masks
(official `MySegmentsMat/ground_truth_bs`, MATLAB v7.3 files read with h5py)
are returned with the eval frames when every eval sequence has one.

No evaluation code was released for Human3.6M; `data.options.protocol` "release"
is our reading of the paper and Zhang et al. (docs/protocols.md): the same crops,
origin and metric as "ours" (the reader's default), but every annotated frame of
the protocol scored, also one with a joint outside the frame, which "ours" leaves
out (the training stream leaves it out under both).
"""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import h5py
import numpy as np
import tensorflow as tf

from fgbg_tf.config import DataConfig
from fgbg_tf.data.base import DatasetError, report_skipped
from fgbg_tf.data.video_frames import (
    CroppedVideoDataset,
    FrameIndex,
    paste_window,
    require_dir,
    resize_image,
)

LAYOUT = """Human3.6M layout (http://vision.imar.ro/human3.6m/), per subject S1, S5, S6, S7, S8, S9, S11:
  <data_dir>/<subject>/<sequence>.<camera>/<frame:06d>.jpg
        frames of the official video <subject>/Videos/<sequence>.<camera>.mp4, 0-based frame numbers,
        e.g. S1/Directions 1.54138969/000000.jpg (any subset of the frames may be extracted)
  <data_dir>/<subject>/MyPoseFeatures/D2_Positions/<sequence>.<camera>.npy
        the official D2_Positions CDF's "Pose" variable as float [N, 64], [1, N, 64] or [N, 32, 2]
        (x, y pixels of the 32 joints, one row per video frame)
  <data_dir>/<subject>/MySegmentsMat/ground_truth_bs/<sequence>.<camera>.mat   (optional)
        the official foreground masks (MATLAB v7.3, cell array "Masks", one mask per video frame)"""

ACTIVITIES = ("Directions", "Discussion", "Posing", "Waiting", "Greeting", "Walking")
KEYPOINT_NAMES = (
    "hip", "right_hip", "right_knee", "right_ankle", "right_toe", "right_toe_end",
    "left_hip", "left_knee", "left_ankle", "left_toe", "left_toe_end",
    "spine", "thorax", "neck", "head", "head_end",
    "left_shoulder_blade", "left_shoulder", "left_elbow", "left_wrist", "left_thumb", "left_thumb_end",
    "left_hand", "left_hand_end",
    "right_shoulder_blade", "right_shoulder", "right_elbow", "right_wrist", "right_thumb", "right_thumb_end",
    "right_hand", "right_hand_end",
)  # fmt: skip
OPTIONS = {
    "crop_size": 300,
    "train_subjects": ["S1", "S5", "S6", "S7", "S8", "S9"],
    "test_subjects": ["S11"],
    "activities": list(ACTIVITIES),
    "cameras": None,
    "protocol": "ours",
}
_FRAME = re.compile(r"^(\d+)\.jpg$")


class Human36MDataset(CroppedVideoDataset):
    """Reader of extracted Human3.6M frames, poses and masks (layout in `LAYOUT`).

    `config.options`: crop_size (300), train_subjects, test_subjects, activities
    (the six above), cameras (None = all), protocol ("ours" or "release", see the
    module docstring). Eval splits "train" and "test"; test
    elements carry "mask" uint8 [S, S] (1 = foreground) when `has_masks`.
    Attributes: `skipped`, (source, reason) of frames or sequences left out.
    """

    name = "h36m"
    keypoint_names = KEYPOINT_NAMES
    is_video = True
    default_options = OPTIONS
    layout = LAYOUT

    def __init__(self, config: DataConfig):
        super().__init__(config)
        unknown = sorted(set(self.options["activities"]) - set(ACTIVITIES))
        if unknown:
            raise DatasetError(f"data.options.activities for h36m: unknown {unknown}; choose from {ACTIVITIES}")
        self.crop_size = int(self.options["crop_size"])
        self.skipped: list[tuple[str, str]] = []
        self._masks: dict[str, list[tuple[str, int]]] = {}
        release = self.protocol == "release"
        train, test = self.options["train_subjects"], self.options["test_subjects"]
        self.train_index = self._index("train", train, keep_outside=False, min_length=config.temporal_offset[0] + 1)
        self.splits = {
            "train": self._index("train", train, keep_outside=True) if release else self.train_index,
            "test": self._index("test", test, keep_outside=release),
        }
        self.has_masks = all(path for path, _ in self._masks["test"])
        # The release indexes the training subjects twice (training, eval): a missing pose file is named once.
        self.skipped = list(dict.fromkeys(self.skipped))
        report_skipped("h36m", self.skipped)

    def eval_split(self, split: str) -> tf.data.Dataset:
        frames = super().eval_split(split)
        if not all(path for path, _ in self._masks[split]):
            return frames
        paths, rows = zip(*self._masks[split])
        columns = {"path": np.asarray(paths), "row": np.asarray(rows, np.int64), "corner": self.splits[split].corners}
        crop_size, image_size = self.crop_size, self.image_size

        def load(column):
            mask, ok = tf.numpy_function(
                _read_mask, [column["path"], column["row"], column["corner"], crop_size], [tf.uint8, tf.bool],
                stateful=False,
            )  # fmt: skip
            mask = resize_image(tf.ensure_shape(mask, [crop_size, crop_size])[..., None] * 255, image_size)
            # A pixel is foreground when at least half of it is (as the synthetic masks).
            return tf.cast(mask[..., 0] >= 128, tf.uint8), tf.ensure_shape(ok, [])

        masks = tf.data.Dataset.from_tensor_slices(columns).map(load, num_parallel_calls=tf.data.AUTOTUNE)

        def merge(element, mask_ok):
            mask, ok = mask_ok
            valid = element["valid"] & ok
            return {**element, "mask": mask, "valid": valid}

        return tf.data.Dataset.zip(frames, masks).map(merge)

    def _index(self, split: str, subjects, keep_outside: bool, min_length: int = 1) -> FrameIndex:
        """The usable frames of `subjects`, with a joint outside the frame too when `keep_outside`. Records their mask
        files and rows as `split`'s (the release indexes "train" twice: its eval index, built last, is the one kept)."""
        videos, masks = [], []
        cameras = self.options["cameras"]
        for subject in subjects:
            folder = require_dir(self.root / subject, f"h36m subject {subject}", LAYOUT)
            for sequence_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
                sequence, _, camera = sequence_dir.name.rpartition(".")
                if sequence.split(" ")[0] not in self.options["activities"]:
                    continue
                if cameras is not None and camera not in [str(c) for c in cameras]:
                    continue
                found = self._sequence(subject, sequence_dir, keep_outside, min_length)
                if found:
                    paths, points, rows, mask_path = found
                    videos.append((len(videos), paths, points))
                    masks += [(mask_path, row) for row in rows]
        if not videos:
            raise DatasetError(f"h36m: no usable sequence of {self.options['activities']} for subjects {subjects}.\n{LAYOUT}")
        self._masks[split] = masks
        return FrameIndex.from_videos(videos, self.crop_size, len(KEYPOINT_NAMES))

    def _sequence(self, subject: str, sequence_dir: Path, keep_outside: bool, min_length: int):
        """(frame paths, joints [n, 32, 2], pose rows, mask file or "") of one take and camera, or None."""
        name = sequence_dir.name
        pose_path = self.root / subject / "MyPoseFeatures" / "D2_Positions" / f"{name}.npy"
        if not pose_path.is_file():
            self.skipped.append((str(sequence_dir), f"no pose file {pose_path}"))
            return None
        try:
            poses = np.load(pose_path, allow_pickle=False).astype(np.float64)
        except (OSError, ValueError) as error:
            raise DatasetError(f"{pose_path}: not a readable .npy array ({error})") from None
        if poses.size % 64 or poses.ndim not in (2, 3):
            raise DatasetError(f"{pose_path}: expected poses [N, 64], [1, N, 64] or [N, 32, 2], got {poses.shape}")
        poses = poses.reshape(-1, 32, 2)
        numbered = sorted((int(m[1]), p) for p in sequence_dir.iterdir() if (m := _FRAME.match(p.name)))
        # Under the release protocol only the training stream leaves these frames out.
        outside = "joints outside the frame" + ("" if self.protocol == "ours" else " (left out of training only)")
        shape = _frame_shape(path for _, path in numbered)
        paths, points, rows = [], [], []
        for number, path in numbered:
            if number >= len(poses):
                self.skipped.append((str(path), f"no pose row (the pose file has {len(poses)})"))
                continue
            xy = poses[number]
            inside = shape is not None and np.all((xy >= 0) & (xy <= [shape[1] - 1, shape[0] - 1]))
            if not np.all(np.isfinite(xy)):
                self.skipped.append((str(path), "joints not finite"))
                continue
            if not (inside or keep_outside):
                self.skipped.append((str(path), outside))
                continue
            paths.append(str(path))
            points.append(xy)
            rows.append(number)
        if len(paths) < min_length:
            self.skipped += [(p, f"sequence has fewer than {min_length} usable frames") for p in paths]
            return None
        mask_path = self.root / subject / "MySegmentsMat" / "ground_truth_bs" / f"{name}.mat"
        return paths, np.stack(points), rows, str(mask_path) if mask_path.is_file() else ""


def _frame_shape(paths):
    """(height, width) of the first of `paths` that decodes, or None."""
    for path in paths:
        image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if image is not None:
            return image.shape[:2]
    return None


def _read_mask(path: bytes, row: np.int64, corner: np.ndarray, crop_size: np.int64):
    """Crop of frame `row`'s mask (0/1 uint8 [c, c]) from an official v7.3 mask file; zeros, False on failure."""
    crop = np.zeros((crop_size, crop_size), np.uint8)
    try:
        with h5py.File(path.decode(), "r") as handle:
            references = handle["Masks"][()].reshape(-1)
            # MATLAB stores arrays column-major: the HDF5 dataset is the transposed mask.
            mask = (handle[references[row]][()].T != 0).astype(np.uint8)
    except (OSError, KeyError, IndexError, ValueError, TypeError):
        return crop, False
    paste_window(mask, corner, crop)
    return crop, True
