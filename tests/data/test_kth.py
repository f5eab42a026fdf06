"""KTH reader on tiny MJPG AVIs + sequences.txt in the distributed layouts (nested and flat)."""

from __future__ import annotations

import numpy as np
import pytest

from fgbg_tf.config import DataConfig
from fgbg_tf.data.base import DatasetError
from fgbg_tf.data.kth import KTHDataset
from tests.data.fixtures_video import write_kth

VIDEOS = {
    "person01_boxing_d1": [(1, 6), (7, 12)],
    "person02_walking_d2": [(2, 9)],
    "person17_boxing_d1": [(1, 8)],
}
FRAMES = {"person01_boxing_d1": 12, "person02_walking_d2": 10, "person17_boxing_d1": 8}
OPTIONS = {"train_persons": [1, 2], "test_persons": [17]}


def _config(root, **changes):
    values = dict(name="kth", data_dir=str(root), image_size=32, temporal_offset=(2, 3), options=dict(OPTIONS))
    values.update(changes)
    return DataConfig(**values)


def _frame_number(image):
    """The 1-based frame number encoded by `kth_frame` as the grey level 20 + 10 i."""
    return int(round((np.median(image) - 20) / 10))


@pytest.fixture(params=[False, True], ids=["nested", "flat"])
def root(tmp_path, request):
    return write_kth(tmp_path / "kth", VIDEOS, FRAMES, flat=request.param)


def test_frames_are_centre_cropped_gray_replicated_to_rgb(root):
    reader = KTHDataset(_config(root))
    test = list(reader.eval_split("test").as_numpy_iterator())
    assert len(test) == 8
    for i, element in enumerate(test, 1):
        image = element["image"]
        assert image.shape == (32, 32, 3) and image.dtype == np.uint8
        assert np.array_equal(image[..., 0], image[..., 1]) and np.array_equal(image[..., 0], image[..., 2])
        # The bright stripe in the first 20 of 160 columns lies outside the central 120x120 square.
        np.testing.assert_allclose(image[..., 0].mean(axis=0), 20 + 10 * i, atol=4)
        assert element["keypoints"].shape == (0, 2) and element["position"] == i - 1
        assert element["source"].decode() == f"person17_boxing_d1#1:{i}"
    assert reader.keypoint_names == ()


def test_splits_and_partners_stay_in_their_segment(root):
    reader = KTHDataset(_config(root))
    assert reader.num_train_items == 6 + 6 + 8
    segments = [range(1, 7), range(7, 13), range(2, 10)]
    distances = set()
    for element in reader.train_pairs(seed=2, start=0).take(60).as_numpy_iterator():
        frame, partner = _frame_number(element["frame"]), _frame_number(element["partner"])
        assert element["valid"]
        # Videos 1 and 2 share frame levels; either way both frames lie in one segment.
        assert any(frame in s and partner in s for s in segments)
        distances.add(abs(partner - frame))
    assert distances == {2, 3}
    videos = [e["video"] for e in reader.eval_split("train").as_numpy_iterator()]
    assert videos == [0] * 6 + [1] * 6 + [2] * 8


def test_bad_videos_and_segments_are_skipped_and_reported(tmp_path, caplog):
    videos = {**VIDEOS, "person01_boxing_d2": [(1, 4)], "person02_jogging_d1": [(1, 5)], "person01_running_d3": [(1, 2)]}
    frames = {**FRAMES, "person01_boxing_d2": 0, "person02_jogging_d1": 5, "person01_running_d3": 2}
    videos["person01_boxing_d1"] = [(1, 6), (7, 15)]
    root = write_kth(tmp_path / "kth", videos, frames)
    (root / "jogging" / "person02_jogging_d1_uncomp.avi").write_bytes(b"RIFF garbage")
    with caplog.at_level("WARNING"):
        reader = KTHDataset(_config(root))
    reasons = dict(reader.skipped)
    assert reasons["person01_boxing_d2"] == "AVI file missing"
    assert "not a decodable video" in reasons[str(root / "jogging" / "person02_jogging_d1_uncomp.avi")]
    assert reasons["person01_boxing_d1#2"] == "frames 13-15 beyond the 12 decoded"
    assert reasons["person01_running_d3#1"] == "2 frames, fewer than 3"
    assert reader.num_train_items == 20
    assert "kth: 4 items (frames, segments or videos) left out" in caplog.text


def test_missing_layout_fails_at_construction(tmp_path):
    with pytest.raises(DatasetError, match="kth data_dir") as error:
        KTHDataset(_config(tmp_path / "nowhere"))
    assert "sequences.txt" in str(error.value)
    root = write_kth(tmp_path / "kth", VIDEOS, FRAMES)
    (root / "sequences.txt").unlink()
    with pytest.raises(DatasetError, match="kth segment list") as error:
        KTHDataset(_config(root))
    assert str(root / "sequences.txt") in str(error.value)


def test_bad_sequences_and_options_are_rejected(tmp_path):
    root = write_kth(tmp_path / "kth", VIDEOS, FRAMES)
    with pytest.raises(DatasetError, match="no AVI file found for the test persons"):
        KTHDataset(_config(root, options={"train_persons": [1], "test_persons": [20]}))
    with pytest.raises(DatasetError, match="unknown actions"):
        KTHDataset(_config(root, options={"actions": ["dancing"]}))
    (root / "sequences.txt").write_text("person01_boxing_d1\t\tframes\t1-6, 9-3\n")
    with pytest.raises(DatasetError, match=r"sequences.txt:1: bad frame range '9-3'"):
        KTHDataset(_config(root))
    with pytest.raises(DatasetError, match="not 'val'"):
        KTHDataset(_config(write_kth(tmp_path / "k2", VIDEOS, FRAMES))).eval_split("val")
