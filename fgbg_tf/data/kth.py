"""KTH human actions: 25 persons x 6 actions x 4 scenarios, 160x120 grayscale AVIs, no keypoints.

Used for video prediction (paper section 4.1). The AVIs are decoded once, with
OpenCV, when a split is first needed (the training split at construction), never
per training step: each frame is converted to gray, centre-cropped to its
central 120x120 square (the 20 columns at either side are dropped), resized to
`image_size` (bilinear, antialiased) and replicated to 3 channels in the graph.
Only frames inside the segments of `sequences.txt` are used (the person repeats
the action once per segment); temporal partners stay within a segment.
Persons 1-16 train, 17-25 test. KTH has no keypoints: eval elements carry an
empty "keypoints" [0, 2], so the landmark regression does not apply; they are
ordered frames with "video" (segment id) and "position" for video prediction.
"""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np
import tensorflow as tf

from fgbg_tf.config import DataConfig
from fgbg_tf.data.base import Shard, DatasetError, LandmarkDataset, element_seed, report_skipped, partner_frame, shuffled_items
from fgbg_tf.data.video_frames import require_file, resize_image

LAYOUT = """KTH layout (https://www.csc.kth.se/cvap/actions/):
  <data_dir>/sequences.txt                          the segment list, lines like
                                                    "person01_boxing_d1  frames  1-95, 96-185, ..."
  <data_dir>/<action>/personXX_<action>_dY_uncomp.avi   the six zip files extracted into folders named
                                                    boxing, handclapping, handwaving, jogging, running, walking
  (or all the .avi files directly in <data_dir>)"""

ACTIONS = ("boxing", "handclapping", "handwaving", "jogging", "running", "walking")
OPTIONS = {"train_persons": list(range(1, 17)), "test_persons": list(range(17, 26)), "actions": list(ACTIONS)}

_LINE = re.compile(r"^\s*(person(\d+)_([a-z]+)_d(\d+))\s+frames\s+(.+?)\s*$")
_RANGE = re.compile(r"^(\d+)\s*-\s*(\d+)$")


