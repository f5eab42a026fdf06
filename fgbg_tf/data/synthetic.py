"""The embedded `synthetic` dataset: articulated figures over textured backgrounds.

Generated in-process and deterministic by seed (see `synthetic_render.py`), so
training, evaluation and the tests run with nothing downloaded. Every frame has
ground-truth keypoints and a foreground mask.
"""

from __future__ import annotations

import functools

import numpy as np
import tensorflow as tf

from fgbg_tf.config import DataConfig
from fgbg_tf.data.base import Shard, DatasetError, LandmarkDataset, element_seed, partner_frame, shuffled_items, with_validity
from fgbg_tf.data.synthetic_render import make_splits

# data.options and their defaults (those of synthetic_render.make_splits).
OPTIONS = {"seed": 0, "train_videos": 48, "test_videos": 16, "frames_per_video": 64}


class SyntheticDataset(LandmarkDataset):
    """Reader of the generated videos.

    `config.options` may set `seed`, `train_videos`, `test_videos` and
    `frames_per_video`. Evaluation splits: "train" (regression fit, frames of the
    training videos) and "test" (unseen videos, appearances and backgrounds).
    """

    name = "synthetic"
    has_masks = True
    is_video = True
    default_options = OPTIONS

    def __init__(self, config: DataConfig):
        super().__init__(config)
        if not 32 <= config.image_size <= 128:
            raise DatasetError(f"data.image_size: synthetic renders 32 to 128 px, got {config.image_size}")
        for name, value in self.options.items():  # before any rendering, named as the user wrote them
            low = 0 if name == "seed" else 1
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                raise DatasetError(f"data.options.{name} must be an integer >= {low}, got {value!r}")
        frames = self.options["frames_per_video"]
        if config.temporal_offset[0] > frames - 1:
            raise DatasetError(
                f"data.temporal_offset {list(config.temporal_offset)}: synthetic videos have {frames} frames "
                f"(data.options.frames_per_video), so partners can be at most {frames - 1} frames apart"
            )
        self.splits = _generate(config.image_size, tuple(sorted(self.options.items())))
        self.keypoint_names = self.splits["train"].keypoint_names

    @property
    def num_train_items(self) -> int:
        videos = self.splits["train"].frames
        return videos.shape[0] * videos.shape[1]

    def train_pairs(self, seed: int, start: int, shard: Shard | None = None) -> tf.data.Dataset:
        videos = tf.constant(self.splits["train"].frames)
        length = videos.shape[1]
        low, high = self.config.temporal_offset

        def pair(index, item):
            video, position = item // length, item % length
            partner = partner_frame(element_seed(seed, index, salt=1), position, length, low, high)
            element = {"index": index, "frame": videos[video, position], "partner": videos[video, partner]}
            return with_validity(element, "synthetic")

        return shuffled_items(self.num_train_items, seed, start, shard).map(pair, num_parallel_calls=tf.data.AUTOTUNE)

    def eval_split(self, split: str) -> tf.data.Dataset:
        if split not in self.splits:
            raise DatasetError(f"synthetic has splits {sorted(self.splits)}, not {split!r}")
        videos = self.splits[split]
        flat = lambda a: a.reshape((-1,) + a.shape[2:])
        frames = {"image": flat(videos.frames), "keypoints": flat(videos.keypoints), "mask": flat(videos.masks)}
        return tf.data.Dataset.from_tensor_slices(frames).map(lambda e: with_validity(e, f"synthetic/{split}"))


    def factorisation_split(self, split: str) -> dict:
        """Arrays for the fg/bg metrics of `evaluate`: each frame of `split` with a temporal partner.

        Returns {"image", "partner"} uint8 [N, S, S, 3], "mask" uint8 [N, S, S] (the
        frame's figure) and "background" uint8 [N, S, S, 3] (its video's scene without
        the figure). Partners are data.temporal_offset frames away, drawn with a fixed
        seed, so every evaluation of a split sees the same pairs.
        """
        if split not in self.splits:
            raise DatasetError(f"synthetic has splits {sorted(self.splits)}, not {split!r}")
        videos = self.splits[split]
        count, length = videos.frames.shape[:2]
        low, high = self.config.temporal_offset
        rng = np.random.default_rng(0)
        partners = np.empty((count, length), np.int64)
        for video in range(count):
            for t in range(length):
                near = [t + d for d in range(low, high + 1) if t + d < length]
                near += [t - d for d in range(low, high + 1) if t - d >= 0]
                partners[video, t] = near[rng.integers(len(near))] if near else t
        rows = np.repeat(np.arange(count), length)
        flat = lambda a: a.reshape((-1,) + a.shape[2:])
        return {
            "image": flat(videos.frames),
            "partner": videos.frames[rows, partners.reshape(-1)],
            "mask": flat(videos.masks),
            "background": videos.backgrounds[rows],
        }


@functools.lru_cache(maxsize=2)
def _generate(image_size: int, options: tuple):
    # Cached: evaluation and training in one process share the same arrays.
    options = dict(options)
    return make_splits(seed=options.pop("seed", 0), image_size=image_size, **options)
