"""tensorflow-datasets builders for BBC Pose, Human3.6M and KTH, read from a manual_dir.

tensorflow-datasets has no builder for these three, so these provide them: each
prepares the readers' processed eval frames (crops resized to the config's
image size, keypoints in crop pixels, and the dataset's extras) of every split
into the tfds cache, keyed by video and position so that tfds users can form
temporal pairs. Frames that fail to decode are left out and logged.

    tfds build --imports fgbg_tf.data.tfds_builders fgbg_bbc_pose --manual_dir /data/bbcpose
    ds = tfds.load("fgbg_bbc_pose/128", split="test")

The readers (`bbc.py`, `h36m.py`, `kth.py`) remain the training path; these
builders are the alternative for users of the tfds cache.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow_datasets as tfds

from fgbg_tf.config import DataConfig
from fgbg_tf.data import bbc, h36m, kth
from fgbg_tf.data.base import report_skipped


@dataclasses.dataclass
class CropsConfig(tfds.core.BuilderConfig):
    """Which crops to prepare: `image_size` pixels a side; `options` are the reader's data.options."""

    image_size: int = 128
    options: dict = dataclasses.field(default_factory=dict)


# The shared base is no dataset of its own: keep it out of tfds' registry of names.
with tfds.core.registered.skip_registration():

    class _FramesBuilder(tfds.core.GeneratorBasedBuilder):
        """Shared generator: one example per valid eval frame of each of the reader's splits."""

        VERSION = tfds.core.Version("1.0.0")
        RELEASE_NOTES = {"1.0.0": "Crops and keypoints as the fgbg_tf readers produce them."}
        BUILDER_CONFIGS = [CropsConfig(name="128", image_size=128), CropsConfig(name="64", image_size=64)]
        reader_name = ""
        reader_class = None
        splits = ("train", "test")

        def _extra_features(self, size: int) -> dict:
            return {}

        def _info(self) -> tfds.core.DatasetInfo:
            size = self.builder_config.image_size
            joints = len(self.reader_class.keypoint_names)
            features = {
                "image": tfds.features.Image(shape=(size, size, 3)),
                "keypoints": tfds.features.Tensor(shape=(joints, 2), dtype=np.float32),
                "video": np.int64,
                "position": np.int64,
                "source": tfds.features.Text(),
                **self._extra_features(size),
            }
            return self.dataset_info_from_configs(features=tfds.features.FeaturesDict(features))

        def _split_generators(self, dl_manager):
            config = DataConfig(
                name=self.reader_name,
                data_dir=str(dl_manager.manual_dir),
                image_size=self.builder_config.image_size,
                options=dict(self.builder_config.options),
            )
            reader = self.reader_class(config)
            return {split: self._generate_examples(reader, split) for split in self.splits}

        def _generate_examples(self, reader, split):
            extras = self._extra_features(self.builder_config.image_size)
            failed = []
            for element in reader.eval_split(split).as_numpy_iterator():
                source = element["source"].decode()
                if not element["valid"]:
                    failed.append(source)
                    continue
                example = {key: element[key] for key in ("image", "keypoints", "video", "position")}
                # An extra the dataset lacks for this split (Human3.6M without mask files) is zeros.
                for key, feature in extras.items():
                    example[key] = element[key] if key in element else np.zeros(feature.shape, feature.np_dtype)
                example["source"] = source
                yield f"{element['video']}/{element['position']}", example
            report_skipped(f"{self.name}-{split}", [(source, "could not be decoded") for source in failed])


class FgbgBbcPose(_FramesBuilder):
    """BBC Pose crops (300 px squares around the joints' centre) with 7 joints and the crop "box" (with options
    {"protocol": "release"}: the release's eval crops and boxes [x0, y0, width, height], docs/protocols.md)."""

    MANUAL_DOWNLOAD_INSTRUCTIONS = bbc.LAYOUT
    reader_name = "bbc"
    reader_class = bbc.BBCPoseDataset
    splits = ("train", "val", "test")

    def _extra_features(self, size: int) -> dict:
        width = 4 if self.builder_config.options.get("protocol") == "release" else 3
        return {"box": tfds.features.Tensor(shape=(width,), dtype=np.float32)}


class FgbgHuman36m(_FramesBuilder):
    """Human3.6M crops (300 px squares around the joints' centre) with 32 joints and, where present, masks."""

    MANUAL_DOWNLOAD_INSTRUCTIONS = h36m.LAYOUT
    reader_name = "h36m"
    reader_class = h36m.Human36MDataset

    def _extra_features(self, size: int) -> dict:
        return {
            "box": tfds.features.Tensor(shape=(3,), dtype=np.float32),
            "mask": tfds.features.Tensor(shape=(size, size), dtype=np.uint8),
        }


class FgbgKth(_FramesBuilder):
    """KTH frames (central square, gray replicated to RGB), no keypoints."""

    MANUAL_DOWNLOAD_INSTRUCTIONS = kth.LAYOUT
    reader_name = "kth"
    reader_class = kth.KTHDataset
