"""BBC Pose reader on a tiny fake dataset in the distributed layout (JPEG folders + bbcpose.mat / results.mat)."""

from __future__ import annotations

import shutil

import cv2
import numpy as np
import pytest
import scipy.io
import tensorflow as tf

from fgbg_tf.config import DataConfig
from fgbg_tf.data.base import DatasetError
from fgbg_tf.data.bbc import BBCPoseDataset
from fgbg_tf.data.video_frames import crop_coordinates, frame_coordinates
from tests.data.fixtures_images import write_corrupted_jpeg
from tests.data.fixtures_video import bbc_joints, joints_around, marker, truncate, write_bbc

ODD = [1, 3, 5, 7, 9, 11, 13, 15]
OPTIONS = {"crop_size": 64, "train_videos": [1, 2], "val_videos": [11], "test_videos": [16]}


def _config(root, **changes):
    values = dict(name="bbc", data_dir=str(root), image_size=32, temporal_offset=(2, 3), options=dict(OPTIONS))
    values.update(changes)
    return DataConfig(**values)


@pytest.fixture
def root(tmp_path):
    return write_bbc(tmp_path / "bbc", train={1: ODD, 2: ODD}, val={11: [2, 4]}, test={16: [5, 1], 17: [3]})


def _frame_of(video_candidates, image):
    """The (video, frame) whose marker is nearest to a crop's blue level (padding left out)."""
    blue = np.median(image[..., 2][image[..., 2] > 20])
    return min(video_candidates, key=lambda vf: abs(marker(*vf) - blue))


def _as_list(dataset):
    return list(dataset.as_numpy_iterator())


def test_test_split_crop_keypoints_and_box_are_exact(root):
    reader = BBCPoseDataset(_config(root))
    first, second = _as_list(reader.eval_split("test"))
    # Video 16 frame 5: 1-based centre (41, 52) -> 0-based (40, 51) -> corner (8, 19), 64 px square -> 32 px.
    np.testing.assert_array_equal(first["box"], [8, 19, 64])
    head = bbc_joints(16, 5)[0] - 1
    np.testing.assert_allclose(first["keypoints"][0], (head - [8, 19] + 0.5) * 0.5 - 0.5, atol=1e-5)
    image = first["image"].astype(np.float64)
    # red = 2x: output column j averages frame columns 8 + 2j, 9 + 2j.
    cols = np.arange(1, 31)
    np.testing.assert_allclose(image[:, cols, 0].mean(axis=0), 2 * (8 + 2 * cols + 0.5), atol=1.0)
    np.testing.assert_allclose(image[cols, :, 1].mean(axis=1), 2 * (19 + 2 * cols + 0.5), atol=1.0)
    assert abs(image[..., 2].mean() - marker(16, 5)) < 1.5
    assert first["valid"] and first["source"].decode().endswith("16/5.jpg")
    # results.mat order is kept; video 17 is not a test video under these options.
    assert second["source"].decode().endswith("16/1.jpg")
    back = frame_coordinates(first["keypoints"], first["box"], 32)
    np.testing.assert_allclose(back, bbc_joints(16, 5) - 1, atol=1e-4)


def test_crop_crossing_the_border_is_zero_padded(root):
    reader = BBCPoseDataset(_config(root))
    element = _as_list(reader.eval_split("test"))[1]
    # Frame 1: 0-based centre x = 24 -> x0 = -8: crop columns 0..7 are padding; the 2x antialias
    # filter spans 4 crop columns, so output columns 0..2 see padding only.
    np.testing.assert_array_equal(element["box"], [-8, 19, 64])
    assert element["image"][:, :3].max() == 0 and element["image"][:, 3].max() > 0
    cols = np.arange(5, 31)
    red = element["image"][:, cols, 0].astype(np.float64).mean(axis=0)
    np.testing.assert_allclose(red, 2 * (-8 + 2 * cols + 0.5), atol=1.0)


def test_splits_hold_the_protocol_videos(root):
    reader = BBCPoseDataset(_config(root))
    assert reader.num_train_items == 16
    train = _as_list(reader.eval_split("train"))
    assert [e["video"] for e in train] == [1] * 8 + [2] * 8
    assert [e["position"] for e in train[:3]] == [0, 1, 2]
    val = _as_list(reader.eval_split("val"))
    assert [e["source"].decode().split("/")[-2:] for e in val] == [["11", "2.jpg"], ["11", "4.jpg"]]
    assert val[0]["keypoints"].shape == (7, 2)
    assert reader.regression_splits == ("train", "test")
    with pytest.raises(DatasetError, match="not 'validation'"):
        reader.eval_split("validation")


