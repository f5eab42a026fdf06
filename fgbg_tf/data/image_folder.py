"""The `images` dataset: a folder of the user's own still images, no annotations needed.

    python -m fgbg_tf.train --dataset images --data-dir my_photos/ [--set data.options.framing=pad]

Every image file under `data_dir` (.jpg, .jpeg, .png, .bmp, .webp, .tif, .tiff; sub-folders included, sorted by
path) is framed to a square by `data.options.framing` ("centre_crop", the default; "pad"; "resize"; or a box
[x, y, side, side] for a static camera; see `data/media.py`), resized to `data.image_size` (antialiased) and kept
in memory, decoded once (N x S x S x 3 bytes: 100,000 images at 64 px take 1.2 GB). The pose perturbation is the
TPS warp (still images: the partner is the frame). A file that does not decode, or that the box does not fit, is
named and left out. `predict` frames new images the same way and maps landmarks back to each image's pixels. The
training images' original sizes (`source_sizes`) are recorded in the run folder's sources.json (`data/sources.py`),
so that `predict` can tell an image unlike every training one.

Some images are held out for `evaluate` and never trained on: `data.options.test_images` is a fraction of the
images (0.2 in configs/images.yaml, as the `videos` dataset's test_videos; at least one image stays in training), chosen by a hash
of each image's path relative to `data_dir` (the same split on every machine, and adding an image moves no other;
`data/held_out.py`), or a list of those relative paths; 0 trains on every image and leaves `evaluate` nothing to
report on. Held-out images are decoded only when `evaluate` asks for them.

Annotations are optional and only `evaluate` reads them (`fgbg_tf/data/annotations.py` has the formats):
`data.options.keypoints`, a CSV of points in the original images' pixels, one row an image, its `frame` cell 0 or
empty (`cats/tom.jpg,,12,40,...`), makes the regression protocol apply (fit on the annotated training images, report
on the annotated held-out ones; error by the image side, and with `data.options.normalise_by: [a, b]` by the
distance between the true points a and b, as MAFL's inter-ocular distance). The points are mapped through each
image's framing box into the model's input, as the videos reader maps them; a point the box leaves out keeps its
coordinates outside the input, and a missing one (an empty or NaN pair) is left out of the fit and the score.
`data.options.masks`, a folder of one mask per annotated image (`cats/tom.png` for `cats/tom.jpg`), adds Figure 2b's
containment. Both are checked when the reader starts, before any image is decoded, so that a bad file stops a run
before any work. Without keypoints, `evaluate` reports what it can on the held-out images
(`fgbg_tf/evaluation/unannotated.py`).
"""

from __future__ import annotations

import logging
import time

import numpy as np
import tensorflow as tf

from fgbg_tf.config import DataConfig
from fgbg_tf.data.annotations import AnnotatedFrames, adopt_annotations, read_annotations
from fgbg_tf.data.base import DatasetError, LandmarkDataset, Shard, report_skipped, shuffled_items
from fgbg_tf.data.held_out import held_out_names
from fgbg_tf.data.media import IMAGE_SUFFIXES, MediaError, check_framing, frame_image, read_image
from fgbg_tf.data.sources import count_sizes

logger = logging.getLogger("fgbg_tf.data.image_folder")

# test_images is 0 when a run's config.yaml does not name it: runs from before the split trained on every image, and
# must resume and be evaluated on the same images. New runs take 0.2 from configs/images.yaml, which records it.
OPTIONS = {"framing": "centre_crop", "test_images": 0, "keypoints": None, "masks": None, "normalise_by": None}
LAYOUT = f"expected layout: <data_dir>/ holding image files ({', '.join(IMAGE_SUFFIXES)}), in sub-folders or not"


