"""The `faces5pt` dataset: 80x80 face crops with 5 landmarks (`../shared/data/faces5pt/README.md`).

Layout of `data_dir`:

    new_training.txt   lines "relative/path.jpg x1 x2 x3 x4 x5 y1 y2 y3 y4 y5" (10,000 faces)
    new_testing.txt    the same for the 2,995 test faces
    lfw_5590/ net_7876/ AFLW/   the JPEG crops the lists name, 80x80 pixels

Protocol: the model trains on the training list with thin-plate-spline pose
perturbation (still images: partner = frame); the landmark regressor is fitted on
split "train" (the training list) and evaluated on split "test" (MAFL-style error
normalised by the inter-ocular distance, points 1 and 2).

Misaligned annotations: in 2,350 training crops, the net_7876 files whose names start with "_" (such as
_-20_1004_0.jpg), the five points sit about 28 px above the face the crop shows (measured: a ridge regressor fitted
on VGG19 features of the other training faces puts their points 25-32 px lower, median 28.3 px, at the same scale;
docs/protocols.md). A regressor fitted with them learns a shift that no landmark can explain: the true points of
every face, as the images show them, would score 40 % on the test split, worse than the mean face. So
`data.options.misaligned_annotations` is "exclude" by default: those crops still train the model (their images are
fine), but the regression is fitted on the other 7,650 training faces; "keep" fits on all 10,000 (the list as
distributed, and every faces5pt figure before 2026-12-03).

The whole 80x80 crop is the protocol's crop, so it is resized to `image_size`
(antialiased bilinear). Coordinates follow the pixel-centre convention of the
contract (pixel i at coordinate i), so a keypoint maps as
x' = (x + 0.5) * S / 80 - 0.5 (the same for y). The dataset is small: it is decoded
once, on first use, and kept in memory.
"""

from __future__ import annotations

import fnmatch
import math
from pathlib import Path

import numpy as np
import tensorflow as tf

from fgbg_tf.config import DataConfig
from fgbg_tf.data.base import FACIAL_POINTS, Shard, DatasetError, LandmarkDataset, report_skipped, shuffled_items
from fgbg_tf.data.image_files import resize_image
from fgbg_tf.data.media import MediaError, read_image

CROP_SIZE = 80
LIST_FILES = {"train": "new_training.txt", "test": "new_testing.txt"}
# A few training points lie up to 7.5 px outside the crop (README); points further out
# than a quarter of the crop are annotation errors.
KEYPOINT_MARGIN = CROP_SIZE / 4
# The training crops whose annotations do not match the face they show (module docstring), as list-file paths.
MISALIGNED = "net_7876/_*"
OPTIONS = {"misaligned_annotations": "exclude"}
MISALIGNED_REASON = "its annotation sits about 28 px above the face (docs/protocols.md)"
LAYOUT = (
    "expected layout: <data_dir>/new_training.txt and new_testing.txt, lines "
    "'relative/path.jpg x1..x5 y1..y5', and the 80x80 JPEG crops they name (lfw_5590/, net_7876/, AFLW/)"
)