def test_temporal_partners_are_2_to_3_annotated_frames_away_in_frame_ts_box(root):
    reader = BBCPoseDataset(_config(root))
    elements = _as_list(reader.train_pairs(seed=5, start=0).take(40))
    table = [(v, f) for v in (1, 2) for f in ODD]
    distances = set()
    for element in elements:
        assert element["valid"]
        video, frame = _frame_of(table, element["frame"])
        p_video, p_frame = _frame_of(table, element["partner"])
        assert p_video == video
        distances.add(abs(ODD.index(p_frame) - ODD.index(frame)))
        # Same gradient, same box: the partner's red/green match the frame's.
        diff = np.abs(element["partner"][4:28, 4:28, :2].astype(int) - element["frame"][4:28, 4:28, :2]).mean()
        assert diff < 1.5
    assert distances == {2, 3}
    resumed = _as_list(reader.train_pairs(seed=5, start=7).take(3))
    for a, b in zip(elements[7:10], resumed):
        assert a["index"] == b["index"] and np.array_equal(a["frame"], b["frame"])
        assert np.array_equal(a["partner"], b["partner"])


def test_truncated_garbage_and_corrupt_frames_are_invalid_not_fatal(root, capfd):
    truncate(root / "1" / "3.jpg")
    (root / "16" / "5.jpg").write_bytes(b"\xff\xd8not a jpeg at all\xff\xd9")
    reader = BBCPoseDataset(_config(root))
    test = _as_list(reader.eval_split("test"))
    assert not test[0]["valid"] and test[0]["image"].max() == 0
    assert test[0]["source"].decode().endswith("16/5.jpg")
    assert test[1]["valid"]
    clean = write_corrupted_jpeg(root / "16" / "1.jpg")  # complete, decodes without an error, to wrong pixels
    corrupt = _as_list(reader.eval_split("test"))[1]
    assert not corrupt["valid"] and corrupt["image"].max() == 0 and corrupt["source"].decode().endswith("16/1.jpg")
    assert "Corrupt JPEG data" not in capfd.readouterr().err  # taken as the frame's verdict, not printed
    (root / "16" / "1.jpg").write_bytes(clean.read_bytes())  # the same image uncorrupted: a valid frame
    assert _as_list(reader.eval_split("test"))[1]["valid"]
    bad = [e for e in _as_list(reader.train_pairs(seed=1, start=0).take(48)) if not e["valid"]]
    assert bad, "frame 1/3.jpg is in the stream, as t or as a partner"
    for element in bad:
        assert element["source"].decode().endswith("1/3.jpg")
        assert element["frame"].max() == 0 and element["partner"].max() == 0


def test_missing_frames_and_out_of_range_joints_are_skipped_and_reported(root, caplog):
    (root / "2" / "7.jpg").unlink()
    mat = scipy.io.loadmat(str(root / "code" / "bbcpose.mat"))
    mat["bbcpose"][0, 0]["train_joints"][0, 0, 2] = 500.0  # video 1, third annotated frame (5)
    scipy.io.savemat(str(root / "code" / "bbcpose.mat"), {"bbcpose": mat["bbcpose"]})
    with caplog.at_level("WARNING"):
        reader = BBCPoseDataset(_config(root))
    reasons = {source.split("bbc/")[-1]: reason for source, reason in reader.skipped}
    assert set(reasons) == {"2/7.jpg", "1/5.jpg"}
    assert "missing" in reasons["2/7.jpg"] and "outside" in reasons["1/5.jpg"]
    assert reader.num_train_items == 14
    assert "bbc: 2 items (frames, segments or videos) left out" in caplog.text


@pytest.mark.parametrize(
    "remove, expected",
    [("", "bbc data_dir"), ("code/bbcpose.mat", "bbcpose.mat"), ("code/results.mat", "results.mat"), ("11", "11")],
)
def test_missing_files_fail_at_construction_naming_the_path(root, remove, expected):
    target = root / remove
    if target.is_dir():
        shutil.rmtree(target)
    else:
        target.unlink()
    with pytest.raises(DatasetError, match=expected) as error:
        BBCPoseDataset(_config(root))
    assert "BBC Pose layout" in str(error.value) and str(target) in str(error.value)


def test_unknown_option_and_missing_data_dir_are_rejected(root):
    with pytest.raises(DatasetError, match="unknown data.options"):
        BBCPoseDataset(_config(root, options={"crop": 3}))
    with pytest.raises(DatasetError, match="--data-dir"):
        BBCPoseDataset(_config(root, data_dir=None))


def test_crop_coordinates_round_trip():
    points = np.array([[[3.0, 4.0], [100.5, -2.0]]])
    corners = np.array([[-8, 19]])
    crop = crop_coordinates(points, corners, 300, 128)
    np.testing.assert_allclose(crop[0, 0], ((3 + 8 + 0.5) * 128 / 300 - 0.5, (4 - 19 + 0.5) * 128 / 300 - 0.5))
    box = np.array([[-8.0, 19.0, 300.0]])
    np.testing.assert_allclose(frame_coordinates(crop, box, 128), points, atol=1e-4)


