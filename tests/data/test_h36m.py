"""Human3.6M reader on extracted JPEG frames, D2_Positions .npy poses and v7.3 (HDF5) mask files."""

from __future__ import annotations

import numpy as np
import pytest

from fgbg_tf.config import DataConfig
from fgbg_tf.data.base import DatasetError
from fgbg_tf.data.h36m import Human36MDataset
from tests.data.fixtures_video import h36m_joints, h36m_marker, write_h36m

SEQUENCES = [
    ("S1", "Directions 1.54138969", list(range(10))),
    ("S1", "Walking.55011271", [0, 2, 4, 6, 8]),
    ("S1", "WalkDog 1.54138969", [0, 1, 2, 3]),
    ("S11", "Posing.54138969", [3, 5]),
    ("S11", "Eating.54138969", [1, 2]),
]
OPTIONS = {"crop_size": 64, "train_subjects": ["S1"], "test_subjects": ["S11"]}


def _config(root, **changes):
    values = dict(name="h36m", data_dir=str(root), image_size=32, temporal_offset=(2, 3), options=dict(OPTIONS))
    values.update(changes)
    return DataConfig(**values)


@pytest.fixture
def root(tmp_path):
    return write_h36m(tmp_path / "h36m", SEQUENCES)


def test_protocol_activities_crops_and_masks(root):
    reader = Human36MDataset(_config(root))
    assert reader.has_masks and len(reader.keypoint_names) == 32
    assert reader.num_train_items == 15  # WalkDog is not "Walking"
    test = list(reader.eval_split("test").as_numpy_iterator())
    assert [e["source"].decode().split("/")[-2:] for e in test] == [["Posing.54138969", "000003.jpg"]] + [
        ["Posing.54138969", "000005.jpg"]
    ]
    first = test[0]
    # Sequence 3, frame 3: centre (42, 53) -> corner (10, 21).
    np.testing.assert_array_equal(first["box"], [10, 21, 64])
    np.testing.assert_allclose(first["keypoints"], (h36m_joints(3, 3) - [10, 21] + 0.5) * 0.5 - 0.5, atol=1e-5)
    assert abs(np.median(first["image"][..., 2]) - h36m_marker(3, 3)) <= 1
    # The mask is 1 on frame pixels 32..52 x 43..63, crop pixels 22..42, output pixels 11..20 (+ partial edges).
    mask = first["mask"]
    assert mask.dtype == np.uint8 and mask.shape == (32, 32) and first["valid"]
    assert mask[11:21, 11:21].min() == 1
    assert mask[:10].max() == 0 and mask[:, :10].max() == 0 and mask[23:].max() == 0 and mask[:, 23:].max() == 0


def test_partners_come_from_the_same_take_and_camera(root):
    reader = Human36MDataset(_config(root))
    frames = {0: list(range(10)), 1: [0, 2, 4, 6, 8]}
    table = [(k, f) for k, fs in frames.items() for f in fs]
    distances = set()
    for element in reader.train_pairs(seed=3, start=0).take(30).as_numpy_iterator():
        ids = []
        for image in (element["frame"], element["partner"]):
            blue = np.median(image[..., 2][image[..., 2] > 0])
            ids.append(min(table, key=lambda kf: abs(h36m_marker(*kf) - blue)))
        (k, f), (pk, pf) = ids
        assert k == pk
        distances.add(abs(frames[k].index(pf) - frames[k].index(f)))
    assert distances == {2, 3}


def test_camera_option_and_missing_masks(root, tmp_path):
    reader = Human36MDataset(_config(root, options={**OPTIONS, "cameras": [55011271], "test_subjects": ["S1"]}))
    assert reader.num_train_items == 5
    bare = write_h36m(tmp_path / "bare", SEQUENCES, masks=False)
    reader = Human36MDataset(_config(bare))
    assert not reader.has_masks
    assert "mask" not in next(iter(reader.eval_split("test")))


def test_bad_frames_poses_and_masks(root):
    (root / "S1" / "Directions 1.54138969" / "000011.jpg").write_bytes(b"")  # pose row 11 exists: kept, unreadable
    (root / "S1" / "Directions 1.54138969" / "000012.jpg").write_bytes(b"")  # the poses have rows 0..11
    (root / "S1" / "MyPoseFeatures" / "D2_Positions" / "Walking.55011271.npy").unlink()
    (root / "S11" / "MySegmentsMat" / "ground_truth_bs" / "Posing.54138969.mat").write_bytes(b"not hdf5")
    reader = Human36MDataset(_config(root))
    reasons = {source.split("h36m/")[-1]: reason for source, reason in reader.skipped}
    assert reasons["S1/Directions 1.54138969/000012.jpg"] == "no pose row (the pose file has 12)"
    assert reasons["S1/Walking.55011271"].startswith("no pose file")
    assert reader.num_train_items == 11  # the empty 000011.jpg stays and is invalid when read
    elements = list(reader.train_pairs(seed=0, start=0).take(33).as_numpy_iterator())
    assert any(not e["valid"] and e["source"].decode().endswith("000011.jpg") for e in elements)
    test = list(reader.eval_split("test").as_numpy_iterator())
    assert [e["valid"] for e in test] == [False, False] and test[0]["mask"].max() == 0


def test_layout_errors_name_the_path(root):
    with pytest.raises(DatasetError, match="h36m subject S9") as error:
        Human36MDataset(_config(root, options={**OPTIONS, "train_subjects": ["S1", "S9"]}))
    assert str(root / "S9") in str(error.value) and "D2_Positions" in str(error.value)
    np.save(root / "S11" / "MyPoseFeatures" / "D2_Positions" / "Posing.54138969.npy", np.zeros((5, 17, 2)))
    with pytest.raises(DatasetError, match=r"expected poses \[N, 64\]"):
        Human36MDataset(_config(root))
    with pytest.raises(DatasetError, match="unknown"):
        Human36MDataset(_config(root, options={**OPTIONS, "activities": ["Eating"]}))


def test_release_reading_scores_frames_with_joints_outside_the_frame(root):
    # Frame 5 of the test take and frame 4 of a training take get a joint right of the 120 px wide frame.
    for subject, name, row in (("S11", "Posing.54138969", 5), ("S1", "Directions 1.54138969", 4)):
        path = root / subject / "MyPoseFeatures" / "D2_Positions" / f"{name}.npy"
        poses = np.load(path)
        poses[0, row, 0] = 130.0
        np.save(path, poses)
    ours = Human36MDataset(_config(root))
    release = Human36MDataset(_config(root, options={**OPTIONS, "protocol": "release"}))
    # Training leaves them out under both protocols; only the release's eval splits score them.
    assert ours.num_train_items == release.num_train_items == 14
    assert (len(ours.splits["train"]), len(release.splits["train"])) == (14, 15)
    sources = [[e["source"].decode()[-10:] for e in reader.eval_split("test").as_numpy_iterator()]
               for reader in (ours, release)]
    assert sources == [["000003.jpg"], ["000003.jpg", "000005.jpg"]]
    last = list(release.eval_split("test").as_numpy_iterator())[-1]
    assert last["valid"] and last["mask"].max() == 1  # its mask row follows it
    # The same crops as ours: a 64 px square around the joints' centre, zero-padded.
    assert last["box"][2] == 64
    assert dict(release.skipped)[str(root / "S1" / "Directions 1.54138969" / "000004.jpg")] == \
        "joints outside the frame (left out of training only)"
