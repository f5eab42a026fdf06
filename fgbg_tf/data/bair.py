"""The `bair` dataset: BAIR robot pushing (64x64 clips of 30 frames) through tfds' `bair_robot_pushing_small`.

`data_dir` is either the folder holding the file as Berkeley distributes it, or a
tfds data_dir where the dataset is already prepared in the array_record format:

    <data_dir>/bair_robot_pushing_dataset_v0.tar                      (30 GiB; tfds' manual download)
    or <data_dir>/bair_robot_pushing_small/2.0.0/*.array_record-*      (prepared, e.g. by this reader)

From the tar, the reader runs tfds' builder once with file_format="array_record"
into `data.options.tfds_data_dir` (default `<data_dir>/tfds`), as
`tfds build bair_robot_pushing_small --file_format=array_record --manual_dir=<data_dir>`
would; tfds first extracts the tar into `<tfds_data_dir>/downloads/extracted`
(another 30 GiB, which may be deleted once the build is done).

Why array_record: a train element must be a pure function of (seed, run position)
and frames are drawn uniformly from all 1.3 M frames (43,264 clips x 30), so the
reader needs random access, and the encoded frames are too large to hold in
memory. tfds' default tfrecord shards read only sequentially; ArrayRecord shards
are indexed by record (one clip). The reader fetches a clip's serialized example
by index through `builder.as_data_source` (Python, inside `tf.numpy_function`) and
decodes in-graph only the PNG frames it needs. A tfds data_dir prepared in the
tfrecord format is refused with instructions rather than read without that guarantee.

Protocol (paper Appendix E, video prediction): training draws a frame uniformly
from the tfds "train" split and its partner from the same clip, `temporal_offset`
frames away (at most 29). The camera is "image_aux1", the view the video
prediction benchmarks use (SVG's convert_bair.py, SAVP, tensor2tensor);
`data.options.camera: image_main` selects the other one. Frames are 64x64 and are
resized (antialiased) only when `image_size` asks for another size.

BAIR has no landmark annotations: eval splits "train" and "test" list every frame
of the tfds split in record order, with keypoints float32 [0, 2] and the extras
"sequence" (clip index in the split) and "time" (frame index in the clip) for
video-prediction evaluation. Landmark regression does not apply to this dataset;
`regression_splits` is kept only so the evaluation interface is uniform.
"""

from __future__ import annotations

from pathlib import Path

import tensorflow as tf

from fgbg_tf.config import DataConfig
from fgbg_tf.data.base import Shard, DatasetError, LandmarkDataset, element_seed, partner_frame, shuffled_items
from fgbg_tf.data.image_files import map_or_invalid, resize_image

OPTIONS = {"tfds_data_dir": None, "camera": "image_aux1"}
CAMERAS = ("image_aux1", "image_main")
TFDS_NAME = "bair_robot_pushing_small"
TAR_NAME = "bair_robot_pushing_dataset_v0.tar"
FRAMES = 30
SIZE = 64
LAYOUT = (
    f"expected layout: <data_dir>/{TAR_NAME} (as distributed at "
    f"http://rail.eecs.berkeley.edu/datasets/{TAR_NAME}), or a tfds data_dir holding "
    f"<data_dir>/{TFDS_NAME}/2.0.0/ prepared with file_format=array_record"
)


