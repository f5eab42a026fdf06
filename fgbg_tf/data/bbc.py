"""BBC Pose: sign-language interpreters in 20 broadcast videos, 7 annotated upper-body joints.

Read straight from the distributed files (reference doc 9.1, 8.1). Training crops
follow paper Appendix A: 300 x 300 frame pixels centred on the centre of the 7
joints' bounding box, zero-padded where the square leaves the frame, resized to
`image_size` (`video_frames` has the exact maps). Frames with a joint outside the
frame are left out of training.

The eval splits follow `data.options.protocol` (docs/protocols.md):
  "ours" (the reader's default): the training crops, and frames with a joint
    outside the frame left out of every split;
  "release" (`evaluate`'s default): NVIDIA's eval crops (`release_crops`: the box
    clipped at the frame border, the crop squashed, the MATLAB values used as
    0-based pixels), and every annotated frame scored.

Splits (videos are the folders 1..20, i.e. the struct array's order):
  training stream: the annotated frames (`train_frames`) of videos 1-10, temporal
    partners drawn `temporal_offset` positions away in that annotated list, cropped
    with frame t's box (the release draws 3..39 positions);
  eval "train": the same frames with their `train_joints` (regression fit);
  eval "val": the manual annotations (`test_frames` / `test_joints`) of videos 11-15
    (the release's val script uses their `train_frames`; nothing here scores val);
  eval "test": the frames, videos and joints of `code/results.mat`: those of
    `test_videos` under "ours", every one under "release".
Annotations are MATLAB 1-based pixels; they are shifted to 0-based on reading, so
our eval "box" maps crop keypoints to 0-based frame pixels (add 1 for the MATLAB
toolkit's coordinates before the metric's halving, reference 8.1 step 3).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import scipy.io

from fgbg_tf.config import DataConfig
from fgbg_tf.data.base import DatasetError, report_skipped
from fgbg_tf.data.release_crops import clipped_crops
from fgbg_tf.data.video_frames import (
    CroppedVideoDataset,
    EvalCrops,
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
    "protocol": "ours",
}


class BBCPoseDataset(CroppedVideoDataset):
    """Reader of BBC Pose as distributed (see the module docstring for crops and splits).

    `config.options`: crop_size (300), train_videos (1-10), val_videos (11-15),
    test_videos (16-20; protocol "ours" leaves results.mat frames of other videos
    out), protocol ("ours" or "release", see the module docstring).
    Attributes: `skipped`, a list of (source, reason) of annotated frames left
    out at index time (missing file, joints not finite, or outside the frame).
    """

    name = "bbc"
    keypoint_names = KEYPOINT_NAMES
    is_video = True
    default_options = OPTIONS
    layout = LAYOUT

    def __init__(self, config: DataConfig):
        super().__init__(config)
        self.crop_size = int(self.options["crop_size"])
        release = self.protocol == "release"
        if release and "test_videos" in config.options:
            raise DatasetError("data.options.test_videos selects results.mat's frames under protocol 'ours'; the "
                               "release protocol scores every frame of results.mat (evaluate --protocol ours, or "
                               "drop the option)")
        root = self.root
        annotations = _load_struct(require_file(root / "code" / "bbcpose.mat", "bbc annotations", LAYOUT), "bbcpose")
        results = _load_struct(require_file(root / "code" / "results.mat", "bbc test annotations", LAYOUT), "results")
        test_videos = None if release else self.options["test_videos"]
        test = _results_by_video(results, test_videos)
        videos = {*self.options["train_videos"], *self.options["val_videos"], *(test_videos or [v for v, *_ in test])}
        if max(videos) > annotations.size:
            raise DatasetError(f"{root / 'code' / 'bbcpose.mat'}: has {annotations.size} videos, need {max(videos)}")
        self._folders = {v: require_dir(root / str(v), f"bbc video {v}", LAYOUT) for v in sorted(videos)}
        self._frame_shapes = {}
        self.skipped: list[tuple[str, str]] = []
        train = [(v, *_field_pair(annotations[v - 1], _TRAIN_FRAMES, _TRAIN_JOINTS))
                 for v in self.options["train_videos"]]
        val = [(v, *_field_pair(annotations[v - 1], _TEST_FRAMES, _TEST_JOINTS)) for v in self.options["val_videos"]]
        self.train_index = self._index(train, keep_outside=False, min_length=config.temporal_offset[0] + 1)
        self.splits = {
            "train": self._index(train, keep_outside=True) if release else self.train_index,
            "val": self._index(val, keep_outside=release),
            "test": self._index(test, keep_outside=release),
        }
        # The release indexes the training videos twice (training, eval): a missing file is named once.
        self.skipped = list(dict.fromkeys(self.skipped))
        report_skipped("bbc", self.skipped)

    def eval_crops(self, split: str) -> EvalCrops:
        if self.protocol == "ours":
            return super().eval_crops(split)
        index = self.splits[split]
        frame_sizes = np.array([self._frame_shapes[v][::-1] for v in index.video], np.float64).reshape(-1, 2)
        # The release uses the MATLAB values as they are (docs/protocols.md, point 3); our index holds them 0-based.
        joints = index.keypoints.astype(np.float64) + _MATLAB_ORIGIN
        return clipped_crops(joints, frame_sizes, self.crop_size, self.image_size, index.paths)

    def _index(self, videos, keep_outside: bool, min_length: int = 1) -> FrameIndex:
        """The readable frames of (video, frame numbers, 0-based joints) with finite joints; those with a joint
        outside the frame too when `keep_outside`; videos with fewer than `min_length` such frames left out."""
        kept = []
        # Under the release protocol only the training stream leaves these frames out.
        outside = "joints outside the {}x{} frame" + ("" if self.protocol == "ours" else " (left out of training only)")
        for video, frames, joints in videos:
            folder = self._folders[video]
            present = {p.name for p in folder.iterdir()}
            height, width = self._frame_shape(video, folder, frames, present)
            paths, points = [], []
            for frame, xy in zip(frames, joints):
                name = f"{frame}.jpg"
                source = str(folder / name)
                if name not in present:
                    self.skipped.append((source, "file missing"))
                elif not height:
                    self.skipped.append((source, f"no annotated frame of video {video} decodes"))
                elif not np.all(np.isfinite(xy)):
                    self.skipped.append((source, "joints not finite"))
                elif not (keep_outside or np.all((xy >= 0) & (xy <= [width - 1, height - 1]))):
                    self.skipped.append((source, outside.format(width, height)))
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
    """(video, frame numbers, 0-based joints) of results.mat's frames, grouped by video: those of `test_videos`
    (in that order), or of every video (in order of first appearance) when it is None."""
    entry = results[0]
    frames = [int(f) for f in np.asarray(entry[1]).reshape(-1)]
    videos = [int(v) for v in np.asarray(entry[2]).reshape(-1)]
    if len(videos) != len(frames):
        raise DatasetError(f"results.mat: {len(frames)} frame numbers but {len(videos)} video numbers")
    joints = _joints(entry[0], "results.mat", len(frames))
    grouped = []
    for video in dict.fromkeys(videos) if test_videos is None else test_videos:
        rows = [i for i, v in enumerate(videos) if v == video]
        if rows:
            grouped.append((video, [frames[i] for i in rows], joints[rows]))
    return grouped
