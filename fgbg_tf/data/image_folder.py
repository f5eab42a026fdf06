"""The `images` dataset: a folder of the user's own still images, no annotations needed.

    python -m fgbg_tf.train --dataset images --data-dir my_photos/ [--set data.options.framing=pad]

Every image file under `data_dir` (.jpg, .jpeg, .png, .bmp, .webp, .tif, .tiff; sub-folders included, sorted by
path) is framed to a square by `data.options.framing` ("centre_crop", the default; "pad"; "resize"; or a box
[x, y, side, side] for a static camera; see `data/media.py`), resized to `data.image_size` (antialiased) and kept
in memory, decoded once (N x S x S x 3 bytes: 100,000 images at 64 px take 1.2 GB). The pose perturbation is the
TPS warp (still images: the partner is the frame). A file that does not decode, or that the box does not fit, is
named and left out. There are no keypoints, so `evaluate` has nothing to regress; `predict` frames new images the
same way and maps landmarks back to each image's pixels. The images' original sizes (`source_sizes`) are recorded
in the run folder's sources.json (`data/sources.py`), so that `predict` can tell an image unlike every training one.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import tensorflow as tf

from fgbg_tf.config import DataConfig
from fgbg_tf.data.base import DatasetError, LandmarkDataset, Shard, report_skipped, shuffled_items
from fgbg_tf.data.media import IMAGE_SUFFIXES, MediaError, check_framing, frame_image, read_image
from fgbg_tf.data.sources import count_sizes

logger = logging.getLogger("fgbg_tf.data.image_folder")

OPTIONS = {"framing": "centre_crop"}
LAYOUT = f"expected layout: <data_dir>/ holding image files ({', '.join(IMAGE_SUFFIXES)}), in sub-folders or not"


class ImageFolderDataset(LandmarkDataset):
    """Reader of a folder of images for training (see the module docstring).

    Args:
        config: `DataConfig` with `data_dir` the folder; `options`: framing.

    Attributes:
        sources: the path of each training image, in order; `skipped`: (path, reason) of the files left out.
        source_sizes: [[width, height, count], ...] of the training images before framing.

    Example:
        photos = ImageFolderDataset(DataConfig(name="images", data_dir="my_photos", image_size=64,
                                               pose_perturbation="tps"))
    """

    name = "images"
    default_options = OPTIONS
    layout = LAYOUT
    regression_splits = ()  # no annotations: nothing to fit a regressor on

    def __init__(self, config: DataConfig):
        super().__init__(config)
        framing = self.options["framing"]
        try:
            check_framing(framing, "data.options.framing")
        except MediaError as error:
            raise DatasetError(str(error)) from None
        started = time.perf_counter()
        files = sorted(p for p in self.root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        images, sizes, self.sources, self.skipped = [], [], [], []
        for path in files:
            try:
                image = read_image(path)
                images.append(frame_image(image, self.image_size, framing, path)[0])
            except MediaError as error:
                self.skipped.append((str(path), str(error)))
                continue
            self.sources.append(str(path))
            sizes.append((image.shape[1], image.shape[0]))
        report_skipped(self.name, self.skipped)
        if not images:
            raise DatasetError(f"{self.root} holds no readable image ({len(files)} image file(s) found); {LAYOUT}")
        self.images = tf.constant(np.stack(images))
        self.source_sizes = count_sizes(sizes)
        logger.info("images: %d from %s, framed by %s, in %.1f s", len(images), self.root, framing,
                    time.perf_counter() - started)

    @property
    def num_train_items(self) -> int:
        return len(self.sources)

    def train_pairs(self, seed: int, start: int, shard: Shard | None = None) -> tf.data.Dataset:
        images, sources = self.images, tf.constant(self.sources, tf.string)

        def pair(index, item):
            frame = images[item]
            return {"index": index, "frame": frame, "partner": frame, "valid": tf.constant(True),
                    "source": sources[item]}

        return shuffled_items(self.num_train_items, seed, start, shard).map(pair, num_parallel_calls=tf.data.AUTOTUNE)

    def eval_split(self, split: str) -> tf.data.Dataset:
        raise DatasetError("the images dataset has no annotated splits to evaluate; predict its landmarks instead "
                           "(python -m fgbg_tf.predict --framing ...)")
