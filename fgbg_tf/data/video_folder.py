"""The `videos` dataset: a folder of the user's own videos, no annotations needed.

    python -m fgbg_tf.train --dataset videos --data-dir my_videos/ [--set data.options.framing=pad]

Every video file under `data_dir` (.mp4, .avi, .mov, .mkv, .webm, ...: whatever OpenCV decodes; sub-folders
included) and every folder of numbered frames (at least two image files named by their frame number, such as
`000001.jpg`, in the order of that number) is one video. A training pair is two frames of one video
`data.temporal_offset` frames apart (the paper's T_temp, section 3.2).

Videos, not frames, are split, so that no frame of a held-out video is trained on: `data.options.test_videos` is
a fraction of the videos (default 0.2; at least one video stays in training), chosen by a hash of each video's path
relative to `data_dir` (the same split on every machine, and adding a video moves no other), or a list of those
relative paths. The held-out videos are named in the log, for `predict` to be tried on.

Decoding a long video on every step would cost more than the step, so each video is decoded once, framed to a square
by `data.options.framing` ("centre_crop", the default; "pad"; "resize"; or a box [x, y, side, side] for a static
camera; see `data/media.py`), resized to `data.image_size` (antialiased) and stored as one `.npz` file in
`data.options.cache_dir` (default `~/.cache/fgbg_tf/videos`); training reads those into memory (T x S x S x 3
bytes a video). The cache key hashes the video's absolute path, size and modification time (every frame's, for a
folder), the image size and the framing: an edited video, or another framing, is decoded again, and a restart reads
the cache without decoding. A video that does not open, or that has fewer frames than `data.temporal_offset` needs,
is named and left out; a video that ends before the frame count its container declares is named with both numbers;
a frame of a folder that does not decode stays in place as an invalid frame and is named.

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
from fgbg_tf.data.base import (
    DatasetError,
    LandmarkDataset,
    Shard,
    element_seed,
    partner_frame,
    report_skipped,
    shuffled_items,
)
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

logger = logging.getLogger("fgbg_tf.data.video_folder")

OPTIONS = {"framing": "centre_crop", "test_videos": 0.2, "cache_dir": None}
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


def held_out_names(names: list[str], test_videos) -> set[str]:
    """The held-out videos: those listed, or a fraction of them ranked by a hash of the name (at least one stays)."""
    if isinstance(test_videos, list):
        unknown = sorted(set(test_videos) - set(names))
        if unknown:
            raise DatasetError(f"data.options.test_videos names {unknown}, which are not videos under data_dir; "
                               f"the videos are {names[:10]}{' ...' if len(names) > 10 else ''}")
        if set(test_videos) >= set(names):
            raise DatasetError("data.options.test_videos holds out every video; leave at least one to train on")
        return set(test_videos)
    count = min(round(test_videos * len(names)), len(names) - 1)
    ranked = sorted(names, key=lambda name: hashlib.sha256(name.encode()).hexdigest())
    return set(ranked[:count])


class VideoFolderDataset(LandmarkDataset):
    """Reader of a folder of videos for training (see the module docstring).

    Args:
        config: `DataConfig` with `data_dir` the folder; `options`: framing, test_videos, cache_dir.

    Attributes:
        videos: {"train", "test"}: the `VideoSource`s of each split; `skipped`: (path, reason) of what was left out.
        frames, valid: uint8 [N, S, S, 3] and bool [N]: the training videos' frames, one video after another.
        starts, lengths: int64 [V]: where each training video starts in `frames`, and its frame count.

    Example:
        clips = VideoFolderDataset(DataConfig(name="videos", data_dir="my_videos", image_size=64))
    """

    name = "videos"
    default_options = OPTIONS
    layout = LAYOUT
    is_video = True
    regression_splits = ()  # no annotations: nothing to fit a regressor on

    def __init__(self, config: DataConfig):
        super().__init__(config)
        self.framing, held_out = self.options["framing"], self.options["test_videos"]
        try:
            check_framing(self.framing, "data.options.framing")
        except MediaError as error:
            raise DatasetError(str(error)) from None
        if not (isinstance(held_out, list) and all(isinstance(n, str) for n in held_out)
                or isinstance(held_out, (int, float)) and not isinstance(held_out, bool) and 0 <= held_out < 1):
            raise DatasetError(f"data.options.test_videos must be a fraction in [0, 1) or a list of video paths "
                               f"relative to data_dir, got {held_out!r}")
        cache = self.options["cache_dir"]
        self.cache_dir = Path(cache if cache is not None else DEFAULT_CACHE_DIR).expanduser()
        found = find_videos(self.root)
        if not found:
            raise DatasetError(f"{self.root} holds no video; {LAYOUT}")
        held_out = held_out_names([v.name for v in found], held_out)
        self.videos = {"train": [v for v in found if v.name not in held_out],
                       "test": [v for v in found if v.name in held_out]}
        self.skipped: list[tuple[str, str]] = []
        clips = self._load(self.videos["train"])
        report_skipped(self.name, self.skipped)
        if not clips:
            raise DatasetError(f"none of the {len(self.videos['train'])} training video(s) under {self.root} could be "
                               f"used (each is named above with its reason); {LAYOUT}")
        if self.videos["test"]:
            logger.info("videos: held out for testing (data.options.test_videos): %s",
                        ", ".join(v.name for v in self.videos["test"]))
        self.train_names = [name for name, _, _ in clips]
        self.lengths = np.array([len(frames) for _, frames, _ in clips], np.int64)
        self.starts = np.concatenate([[0], np.cumsum(self.lengths)[:-1]]).astype(np.int64)
        self.frames = np.concatenate([frames for _, frames, _ in clips])
        self.valid = np.concatenate([valid for _, _, valid in clips])

    def _load(self, sources: list[VideoSource]) -> list[tuple[str, np.ndarray, np.ndarray]]:
        """(name, frames, valid) of every usable video, from the cache or decoded into it."""
        low = self.config.temporal_offset[0]
        clips = []
        for source in sources:
            try:
                frames, valid = self._cached(source)
            except MediaError as error:
                self.skipped.append((str(source.path), str(error).removeprefix(f"{source.path}: ")))
                continue
            if len(frames) < low + 1:
                self.skipped.append((str(source.path), f"{len(frames)} frame(s): data.temporal_offset {low} needs "
                                                       f"at least {low + 1}"))
                continue
            clips.append((source.name, frames, valid))
        return clips

    def _cached(self, source: VideoSource) -> tuple[np.ndarray, np.ndarray]:
        files = source.frames or (source.path,)
        stats = []
        for file in files:  # one stat per file: a folder of frames can hold thousands
            status = file.stat()
            stats.append((str(file.resolve()), status.st_size, status.st_mtime_ns))
        key = json.dumps([stats, self.image_size, self.framing])
        path = self.cache_dir / f"{hashlib.sha256(key.encode()).hexdigest()[:24]}.npz"
        if path.is_file():
            try:
                with np.load(path) as stored:
                    frames, valid = stored["frames"], stored["valid"]
                # Frames found invalid when the video was decoded are named again on every run, not only the first.
                self.skipped += [(str(source.frames[i]) if source.frames else f"{source.path} frame {i}",
                                  f"frame of {source.name} kept as invalid (cached)") for i in np.flatnonzero(~valid)]
                return frames, valid
            except Exception as error:  # noqa: BLE001 - damaged (truncated zip, empty file): decoded again, not trusted
                logger.warning("videos: the cache %s of %s does not read (%s); decoding again", path, source.name,
                               error)
        started = time.perf_counter()
        frames, valid = self._decode(source)
        partial = path.with_name(f"{path.stem}.{os.getpid()}.partial.npz")
        try:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            np.savez(partial, frames=frames, valid=valid)
            os.replace(partial, path)  # whole or absent: an interrupted write never leaves a cache that looks complete
        except OSError as error:  # a full disk or a read-only cache: train from memory, decode again next time
            partial.unlink(missing_ok=True)
            logger.warning("videos: could not cache %s in %s (%s); it will be decoded again next time", source.name,
                           self.cache_dir, error)
        seconds = time.perf_counter() - started
        logger.info("videos: %s: %d frames decoded and cached in %.1f s (%.0f frames/s)", source.name, len(frames),
                    seconds, len(frames) / max(seconds, 1e-9))
        return frames, valid

    def _decode(self, source: VideoSource) -> tuple[np.ndarray, np.ndarray]:
        size = self.image_size
        if source.frames:
            frames, valid = [], []
            for file in source.frames:
                try:
                    frames.append(frame_image(read_image(file), size, self.framing, file)[0])
                    valid.append(True)
                except MediaError as error:
                    # In place, so that the frames after it keep their time offsets.
                    self.skipped.append((str(file), f"frame of {source.name} kept as invalid: {error}"))
                    frames.append(np.zeros([size, size, 3], np.uint8))
                    valid.append(False)
            return np.stack(frames), np.array(valid)
        frames = [frame_image(frame, size, self.framing, source.path)[0] for frame in video_frames(source.path)]
        declared = video_length(source.path)
        if len(frames) < declared:
            logger.warning("videos: %s: %d frames read of the %d its container declares (a truncated file?)",
                           source.path, len(frames), declared)
        return np.stack(frames), np.ones(len(frames), bool)

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

    def eval_split(self, split: str) -> tf.data.Dataset:
        raise DatasetError("the videos dataset has no annotations to evaluate; predict the landmarks of the held-out "
                           "videos instead (python -m fgbg_tf.predict --framing ...)")