class BAIRDataset(LandmarkDataset):
    """Reader of the BAIR robot pushing clips through tfds, with random access by (clip, frame).

    Args:
        config: `DataConfig`; `data_dir` as in the module docstring;
            `options["tfds_data_dir"]` (default `<data_dir>/tfds`): where the tar is
            built into; `options["camera"]` (default "image_aux1"): "image_aux1" or "image_main".

    Attributes:
        builder: the prepared tfds builder.
        num_sequences: {"train": clips, "test": clips} of the tfds splits.
        skipped: always empty (no annotations to be missing); kept for a uniform interface.

    Example:
        bair = BAIRDataset(DataConfig(name="bair", data_dir="~/bair", image_size=64, temporal_offset=(3, 29)))
    """

    name = "bair"
    is_video = True
    default_options = OPTIONS
    layout = LAYOUT

    def __init__(self, config: DataConfig):
        super().__init__(config)
        options = self.options
        if options["camera"] not in CAMERAS:
            raise DatasetError(
                f"data.options.camera for bair must be one of {list(CAMERAS)}, got {options['camera']!r}"
            )
        self.camera = options["camera"]
        low = config.temporal_offset[0]
        if low > FRAMES - 1:
            raise DatasetError(
                f"data.temporal_offset {list(config.temporal_offset)}: BAIR clips have {FRAMES} frames, "
                f"so partners can be at most {FRAMES - 1} frames apart"
            )
        self.builder = self._prepare(options["tfds_data_dir"])
        self._sources = {split: self._source(split) for split in ("train", "test")}
        self.num_sequences = {split: len(source) for split, source in self._sources.items()}
        self.skipped: list[tuple[str, str]] = []

    def _prepare(self, tfds_data_dir):
        import tensorflow_datasets as tfds

        if (self.root / TFDS_NAME).is_dir():
            builder = tfds.builder(TFDS_NAME, data_dir=str(self.root))
            if not builder.is_prepared():
                raise DatasetError(f"{self.root / TFDS_NAME} holds no prepared {TFDS_NAME} {builder.version}; {LAYOUT}")
            return self._checked(builder)
        if not (self.root / TAR_NAME).is_file():
            raise DatasetError(f"bair: {self.root} has neither {TAR_NAME} nor a prepared {TFDS_NAME}/; {LAYOUT}")
        target = Path(tfds_data_dir).expanduser() if tfds_data_dir else self.root / "tfds"
        builder = tfds.builder(TFDS_NAME, data_dir=str(target), file_format="array_record")
        # download_and_prepare would skip a dataset already prepared there in another format.
        if builder.is_prepared():
            return self._checked(builder)
        builder.download_and_prepare(
            download_config=tfds.download.DownloadConfig(manual_dir=str(self.root), try_download_gcs=False)
        )
        return builder

    @staticmethod
    def _checked(builder):
        from tensorflow_datasets.core import file_adapters

        formats = builder.info.available_file_formats() & file_adapters.FileFormat.with_random_access()
        if not formats:
            raise DatasetError(
                f"bair: {builder.data_dir} is prepared as {builder.info.file_format.value}, which has no random "
                f"access; this reader needs file_format=array_record. Point --data-dir at the folder holding "
                f"{TAR_NAME} (with data.options.tfds_data_dir set to a fresh folder) to build that, or run "
                f"`tfds build {TFDS_NAME} --file_format=array_record --manual_dir=<folder with the tar> "
                f"--data_dir=<fresh folder>`"
            )
        return builder

    def _source(self, split: str):
        import tensorflow_datasets as tfds

        missing = [str(path) for path in self.builder.info.splits[split].filepaths if not path.exists()]
        if missing:
            raise DatasetError(f"bair: shard files of the prepared {split!r} split are missing: {missing}; {LAYOUT}")
        return self.builder.as_data_source(split, deserialize_method=tfds.decode.DeserializeMethod.RAW_BYTES)

    @property
    def num_train_items(self) -> int:
        return self.num_sequences["train"] * FRAMES

    def _read_frames(self, split: str, sequence, times):
        """uint8 [len(times), S, S, 3]: frames `times` of clip `sequence`; raises in-graph on a bad record or PNG."""
        source = self._sources[split]
        serialized = tf.numpy_function(lambda i: source[int(i)], [sequence], tf.string, stateful=False)
        serialized = tf.ensure_shape(serialized, [])
        clip = tf.io.parse_single_example(serialized, {self.camera: tf.io.FixedLenFeature([FRAMES], tf.string)})

        size = self.image_size

        def decode(time):
            image = tf.io.decode_png(clip[self.camera][time], channels=3)
            tf.debugging.assert_equal(tf.shape(image)[:2], tf.constant([SIZE, SIZE]), message="unexpected frame size")
            return resize_image(tf.ensure_shape(image, [SIZE, SIZE, 3]), size)

        return tf.map_fn(decode, times, fn_output_signature=tf.TensorSpec([size, size, 3], tf.uint8))

    @staticmethod
    def _source_name(split: str, sequence, time):
        """'bair_robot_pushing_small/<split>/sequence_000012/frame_05'; `time` may be a scalar or a vector."""
        return tf.strings.join([
            f"{TFDS_NAME}/{split}/sequence_", tf.strings.as_string(sequence, width=6, fill="0"),
            "/frame_", tf.strings.as_string(time, width=2, fill="0"),
        ])

    def train_pairs(self, seed: int, start: int, shard: Shard | None = None) -> tf.data.Dataset:
        low, high = self.config.temporal_offset
        size = self.image_size

        def pick(index, item):
            sequence, position = item // FRAMES, item % FRAMES
            partner = partner_frame(element_seed(seed, index, salt=1), position, FRAMES, low, high)
            return {"index": index, "sequence": sequence, "times": tf.stack([position, partner]),
                    "source": self._source_name("train", sequence, position)}

        def pair(element):
            frames = self._read_frames("train", element["sequence"], element["times"])
            return {"index": element["index"], "frame": frames[0], "partner": frames[1],
                    "valid": tf.constant(True), "source": element["source"]}

        def broken(element):
            zeros = tf.zeros([size, size, 3], tf.uint8)
            return {"index": element["index"], "frame": zeros, "partner": zeros,
                    "valid": tf.constant(False), "source": element["source"]}

        items = shuffled_items(self.num_train_items, seed, start, shard).map(pick, num_parallel_calls=tf.data.AUTOTUNE)
        return map_or_invalid(items, pair, broken)

    def eval_split(self, split: str) -> tf.data.Dataset:
        if split not in self._sources:
            raise DatasetError(f"bair has eval splits {sorted(self._sources)}, not {split!r}")
        size = self.image_size
        times = tf.range(FRAMES, dtype=tf.int64)

        def clip(sequence):
            return {"sequence": sequence, "time": times, "source": self._source_name(split, sequence, times)}

        def decoded(element):
            images = self._read_frames(split, element["sequence"], element["time"])
            return {**element, "image": images, "valid": tf.ones([FRAMES], tf.bool)}

        def broken(element):
            zeros = tf.zeros([FRAMES, size, size, 3], tf.uint8)
            return {**element, "image": zeros, "valid": tf.zeros([FRAMES], tf.bool)}

        def frames(element):
            return {"image": element["image"], "valid": element["valid"], "source": element["source"],
                    "sequence": tf.fill([FRAMES], element["sequence"]), "time": element["time"]}

        def no_keypoints(element):
            return {**element, "keypoints": tf.zeros([0, 2], tf.float32)}

        clips = tf.data.Dataset.range(self.num_sequences[split]).map(clip)
        # One read and decode per clip, then its frames one by one; a bad clip invalidates its 30 frames.
        # Keypoints are added after `unbatch`: unbatching a [30, 0, 2] component crashes TF 2.21 (segfault).
        frames_of_clips = map_or_invalid(clips, decoded, broken).map(frames)
        return frames_of_clips.unbatch().map(no_keypoints)
