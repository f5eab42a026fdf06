"""The contract between dataset readers, the training pipeline and evaluation.

A reader turns a dataset, as its owners distribute it, into two kinds of streams:

* `train_pairs(seed, start, shard)`: an endless stream of {"index", "frame", "partner"}
  where "frame" is the crop x and "partner" is the crop the pose-perturbed view is
  made from (another frame of the same video, cropped with x's box, for video
  datasets; x itself for still-image datasets). Element i of the stream is the
  (start + i)-th of the run and a pure function of (seed, start + i), so a run
  resumed at step s re-creates exactly the data it would have seen. With a
  `Shard`, only the elements of one input pipeline (one worker of a cluster) are
  read and decoded; the others are skipped before any file is touched.
* `eval_split(name)`: finite, ordered frames with their annotations, for the
  regression protocols of the evaluation.

All images are uint8 [S, S, 3] with S = `DataConfig.image_size`; keypoints are
float32 [J, 2] (x, y) in pixels of that crop, pixel i at coordinate i.

Bad input is never dropped silently: an element whose file cannot be decoded
keeps its place in the stream with "valid" = False, zero images and its file in
"source" (a string). Training gives it zero loss weight and reports it per epoch;
evaluation leaves it out and reports it. Readers that cannot fail may omit both
keys (`with_validity` adds them).
"""

from __future__ import annotations

import abc
import dataclasses
import hashlib
import logging
import tempfile
from pathlib import Path

import tensorflow as tf

from fgbg_tf.config import BENCHMARK_PROTOCOLS, DataConfig


# The five facial keypoints of MAFL / AFLW / LFW-style annotations (celeba, faces5pt), in their files' order.
FACIAL_POINTS = ("left_eye", "right_eye", "nose", "left_mouth", "right_mouth")


log = logging.getLogger(__name__)


class DatasetError(RuntimeError):
    """A dataset is missing, malformed, or cannot serve what was asked."""


@dataclasses.dataclass(frozen=True)
class Shard:
    """The part of the element stream one input pipeline reads.

    Element `index` belongs to the shard when `first <= index % period < first + count`:
    with `period` the elements of one global step and [first, first + count) a worker's
    replicas' slice of it, every worker reads its own elements and no element is read twice.
    """

    period: int
    first: int
    count: int

    def __post_init__(self):
        if not (self.period >= 1 and self.count >= 1 and 0 <= self.first and self.first + self.count <= self.period):
            raise ValueError(f"a shard needs 0 <= first < first + count <= period, got {self}")


class LandmarkDataset(abc.ABC):
    """Base class of every dataset reader.

    Args:
        config: the run's `DataConfig` (image size, data_dir, options, ...).

    Subclasses set the class attributes and implement `num_train_items`,
    `train_pairs` and `eval_split`.
    """

    name: str = ""
    keypoint_names: tuple[str, ...] = ()
    # Whether eval frames carry a ground-truth foreground "mask" (uint8 [S, S]).
    has_masks: bool = False
    # Whether an eval frame may miss single keypoints (NaN; scored without them) instead of needing every one.
    partial_keypoints: bool = False
    # Indices of two keypoints whose distance also normalises the error (a user's data.options.normalise_by).
    normalise_pair: tuple[int, int] | None = None
    # Whether train pairs come from other frames of a video (T_temp is possible).
    is_video: bool = False
    # Split names of the regression protocol: fit on the first, report on the second; () without annotations.
    regression_splits: tuple[str, ...] = ("train", "test")
    # The data.options this reader takes, with their defaults; `self.options` is them updated with the config's.
    default_options: dict = {}
    # [[width, height, count], ...]: the original sizes of the training images or videos of the readers that frame the
    # user's own files (images, videos), for training to record (`data/sources.py`); None for the others.
    source_sizes: list[list[int]] | None = None
    # What data.data_dir must hold, quoted when it is missing; "" for readers that read no folder (`self.root`).
    layout: str = ""
    # Which benchmark protocol the eval splits follow (docs/protocols.md): "ours", or "release" where the reader's
    # default_options name a "protocol" and data.options sets it. Training never depends on it.
    protocol: str = "ours"

    def __init__(self, config: DataConfig):
        self.config = config
        # (source, reason) of annotated training frames that the regressor is not fitted on (the model still trains
        # on them); the evaluation report counts them.
        self.excluded_from_fit: list[tuple[str, str]] = []
        self.image_size = config.image_size
        self.options = check_options(self.name, config.options, self.default_options)
        if "protocol" in self.options:
            self.protocol = self.options["protocol"]
            if self.protocol not in BENCHMARK_PROTOCOLS:
                raise DatasetError(f"data.options.protocol for {self.name} must be one of {BENCHMARK_PROTOCOLS}, "
                                   f"got {self.protocol!r}")
        self.root = None
        if not self.layout and config.data_dir:
            raise DatasetError(f"{self.name} reads no folder, so data.data_dir (--data-dir) {config.data_dir} would be "
                               "ignored; drop it, or name the dataset that lives there (--dataset)")
        if self.layout:
            if not config.data_dir:
                raise DatasetError(f"{self.name} needs data.data_dir (--data-dir); {self.layout}")
            self.root = Path(config.data_dir).expanduser()
            if not self.root.is_dir():
                raise DatasetError(f"{self.name} data_dir: the folder {self.root} does not exist; {self.layout}")

    @property
    @abc.abstractmethod
    def num_train_items(self) -> int:
        """How many distinct training frames one epoch visits."""

    @abc.abstractmethod
    def train_pairs(self, seed: int, start: int, shard: Shard | None = None) -> tf.data.Dataset:
        """The endless, deterministic stream described in the module docstring (only `shard`'s part of it)."""

    @abc.abstractmethod
    def eval_split(self, split: str) -> tf.data.Dataset:
        """Ordered {"image", "keypoints"(, "mask")} elements of one evaluation split."""

    def eval_splits(self) -> tuple[str, ...]:
        return self.regression_splits


