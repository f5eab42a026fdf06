"""The `videos` dataset: a folder of the user's own videos, no annotations needed.

    python -m fgbg_tf.train --dataset videos --data-dir my_videos/ [--set data.options.framing=pad]

Every video file under `data_dir` (.mp4, .avi, .mov, .mkv, .webm, ...: whatever OpenCV decodes; sub-folders
included) and every folder of numbered frames (at least two image files named by their frame number, such as
`000001.jpg`, in the order of that number) is one video. A training pair is two frames of one video
`data.temporal_offset` frames apart (the paper's T_temp, section 3.2).

Videos, not frames, are split, so that no frame of a held-out video is trained on: `data.options.test_videos` is
a fraction of the videos (default 0.2; at least one video stays in training), chosen by a hash of each video's path
relative to `data_dir` (the same split on every machine, and adding a video moves no other; `data/held_out.py`),
or a list of those relative paths. The held-out videos are named in the log, for `predict` to be tried on.

Decoding a long video on every step would cost more than the step, so each video is decoded once, framed to a square
by `data.options.framing` ("centre_crop", the default; "pad"; "resize"; or a box [x, y, side, side] for a static
camera; see `data/media.py`), resized to `data.image_size` (antialiased) and stored as one `.npz` file in
`data.options.cache_dir` (default `~/.cache/fgbg_tf/videos`); training reads those into memory (T x S x S x 3
bytes a video). The cache key hashes the video's absolute path, size and modification time (every frame's, for a
folder), the image size and the framing: an edited video, or another framing, is decoded again, and a restart reads
the cache without decoding. The entry keeps each frame's framing box and original size too, so that a restart still
knows the training videos' sizes (`source_sizes`, which the run records for `predict`: see `data/sources.py`); an
entry from before (another CACHE_VERSION) is decoded again. A video that does not open, or that has fewer frames than
`data.temporal_offset` needs, is named and left out; a video that ends before the frame count its container declares
is named with both numbers; a frame of a folder that does not decode stays in place as an invalid frame and is named.

Annotations are optional and only `evaluate` reads them (`fgbg_tf/data/annotations.py` has the formats):
`data.options.keypoints`, a CSV of points in the original frames' pixels, makes the regression protocol apply (fit
on the annotated frames of the training videos, report on those of the held-out videos; error by the image side,
and with `data.options.normalise_by: [a, b]` by the distance between the true points a and b, as MAFL's
inter-ocular distance); `data.options.masks`, a folder of per-frame masks of the annotated frames, adds Figure 2b's
containment. Both are checked when the reader starts, so that a bad file stops a run before any work.

Example:
    clips = VideoFolderDataset(DataConfig(name="videos", data_dir="my_videos", image_size=64))
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import time
from pathlib import Path

import numpy as np
import tensorflow as tf

from fgbg_tf.config import DataConfig
from fgbg_tf.data.annotations import AnnotatedFrames, adopt_annotations, read_annotations
from fgbg_tf.data.base import (
    DatasetError,
    LandmarkDataset,
    Shard,
    element_seed,
    partner_frame,
    report_skipped,
    shuffled_items,
)
from fgbg_tf.data.held_out import held_out_names
from fgbg_tf.data.media import (
    IMAGE_SUFFIXES,
    MediaError,
    check_framing,
    frame_image,
    is_video,
    read_image,
    video_frames,
    video_length,
)
from fgbg_tf.data.sources import count_sizes

logger = logging.getLogger("fgbg_tf.data.video_folder")

OPTIONS = {"framing": "centre_crop", "test_videos": 0.2, "cache_dir": None, "keypoints": None, "masks": None,
           "normalise_by": None}
# Bumped when the cache's content changes, so that an older cache is decoded again rather than misread.
CACHE_VERSION = 2
DEFAULT_CACHE_DIR = Path("~", ".cache", "fgbg_tf", "videos")
LAYOUT = ("expected layout: <data_dir>/ holding video files or folders of numbered frames (1.jpg, 2.jpg, ...), "
          "in sub-folders or not")


@dataclasses.dataclass(frozen=True)
class VideoSource:
    """One video: a file, or a folder of numbered `frames` (in order). `name`: its path relative to data_dir."""

    path: Path
    name: str
    frames: tuple[Path, ...] = ()


def find_videos(root: Path) -> list[VideoSource]:
    """Every video file and every folder of at least two numbered frames under `root`, sorted by name."""
    videos, numbered = [], {}
    for path in root.rglob("*"):
        if not path.is_file():
            continue
        if is_video(path):
            videos.append(VideoSource(path, path.relative_to(root).as_posix()))
        elif path.suffix.lower() in IMAGE_SUFFIXES and path.stem.isdigit():
            numbered.setdefault(path.parent, []).append(path)
    for folder, frames in numbered.items():
        if len(frames) >= 2:
            ordered = tuple(sorted(frames, key=lambda p: (int(p.stem), p.name)))
            videos.append(VideoSource(folder, folder.relative_to(root).as_posix() or ".", ordered))
    return sorted(videos, key=lambda v: v.name)


class VideoFolderDataset(LandmarkDataset):
    """Reader of a folder of videos for training (see the module docstring).

    Args:
        config: `DataConfig` with `data_dir` the folder; `options`: framing, test_videos, cache_dir, and for
            `evaluate` keypoints, masks, normalise_by.

    Attributes:
        videos: {"train", "test"}: the `VideoSource`s of each split; `skipped`: (path, reason) of what was left out.
        frames, valid: uint8 [N, S, S, 3] and bool [N]: the training videos' frames, one video after another.
        starts, lengths: int64 [V]: where each training video starts in `frames`, and its frame count.
        source_sizes: [[width, height, count], ...]: the training videos' frame sizes before framing.
        annotations: the `UserAnnotations` of data.options.keypoints (`data/annotations.py`), or None.

    Example:
        clips = VideoFolderDataset(DataConfig(name="videos", data_dir="my_videos", image_size=64))
    """

    name = "videos"
    default_options = OPTIONS
    layout = LAYOUT
    is_video = True
    regression_splits = ()  # without data.options.keypoints: nothing to fit a regressor on
    partial_keypoints = True  # a user's CSV may leave points out (NaN): frames are kept, the points ignored

    def __init__(self, config: DataConfig):
        super().__init__(config)
        self.framing = self.options["framing"]
        try:
            check_framing(self.framing, "data.options.framing")
        except MediaError as error:
            raise DatasetError(str(error)) from None
        cache = self.options["cache_dir"]
        self.cache_dir = Path(cache if cache is not None else DEFAULT_CACHE_DIR).expanduser()
        found = find_videos(self.root)
        if not found:
            raise DatasetError(f"{self.root} holds no video; {LAYOUT}")
        held_out = held_out_names([v.name for v in found], self.options["test_videos"], "data.options.test_videos",
                                  "videos")
        self.videos = {"train": [v for v in found if v.name not in held_out],
                       "test": [v for v in found if v.name in held_out]}
        self.annotations = read_annotations(self.root, self.options,
                                            {split: [v.name for v in videos] for split, videos in self.videos.items()},
                                            still_images=False)
        adopt_annotations(self)
        self.skipped: list[tuple[str, str]] = []
        clips = self._load(self.videos["train"])
        report_skipped(self.name, self.skipped)
        if not clips:
            raise DatasetError(f"none of the {len(self.videos['train'])} training video(s) under {self.root} could be "
                               f"used (each is named above with its reason); {LAYOUT}")
        if self.videos["test"]:
            logger.info("videos: held out for testing (data.options.test_videos): %s",
                        ", ".join(v.name for v in self.videos["test"]))
        self.train_names = [source.name for source, _ in clips]
        # A video counts once for each frame size it has (a folder of frames may mix them); (0, 0) is an invalid frame.
        self.source_sizes = count_sizes((int(w), int(h)) for _, clip in clips
                                        for h, w in np.unique(clip["sizes"], axis=0) if h > 0)
        self.lengths = np.array([len(clip["frames"]) for _, clip in clips], np.int64)
        self.starts = np.concatenate([[0], np.cumsum(self.lengths)[:-1]]).astype(np.int64)
        self.frames = np.concatenate([clip["frames"] for _, clip in clips])
        self.valid = np.concatenate([clip["valid"] for _, clip in clips])

    def _load(self, sources: list[VideoSource]) -> list[tuple[VideoSource, dict]]:
        """(source, clip) of every usable video, from the cache or decoded into it; a clip holds "frames" uint8
        [T, S, S, 3], "valid" bool [T], and each frame's framing "boxes" int [T, 4] and source "sizes" (h, w)."""
        low = self.config.temporal_offset[0]
        clips = []
        for source in sources:
            try:
                clip = self._cached(source)
            except MediaError as error:
                self.skipped.append((str(source.path), str(error).removeprefix(f"{source.path}: ")))
                continue
            if len(clip["frames"]) < low + 1:
                self.skipped.append((str(source.path), f"{len(clip['frames'])} frame(s): data.temporal_offset {low} "
                                                       f"needs at least {low + 1}"))
                continue
            clips.append((source, clip))
        return clips

    def _cached(self, source: VideoSource) -> dict:
        files = source.frames or (source.path,)
        stats = []
        for file in files:  # one stat per file: a folder of frames can hold thousands
            status = file.stat()
            stats.append((str(file.resolve()), status.st_size, status.st_mtime_ns))
        key = json.dumps([CACHE_VERSION, stats, self.image_size, self.framing])
        path = self.cache_dir / f"{hashlib.sha256(key.encode()).hexdigest()[:24]}.npz"
        if path.is_file():
            try:
                with np.load(path) as stored:
                    clip = {k: stored[k] for k in ("frames", "valid", "boxes", "sizes")}
                # Frames found invalid when the video was decoded are named again on every run, not only the first.
                self.skipped += [(str(source.frames[i]) if source.frames else f"{source.path} frame {i}",
                                  f"frame of {source.name} kept as invalid (cached)")
                                 for i in np.flatnonzero(~clip["valid"])]
                return clip
            except Exception as error:  # noqa: BLE001 - damaged (truncated zip, empty file): decoded again, not trusted
                logger.warning("videos: the cache %s of %s does not read (%s); decoding again", path, source.name,
                               error)
        started = time.perf_counter()
        clip = self._decode(source)
        partial = path.with_name(f"{path.stem}.{os.getpid()}.partial.npz")
        try:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            np.savez(partial, **clip)
            os.replace(partial, path)  # whole or absent: an interrupted write never leaves a cache that looks complete
        except OSError as error:  # a full disk or a read-only cache: train from memory, decode again next time
            partial.unlink(missing_ok=True)
            logger.warning("videos: could not cache %s in %s (%s); it will be decoded again next time", source.name,
                           self.cache_dir, error)
        seconds = time.perf_counter() - started
        count = len(clip["frames"])
        logger.info("videos: %s: %d frames decoded and cached in %.1f s (%.0f frames/s)", source.name, count, seconds,
                    count / max(seconds, 1e-9))
        return clip

    def _decode(self, source: VideoSource) -> dict:
        size = self.image_size
        frames, valid, boxes, sizes = [], [], [], []
        if source.frames:
            for file in source.frames:
                try:
                    image = read_image(file)
                    framed, box = frame_image(image, size, self.framing, file)
                except MediaError as error:
                    # In place, so that the frames after it keep their time offsets.
                    self.skipped.append((str(file), f"frame of {source.name} kept as invalid: {error}"))
                    framed, box, image = np.zeros([size, size, 3], np.uint8), (0, 0, 0, 0), np.zeros([0, 0])
                frames.append(framed)
                valid.append(box[2] > 0)
                boxes.append(box)
                sizes.append(image.shape[:2])
        else:
            for frame in video_frames(source.path):
                framed, box = frame_image(frame, size, self.framing, source.path)
                frames.append(framed)
                valid.append(True)
                boxes.append(box)
                sizes.append(frame.shape[:2])
            declared = video_length(source.path)
            if len(frames) < declared:
                logger.warning("videos: %s: %d frames read of the %d its container declares (a truncated file?)",
                               source.path, len(frames), declared)
        return {"frames": np.stack(frames), "valid": np.array(valid), "boxes": np.array(boxes, np.int64),
                "sizes": np.array(sizes, np.int64)}

    @property
    def num_train_items(self) -> int:
        return len(self.frames)

    def train_pairs(self, seed: int, start: int, shard: Shard | None = None) -> tf.data.Dataset:
        frames, valid = tf.constant(self.frames), tf.constant(self.valid)
        starts, lengths = tf.constant(self.starts), tf.constant(self.lengths)
        names = tf.constant(self.train_names)
        low, high = self.config.temporal_offset

        def pair(index, item):
            video = tf.searchsorted(starts, tf.reshape(item, [1]), side="right")[0] - 1
            position = item - starts[video]
            partner = partner_frame(element_seed(seed, index, salt=1), position, lengths[video], low, high)
            first, second = starts[video] + position, starts[video] + partner
            ok = valid[first] & valid[second]
            blank = tf.zeros_like(frames[0])
            return {"index": index, "frame": tf.where(ok, frames[first], blank),
                    "partner": tf.where(ok, frames[second], blank), "valid": ok, "source": names[video]}

        return shuffled_items(self.num_train_items, seed, start, shard).map(pair, num_parallel_calls=tf.data.AUTOTUNE)

    def held_out_clips(self) -> list[tuple[str, dict]]:
        """(name, clip) of every usable held-out video (clips as `_load` returns them)."""
        clips = self._load(self.videos["test"])
        if not clips:
            raise DatasetError(f"no usable held-out video under {self.root} (data.options.test_videos: "
                               f"{self.options['test_videos']!r}); hold one out to evaluate on")
        return [(source.name, clip) for source, clip in clips]

    def eval_split(self, split: str) -> tf.data.Dataset:
        """The annotated frames of the split's videos: {"image", "keypoints" (NaN where missing), "valid", "source"
        (and "mask")}, keypoints and masks framed as the images are."""
        frames = AnnotatedFrames(self, split, self.videos)
        for source, clip in self._load(self.videos[split]):
            numbers = ({int(p.stem): i for i, p in enumerate(source.frames)} if source.frames
                       else {i: i for i in range(len(clip["frames"]))})
            for file, frame in sorted(self.annotations.points):
                if file != source.name:
                    continue
                if frame not in numbers:
                    raise DatasetError(f"data.options.keypoints: {file} has no frame {frame} (frames: "
                                       f"{min(numbers)}..{max(numbers)})")
                index = numbers[frame]
                # A frame that did not decode has no box: `add` keeps it marked invalid, and evaluate drops it.
                frames.add(file, frame, f"{file} frame {frame}",
                           clip["frames"][index] if clip["valid"][index] else None,
                           tuple(int(v) for v in clip["boxes"][index]), tuple(int(v) for v in clip["sizes"][index]))
        return frames.dataset(f"videos split {split!r}: no annotated frame of a usable video")
