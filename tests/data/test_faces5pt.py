"""The faces5pt reader on a fake layout (and, when present, the real ../shared/data/faces5pt)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from fgbg_tf.config import DataConfig
from fgbg_tf.data.base import DatasetError
from fgbg_tf.data.faces5pt import MISALIGNED_REASON, Faces5ptDataset
from tests.data.fixtures_images import (
    blob_image,
    centroid,
    make_faces5pt,
    write_corrupted_jpeg,
    write_faces5pt_list,
    write_jpeg,
)

REAL = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "faces5pt"


def reader(root, size=32, **options):
    return Faces5ptDataset(DataConfig(name="faces5pt", data_dir=str(root), image_size=size, options=options))


def collect(dataset, count=None):
    if count is not None:
        dataset = dataset.take(count)
    return list(dataset.as_numpy_iterator())


def test_keypoints_follow_the_resize_pixel_centre_convention(tmp_path):
    entries = make_faces5pt(tmp_path)
    faces = collect(reader(tmp_path, size=32).eval_split("train"))
    # By hand: x' = (x + 0.5) * 32 / 80 - 0.5; face 0's left eye (28, 32) -> (10.9, 12.5).
    np.testing.assert_allclose(faces[0]["keypoints"][0], [10.9, 12.5], atol=1e-5)
    for face, (_, keypoints) in zip(faces, entries["train"]):
        np.testing.assert_allclose(face["keypoints"], (keypoints + 0.5) * 0.4 - 0.5, atol=1e-5)
        # The blob drawn at the left eye must land on the transformed keypoint; the
        # corner convention (x * 0.4) would be 0.3 px away.
        np.testing.assert_allclose(centroid(face["image"]), face["keypoints"][0], atol=0.06)


def test_full_size_keeps_pixels_and_coordinates(tmp_path):
    entries = make_faces5pt(tmp_path, num_train=2, num_test=1)
    faces = collect(reader(tmp_path, size=80).eval_split("test"))
    # The accurate IDCT (PIL's, and so the release's), not TensorFlow's default fast one.
    encoded = tf.io.read_file(str(tmp_path / entries["test"][0][0]))
    expected = tf.io.decode_jpeg(encoded, channels=3, dct_method="INTEGER_ACCURATE").numpy()
    np.testing.assert_array_equal(faces[0]["image"], expected)
    np.testing.assert_allclose(faces[0]["keypoints"], entries["test"][0][1], atol=1e-5)


def test_splits_are_the_list_files_in_order(tmp_path):
    entries = make_faces5pt(tmp_path, num_train=5, num_test=3)
    faces = reader(tmp_path)
    assert faces.num_train_items == 5 and not faces.is_video and faces.eval_splits() == ("train", "test")
    for split in ("train", "test"):
        sources = [e["source"].decode() for e in collect(faces.eval_split(split))]
        assert sources == [str(tmp_path / name) for name, _ in entries[split]]
    with pytest.raises(DatasetError, match="not 'val'"):
        faces.eval_split("val")


def test_train_pairs_are_epochs_of_shuffles_and_resume_exactly(tmp_path):
    make_faces5pt(tmp_path, num_train=5, num_test=1)
    faces = reader(tmp_path)
    stream = collect(faces.train_pairs(seed=3, start=0), 10)
    sources = [e["source"].decode() for e in stream]
    assert [e["index"] for e in stream] == list(range(10))
    assert len(set(sources[:5])) == 5 and len(set(sources[5:])) == 5
    for element in stream:
        np.testing.assert_array_equal(element["partner"], element["frame"])
        assert element["valid"] and element["frame"].shape == (32, 32, 3)
    resumed = collect(faces.train_pairs(seed=3, start=7), 3)
    for a, b in zip(resumed, stream[7:]):
        assert a["index"] == b["index"] and a["source"] == b["source"]
        np.testing.assert_array_equal(a["frame"], b["frame"])
    orders = {tuple(e["source"] for e in collect(faces.train_pairs(seed=s, start=0), 5)) for s in range(4)}
    assert len(orders) > 1


def test_missing_inputs_fail_at_construction_naming_the_path(tmp_path):
    with pytest.raises(DatasetError, match="data_dir"):
        Faces5ptDataset(DataConfig(name="faces5pt", data_dir=None, image_size=32))
    with pytest.raises(DatasetError, match=f"{tmp_path / 'absent'}.*new_training.txt"):
        reader(tmp_path / "absent")
    make_faces5pt(tmp_path)
    (tmp_path / "new_testing.txt").unlink()
    with pytest.raises(DatasetError, match=f"{tmp_path / 'new_testing.txt'} is missing"):
        reader(tmp_path)
    with pytest.raises(DatasetError, match=r"unknown data.options \['crop'\] for faces5pt"):
        reader(tmp_path, crop=64)


def test_bad_annotations_are_skipped_and_reported(tmp_path, caplog):
    entries = make_faces5pt(tmp_path, num_train=2, num_test=1)
    slightly_outside = entries["train"][0][1].copy()
    slightly_outside[3, 0] = -7.5
    far_outside = entries["train"][1][1].copy()
    far_outside[4, 1] = 150.0
    write_jpeg(tmp_path / "lfw_5590/far.jpg", blob_image(80, 80, (40, 40)))
    write_faces5pt_list(
        tmp_path / "new_training.txt",
        [
            (entries["train"][0][0], slightly_outside),
            ("lfw_5590/far.jpg", far_outside),
            ("lfw_5590/gone.jpg", entries["train"][1][1]),
        ],
        extra_lines=("lfw_5590/face_0001.jpg 1 2 3", "lfw_5590/face_0001.jpg " + " ".join(["nan"] * 9 + ["x"])),
    )
    with caplog.at_level(logging.WARNING):
        faces = reader(tmp_path)
    reasons = [reason for _, reason in faces.skipped]
    assert faces.num_train_items == 1
    assert len(reasons) == 4
    assert "out of range" in reasons[0] and "missing" in reasons[1]
    assert "10 coordinates" in reasons[2] and "not numbers" in reasons[3]
    assert faces.skipped[0][0] == str(tmp_path / "lfw_5590/far.jpg")
    # The warning counts them and names the file that lists every one with its reason.
    assert "faces5pt: 4 items" in caplog.text
    listed = Path(caplog.text.rsplit("all of them: ", 1)[1].split()[0]).read_text().splitlines()
    assert listed == [f"{source}\t{reason}" for source, reason in faces.skipped]


def test_misaligned_net_crops_train_the_model_but_not_the_regressor(tmp_path, caplog):
    entries = make_faces5pt(tmp_path, num_train=2, num_test=1)
    rows = list(entries["train"])
    for name in ("net_7876/_-20_1004_0.jpg", "net_7876/1004_0_0.jpg", "net_7876/_20_7_1.jpg"):
        write_jpeg(tmp_path / name, blob_image(80, 80, (40, 40)))
        rows.append((name, rows[0][1]))
    write_faces5pt_list(tmp_path / "new_training.txt", rows)
    with caplog.at_level(logging.WARNING):
        faces = reader(tmp_path)
        assert "left out from the regression fit" not in caplog.text  # training fits nothing: no warning
        fit = collect(faces.eval_split("train"))
    everything = [str(tmp_path / name) for name, _ in rows]
    misaligned = [everything[2], everything[4]]
    assert faces.excluded_from_fit == [(source, MISALIGNED_REASON) for source in misaligned]
    assert "faces5pt-train: 2 items (frames, segments or videos) left out from the regression fit" in caplog.text
    assert [f["source"].decode() for f in fit] == [s for s in everything if s not in misaligned]
    np.testing.assert_allclose(fit[2]["keypoints"], faces.index["train"][1][3])
    assert len(collect(faces.eval_split("test"))) == 1
    # They still train the model: an epoch visits all five.
    assert faces.num_train_items == 5
    assert {e["source"].decode() for e in collect(faces.train_pairs(seed=0, start=0), 5)} == set(everything)
    kept = reader(tmp_path, misaligned_annotations="keep")
    assert kept.excluded_from_fit == []
    assert [f["source"].decode() for f in collect(kept.eval_split("train"))] == everything
    with pytest.raises(DatasetError, match="misaligned_annotations .* 'exclude' or 'keep', got 'drop'"):
        reader(tmp_path, misaligned_annotations="drop")


def test_unreadable_files_become_invalid_elements_in_place(tmp_path, caplog):
    entries = make_faces5pt(tmp_path, num_train=6, num_test=1)
    paths = [tmp_path / name for name, _ in entries["train"]]
    write_corrupted_jpeg(paths[5])  # scrambled middle bytes: decodes without an error, to wrong pixels
    data = paths[1].read_bytes()
    paths[1].write_bytes(data[: len(data) // 2])  # truncated
    paths[2].write_bytes(b"\xff\xd8\xff" + b"not a jpeg" * 20 + b"\xff\xd9")  # corrupt
    write_jpeg(paths[3], blob_image(64, 64, (30, 30)))  # not the 80x80 crop the annotations describe
    faces = reader(tmp_path)
    paths[4].unlink()  # vanished after indexing
    with caplog.at_level(logging.WARNING):
        frames = collect(faces.eval_split("train"))
    assert [bool(f["valid"]) for f in frames] == [True, False, False, False, False, False]
    assert [f["source"].decode() for f in frames] == [str(p) for p in paths]
    # Each is reported with its reason once, when the split is decoded.
    assert "faces5pt-train: 5 items (frames, segments or videos) left out when decoding" in caplog.text
    listed = Path(caplog.text.rsplit("all of them: ", 1)[1].split()[0]).read_text().splitlines()
    reasons = dict(line.split("\t") for line in listed)
    assert reasons[str(paths[1])] == "not a readable image"
    assert reasons[str(paths[2])] == "not a readable image"
    assert reasons[str(paths[3])] == "64x64 pixels, expected the 80x80 crop"
    assert reasons[str(paths[4])] == "no such file"
    assert reasons[str(paths[5])].startswith("corrupt image data (Corrupt JPEG data: ")
    for frame in frames[1:]:
        assert not frame["image"].any()
    stream = collect(faces.train_pairs(seed=0, start=0), 6)
    invalid = sorted(e["source"].decode() for e in stream if not e["valid"])
    assert invalid == sorted(str(p) for p in paths[1:])
    assert all(not e["frame"].any() for e in stream if not e["valid"])


@pytest.mark.skipif(not REAL.is_dir(), reason="../shared/data/faces5pt is not on this machine")
def test_real_faces5pt_index():
    faces = reader(REAL, size=64)
    assert faces.num_train_items == 10_000 and len(faces.index["test"][0]) == 2_995
    assert faces.skipped == []
    assert len(faces.excluded_from_fit) == 2_350 and faces._fit_items.size == 7_650
    first = faces.index["train"][1][0]
    # lfw_5590/Aaron_Eckhart_0001.jpg left eye (34.32, 34.8) at 64 px.
    np.testing.assert_allclose(first[0], [(34.32 + 0.5) * 0.8 - 0.5, (34.8 + 0.5) * 0.8 - 0.5], atol=1e-4)