def report_skipped(dataset: str, skipped: list[tuple[str, str]], when: str = "at index time") -> Path | None:
    """Logs how many items a reader left out (`when`: at index time, or when decoding) and the first few; writes every one, with its reason, to a
    file whose path the warning names (returned; None when nothing was left out).

    The file is named by its content (`<temp>/fgbg_tf-left-out/<dataset>-<digest>.txt`), so the same data indexed
    again by train, evaluate and export writes the same file instead of a new one each time.
    """
    if not skipped:
        return None
    text = "".join(f"{source}\t{reason}\n" for source, reason in skipped)
    folder = Path(tempfile.gettempdir()) / "fgbg_tf-left-out"
    folder.mkdir(exist_ok=True)
    path = folder / f"{dataset}-{hashlib.sha256(text.encode()).hexdigest()[:16]}.txt"
    path.write_text(text)
    first = "; ".join(f"{source} ({reason})" for source, reason in skipped[:5])
    log.warning("%s: %d items (frames, segments or videos) left out %s, e.g. %s; all of them: %s",
                dataset, len(skipped), when, first, path)
    return path


def check_options(dataset: str, options: dict, known: dict) -> dict:
    """`known` (name -> default) updated with `options`; unknown names raise DatasetError."""
    unknown = sorted(set(options) - set(known))
    if unknown and not known:
        raise DatasetError(f"{dataset} takes no data.options, got {unknown}")
    if unknown:
        raise DatasetError(f"unknown data.options {unknown} for {dataset}; known (with defaults): {known}")
    return {**known, **options}


def shuffled_items(num_items: int, seed: int, start: int, shard: Shard | None = None) -> tf.data.Dataset:
    """Endless stream of (index, item): epoch after epoch of stateless shuffles of range(num_items).

    `index` counts elements from the start of the run; the stream begins at `start`
    so that a resumed run skips nothing and repeats nothing. With `shard`, only that
    shard's indices are kept (the same items at the same indices as without it).
    """
    if num_items <= 0:
        raise DatasetError("the training split is empty")
    first_epoch, offset = divmod(start, num_items)

    def epoch(e):
        order = tf.random.experimental.stateless_shuffle(
            tf.range(num_items, dtype=tf.int64), seed=tf.stack([tf.cast(seed, tf.int64), e])
        )
        return tf.data.Dataset.from_tensor_slices(order)

    items = tf.data.Dataset.range(first_epoch, 2**62).flat_map(epoch).skip(offset)
    indices = tf.data.Dataset.range(start, 2**62)
    stream = tf.data.Dataset.zip((indices, items))
    if shard is None:
        return stream

    def mine(index, item):
        position = index % shard.period
        return (position >= shard.first) & (position < shard.first + shard.count)

    return stream.filter(mine)


def element_seed(seed: int, index, salt: int):
    """A stateless-RNG seed [2] for one stream element and one use (`salt`)."""
    index = tf.cast(index, tf.int64)
    return tf.stack([tf.cast(seed, tf.int64) * 1_000_003 + salt, index])


def partner_frame(seed, position, length, low: int, high: int):
    """Picks a temporal partner for frame `position` of a video of `length` frames.

    The offset is uniform over every frame `low`..`high` steps away that exists,
    forwards or backwards (paper section 3.2: 3 to 60 timesteps apart), so frames
    near either end of a video still get partners.
    """
    position = tf.cast(position, tf.int64)
    length = tf.cast(length, tf.int64)
    low, high = tf.constant(low, tf.int64), tf.constant(high, tf.int64)
    forward = tf.maximum(tf.minimum(high, length - 1 - position) - low + 1, 0)
    backward = tf.maximum(tf.minimum(high, position) - low + 1, 0)
    choices = forward + backward
    tf.debugging.assert_positive(
        choices, message=f"a video is shorter than the minimum temporal offset {low} + 1 frames"
    )
    pick = tf.random.stateless_uniform([], seed, minval=0, maxval=tf.int64.max, dtype=tf.int64) % choices
    return tf.where(pick < forward, position + low + pick, position - low - (pick - forward))


def with_validity(element: dict, source: str) -> dict:
    """Adds "valid" = True and a constant "source" to an element that cannot fail to decode."""
    return {**element, "valid": tf.constant(True), "source": tf.constant(source)}
