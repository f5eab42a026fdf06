"""A tiny fake `bair_robot_pushing_dataset_v0.tar` in the layout tfds' `bair_robot_pushing_small` reads.

The real tar holds `softmotion30_44k/{train,test}/traj_*_to_*.tfrecords`, each a
run of `tf.train.SequenceExample`s whose context has, per frame t of 30,
"t/image_main/encoded" and "t/image_aux1/encoded" (raw uint8 64x64x3 bytes),
"t/action" (4 floats) and "t/endeffector_pos" (3 floats).

Fake frames are flat colours that name themselves: red = 8 * sequence + 1 (the
sequence's number counted over both splits), green = 8 * t, blue = 200 for
train and 100 for test, plus 20 for the "image_main" camera, so a test can read
a frame's origin back from its pixels.
"""

from __future__ import annotations

import tarfile
import tempfile
from pathlib import Path

import numpy as np

FRAMES = 30
SIZE = 64
SPLIT_BLUE = {"train": 200, "test": 100}
CAMERA_BLUE = {"image_aux1": 0, "image_main": 20}
TAR_NAME = "bair_robot_pushing_dataset_v0.tar"


def fake_frame(sequence: int, time: int, split: str, camera: str = "image_aux1") -> np.ndarray:
    """uint8 [64, 64, 3]: the flat colour of frame `time` of fake sequence `sequence` seen by `camera`."""
    colour = np.array([8 * sequence + 1, 8 * time, SPLIT_BLUE[split] + CAMERA_BLUE[camera]], np.uint8)
    return np.broadcast_to(colour, (SIZE, SIZE, 3)).copy()


def read_origin(image: np.ndarray) -> tuple[int, int, str, str]:
    """(sequence, time, split, camera) of a fake frame at any size (flat colours survive resizing)."""
    red, green, blue = (int(round(float(v))) for v in np.asarray(image, np.float64).mean(axis=(0, 1)))
    origins = {s + c: (split, camera) for split, s in SPLIT_BLUE.items() for camera, c in CAMERA_BLUE.items()}
    assert red % 8 == 1 and green % 8 == 0 and blue in origins, f"not a fake BAIR frame: {(red, green, blue)}"
    return ((red - 1) // 8, green // 8) + origins[blue]


def sequence_example(sequence: int, split: str) -> bytes:
    import tensorflow as tf

    feature = {}
    for t in range(FRAMES):
        for camera in CAMERA_BLUE:
            image = fake_frame(sequence, t, split, camera).tobytes()
            feature[f"{t}/{camera}/encoded"] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[image]))
        feature[f"{t}/action"] = tf.train.Feature(float_list=tf.train.FloatList(value=[t, 0.0, 0.0, 0.0]))
        feature[f"{t}/endeffector_pos"] = tf.train.Feature(float_list=tf.train.FloatList(value=[0.0, 0.0, t]))
    example = tf.train.SequenceExample(context=tf.train.Features(feature=feature))
    return example.SerializeToString()


def make_bair_tar(root: Path, train_files: tuple[int, ...] = (2, 1), test_files: tuple[int, ...] = (2,)) -> Path:
    """Writes `root/bair_robot_pushing_dataset_v0.tar`; file i of a split holds `*_files[i]` sequences.

    Sequences are numbered 0, 1, ... over the train files, then on over the test files.
    """
    import tensorflow as tf

    root.mkdir(parents=True, exist_ok=True)
    tar_path = root / TAR_NAME
    number = 0
    with tempfile.TemporaryDirectory() as staging, tarfile.open(tar_path, "w") as archive:
        for split, counts in (("train", train_files), ("test", test_files)):
            folder = Path(staging) / "softmotion30_44k" / split
            folder.mkdir(parents=True)
            first = 0
            for count in counts:
                with tf.io.TFRecordWriter(str(folder / f"traj_{first}_to_{first + count - 1}.tfrecords")) as writer:
                    for _ in range(count):
                        writer.write(sequence_example(number, split))
                        number += 1
                first += count
        archive.add(Path(staging) / "softmotion30_44k", arcname="softmotion30_44k")
    return tar_path


def register_fake_bair_checksums(monkeypatch, tar_path: Path) -> None:
    """Makes tfds' `bair_robot_pushing_small` accept the fake tar: registers its checksum under the real name."""
    import tensorflow_datasets as tfds
    from tensorflow_datasets.core.download import checksums

    infos = tfds.builder_cls("bair_robot_pushing_small").url_infos
    for url, info in list(infos.items()):
        fake = checksums.compute_url_info(tar_path)
        fake.filename = info.filename
        monkeypatch.setitem(infos, url, fake)


def make_prepared_bair(root: Path) -> Path:
    """Writes the fake tar to `root/manual` and has the bair reader build it into `root/tfds`; returns `root/tfds`.

    The returned folder is a tfds data_dir that `--data-dir` accepts with no checksum patching,
    e.g. for `python -m fgbg_tf.train --dataset bair --data-dir <root>/tfds`.
    """
    import pytest

    from fgbg_tf.config import DataConfig
    from fgbg_tf.data.bair import BAIRDataset

    tar = make_bair_tar(root / "manual")
    with pytest.MonkeyPatch.context() as patch:
        register_fake_bair_checksums(patch, tar)
        BAIRDataset(DataConfig(name="bair", data_dir=str(tar.parent), options={"tfds_data_dir": str(root / "tfds")}))
    return root / "tfds"
