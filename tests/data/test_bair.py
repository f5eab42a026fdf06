"""The bair reader: tfds' real `bair_robot_pushing_small` builder on a fake tar (3 train + 2 test clips, 30 frames)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from fgbg_tf.config import DataConfig
from fgbg_tf.data.bair import FRAMES, TAR_NAME, TFDS_NAME, BAIRDataset
from fgbg_tf.data.base import DatasetError
from tests.data.fixtures_bair import make_prepared_bair, read_origin, register_fake_bair_checksums

tfds = pytest.importorskip("tensorflow_datasets")
pytest.importorskip("array_record")

TRAIN_SEQUENCES, TEST_SEQUENCES = {0, 1, 2}, {3, 4}


def reader(data_dir, size=64, offsets=(3, 29), **options):
    config = DataConfig(name="bair", data_dir=str(data_dir), image_size=size, temporal_offset=offsets, options=options)
    return BAIRDataset(config)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """(folder with the fake tar, tfds data_dir the reader built it into) after one real build."""
    root = tmp_path_factory.mktemp("bair")
    tfds_dir = make_prepared_bair(root)
    return root / "manual", tfds_dir


def origins(elements, key):
    return [read_origin(e[key]) for e in elements]


def test_eval_splits_list_every_frame_in_clip_order_without_keypoints(built):
    manual, tfds_dir = built
    bair = reader(manual, tfds_data_dir=str(tfds_dir))
    assert bair.num_sequences == {"train": 3, "test": 2} and bair.num_train_items == 90
    assert bair.keypoint_names == () and bair.is_video and not bair.has_masks
    for split, expected in (("train", TRAIN_SEQUENCES), ("test", TEST_SEQUENCES)):
        frames = list(bair.eval_split(split).as_numpy_iterator())
        assert len(frames) == FRAMES * len(expected)
        seen = origins(frames, "image")
        assert {(s, t) for s, t, _, _ in seen} == {(s, t) for s in expected for t in range(FRAMES)}
        assert {(sp, cam) for _, _, sp, cam in seen} == {(split, "image_aux1")}
        for i, (frame, (sequence, time, _, _)) in enumerate(zip(frames, seen)):
            assert frame["valid"] and frame["image"].shape == (64, 64, 3)
            assert frame["keypoints"].shape == (0, 2) and frame["keypoints"].dtype == np.float32
            # Clip order: 30 consecutive frames per clip, in time order, labelled with their clip and time.
            assert (frame["sequence"], frame["time"]) == (i // FRAMES, i % FRAMES) and time == i % FRAMES
            assert frame["source"].decode() == f"{TFDS_NAME}/{split}/sequence_{i // FRAMES:06d}/frame_{time:02d}"
            assert read_origin(frames[i // FRAMES * FRAMES]["image"])[0] == sequence
    with pytest.raises(DatasetError, match="not 'val'"):
        bair.eval_split("val")


def test_prepared_data_dir_camera_and_size(built):
    _, tfds_dir = built
    # --data-dir may also be the tfds data_dir itself; other sizes are resized (flat colours survive exactly).
    bair = reader(tfds_dir, size=32, camera="image_main")
    frame = next(bair.eval_split("test").as_numpy_iterator())
    assert frame["image"].shape == (32, 32, 3)
    assert read_origin(frame["image"])[2:] == ("test", "image_main")


def test_train_pairs_epochs_partners_and_resume(built):
    _, tfds_dir = built
    bair = reader(tfds_dir, size=32, offsets=(3, 5))
    stream = list(bair.train_pairs(seed=7, start=0).take(2 * 90).as_numpy_iterator())
    assert [e["index"] for e in stream] == list(range(180))
    frames, partners = origins(stream, "frame"), origins(stream, "partner")
    # Each epoch visits every training frame once.
    all_frames = {(s, t) for s in TRAIN_SEQUENCES for t in range(FRAMES)}
    for epoch in (frames[:90], frames[90:]):
        assert sorted((s, t) for s, t, _, _ in epoch) == sorted(all_frames)
    assert [f[:2] for f in frames[:90]] != [f[:2] for f in frames[90:]]
    gaps = []
    for element, (s, t, split, _), (ps, pt, psplit, _) in zip(stream, frames, partners):
        assert element["valid"] and split == psplit == "train" and ps == s
        assert element["source"].decode().endswith(f"/frame_{t:02d}")
        gaps.append(pt - t)
    assert set(np.abs(gaps)) == {3, 4, 5} and min(gaps) < 0 < max(gaps)
    # Frames at either end of a clip still get partners within the clip (partner_frame looks both ways).
    assert {pt for (_, t, _, _), (_, pt, _, _) in zip(frames, partners) if t == 29} <= {24, 25, 26}
    # A run resumed at element 37 sees exactly what the first run saw from there; another seed differs.
    resumed = list(bair.train_pairs(seed=7, start=37).take(10).as_numpy_iterator())
    for a, b in zip(resumed, stream[37:47]):
        assert a["index"] == b["index"] and a["source"] == b["source"]
        np.testing.assert_array_equal(a["frame"], b["frame"])
        np.testing.assert_array_equal(a["partner"], b["partner"])
    other = origins(bair.train_pairs(seed=8, start=0).take(10).as_numpy_iterator(), "frame")
    assert other != frames[:10]


def test_corrupt_shard_gives_invalid_elements_not_a_crash(built, tmp_path):
    _, tfds_dir = built
    copy = tmp_path / "tfds"
    shutil.copytree(tfds_dir / TFDS_NAME, copy / TFDS_NAME)
    (shard,) = (copy / TFDS_NAME).glob("*/*-train.array_record-*")
    data = bytearray(shard.read_bytes())
    # A stretch inside the records' chunks (the shard's index is at its end).
    data[2000:2100] = bytes(b ^ 0xFF for b in data[2000:2100])
    shard.write_bytes(bytes(data))
    bair = reader(copy, size=32)
    source = bair._sources["train"]
    unreadable = set()
    for sequence in range(3):
        try:
            source[sequence]
        except RuntimeError:
            unreadable.add(sequence)
    assert 0 < len(unreadable) < 3
    stream = list(bair.train_pairs(seed=0, start=0).take(90).as_numpy_iterator())
    assert [e["index"] for e in stream] == list(range(90))
    for element in stream:
        sequence = int(element["source"].decode().split("sequence_")[1][:6])
        assert element["valid"] == (sequence not in unreadable)
        if not element["valid"]:
            assert not element["frame"].any() and not element["partner"].any()
    frames = list(bair.eval_split("train").as_numpy_iterator())
    assert len(frames) == 90 and sum(not f["valid"] for f in frames) == FRAMES * len(unreadable)


def test_bad_input_fails_at_construction_naming_the_path(built, tmp_path):
    manual, tfds_dir = built
    with pytest.raises(DatasetError, match="needs data.data_dir"):
        BAIRDataset(DataConfig(name="bair", image_size=64))
    with pytest.raises(DatasetError, match=f"{tmp_path / 'nowhere'} does not exist.*{TAR_NAME}"):
        reader(tmp_path / "nowhere")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetError, match=f"{empty} has neither {TAR_NAME}"):
        reader(empty)
    with pytest.raises(DatasetError, match="unknown data.options"):
        reader(tfds_dir, cache=True)
    with pytest.raises(DatasetError, match="camera"):
        reader(tfds_dir, camera="image_aux2")
    with pytest.raises(DatasetError, match="at most 29 frames apart"):
        reader(tfds_dir, offsets=(30, 60))
    no_shard = tmp_path / "no_shard"
    shutil.copytree(tfds_dir / TFDS_NAME, no_shard / TFDS_NAME)
    (shard,) = (no_shard / TFDS_NAME).glob("*/*-test.array_record-*")
    shard.unlink()
    with pytest.raises(DatasetError, match=f"'test' split are missing.*{shard.name}"):
        reader(no_shard)
    # A tfds data_dir prepared in the default tfrecord format has no random access.
    tfrecord_dir = tmp_path / "tfrecord"
    with pytest.MonkeyPatch.context() as patch:
        register_fake_bair_checksums(patch, manual / TAR_NAME)
        builder = tfds.builder(TFDS_NAME, data_dir=str(tfrecord_dir))
        builder.download_and_prepare(
            download_config=tfds.download.DownloadConfig(manual_dir=str(manual), try_download_gcs=False)
        )
    with pytest.raises(DatasetError, match="tfrecord, which has no random access.*array_record"):
        reader(tfrecord_dir)