class ImageFolderDataset(LandmarkDataset):
    """Reader of a folder of images for training (see the module docstring).

    Args:
        config: `DataConfig` with `data_dir` the folder; `options`: framing, test_images, and for `evaluate`
            keypoints, masks, normalise_by.

    Attributes:
        names: {"train", "test"}: the images of each split, as paths relative to data_dir.
        sources: the path of each training image, in order; `skipped`: (path, reason) of the files left out.
        images: uint8 [N, S, S, 3], the framed training images.
        source_sizes: [[width, height, count], ...] of the training images before framing.
        annotations: the `UserAnnotations` of data.options.keypoints (`data/annotations.py`), or None.

    Example:
        photos = ImageFolderDataset(DataConfig(name="images", data_dir="my_photos", image_size=64,
                                               pose_perturbation="tps"))
    """

    name = "images"
    default_options = OPTIONS
    layout = LAYOUT
    regression_splits = ()  # without data.options.keypoints: nothing to fit a regressor on
    partial_keypoints = True  # a user's CSV may leave points out (NaN): images are kept, the points ignored

    def __init__(self, config: DataConfig):
        super().__init__(config)
        self.framing = self.options["framing"]
        try:
            check_framing(self.framing, "data.options.framing")
        except MediaError as error:
            raise DatasetError(str(error)) from None
        started = time.perf_counter()
        found = sorted(p.relative_to(self.root).as_posix() for p in self.root.rglob("*")
                       if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not found:
            raise DatasetError(f"{self.root} holds no readable image (no image file found); {LAYOUT}")
        held_out = held_out_names(found, self.options["test_images"], "data.options.test_images", "images")
        self.names = {"train": [n for n in found if n not in held_out], "test": [n for n in found if n in held_out]}
        self.annotations = read_annotations(self.root, self.options, self.names, still_images=True)
        adopt_annotations(self)
        images, sizes, self.sources, self.skipped = [], [], [], []
        for name in self.names["train"]:
            try:
                framed, _, size = self._read(name)
            except MediaError as error:
                self.skipped.append((str(self.root / name), str(error)))
                continue
            images.append(framed)
            sizes.append(size)
            self.sources.append(str(self.root / name))
        report_skipped(self.name, self.skipped)
        if not images:
            raise DatasetError(f"{self.root} holds no readable training image ({len(self.names['train'])} training "
                               f"image file(s) found, each named above with its reason); {LAYOUT}")
        if self.names["test"]:
            held = self.names["test"]
            logger.info("images: %d held out for testing (data.options.test_images), e.g. %s", len(held),
                        ", ".join(held[:5]))
        self.images = tf.constant(np.stack(images))
        self.source_sizes = count_sizes(sizes)
        logger.info("images: %d from %s, framed by %s, in %.1f s", len(images), self.root, self.framing,
                    time.perf_counter() - started)

    def _read(self, name: str) -> tuple[np.ndarray, tuple[int, int, int, int], tuple[int, int]]:
        """(the framed S x S image, its framing box, the original (width, height)) of image `name`; MediaError when
        it does not decode or the framing box does not fit it."""
        path = self.root / name
        image = read_image(path)
        framed, box = frame_image(image, self.image_size, self.framing, path)
        return framed, box, (image.shape[1], image.shape[0])

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

    def held_out_images(self, max_images: int | None = None) -> tuple[list[str], np.ndarray]:
        """(names, uint8 [N, S, S, 3]) of the first `max_images` (default: all) held-out images that decode, for
        `evaluate` without annotations; the others are named in a warning."""
        names, images, skipped = [], [], []
        for name in self.names["test"]:
            if max_images is not None and len(names) == max_images:
                break
            try:
                images.append(self._read(name)[0])
            except MediaError as error:
                skipped.append((str(self.root / name), str(error)))
                continue
            names.append(name)
        report_skipped(self.name, skipped, when="when decoding")
        if not images:
            raise DatasetError(f"no readable held-out image under {self.root} (data.options.test_images: "
                               f"{self.options['test_images']!r}); hold some out to evaluate on")
        return names, np.stack(images)

    def eval_split(self, split: str) -> tf.data.Dataset:
        """The annotated images of the split: {"image", "keypoints" (NaN where missing), "valid", "source" (and
        "mask")}, keypoints and masks framed as the images are; an annotated image that does not decode is kept with
        "valid" False, for evaluate to leave out and name."""
        frames = AnnotatedFrames(self, split, self.names)
        for name in self.names[split]:
            if (name, 0) not in self.annotations.points:
                continue
            try:
                framed, box, (width, height) = self._read(name)
            except MediaError:  # kept, marked invalid: evaluate leaves it out and names it
                frames.add(name, 0, name)
                continue
            frames.add(name, 0, name, framed, box, (height, width))
        return frames.dataset(f"images split {split!r}: no annotated image")
