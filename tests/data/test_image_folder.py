"""The `images` dataset: a folder of the user's own images of any size, framed, decoded once, TPS views; the
held-out split and the annotations `evaluate` reads."""

import numpy as np
import pytest

import fgbg_tf.data.image_folder as image_folder
from fgbg_tf.config import load_config
from fgbg_tf.data import DatasetError, get_dataset
from fgbg_tf.data.media import frame_image, read_image, write_image
from fgbg_tf.data.pipeline import check_views, training_batches
from tests.conftest import TINY_OVERRIDES

TINY = [s for s in TINY_OVERRIDES if not s.startswith("data.options") and not s.startswith("data.temporal")]
# The tests of framing train on every image; those of the split and the annotations hold some out.
EVERY_IMAGE = TINY + ["data.options.test_images=0"]


def _photos(root):
    rng = np.random.default_rng(0)
    write_image(root / "a.png", rng.integers(0, 256, (40, 60, 3), dtype=np.uint8))  # wide
    write_image(root / "nested" / "b.jpg", rng.integers(0, 256, (50, 30, 3), dtype=np.uint8))  # tall, a sub-folder
    write_image(root / "c.bmp", rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
    (root / "broken.jpg").write_bytes(b"not a jpeg")
    (root / "notes.txt").write_text("not an image")
    return root


@pytest.mark.parametrize("framing", ["centre_crop", "pad"])
def test_a_folder_of_images_of_any_size_trains_with_tps_views(tmp_path, framing):
    root = _photos(tmp_path / "photos")
    config = load_config("images", overrides=EVERY_IMAGE + [f"data.data_dir={root}", f"data.options.framing={framing}"])
    dataset = get_dataset(config.data)
    assert dataset.sources == [str(root / "a.png"), str(root / "c.bmp"), str(root / "nested" / "b.jpg")]
    assert dataset.skipped == [(str(root / "broken.jpg"), f"{root / 'broken.jpg'}: not a readable image")]
    assert dataset.source_sizes == [[30, 50, 1], [32, 32, 1], [60, 40, 1]]  # (width, height, images), before framing
    for image, source in zip(dataset.images.numpy(), dataset.sources):
        np.testing.assert_array_equal(image, frame_image(read_image(source), 32, framing, source)[0])
    check_views(dataset, config)
    batch = next(iter(training_batches(dataset, config, 2)))
    for key in ("pose", "appearance", "target"):
        assert batch[key].shape == (2, 32, 32, 3) and batch[key].numpy().std() > 0.01, key
    assert not np.allclose(batch["pose"].numpy(), batch["appearance"].numpy())  # a TPS-warped partner


def test_a_box_that_does_not_fit_an_image_leaves_it_out_and_a_bad_framing_is_refused(tmp_path):
    root = _photos(tmp_path / "photos")
    config = load_config("images", overrides=EVERY_IMAGE + [f"data.data_dir={root}",
                                                            "data.options.framing=[0, 0, 40, 40]"])
    dataset = get_dataset(config.data)
    assert dataset.sources == [str(root / "a.png")]  # 60x40 holds the 40 px box; 32x32 and 30x50 do not
    assert dataset.source_sizes == [[60, 40, 1]]  # the images left out are not training sources
    assert any("does not fit in the 32x32 image" in reason for _, reason in dataset.skipped)
    with pytest.raises(DatasetError, match="data.options.framing must be one of"):
        get_dataset(load_config("images", overrides=TINY + [f"data.data_dir={root}", "data.options.framing=fit"]).data)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetError, match="holds no readable image"):
        get_dataset(load_config("images", overrides=TINY + [f"data.data_dir={empty}"]).data)


def _reader(root, *overrides):
    return get_dataset(load_config("images", overrides=TINY + [f"data.data_dir={root}", *overrides]).data)


def test_held_out_images_are_a_deterministic_disjoint_split_never_trained_on(tmp_path):
    root = tmp_path / "photos"
    for i in range(10):
        write_image(root / f"{i // 5}" / f"{i}.png", np.full((20, 24, 3), 20 * i, np.uint8))
    photos = _reader(root)  # the default: a fifth of the images, ranked by a hash of their relative paths
    assert len(photos.names["test"]) == 2 and not set(photos.names["test"]) & set(photos.names["train"])
    assert sorted(photos.names["train"] + photos.names["test"]) == sorted(f"{i // 5}/{i}.png" for i in range(10))
    assert photos.sources == [str(root / name) for name in photos.names["train"]] and photos.num_train_items == 8
    assert photos.images.shape == (8, 32, 32, 3) and photos.source_sizes == [[24, 20, 8]]
    assert _reader(root).names == photos.names  # the same split on every reading
    write_image(root / "0" / "new.png", np.zeros((20, 24, 3), np.uint8))
    grown = _reader(root)  # still two held out: the new image may take a place, no other image moves to it
    assert len(grown.names["test"]) == 2 and set(grown.names["test"]) - set(photos.names["test"]) <= {"0/new.png"}
    listed = _reader(root, "data.options.test_images=[1/7.png]")
    assert listed.names["test"] == ["1/7.png"] and str(root / "1" / "7.png") not in listed.sources
    with pytest.raises(DatasetError, match=r"test_images names \['1/70.png'\], which are not images under data_dir"):
        _reader(root, "data.options.test_images=[1/70.png]")
    with pytest.raises(DatasetError, match=r"data.options.test_images must be a fraction in \[0, 1\) or a list"):
        _reader(root, "data.options.test_images=1")


# Three photos: wide.png 60 x 40 and broken.jpg train, tall.png 30 x 50 is held out.
HELD_OUT = "data.options.test_images=[tall.png]"


