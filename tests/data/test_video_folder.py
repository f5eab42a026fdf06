"""The `videos` reader on tiny videos written with OpenCV: discovery, split, framing, cache, temporal pairs."""

from __future__ import annotations

import json
import logging
import os

import numpy as np
import pytest

from fgbg_tf.config import DataConfig
from fgbg_tf.data.base import DatasetError
from fgbg_tf.data.held_out import held_out_names
from fgbg_tf.data.sources import write_sources
from fgbg_tf.data.video_folder import VideoFolderDataset, find_videos
from tests.data.fixtures_video import write_avi, write_jpeg

# Frame t of video v is a flat frame whose grey level encodes (v, t); MJPG keeps flat levels within a few units.
LEVEL = lambda video, frame: 20 + 60 * video + 4 * frame  # noqa: E731


def flat(video: int, frame: int, height: int = 24, width: int = 40) -> np.ndarray:
    image = np.full((height, width, 3), LEVEL(video, frame), np.uint8)
    image[:, : (width - height) // 2] = 255  # only outside the centred square: a centre crop never shows it
    return image


@pytest.fixture
def root(tmp_path):
    data = tmp_path / "clips"
    write_avi(data / "a.avi", [flat(0, t) for t in range(12)])
    write_avi(data / "sub" / "b.avi", [flat(1, t) for t in range(9)])
    for t in (1, 2, 10):  # numbered frames, in the order of their numbers (10 after 2)
        write_jpeg(data / "frames" / f"{t}.jpg", flat(2, t))
    (data / "notes.txt").write_text("not a video")
    return data


def reader(root, tmp_path, **options):
    options = {"cache_dir": str(tmp_path / "cache"), "test_videos": 0.0, **options}
    return VideoFolderDataset(DataConfig(name="videos", data_dir=str(root), image_size=16, temporal_offset=(1, 3),
                                         options=options))


def levels(frames):
    return np.round(np.asarray(frames, np.float64).mean(axis=(-3, -2, -1))).astype(int)


def test_videos_and_numbered_frame_folders_are_found_in_order(root):
    videos = find_videos(root)
    assert [v.name for v in videos] == ["a.avi", "frames", "sub/b.avi"]
    assert [p.name for p in videos[1].frames] == ["1.jpg", "2.jpg", "10.jpg"]


def test_split_by_whole_videos_is_deterministic(root, tmp_path):
    names = [f"clip{i}.mp4" for i in range(10)]
    split = lambda names, held_out: held_out_names(names, held_out, "data.options.test_videos", "videos")  # noqa: E731
    held = split(names, 0.2)
    assert len(held) == 2 and held == split(list(reversed(names)), 0.2)
    more = split(names + ["new.mp4"], 0.2)  # ranked by a hash of the name: the others keep their place
    assert len(more) == 2 and len(held & more) >= 1 and more - held <= {"new.mp4"}
    assert split(["only.mp4"], 0.5) == set()  # at least one video stays in training
    clips = reader(root, tmp_path, test_videos=["sub/b.avi"])
    assert [v.name for v in clips.videos["test"]] == ["sub/b.avi"] and clips.train_names == ["a.avi", "frames"]
    assert clips.num_train_items == 12 + 3
    with pytest.raises(DatasetError, match=r"test_videos names \['c.avi'\], which are not videos"):
        reader(root, tmp_path, test_videos=["c.avi"])
    with pytest.raises(DatasetError, match="must be a fraction in \\[0, 1\\) or a list"):
        reader(root, tmp_path, test_videos=1.5)


def test_frames_are_framed_resized_and_cached_then_read_back_without_decoding(root, tmp_path, monkeypatch, caplog):
    with caplog.at_level(logging.INFO):
        clips = reader(root, tmp_path)
    assert clips.frames.shape == (24, 16, 16, 3) and clips.valid.all()
    assert "a.avi: 12 frames decoded and cached" in caplog.text
    # The centre crop drops the white band; each frame keeps its video's and time's level, in order.
    first = clips.starts[clips.train_names.index("a.avi")]
    np.testing.assert_allclose(levels(clips.frames[first : first + 12]), [LEVEL(0, t) for t in range(12)], atol=3)
    folder = clips.starts[clips.train_names.index("frames")]
    np.testing.assert_allclose(levels(clips.frames[folder : folder + 3]), [LEVEL(2, t) for t in (1, 2, 10)], atol=3)
    # A restart reads the cache: nothing is decoded again ...
    import fgbg_tf.data.video_folder as module

    def no_decoding(*args):
        raise AssertionError("decoded again")

    monkeypatch.setattr(module, "video_frames", no_decoding)
    monkeypatch.setattr(module, "read_image", no_decoding)
    again = reader(root, tmp_path)
    np.testing.assert_array_equal(again.frames, clips.frames)
    # ... until a video changes (here: rewritten with other content) or the framing does.
    monkeypatch.undo()
    write_avi(root / "a.avi", [flat(3, t) for t in range(12)])
    os.utime(root / "a.avi", ns=(1, 1))
    edited = reader(root, tmp_path)
    assert levels(edited.frames[first]) == pytest.approx(LEVEL(3, 0), abs=3)
    squashed = reader(root, tmp_path, framing="resize")
    assert levels(squashed.frames[first]) > levels(edited.frames[first]) + 5  # the white band is in the picture now
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 3 + 1 + 3  # first, the edited a.avi, resized


def test_training_videos_sizes_are_counted_recorded_and_known_again_from_the_cache(tmp_path, monkeypatch, caplog):
    data = tmp_path / "clips"
    for name, (height, width) in {"a.avi": (24, 40), "b.avi": (24, 40), "tall.avi": (48, 32),
                                  "held.avi": (24, 24)}.items():
        write_avi(data / name, [np.full((height, width, 3), 20 * t, np.uint8) for t in range(4)])
    clips = reader(data, tmp_path, test_videos=["held.avi"])
    assert clips.source_sizes == [[32, 48, 1], [40, 24, 2]]  # (width, height, videos); the held-out one not trained on
    run = tmp_path / "run"
    run.mkdir()
    write_sources(run, clips)
    assert json.loads((run / "sources.json").read_text()) == {
        "dataset": "videos", "framing": "centre_crop", "source_sizes": [[32, 48, 1], [40, 24, 2]]}
    import fgbg_tf.data.video_folder as module

    def no_decoding(*args):
        raise AssertionError("decoded again")

    with monkeypatch.context() as patch:  # a restart knows the sizes from the cache
        patch.setattr(module, "video_frames", no_decoding)
        assert reader(data, tmp_path, test_videos=["held.avi"]).source_sizes == clips.source_sizes
    for cached in (tmp_path / "cache").glob("*.npz"):  # an entry without the sizes is decoded again, not misread
        with np.load(cached) as stored:
            np.savez(cached, frames=stored["frames"], valid=stored["valid"], boxes=stored["boxes"])
    with caplog.at_level(logging.WARNING):
        assert reader(data, tmp_path, test_videos=["held.avi"]).source_sizes == clips.source_sizes
    assert caplog.text.count("does not read") == 3


def test_training_pairs_are_frames_of_one_video_within_the_offset(root, tmp_path):
    clips = reader(root, tmp_path)
    stream = list(clips.train_pairs(seed=3, start=0).take(2 * clips.num_train_items).as_numpy_iterator())
    owner = {}
    for name, start, length in zip(clips.train_names, clips.starts, clips.lengths):
        for t in range(length):
            owner[levels(clips.frames[start + t])] = (name, t)
    for element in stream:
        (video, t), (partner_video, u) = owner[levels(element["frame"])], owner[levels(element["partner"])]
        assert video == partner_video == element["source"].decode() and element["valid"]
        if video == "a.avi":  # numbered frames count as consecutive, whatever their numbers
            assert 1 <= abs(t - u) <= 3
    resumed = list(clips.train_pairs(seed=3, start=5).take(3).as_numpy_iterator())
    for a, b in zip(stream[5:8], resumed):
        assert a["index"] == b["index"] and np.array_equal(a["partner"], b["partner"])


def test_bad_videos_and_frames_are_named(root, tmp_path, caplog):
    (root / "broken.mp4").write_bytes(b"not a video at all")
    write_avi(root / "short.avi", [flat(3, 0)])
    (root / "frames" / "2.jpg").write_bytes(b"\xff\xd8 garbage")
    with caplog.at_level(logging.WARNING):
        clips = reader(root, tmp_path)
    reasons = dict(clips.skipped)
    assert "not a readable video" in reasons[str(root / "broken.mp4")]
    assert "1 frame(s): data.temporal_offset 1 needs at least 2" in reasons[str(root / "short.avi")]
    assert "kept as invalid" in reasons[str(root / "frames" / "2.jpg")]
    assert clips.train_names == ["a.avi", "frames", "sub/b.avi"]
    folder = clips.starts[clips.train_names.index("frames")]
    assert clips.valid[folder : folder + 3].tolist() == [True, False, True]
    # From the cache, the invalid frame is named again; a damaged cache file (here empty) is decoded again.
    again = reader(root, tmp_path)
    assert "kept as invalid (cached)" in dict(again.skipped)[str(root / "frames" / "2.jpg")]
    for cached in (tmp_path / "cache").glob("*.npz"):
        cached.write_bytes(b"")
    with caplog.at_level(logging.WARNING):
        damaged = reader(root, tmp_path)
    assert "does not read" in caplog.text
    np.testing.assert_array_equal(damaged.frames, clips.frames)
    with pytest.raises(DatasetError, match="holds no video"):
        reader(tmp_path / "cache", tmp_path)


def annotate(root, rows, header="file,frame,x1,y1,x2,y2"):
    (root / "keypoints.csv").write_text("\n".join([header, *rows]) + "\n")


def test_keypoints_csv_gives_framed_points_of_each_split(root, tmp_path):
    # The frames are 40 x 24, centre-cropped to (8, 0, 24, 24) and resized to 16 px: (x, y) -> ((x - 8 + 0.5) /
    # 1.5 - 0.5, (y + 0.5) / 1.5 - 0.5). Folder frames are named by the number in their file name (10 is the third).
    (root / "frames" / "2.jpg").write_bytes(b"\xff\xd8 garbage")  # an annotated frame that does not decode
    annotate(root, ["a.avi,4,20,12,8,0", "frames,10,32,24,,", "frames,2,1,1,1,1", "sub/b.avi,2,14,6,26,18"])
    clips = reader(root, tmp_path, test_videos=["sub/b.avi"], keypoints="keypoints.csv", normalise_by=["1", "2"])
    assert clips.regression_splits == ("train", "test") and clips.keypoint_names == ("1", "2")
    assert clips.normalise_pair == (0, 1) and not clips.has_masks
    train = list(clips.eval_split("train").as_numpy_iterator())
    assert [e["source"].decode() for e in train] == ["a.avi frame 4", "frames frame 2", "frames frame 10"]
    assert not train[1]["valid"] and np.isnan(train[1]["keypoints"]).all()  # kept, marked, no box to map through
    train = [train[0], train[2]]
    to_input = lambda x, y: [(x - 8 + 0.5) / 1.5 - 0.5, (y + 0.5) / 1.5 - 0.5]  # noqa: E731
    np.testing.assert_allclose(train[0]["keypoints"], [to_input(20, 12), to_input(8, 0)], rtol=1e-6)
    assert levels(train[0]["image"]) == pytest.approx(LEVEL(0, 4), abs=3)
    assert levels(train[1]["image"]) == pytest.approx(LEVEL(2, 10), abs=3)
    np.testing.assert_allclose(train[1]["keypoints"][0], to_input(32, 24), rtol=1e-6)
    assert np.isnan(train[1]["keypoints"][1]).all()
    (test,) = clips.eval_split("test").as_numpy_iterator()
    assert test["source"].decode() == "sub/b.avi frame 2" and levels(test["image"]) == pytest.approx(LEVEL(1, 2), abs=3)


def test_masks_are_framed_like_their_frames(root, tmp_path):
    from fgbg_tf.data.media import write_image

    annotate(root, ["a.avi,0,20,12,8,0", "sub/b.avi,1,14,6,26,18"])
    for file, frame in (("a.avi", 0), ("sub/b.avi", 1)):
        mask = np.zeros((24, 40, 3), np.uint8)
        mask[:12, 8:20] = 1 if file == "sub/b.avi" else 255  # the top-left quarter of the centre crop; 0/1 labels too
        write_image(root / "masks" / file / f"{frame}.png", mask)
    clips = reader(root, tmp_path, test_videos=["sub/b.avi"], keypoints="keypoints.csv", masks="masks")
    assert clips.has_masks
    (test,) = clips.eval_split("test").as_numpy_iterator()
    expected = np.zeros((16, 16), np.uint8)
    expected[:8, :8] = 1
    np.testing.assert_array_equal(test["mask"], expected)
    (root / "masks" / "a.avi" / "0.png").unlink()
    with pytest.raises(DatasetError, match=r"no mask for a.avi frame 0: expected .*masks/a.avi/0.png"):
        reader(root, tmp_path, test_videos=["sub/b.avi"], keypoints="keypoints.csv", masks="masks")


def test_bad_annotations_stop_the_reader_before_any_work(root, tmp_path):
    annotate(root, ["a.avi,0,20,12,8,0", "c.avi,1,1,1,1,1", "sub/b.avi,1,1,1,1,1"])
    with pytest.raises(DatasetError, match=r"keypoints.csv line 3: 'c.avi' is not a video under data_dir"):
        reader(root, tmp_path, test_videos=["sub/b.avi"], keypoints="keypoints.csv")
    annotate(root, ["a.avi,0,20,12,8,0"])
    with pytest.raises(DatasetError, match=r"annotated now: 1 training and 0 held-out video"):
        reader(root, tmp_path, test_videos=["sub/b.avi"], keypoints="keypoints.csv")
    annotate(root, ["a.avi,0,20,12,8,0", "sub/b.avi,1,1,1,1,1"])
    with pytest.raises(DatasetError, match=r"normalise_by must name two of the CSV's points \['1', '2'\]"):
        reader(root, tmp_path, test_videos=["sub/b.avi"], keypoints="keypoints.csv", normalise_by=["1", "eye"])
    with pytest.raises(DatasetError, match=r"masks and data.options.normalise_by need data.options.keypoints"):
        reader(root, tmp_path, masks="masks")
    annotate(root, ["a.avi,40,20,12,8,0", "sub/b.avi,1,1,1,1,1"])
    clips = reader(root, tmp_path, test_videos=["sub/b.avi"], keypoints="keypoints.csv")
    with pytest.raises(DatasetError, match=r"a.avi has no frame 40 \(frames: 0..11\)"):
        clips.eval_split("train")
