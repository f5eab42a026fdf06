"""tools/faces5pt_transfer.py: its measures on hand-made points and images."""

import numpy as np
import tensorflow as tf

from tools import faces5pt_transfer as transfer

# Five points in MAFL order (eyes, nose, mouth corners) of a frontal face with an inter-ocular distance of 10.
FACE = np.array([[20.0, 20.0], [30.0, 20.0], [25.0, 26.0], [21.0, 31.0], [29.0, 31.0]])


def test_normalised_errors_divide_by_the_interocular_distance():
    predicted = FACE[None] + np.array([3.0, 4.0])  # every point 5 px off
    np.testing.assert_allclose(transfer.normalised_errors(predicted, FACE[None]), np.full((1, 5), 0.5))


def test_slopes_of_a_shrunk_face():
    faces = np.stack([FACE + shift for shift in ([0, 0], [7, -3], [-4, 5])])
    shrunk = 0.9 * faces + 2.0  # a face 10 % too small, anywhere
    np.testing.assert_allclose(transfer.slopes(shrunk, faces), [0.9, 0.9], atol=1e-9)


def test_turn_is_the_noses_offset_over_the_interocular_distance():
    turned = FACE.copy()
    turned[2, 0] += 3.0  # the nose 3 px right of the midline
    np.testing.assert_allclose(transfer.turn(np.stack([FACE, turned])), [0.0, 0.3], atol=1e-9)


def test_is_gray_in_uint8_and_float_ranges():
    gray = np.full((1, 4, 4, 3), 100, np.uint8)
    colour = gray.copy()
    colour[0, 1, 1] = (100, 120, 100)
    images = np.concatenate([gray, colour])
    np.testing.assert_array_equal(transfer.is_gray(images), [True, False])
    np.testing.assert_array_equal(transfer.is_gray(images / 255.0), [True, False])


def test_zoom_moves_the_keypoints_with_the_content():
    size, zoom = 32, 1.5
    image = np.zeros((size, size, 3), np.float32)
    image[20, 24] = 1.0  # one bright pixel at (x, y) = (24, 20)
    batch = {"image": tf.constant(image), "keypoints": tf.constant([[24.0, 20.0]])}
    zoomed = transfer.zoom_about_centre(batch, zoom, size)
    picture = zoomed["image"].numpy()[..., 0]
    rows, columns = np.mgrid[:size, :size]
    centroid = [(picture * columns).sum() / picture.sum(), (picture * rows).sum() / picture.sum()]
    centre = (size - 1) / 2  # pixel centres at 0..size-1; a centre at size / 2 would put the point 0.25 px off
    expected = [centre + zoom * (24 - centre), centre + zoom * (20 - centre)]
    np.testing.assert_allclose(zoomed["keypoints"].numpy(), [expected], atol=1e-5)
    np.testing.assert_allclose(centroid, expected, atol=0.05)


def test_roll_is_the_eye_lines_angle_either_way():
    def rotated(degrees):
        angle = np.radians(degrees)
        rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        return (FACE - 25.0) @ rotation.T + 25.0

    np.testing.assert_allclose(transfer.roll(np.stack([FACE, rotated(30.0), rotated(-30.0)])), [0.0, 30.0, 30.0],
                               atol=1e-9)


def test_pose_cells_are_open_ended():
    turned, rolled = FACE.copy(), FACE.copy()
    turned[2, 0] += 9.0  # turn 0.9: beyond the last turn edge
    rolled[1, 1] += 10.0  # the right eye 10 px lower: roll 45 degrees
    cells = transfer.pose_cells(np.stack([FACE, turned, rolled]), np.array([0.1, 0.2, 0.5]), np.array([0, 10, 90]))
    np.testing.assert_array_equal(cells, [0, 2, 1])  # (turn bin, roll bin) = (0, 0), (1, 0), (0, 1) in a 2 x 2 grid


def test_reweighted_error_takes_the_targets_mix():
    # Source: three faces in cell 0 (error 1) and one in cell 1 (error 5); the target has the two cells half and half.
    errors, cells = np.array([1.0, 1.0, 1.0, 5.0]), np.array([0, 0, 0, 1])
    mean, covered = transfer.reweighted_error(errors, cells, np.array([0, 1]))
    assert (mean, covered) == (3.0, 1.0)
    # A target cell the source lacks is left out of the mean and counted as uncovered.
    mean, covered = transfer.reweighted_error(errors, cells, np.array([0, 1, 2, 2]))
    assert (mean, covered) == (3.0, 0.5)


def test_bins_are_half_open_and_open_ended():
    edges = np.array([0.0, 1.0, 2.0, 3.0])
    np.testing.assert_array_equal(transfer.bins(np.array([-5.0, 0.0, 0.99, 1.0, 2.5, 3.0, 9.0]), edges),
                                  [0, 0, 0, 1, 2, 2, 2])