@pytest.fixture
def annotated(tmp_path):
    root = tmp_path / "photos"
    rng = np.random.default_rng(1)
    write_image(root / "wide.png", rng.integers(0, 256, (40, 60, 3), dtype=np.uint8))
    write_image(root / "tall.png", rng.integers(0, 256, (50, 30, 3), dtype=np.uint8))
    (root / "broken.jpg").write_bytes(b"not a jpeg")
    # The frame cell of an image is 0 or empty; an empty pair is a missing point; (2, 5) lies left of the centre crop.
    (root / "keypoints.csv").write_text("file,frame,eye_x,eye_y,ear_x,ear_y\n"
                                        "wide.png,0,30,20,2,5\ntall.png,,14.5,24.5,,\nbroken.jpg,0,1,1,2,2\n")
    return root


@pytest.mark.parametrize("framing, box_x, box_y, scale", [
    ("centre_crop", 10, 0, 40 / 32),  # wide.png: the centred 40 px square, (10, 0, 40, 40)
    ("pad", 0, -10, 60 / 32),  # wide.png: on a black 60 px square, (0, -10, 60, 60)
])
def test_keypoints_are_mapped_through_each_images_framing_box(annotated, framing, box_x, box_y, scale):
    photos = _reader(annotated, HELD_OUT, "data.options.keypoints=keypoints.csv", f"data.options.framing={framing}",
                     "data.options.normalise_by=[eye, ear]")
    assert photos.regression_splits == ("train", "test") and photos.keypoint_names == ("eye", "ear")
    assert photos.normalise_pair == (0, 1) and not photos.has_masks
    broken, wide = photos.eval_split("train").as_numpy_iterator()  # sorted by relative path
    assert broken["source"].decode() == "broken.jpg" and not broken["valid"] and np.isnan(broken["keypoints"]).all()
    assert wide["source"].decode() == "wide.png" and wide["valid"]
    # Pixel centres map to pixel centres: x_input = (x - box_x + 0.5) / scale - 0.5, by hand for each point.
    expected = [[(30 - box_x + 0.5) / scale - 0.5, (20 - box_y + 0.5) / scale - 0.5],
                [(2 - box_x + 0.5) / scale - 0.5, (5 - box_y + 0.5) / scale - 0.5]]
    np.testing.assert_allclose(wide["keypoints"], expected, rtol=1e-6)
    if framing == "centre_crop":  # the same numbers written out; the ear, outside the box, stays outside the input
        np.testing.assert_allclose(wide["keypoints"], [[15.9, 15.9], [-6.5, 3.9]], rtol=1e-6)
    np.testing.assert_array_equal(wide["image"], frame_image(read_image(annotated / "wide.png"), 32, framing, "")[0])
    (tall,) = photos.eval_split("test").as_numpy_iterator()
    # tall.png, 30 x 50: centre_crop (0, 10, 30, 30) and pad (-10, 0, 50, 50) both put (14.5, 24.5) at (15.5, 15.5).
    np.testing.assert_allclose(tall["keypoints"][0], [15.5, 15.5], rtol=1e-6)
    assert np.isnan(tall["keypoints"][1]).all()


def test_masks_of_annotated_images_are_framed_like_the_images(annotated):
    for name, width, height in (("wide", 60, 40), ("tall", 30, 50), ("broken", 1, 1)):
        mask = np.zeros((height, width, 3), np.uint8)
        mask[: height // 2, : width // 2] = 255
        write_image(annotated / "masks" / f"{name}.png", mask)
    photos = _reader(annotated, HELD_OUT, "data.options.keypoints=keypoints.csv", "data.options.masks=masks",
                     "data.options.framing=resize")
    assert photos.has_masks
    (tall,) = photos.eval_split("test").as_numpy_iterator()
    expected = np.zeros((32, 32), np.uint8)
    expected[:16, :16] = 1  # the top-left quarter, squashed as the image is
    np.testing.assert_array_equal(tall["mask"], expected)
    (annotated / "masks" / "tall.png").unlink()
    with pytest.raises(DatasetError, match=r"no mask for tall.png: expected .*masks/tall.png"):
        _reader(annotated, HELD_OUT, "data.options.keypoints=keypoints.csv", "data.options.masks=masks")


@pytest.mark.parametrize("rows, message", [
    ("elsewhere.png,0,1,2,3,4", r"keypoints.csv line 3: 'elsewhere.png' is not an image under data_dir"),
    ("tall.png,0,1,two,3,4", r"keypoints.csv line 3: expected a frame 0 or empty and numbers .*'two'"),
    ("tall.png,0,1,2,3", r"keypoints.csv line 3: 5 columns, the header has 6"),
    ("tall.png,3,1,2,3,4", r"keypoints.csv line 3: tall.png is an image, a single frame: expected the frame 0 or an "
                           r"empty cell, got '3'"),
    ("", r"annotated now: 1 training and 0 held-out image\(s\) \(data.options.test_images chooses the held-out ones: "
         r"\['tall.png'\]\)"),
])
def test_a_bad_keypoints_csv_stops_the_reader_before_any_image_is_decoded(annotated, monkeypatch, rows, message):
    (annotated / "keypoints.csv").write_text(f"file,frame,x1,y1,x2,y2\nwide.png,0,30,20,2,5\n{rows}\n")

    def no_decoding(path):
        raise AssertionError(f"{path} was decoded before the CSV was checked")

    monkeypatch.setattr(image_folder, "read_image", no_decoding)
    with pytest.raises(DatasetError, match=message):
        _reader(annotated, HELD_OUT, "data.options.keypoints=keypoints.csv")
