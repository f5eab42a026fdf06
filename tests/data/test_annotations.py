"""A user's keypoints CSV and masks (fgbg_tf/data/annotations.py): parsing, errors that name the line, framing."""

import numpy as np
import pytest

from fgbg_tf.data.annotations import read_keypoints_csv, to_input_pixels
from fgbg_tf.data.base import DatasetError
from fgbg_tf.data.media import to_original_pixels


def write(tmp_path, text):
    path = tmp_path / "keypoints.csv"
    path.write_text(text)
    return path


def test_points_are_read_by_name_with_missing_points_as_nan(tmp_path):
    names, points = read_keypoints_csv(write(tmp_path, "file,frame,nose_x,nose_y,tail_x,tail_y\n"
                                                       "a.mp4,0,1.5,2,3,4\n\na.mp4,7,5,6,,\nday/frames,12,7,8,nan,nan\n"))
    assert names == ("nose", "tail")
    np.testing.assert_array_equal(points[("a.mp4", 0)], [[1.5, 2], [3, 4]])
    assert np.isnan(points[("a.mp4", 7)][1]).all() and points[("a.mp4", 7)][0].tolist() == [5, 6]
    assert np.isnan(points[("day/frames", 12)][1]).all()
    names, _ = read_keypoints_csv(write(tmp_path, "File,Frame,x1,y1,x2,y2\na.mp4,0,1,2,3,4\n"))
    assert names == ("1", "2")


@pytest.mark.parametrize("text, message", [
    ("file,frame,x1\n", r"keypoints.csv: header .*expected 'file,frame' then an x and a y column"),
    ("file,frame,x1,z1\n", r"header columns 'x1', 'z1'"),
    ("file,frame,x1,y1\na.mp4,0,1\n", r"keypoints.csv line 2: 3 columns, the header has 4"),
    ("file,frame,x1,y1\na.mp4,zero,1,2\n", r"line 2: expected an integer frame"),
    ("file,frame,x1,y1\na.mp4,-1,1,2\n", r"line 2: expected a file name and a frame >= 0"),
    ("file,frame,x1,y1\na.mp4,3,1,2\na.mp4,3,1,2\n", r"line 3: a.mp4 frame 3 is annotated twice"),
    ("file,frame,x1,y1\n", r"a header but no annotated frame"),
])
def test_a_bad_csv_is_named_with_its_line(tmp_path, text, message):
    with pytest.raises(DatasetError, match=message):
        read_keypoints_csv(write(tmp_path, text))


def test_an_images_frame_is_0_or_empty_and_every_file_must_be_known(tmp_path):
    path = write(tmp_path, "file,frame,x1,y1\ncats/tom.jpg,,1,2\ndog.png,0,3,4\n")
    _, points = read_keypoints_csv(path, ["cats/tom.jpg", "dog.png"], still_images=True)
    assert sorted(points) == [("cats/tom.jpg", 0), ("dog.png", 0)]
    with pytest.raises(DatasetError, match=r"keypoints.csv line 2: expected an integer frame"):  # a video's frame
        read_keypoints_csv(path)
    with pytest.raises(DatasetError, match=r"line 3: 'dog.png' is not an image under data_dir; .* e.g. \['cats/tom"):
        read_keypoints_csv(path, ["cats/tom.jpg"], still_images=True)


def test_missing_csv_is_named(tmp_path):
    with pytest.raises(DatasetError, match=r"data.options.keypoints: .*nothing.csv does not exist"):
        read_keypoints_csv(tmp_path / "nothing.csv")


@pytest.mark.parametrize("box", [(8, 0, 24, 24), (0, -8, 40, 40), (3, 5, 10, 10)])
def test_to_input_pixels_inverts_to_original_pixels(box):
    points = np.array([[0.0, 0.0], [15.0, 15.0], [7.25, 3.5]])
    np.testing.assert_allclose(to_input_pixels(to_original_pixels(points, 16, box), 16, box), points, atol=1e-12)
    # By hand: the centre crop (8, 0, 24, 24) of a 40 x 24 frame at 16 px; pixel centres map to pixel centres.
    np.testing.assert_allclose(to_input_pixels(np.array([[20.0, 12.0]]), 16, (8, 0, 24, 24)),
                               [[(12.5 / 1.5) - 0.5, (12.5 / 1.5) - 0.5]])