def test_tfds_builder_prepares_the_reader_crops_from_manual_dir(root, tmp_path):
    import tensorflow_datasets as tfds

    from fgbg_tf.data.tfds_builders import CropsConfig, FgbgBbcPose

    truncate(root / "16" / "1.jpg")
    config = CropsConfig(name="test32", image_size=32, options={**OPTIONS, "train_videos": [1]})
    builder = FgbgBbcPose(config=config, data_dir=str(tmp_path / "tfds"))
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=str(root)))
    assert {name: info.num_examples for name, info in builder.info.splits.items()} == {"train": 8, "val": 2, "test": 1}
    (example,) = tfds.as_numpy(builder.as_dataset(split="test"))
    reader = BBCPoseDataset(_config(root))
    expected = next(reader.eval_split("test").as_numpy_iterator())
    np.testing.assert_array_equal(example["image"], expected["image"])
    np.testing.assert_array_equal(example["keypoints"], expected["keypoints"])
    np.testing.assert_array_equal(example["box"], [8, 19, 64])
    assert example["source"].decode().endswith("16/5.jpg")


def _half_pixel_joints(video, frame):
    """Joints whose bounding box is centred on half pixels, so that the release's box edges are ties when PIL rounds
    them; video 1 frame 5 and video 17 frame 3 have their right wrist left of the frame."""
    points = joints_around(20.5 + 4 * frame, 44.5 + 8 * (video % 2))
    if (video, frame) in ((1, 5), (17, 3)):
        points[1] = [-4.0, 60.0]
    return points


RELEASE = {"crop_size": 64, "train_videos": [1, 2], "val_videos": [11], "protocol": "release"}
RELEASE_TEST = [(16, 4), (16, 1), (17, 3), (18, 24)]


@pytest.fixture
def release_root(tmp_path):
    test = {16: [4, 1], 17: [3], 18: [24]}
    return write_bbc(tmp_path / "bbc", train={1: ODD, 2: ODD}, val={11: [2]}, test=test, joints=_half_pixel_joints)


def test_release_eval_crops_are_clipped_squashed_and_rounded_as_pil(release_root):
    reader = BBCPoseDataset(_config(release_root, options=RELEASE))
    test = _as_list(reader.eval_split("test"))
    # Every frame of results.mat, whatever its video, a joint outside the frame or not.
    assert [e["source"].decode().split("bbc/")[-1] for e in test] == [f"{v}/{f}.jpg" for v, f in RELEASE_TEST]
    for element, (video, frame) in zip(test, RELEASE_TEST):
        g = _half_pixel_joints(video, frame)  # the MATLAB values, used as they are
        centre = (g.min(axis=0) + g.max(axis=0)) / 2
        x0, y0 = max(0, centre[0] - 32), max(0, centre[1] - 32)
        x1, y1 = min(120, centre[0] + 32), min(100, centre[1] + 32)
        np.testing.assert_allclose(element["box"], [x0, y0, x1 - x0, y1 - y0], atol=1e-5)
        np.testing.assert_allclose(element["keypoints"], (g - [x0, y0]) * 32 / [x1 - x0, y1 - y0], atol=1e-4)
        # PIL's Image.crop cuts round(x0) .. round(x1), Python's round: half to even. Frame 16/4's box
        # (4.5, 12.5, 68.5, 76.5) is cut at columns 4..67, rows 12..75 (half up would start at 5 and 13);
        # 16/1's (0, 12.5, 56.5, 76.5) is 56 x 64 pixels, squashed to 32 x 32.
        rgb = cv2.imread(element["source"].decode())[..., ::-1]
        window = rgb[round(y0) : round(y1), round(x0) : round(x1)]
        expected = tf.image.resize(window, [32, 32], method="bilinear", antialias=True)
        np.testing.assert_array_equal(element["image"], tf.cast(tf.clip_by_value(tf.round(expected), 0, 255), tf.uint8))
    assert round(4.5) == 4 and test[0]["box"][0] == 4.5


def test_release_scores_frames_with_joints_outside_the_frame_that_training_leaves_out(release_root):
    reader = BBCPoseDataset(_config(release_root, options=RELEASE))
    assert reader.protocol == "release"
    assert reader.num_train_items == 15 and len(reader.splits["train"]) == 16
    assert "1/5.jpg" in [s.split("bbc/")[-1] for s in reader.splits["train"].paths]
    assert reader.skipped == [(str(release_root / "1" / "5.jpg"), "joints outside the 120x100 frame (left out of "
                                                                     "training only)")]
    ours = BBCPoseDataset(_config(release_root, options={**RELEASE, "protocol": "ours", "test_videos": [16, 17]}))
    assert len(ours.splits["train"]) == 15
    test = [e["source"].decode().split("bbc/")[-1] for e in _as_list(ours.eval_split("test"))]
    assert test == ["16/4.jpg", "16/1.jpg"]


def test_release_protocol_rejects_test_videos_and_unknown_protocols(release_root):
    with pytest.raises(DatasetError, match="test_videos.*release protocol scores every frame of results.mat"):
        BBCPoseDataset(_config(release_root, options={**RELEASE, "test_videos": [16]}))
    with pytest.raises(DatasetError, match=r"data.options.protocol for bbc must be one of \('release', 'ours'\)"):
        BBCPoseDataset(_config(release_root, options={**RELEASE, "protocol": "paper"}))
