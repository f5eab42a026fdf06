"""Tests for fgbg_tf.data.media: framing an image of another size and mapping points back through the box."""

import numpy as np
import pytest

from fgbg_tf.data.media import MediaError, check_framing, frame_image, to_original_pixels
from tests.data.fixtures_images import write_corrupted_jpeg


def _numbered(height, width):
    """An RGB image whose red channel is the column and green the row, so a crop shows where it came from."""
    rows, columns = np.indices((height, width))
    return np.stack([columns, rows, np.zeros_like(rows)], axis=-1).astype(np.uint8)


def test_centre_crop_keeps_the_centred_square_and_maps_points_back():
    image = _numbered(32, 48)
    framed, box = frame_image(image, 32, "centre_crop", "wide.png")
    assert box == (8, 0, 32, 32)
    np.testing.assert_array_equal(framed, image[:, 8:40])  # same size: no resampling at all
    np.testing.assert_allclose(to_original_pixels(np.array([[10.0, 5.0]]), 32, box), [[18.0, 5.0]])


def test_pad_centres_the_image_on_a_black_square():
    image = _numbered(32, 48) + 1  # no black pixel of its own
    framed, box = frame_image(image, 48, "pad", "wide.png")
    assert box == (0, -8, 48, 48)
    assert np.all(framed[:8] == 0) and np.all(framed[40:] == 0)
    np.testing.assert_array_equal(framed[8:40], image)
    # Shrunk to 32 px, the input's centre is still the image's centre (23.5, 15.5).
    small, box = frame_image(image, 32, "pad", "wide.png")
    np.testing.assert_allclose(to_original_pixels(np.array([[15.5, 15.5]]), 32, box), [[23.5, 15.5]])


def test_a_box_keeps_that_square_of_every_image_and_must_fit():
    image = _numbered(32, 48)
    framed, box = frame_image(image, 16, [4, 2, 16, 16], "camera.png")
    np.testing.assert_array_equal(framed, image[2:18, 4:20])
    np.testing.assert_allclose(to_original_pixels(np.array([[0.0, 0.0]]), 16, box), [[4.0, 2.0]])
    with pytest.raises(MediaError, match=r"camera.png: the framing box \[40, 0, 16, 16\] does not fit in the 48x32"):
        frame_image(image, 16, [40, 0, 16, 16], "camera.png")
    for bad in ([0, 0, 16, 8], "stretch", [0, 0, 16]):
        with pytest.raises(MediaError, match="framing must be one of"):
            check_framing(bad)


def test_without_a_framing_another_size_is_refused():
    with pytest.raises(MediaError, match="wide.png: image is 48x32, the model takes 32x32; name a framing"):
        frame_image(_numbered(32, 48), 32, None, "wide.png")
    image = _numbered(32, 32)
    framed, box = frame_image(image, 32, None, "square.png")
    assert framed is image and box == (0, 0, 32, 32)


def test_a_jpeg_with_corrupt_data_is_refused_naming_the_decoders_warning(tmp_path, capfd):
    from fgbg_tf.data.media import read_image

    clean = write_corrupted_jpeg(tmp_path / "corrupt.jpg")
    assert read_image(clean).shape == (80, 80, 3)
    with pytest.raises(MediaError, match=r"corrupt.jpg: corrupt image data \(Corrupt JPEG data: "):
        read_image(tmp_path / "corrupt.jpg")
    # The warning is consumed into the error, not echoed on stderr as well.
    assert "Corrupt JPEG data" not in capfd.readouterr().err