class Faces5ptDataset(LandmarkDataset):
    """Reader of the 5-landmark face crops.

    Args:
        config: `DataConfig` with `data_dir` the folder holding the two list files; `options`:
            misaligned_annotations: "exclude" (default) fits the regressor without the training crops whose
            annotations sit 28 px off their face (module docstring); "keep" fits on every training crop.

    Attributes:
        skipped: (source, reason) of every listed face left out at indexing
            (missing file, malformed line, keypoint far outside the crop).
        excluded_from_fit: (source, reason) of the training crops that train the model but not the regressor.

    Example:
        faces = Faces5ptDataset(DataConfig(name="faces5pt", data_dir="../shared/data/faces5pt", image_size=64))
    """

    name = "faces5pt"
    keypoint_names = FACIAL_POINTS
    layout = LAYOUT
    default_options = OPTIONS

    def __init__(self, config: DataConfig):
        super().__init__(config)
        self.skipped: list[tuple[str, str]] = []
        self.index = {split: self._read_list(self.root / name) for split, name in LIST_FILES.items()}
        report_skipped(self.name, self.skipped)
        policy = self.options["misaligned_annotations"]
        if policy not in ("exclude", "keep"):
            raise DatasetError(f"data.options.misaligned_annotations for faces5pt must be 'exclude' or 'keep', "
                               f"got {policy!r}")
        sources = self.index["train"][0]
        excluded = [i for i, source in enumerate(sources) if policy == "exclude"
                    and fnmatch.fnmatchcase(Path(source).relative_to(self.root).as_posix(), MISALIGNED)]
        self._fit_items = np.setdiff1d(np.arange(self.num_train_items), excluded)
        self.excluded_from_fit = [(sources[i], MISALIGNED_REASON) for i in excluded]
        self._decoded: dict[str, tuple[tf.Tensor, tf.Tensor]] = {}

    def _read_list(self, list_path: Path) -> tuple[list[str], np.ndarray]:
        if not list_path.is_file():
            raise DatasetError(f"faces5pt list file {list_path} is missing; {LAYOUT}")
        sources, keypoints = [], []
        for number, line in enumerate(list_path.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            fields = line.split()
            where = f"{list_path}:{number}"
            if len(fields) != 11:
                self.skipped.append((where, f"expected a path and 10 coordinates, got {len(fields)} fields"))
                continue
            try:
                values = [float(v) for v in fields[1:]]
            except ValueError:
                self.skipped.append((where, "coordinates are not numbers"))
                continue
            image_path = self.root / fields[0]
            points = np.array([values[:5], values[5:]], np.float64).T
            if not all(math.isfinite(v) for v in values) or np.any(points < -KEYPOINT_MARGIN) or np.any(
                points > CROP_SIZE - 1 + KEYPOINT_MARGIN
            ):
                self.skipped.append((str(image_path), f"keypoints out of range: {values}"))
                continue
            if not image_path.is_file():
                self.skipped.append((str(image_path), "image file missing"))
                continue
            sources.append(str(image_path))
            keypoints.append(points)
        scale = self.image_size / CROP_SIZE
        # Pixel-centre convention: the resize maps pixel edges 0 and 80 onto 0 and S.
        resized = (np.asarray(keypoints, np.float64).reshape(-1, 5, 2) + 0.5) * scale - 0.5
        return sources, resized.astype(np.float32)

    def _images(self, split: str) -> tuple[tf.Tensor, tf.Tensor]:
        """uint8 [N, S, S, 3] images and bool [N] validity of one split, decoded once.

        Decoded one file at a time through `read_image`, whose decoder reports corrupt JPEG data (a file with
        scrambled bytes otherwise decodes silently to wrong pixels), with the accurate IDCT that PIL and so the
        release use. A file that is missing, corrupt or not the 80x80 crop stays in place as an invalid frame and
        is reported with its reason.
        """
        if split not in self._decoded:
            sources = self.index[split][0]
            crops = np.zeros([len(sources), CROP_SIZE, CROP_SIZE, 3], np.uint8)
            valid = np.zeros([len(sources)], bool)
            failed = []
            for number, source in enumerate(sources):
                try:
                    image = read_image(source)
                except MediaError as error:
                    failed.append((source, str(error).removeprefix(f"{source}: ")))
                    continue
                if image.shape != crops.shape[1:]:
                    # Not the file the annotations describe: refuse it rather than resize it.
                    failed.append((source, f"{image.shape[1]}x{image.shape[0]} pixels, expected the 80x80 crop"))
                    continue
                crops[number], valid[number] = image, True
            report_skipped(f"{self.name}-{split}", failed, when="when decoding (kept as invalid frames)")
            # In chunks: the resize works in float32, 77 kB per 80 px crop.
            size = self.image_size
            chunks = [resize_image(crops[start : start + 1024], size) for start in range(0, len(crops), 1024)]
            images = tf.concat([tf.zeros([0, size, size, 3], tf.uint8), *chunks], 0)
            self._decoded[split] = (images, tf.constant(valid))
        return self._decoded[split]

    @property
    def num_train_items(self) -> int:
        return len(self.index["train"][0])

    def train_pairs(self, seed: int, start: int, shard: Shard | None = None) -> tf.data.Dataset:
        images, valid = self._images("train")
        sources = tf.constant(self.index["train"][0], tf.string)

        def pair(index, item):
            # Still images: the pipeline makes the appearance view by TPS-warping the frame itself.
            frame = images[item]
            return {"index": index, "frame": frame, "partner": frame, "valid": valid[item], "source": sources[item]}

        return shuffled_items(self.num_train_items, seed, start, shard).map(pair, num_parallel_calls=tf.data.AUTOTUNE)

    def eval_split(self, split: str) -> tf.data.Dataset:
        if split not in self.index:
            raise DatasetError(f"faces5pt has splits {sorted(self.index)}, not {split!r}")
        images, valid = self._images(split)
        sources, keypoints = self.index[split]
        items = np.arange(len(sources))
        if split == "train":  # the regression's fit split: without the crops whose annotations miss their face
            items = self._fit_items
            report_skipped(f"{self.name}-train", self.excluded_from_fit,
                           when="from the regression fit (data.options.misaligned_annotations=keep keeps them)")
        elements = {
            "image": tf.gather(images, items),
            "keypoints": tf.constant(keypoints[items]),
            "valid": tf.gather(valid, items),
            "source": tf.constant([sources[i] for i in items], tf.string),
        }
        return tf.data.Dataset.from_tensor_slices(elements)