class KTHDataset(LandmarkDataset):
    """Reader of the KTH AVIs and sequences.txt as distributed (see the module docstring).

    `config.options`: train_persons (1-16), test_persons (17-25), actions (all six).
    Eval splits: "train" and "test" (video prediction; no keypoints).
    Attributes: `skipped`, (source, reason) of videos or segment frames left out
    (AVI missing or undecodable, segment beyond the decoded frames or too short).
    """

    name = "kth"
    is_video = True
    default_options = OPTIONS
    layout = LAYOUT

    def __init__(self, config: DataConfig):
        super().__init__(config)
        unknown = sorted(set(self.options["actions"]) - set(ACTIONS))
        if unknown:
            raise DatasetError(f"data.options.actions for kth: unknown actions {unknown}; choose from {ACTIONS}")
        segments = parse_sequences(require_file(self.root / "sequences.txt", "kth segment list", LAYOUT))
        self.skipped: list[tuple[str, str]] = []
        persons = {"train": set(self.options["train_persons"]), "test": set(self.options["test_persons"])}
        self._videos = {split: {} for split in persons}
        for name, (person, action, ranges) in segments.items():
            if action not in self.options["actions"]:
                continue
            for split, members in persons.items():
                if person in members:
                    path = self._find_video(name, action)
                    if path is None:
                        self.skipped.append((name, "AVI file missing"))
                    else:
                        self._videos[split][path] = ranges
        for split, videos in self._videos.items():
            if not videos:
                raise DatasetError(f"kth: no AVI file found for the {split} persons {sorted(persons[split])}.\n{LAYOUT}")
        self._decoded = {}
        self._split("train")
        report_skipped("kth", self.skipped)

    @property
    def num_train_items(self) -> int:
        return len(self._split("train")["frames"])

    def train_pairs(self, seed: int, start: int, shard: Shard | None = None) -> tf.data.Dataset:
        split = self._split("train")
        frames = tf.constant(split["frames"])
        first, length = tf.constant(split["first"]), tf.constant(split["length"])
        low, high = (tf.constant(v, tf.int64) for v in self.config.temporal_offset)

        def pair(i, item):
            position = item - first[item]
            partner = first[item] + partner_frame(element_seed(seed, i, salt=1), position, length[item], low, high)
            return {
                "index": i,
                "frame": _to_rgb(frames[item]),
                "partner": _to_rgb(frames[partner]),
                "valid": tf.constant(True),
                "source": tf.constant("kth/train"),
            }

        return shuffled_items(len(split["frames"]), seed, start, shard).map(pair, num_parallel_calls=tf.data.AUTOTUNE)

    def eval_split(self, split: str) -> tf.data.Dataset:
        if split not in self._videos:
            raise DatasetError(f"kth has eval splits {sorted(self._videos)}, not {split!r}")
        data = self._split(split)
        columns = {
            "image": data["frames"],
            "video": data["segment"],
            "position": np.arange(len(data["frames"]), dtype=np.int64) - data["first"],
            "source": data["source"],
        }

        def element(row):
            return {
                **row,
                "image": _to_rgb(row["image"]),
                "keypoints": tf.zeros([0, 2], tf.float32),
                "valid": tf.constant(True),
            }

        return tf.data.Dataset.from_tensor_slices(columns).map(element, num_parallel_calls=tf.data.AUTOTUNE)

    def _find_video(self, name: str, action: str):
        for candidate in (self.root / action / f"{name}_uncomp.avi", self.root / f"{name}_uncomp.avi"):
            if candidate.is_file():
                return candidate
        return None

    def _split(self, split: str) -> dict:
        """Decodes the split's segments once: frames uint8 [N, S, S], segment rows and names."""
        if split in self._decoded:
            return self._decoded[split]
        low = self.config.temporal_offset[0]
        frames, first, length, segment, source = [], [], [], [], []
        for path, ranges in self._videos[split].items():
            video = decode_video(path, self.image_size)
            if video is None:
                self.skipped.append((str(path), "not a decodable video"))
                continue
            for number, (start, stop) in enumerate(ranges, 1):
                name = f"{path.stem.removesuffix('_uncomp')}#{number}"
                if stop > len(video):
                    self.skipped.append((name, f"frames {max(start, len(video) + 1)}-{stop} beyond the {len(video)} decoded"))
                    stop = len(video)
                count = stop - start + 1
                if count < low + 1:
                    self.skipped.append((name, f"{max(count, 0)} frames, fewer than {low + 1}"))
                    continue
                first += [len(source)] * count
                length += [count] * count
                segment += [len(frames)] * count
                source += [f"{name}:{f}" for f in range(start, stop + 1)]
                frames.append(video[start - 1 : stop])
        if not frames:
            raise DatasetError(f"kth: no decodable segment in the {split} split (see the skipped videos)")
        self._decoded[split] = {
            "frames": np.concatenate(frames),
            "first": np.asarray(first, np.int64),
            "length": np.asarray(length, np.int64),
            "segment": np.asarray(segment, np.int64),
            "source": np.asarray(source),
        }
        return self._decoded[split]


def parse_sequences(path: Path) -> dict[str, tuple[int, str, list[tuple[int, int]]]]:
    """sequences.txt -> {video name: (person, action, [(first, last) 1-based inclusive, ...])}."""
    segments = {}
    for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        match = _LINE.match(line)
        if not match:
            continue
        name, person, action, _, ranges = match.groups()
        parsed = []
        for part in filter(None, (p.strip() for p in ranges.split(","))):
            bounds = _RANGE.match(part)
            if not bounds or int(bounds[1]) < 1 or int(bounds[2]) < int(bounds[1]):
                raise DatasetError(f"{path}:{number}: bad frame range {part!r} (expected first-last, 1-based)")
            parsed.append((int(bounds[1]), int(bounds[2])))
        segments[name] = (int(person), action, parsed)
    if not segments:
        raise DatasetError(f"{path}: no line like 'person01_boxing_d1  frames  1-95, 96-185'.\n{LAYOUT}")
    return segments


def decode_video(path: Path, image_size: int):
    """All frames of an AVI as gray uint8 [T, S, S] (centre square, resized), or None if unreadable."""
    capture = cv2.VideoCapture(str(path))
    frames = []
    while capture.isOpened():
        ok, frame = capture.read()
        if not ok:
            break
        gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) if frame.ndim == 3 else frame
        height, width = gray.shape
        side = min(height, width)
        top, left = (height - side) // 2, (width - side) // 2
        frames.append(gray[top : top + side, left : left + side])
    capture.release()
    if not frames or len({f.shape for f in frames}) != 1:
        return None
    resized = resize_image(np.stack(frames)[..., None], image_size)
    return resized.numpy()[..., 0]


def _to_rgb(gray):
    return tf.repeat(gray[..., None], 3, axis=-1)
