"""The `celeba` dataset: aligned CelebA faces through tensorflow-datasets' `celeb_a`, MAFL protocol.

`data_dir` is either tfds' manual dir for `celeb_a` (the 5 official files) or a
tfds data_dir holding a prepared `celeb_a/`; either way it also holds the MAFL
lists and the two CelebA lists this reader indexes by:

    <data_dir>/img_align_celeba.zip, list_attr_celeba.txt, identity_CelebA.txt   (manual dir only)
    <data_dir>/list_eval_partition.txt, list_landmarks_align_celeba.txt
    <data_dir>/MAFL/training.txt, MAFL/testing.txt   (one CelebA file name per line)
    or <data_dir>/celeb_a/2.1.0/...                    (a prepared tfds dataset)

From a manual dir the reader runs the `celeb_a` builder once (into
`data.options.tfds_data_dir`, or tfds' default data dir), as `tfds build` would.

tfds' examples carry no file name. Its writer orders each split's records by a
salted hash of the example key, and `celeb_a`'s key is the file name, so the
names of a split in record order are those of `list_eval_partition.txt` sorted by
`tfds.core.hashing.Hasher(split).hash_key`; construction checks this against the
landmarks of the first records.

Protocol (paper section 4.1, reference 8.2): unsupervised training on the CelebA
train partition minus the MAFL test images, TPS pose perturbation (partner =
frame); regression fit on split "train" and reported on "test" (the 1,000 MAFL
test images). `data.options.protocol` says which MAFL training images "train"
holds (docs/protocols.md): "ours" (the reader's default) all of them; "release"
those IMM's scripts/test.py fits on, which the paper follows: the first 90 % in
the landmark list's (CelebA's) order, the last 10 % being IMM's validation set,
and, as IMM, also an image whose landmarks leave the aligned image (which "ours"
leaves out of both splits). Images are resized to R = round(S / 0.8)
(160 for S = 128) square and centre-cropped to S, keypoints mapped alike in the
pixel-centre convention: x' = (x + 0.5) * R / 178 - 0.5 - (R - S) // 2 and
y' = (y + 0.5) * R / 218 - 0.5 - (R - S) // 2. (IMM resizes with align_corners;
this reader resizes antialiased half-pixel like every other crop here; both keep
image and keypoints consistent.)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow as tf

from fgbg_tf.config import DataConfig
from fgbg_tf.data.base import FACIAL_POINTS, Shard, DatasetError, LandmarkDataset, report_skipped, shuffled_items
from fgbg_tf.data.image_files import map_or_invalid
from fgbg_tf.data.media import decode_image

OPTIONS = {"tfds_data_dir": None, "protocol": "ours"}
# The share of the MAFL training list IMM holds out of the regression fit, from its end in CelebA's order.
IMM_VALIDATION_SHARE = 0.1
HEIGHT, WIDTH = 218, 178
TFDS_SPLITS = ("train", "validation", "test")
MANUAL_FILES = ("img_align_celeba.zip", "list_attr_celeba.txt", "identity_CelebA.txt")
INDEX_FILES = ("list_eval_partition.txt", "list_landmarks_align_celeba.txt")
MAFL_FILES = {"train": "MAFL/training.txt", "test": "MAFL/testing.txt"}
LANDMARK_KEYS = ("lefteye", "righteye", "nose", "leftmouth", "rightmouth")
# How many leading records per split construction checks against the landmark list.
CHECKED_RECORDS = 32
LAYOUT = (
    "expected layout: <data_dir>/ with list_eval_partition.txt, list_landmarks_align_celeba.txt, "
    "MAFL/training.txt and MAFL/testing.txt, plus either the celeb_a manual files (img_align_celeba.zip, "
    "list_attr_celeba.txt, identity_CelebA.txt) or a prepared tfds dataset in <data_dir>/celeb_a/"
)


def crop_geometry(image_size: int) -> tuple[int, int]:
    """(R, margin): the square side the aligned face is resized to and the crop's offset in it."""
    resized = int(round(image_size / 0.8))
    return resized, (resized - image_size) // 2


def crop_keypoints(keypoints: np.ndarray, image_size: int) -> np.ndarray:
    """float32 [..., 5, 2] (x, y) in the S crop from (x, y) pixels of the 178x218 aligned image."""
    resized, margin = crop_geometry(image_size)
    scale = np.array([resized / WIDTH, resized / HEIGHT])
    return ((np.asarray(keypoints, np.float64) + 0.5) * scale - 0.5 - margin).astype(np.float32)


def crop_image(image, image_size: int):
    """uint8 [S, S, 3] crop of a uint8 [218, 178, 3] aligned face: resize to R x R, centre crop S."""
    resized, margin = crop_geometry(image_size)
    square = tf.image.resize(tf.cast(image, tf.float32), [resized, resized], method="bilinear", antialias=True)
    square = tf.cast(tf.clip_by_value(tf.round(square), 0.0, 255.0), tf.uint8)
    return square[margin : margin + image_size, margin : margin + image_size]


