"""The `images` dataset: a folder of the user's own images of any size, framed, decoded once, TPS views."""

import numpy as np
import pytest

from fgbg_tf.config import load_config
from fgbg_tf.data import DatasetError, get_dataset
from fgbg_tf.data.media import frame_image, read_image, write_image
from fgbg_tf.data.pipeline import check_views, training_batches
from tests.conftest import TINY_OVERRIDES

TINY = [s for s in TINY_OVERRIDES if not s.startswith("data.options") and not s.startswith("data.temporal")]


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
    config = load_config("images", overrides=TINY + [f"data.data_dir={root}", f"data.options.framing={framing}"])
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
    config = load_config("images", overrides=TINY + [f"data.data_dir={root}", "data.options.framing=[0, 0, 40, 40]"])
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
