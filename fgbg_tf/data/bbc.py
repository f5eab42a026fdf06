"""BBC Pose: sign-language interpreters in 20 broadcast videos, 7 annotated upper-body joints.

Read straight from the distributed files (reference doc 9.1, 8.1). Crops follow
paper Appendix A, for training and evaluation alike: 300 x 300 frame pixels
centred on the centre of the 7 joints' bounding box, zero-padded where the square
leaves the frame (the release clips instead, which changes scale and aspect at
the border), resized to `image_size`. See `video_frames` for the exact maps.

Splits (videos are the folders 1..20, i.e. the struct array's order):
  training stream: the annotated frames (`train_frames`) of videos 1-10, temporal
    partners drawn `temporal_offset` positions away in that annotated list, cropped
    with frame t's box (the release draws 3..39 positions);
  eval "train": the same frames with their `train_joints` (regression fit);
  eval "val": the manual annotations (`test_frames` / `test_joints`) of videos 11-15;
  eval "test": the frames, videos and joints of `code/results.mat`.
Annotations are MATLAB 1-based pixels; they are shifted to 0-based on reading, so
the eval "box" maps crop keypoints to 0-based frame pixels (add 1 for the MATLAB
toolkit's coordinates before the metric's halving, reference 8.1 step 3).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import scipy.io

from fgbg_tf.config import DataConfig
from fgbg_tf.data.base import DatasetError, report_skipped
from fgbg_tf.data.video_frames import (
    CroppedVideoDataset,
    FrameIndex,
    require_dir,
    require_file,
)

LAYOUT = """BBC Pose layout (https://www.robots.ox.ac.uk/~vgg/data/pose/):
  <data_dir>/1/ ... <data_dir>/20/   one folder per video (the 20 tarballs of bbcpose_data_1.0),
                                     frames named <frame number>.jpg
  <data_dir>/code/bbcpose.mat        struct array `bbcpose` (videoName, type, source, train_frames,
                                     train_joints 2x7xN, test_frames, test_joints), video i at index i
  <data_dir>/code/results.mat        struct `results` (gt 2x7xN, frame numbers, video numbers): the test set
(bbcpose.mat and results.mat come from bbcpose_extbbcpose_code_1.0.tgz)"""

KEYPOINT_NAMES = ("head", "right_wrist", "left_wrist", "right_elbow", "left_elbow", "right_shoulder", "left_shoulder")
# Positions of the struct fields, as the release reads them (names differ between releases).
_TRAIN_FRAMES, _TRAIN_JOINTS, _TEST_FRAMES, _TEST_JOINTS = 3, 4, 5, 6
_MATLAB_ORIGIN = 1.0

OPTIONS = {
    "crop_size": 300,
    "train_videos": list(range(1, 11)),
    "val_videos": list(range(11, 16)),
    "test_videos": list(range(16, 21)),
}


class BBCPoseDataset(CroppedVideoDataset):
    """Reader of BBC Pose as distributed (see the module docstring for crops and splits).

    `config.options`: crop_size (300), train_videos (1-10), val_videos (11-15),
    test_videos (16-20; results.mat frames of other videos are left out).
    Attributes: `skipped`, a list of (source, reason) of annotated frames left
    out at index time (missing file, joints outside the frame or not finite).
    """

    name = "bbc"
    keypoint_names = KEYPOINT_NAMES
    is_video = True
    default_options = OPTIONS
    layout = LAYOUT

    def __init__(self, config: DataConfig):
        super().__init__(config)
        self.crop_size = int(self.options["crop_size"])
        root = self.root
        annotations = _load_struct(require_file(root / "code" / "bbcpose.mat", "bbc annotations", LAYOUT), "bbcpose")
        results = _load_struct(require_file(root / "code" / "results.mat", "bbc test annotations", LAYOUT), "results")
        videos = {v for key in ("train_videos", "val_videos", "test_videos") for v in self.options[key]}
        if max(videos) > annotations.size:
            raise DatasetError(f"{root / 'code' / 'bbcpose.mat'}: has {annotations.size} videos, need {max(videos)}")
        self._folders = {v: require_dir(root / str(v), f"bbc video {v}", LAYOUT) for v in sorted(videos)}
        self._frame_shapes = {}
        self.skipped: list[tuple[str, str]] = []
        low = config.temporal_offset[0]
        self.splits = {
            "train": self._index(
                [(v, *_field_pair(annotations[v - 1], _TRAIN_FRAMES, _TRAIN_JOINTS)) for v in self.options["train_videos"]],
                min_length=low + 1,
            ),
            "val": self._index(
                [(v, *_field_pair(annotations[v - 1], _TEST_FRAMES, _TEST_JOINTS)) for v in self.options["val_videos"]]
            ),
            "test": self._index(_results_by_video(results, self.options["test_videos"])),
        }
        report_skipped("bbc", self.skipped)

    def _index(self, videos, min_length: int = 1) -> FrameIndex:
        kept = []
        for video, frames, joints in videos:
            folder = self._folders[video]
            present = {p.name for p in folder.iterdir()}
            height, width = self._frame_shape(video, folder, frames, present)
            paths, points = [], []
            for frame, xy in zip(frames, joints):
                name = f"{frame}.jpg"
                source = str(folder / name)
                inside = np.all((xy >= 0) & (xy <= [width - 1, height - 1])) if height else False
                if name not in present:
                    self.skipped.append((source, "file missing"))
                elif not np.all(np.isfinite(xy)) or not inside:
                    self.skipped.append((source, f"joints outside the {width}x{height} frame or not finite"))
                else:
                    paths.append(source)
                    points.append(xy)
            if len(paths) < min_length:
                self.skipped += [(p, f"video {video} has fewer than {min_length} usable frames") for p in paths]
            elif paths:
                kept.append((video, paths, np.stack(points)))
        return FrameIndex.from_videos(kept, self.crop_size, len(KEYPOINT_NAMES))

    def _frame_shape(self, video, folder, frames, present) -> tuple[int, int]:
        """(height, width) of the video's frames, from its first annotated frame that decodes; (0, 0) if none."""
        if video not in self._frame_shapes:
            self._frame_shapes[video] = (0, 0)
            for frame in frames:
                if f"{frame}.jpg" in present:
                    image = cv2.imread(str(folder / f"{frame}.jpg"), cv2.IMREAD_UNCHANGED)
                    if image is not None:
                        self._frame_shapes[video] = image.shape[:2]
                        break
        return self._frame_shapes[video]


def _load_struct(path: Path, key: str) -> np.ndarray:
    try:
        contents = scipy.io.loadmat(str(path))
    except (ValueError, OSError, NotImplementedError) as error:
        raise DatasetError(f"{path}: not a readable MATLAB file ({error}).\n{LAYOUT}") from None
    if key not in contents:
        raise DatasetError(f"{path}: has no variable {key!r} (found {sorted(k for k in contents if not k.startswith('__'))})")
    return contents[key].reshape(-1)


def _joints(array, path_hint: str, count: int) -> np.ndarray:
    """A MATLAB 2x7xN joint array -> float [N, 7, 2] in 0-based pixels."""
    joints = np.asarray(array, np.float64)
    if joints.size == 0 and count == 0:
        return np.zeros((0, len(KEYPOINT_NAMES), 2))
    if joints.ndim == 2:
        joints = joints[..., None]
    if joints.shape[:2] != (2, len(KEYPOINT_NAMES)) or joints.shape[2] != count:
        raise DatasetError(f"{path_hint}: joints must be 2x7x{count}, got {joints.shape}")
    return joints.transpose(2, 1, 0) - _MATLAB_ORIGIN


def _field_pair(entry, frames_field: int, joints_field: int):
    frames = [int(f) for f in np.asarray(entry[frames_field]).reshape(-1)]
    return frames, _joints(entry[joints_field], "bbcpose.mat", len(frames))


def _results_by_video(results: np.ndarray, test_videos) -> list:
    entry = results[0]
    frames = [int(f) for f in np.asarray(entry[1]).reshape(-1)]
    videos = [int(v) for v in np.asarray(entry[2]).reshape(-1)]
    if len(videos) != len(frames):
        raise DatasetError(f"results.mat: {len(frames)} frame numbers but {len(videos)} video numbers")
    joints = _joints(entry[0], "results.mat", len(frames))
    grouped = []
    for video in test_videos:
        rows = [i for i, v in enumerate(videos) if v == video]
        if rows:
            grouped.append((video, [frames[i] for i in rows], joints[rows]))
    return grouped