class CelebADataset(LandmarkDataset):
    """Reader of CelebA through tfds' `celeb_a`, with the MAFL splits.

    Args:
        config: `DataConfig`; `data_dir` as in the module docstring;
            `options["tfds_data_dir"]` (default: tfds' own default) is where a
            manual dir is built into; `options["protocol"]`, "ours" (default) or
            "release", which MAFL training images the "train" split holds.

    Attributes:
        skipped: (file name, reason) of MAFL images left out of the evaluation
            splits (not in CelebA, or landmarks outside the aligned image).

    Example:
        celeba = CelebADataset(DataConfig(name="celeba", data_dir="~/celeba_manual", image_size=128))
    """

    name = "celeba"
    keypoint_names = FACIAL_POINTS
    default_options = OPTIONS
    layout = LAYOUT

    def __init__(self, config: DataConfig):
        super().__init__(config)
        for name in INDEX_FILES + tuple(MAFL_FILES.values()):
            if not (self.root / name).is_file():
                raise DatasetError(f"celeba file {self.root / name} is missing; {LAYOUT}")
        self.builder = self._prepare(self.options["tfds_data_dir"])
        partition = _read_partition(self.root / "list_eval_partition.txt")
        self.landmarks = _read_landmarks(self.root / "list_landmarks_align_celeba.txt")
        # Record order of every tfds split (module docstring).
        from tensorflow_datasets.core import hashing

        self.record_names = {
            split: sorted((n for n, p in partition.items() if p == number), key=hashing.Hasher(split).hash_key)
            for number, split in enumerate(TFDS_SPLITS)
        }
        self._check_record_order()
        self._known = set(partition)
        self.skipped: list[tuple[str, str]] = []
        self.mafl = {split: self._read_mafl(self.root / path) for split, path in MAFL_FILES.items()}
        if self.protocol == "release":
            listed = set(self.mafl["train"])
            ordered = [name for name in self.landmarks if name in listed]  # the landmark list's order, as IMM
            self.mafl["train"] = ordered[: len(ordered) - int(round(IMM_VALIDATION_SHARE * len(ordered)))]
        report_skipped(self.name, self.skipped)
        test_names = set(self.mafl["test"])
        self.train_names = [n for n in self.record_names["train"] if n not in test_names]
        self._train_bytes: tf.Tensor | None = None

    def _prepare(self, tfds_data_dir):
        import tensorflow_datasets as tfds

        if (self.root / "celeb_a").is_dir():
            builder = tfds.builder("celeb_a", data_dir=str(self.root))
            if not builder.is_prepared():
                raise DatasetError(f"{self.root / 'celeb_a'} holds no prepared celeb_a {builder.version}; {LAYOUT}")
            return builder
        missing = [name for name in MANUAL_FILES if not (self.root / name).is_file()]
        if missing:
            raise DatasetError(
                f"celeba: {self.root} has neither a prepared celeb_a/ nor the manual files {missing}; {LAYOUT}"
            )
        builder = tfds.builder("celeb_a", data_dir=tfds_data_dir)
        builder.download_and_prepare(
            download_config=tfds.download.DownloadConfig(manual_dir=str(self.root), try_download_gcs=False)
        )
        return builder

    def _records(self, split: str, skip_images: bool = True) -> tf.data.Dataset:
        import tensorflow_datasets as tfds

        decoders = {"image": tfds.decode.SkipDecoding()} if skip_images else None
        return self.builder.as_dataset(split=split, shuffle_files=False, decoders=decoders)

    def _check_record_order(self) -> None:
        for split in TFDS_SPLITS:
            names = self.record_names[split]
            records = self._records(split).take(CHECKED_RECORDS)
            for name, record in zip(names, records.as_numpy_iterator()):
                found = np.array([[record["landmarks"][f"{k}_{a}"] for a in "xy"] for k in LANDMARK_KEYS])
                if name not in self.landmarks or not np.array_equal(found, self.landmarks[name]):
                    raise DatasetError(
                        f"celeba: the prepared tfds split {split!r} is not in the record order this reader "
                        f"derives from list_eval_partition.txt (first mismatch at {name}); rebuild it from the "
                        f"manual files with this tensorflow-datasets version"
                    )

    def _read_mafl(self, path: Path) -> list[str]:
        names = []
        for name in path.read_text().split():
            landmarks = self.landmarks.get(name)
            if landmarks is None or name not in self._known:
                self.skipped.append((name, f"listed in {path} but not in CelebA's lists"))
            elif self.protocol == "ours" and (np.any(landmarks < 0) or np.any(landmarks >= [WIDTH, HEIGHT])):
                self.skipped.append((name, f"landmarks outside the aligned image: {landmarks.tolist()}"))
            else:
                names.append(name)
        return names

    @property
    def num_train_items(self) -> int:
        return len(self.train_names)

    def _decoders(self):
        """(decode, invalid): element with "encoded" JPEG bytes -> {"image", "valid"}, and its fallback."""
        size = self.image_size

        def decode(element):
            # OpenCV's decoder, whose corrupt-data warnings make the frame invalid (tf.io.decode_jpeg decodes such
            # data silently to wrong pixels), with the accurate IDCT of PIL and so of the release.
            image = tf.numpy_function(_decode_jpeg, [element["encoded"]], tf.uint8, stateful=False)
            tf.debugging.assert_equal(tf.shape(image)[:2], tf.constant([HEIGHT, WIDTH]), message="unexpected size")
            return {"image": crop_image(tf.ensure_shape(image, [HEIGHT, WIDTH, 3]), size), "valid": tf.constant(True)}

        def invalid(element):
            return {"image": tf.zeros([size, size, 3], tf.uint8), "valid": tf.constant(False)}

        return decode, invalid

    def train_pairs(self, seed: int, start: int, shard: Shard | None = None) -> tf.data.Dataset:
        if self._train_bytes is None:
            # Random access needs the split in memory: the encoded JPEGs (about 1.4 GB for CelebA), not pixels.
            keep = set(self.train_names)
            mask = np.array([n in keep for n in self.record_names["train"]])
            batches = self._records("train").map(lambda r: r["image"]).batch(4096).as_numpy_iterator()
            encoded = np.concatenate([np.zeros([0], object)] + list(batches))
            self._train_bytes = tf.constant(encoded[mask])
        encoded, names = self._train_bytes, tf.constant(self.train_names)
        decode, invalid = self._decoders()

        def pick(index, item):
            return {"index": index, "encoded": encoded[item], "source": names[item]}

        def frame(element):
            decoded = decode(element)
            # Still images: the pipeline makes the appearance view by TPS-warping the frame itself.
            return {"index": element["index"], "frame": decoded["image"], "partner": decoded["image"],
                    "valid": decoded["valid"], "source": element["source"]}

        def broken(element):
            zeros = invalid(element)["image"]
            return {"index": element["index"], "frame": zeros, "partner": zeros, "valid": tf.constant(False),
                    "source": element["source"]}

        items = shuffled_items(self.num_train_items, seed, start, shard).map(pick, num_parallel_calls=tf.data.AUTOTUNE)
        return map_or_invalid(items, frame, broken)

    def eval_split(self, split: str) -> tf.data.Dataset:
        if split not in self.mafl:
            raise DatasetError(f"celeba has splits {sorted(self.mafl)}, not {split!r}")
        wanted = set(self.mafl[split])
        parts = []
        for tfds_split in TFDS_SPLITS:
            names = self.record_names[tfds_split]
            keep = [n in wanted for n in names]
            if not any(keep):
                continue
            points = np.zeros([len(names), 5, 2], np.float32)
            listed = np.stack([self.landmarks[n] for n, k in zip(names, keep) if k])
            points[keep] = crop_keypoints(listed, self.image_size)
            labels = tf.data.Dataset.from_tensor_slices({"source": names, "keep": keep, "keypoints": points})
            records = self._records(tfds_split).map(lambda r: r["image"])
            joined = tf.data.Dataset.zip(records, labels).filter(lambda _, label: label["keep"])
            parts.append(joined.map(lambda encoded, label: {"encoded": encoded, **label}))
        if not parts:
            return tf.data.Dataset.from_tensor_slices(
                {"image": tf.zeros([0, self.image_size, self.image_size, 3], tf.uint8),
                 "keypoints": tf.zeros([0, 5, 2]), "valid": tf.zeros([0], tf.bool), "source": tf.zeros([0], tf.string)}
            )
        frames = parts[0]
        for part in parts[1:]:
            frames = frames.concatenate(part)
        decode, invalid = self._decoders()
        keep_labels = lambda fn: lambda e: {**fn(e), "keypoints": e["keypoints"], "source": e["source"]}
        return map_or_invalid(frames, keep_labels(decode), keep_labels(invalid))


def _decode_jpeg(data: bytes) -> np.ndarray:
    return decode_image(np.frombuffer(data, np.uint8), "a CelebA image record")


def _read_partition(path: Path) -> dict[str, int]:
    partition = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2 or fields[1] not in ("0", "1", "2"):
            raise DatasetError(f"{path}:{number}: expected '<name>.jpg <0|1|2>', got {line!r}")
        partition[fields[0]] = int(fields[1])
    return partition


def _read_landmarks(path: Path) -> dict[str, np.ndarray]:
    """name -> int [5, 2] (x, y); the file has a count line and a header line first."""
    landmarks = {}
    for number, line in enumerate(path.read_text().splitlines()[2:], start=3):
        fields = line.split()
        if not fields:
            continue
        try:
            landmarks[fields[0]] = np.array([int(v) for v in fields[1:]]).reshape(5, 2)
        except ValueError:
            raise DatasetError(f"{path}:{number}: expected a name and 10 integers, got {line!r}") from None
    return landmarks
