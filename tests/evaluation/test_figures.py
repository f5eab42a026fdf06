"""OpenCV plots and the Figure 3 layout."""

import cv2
import numpy as np
import pytest

from fgbg_tf.evaluation.figures import figure3_grid, label_rows, line_plot, part_map_overlay, plot_axes, save_png
from fgbg_tf.evaluation.summaries import landmark_colours


def test_log_axis_puts_each_decade_at_equal_spacing():
    axes = plot_axes({"a": ([0, 4], [1.0, 100.0])}, log_y=True)
    assert axes.y_range == (1.0, 100.0)
    _, bottom = axes.map(0, 1.0)
    _, middle = axes.map(0, 10.0)
    _, top = axes.map(0, 100.0)
    assert (bottom, top) == (axes.box[3], axes.box[1])
    assert middle == pytest.approx((bottom + top) / 2)


def test_log_axis_rounds_out_to_decades_and_floors_zero():
    axes = plot_axes({"a": ([0, 1, 2], [0.0, 0.05, 3.0])}, log_y=True)
    assert axes.y_range == (1e-4, 10.0)


def test_line_plot_draws_curves_where_the_axes_map_them():
    series = {"a": ([0, 1, 2], [1.0, 2.0, 3.0]), "b": ([0, 1, 2], [3.0, 2.5, 1.5])}
    image = line_plot(series, "t", "x", "y", size=(400, 300))
    assert image.shape == (300, 400, 3) and image.dtype == np.uint8
    axes = plot_axes(series, size=(400, 300))
    x, y = (int(round(v)) for v in axes.map(1, 2.0))
    assert image[y, x].max() < 250  # a marker, not the white background
    x, y = (int(round(v)) for v in axes.map(1.5, 1.2))
    assert image[y, x].min() > 200  # an empty spot stays light


def test_error_bars_widen_the_axes_and_are_drawn_at_their_ends():
    series = {"a": ([0, 1, 2, 3, 4], [1.0, 1.5, 2.0, 2.5, 3.0], [0.0, 0.0, 1.5, 0.0, 0.0])}
    axes = plot_axes(series, size=(400, 300))
    assert axes.y_range[0] < 0.5 and axes.y_range[1] > 3.5
    image = line_plot(series, "t", "x", "y", size=(400, 300))
    for y_end in (0.5, 3.5):  # the bar's ends at 2 -/+ 1.5
        x, y = (int(round(v)) for v in axes.map(2, y_end))
        assert image[y, x].max() < 250
    x, y = (int(round(v)) for v in axes.map(1, 2.7))  # no bar where the error is 0
    assert image[y, x].min() > 200


def test_figure3_rows_hold_keypoints_mask_and_maps():
    images = np.full((2, 16, 16, 3), 100, np.uint8)
    keypoints = np.array([[[4.0, 5.0]], [[10.0, 12.0]]])
    maps = np.full((2, 8, 8, 3), 1 / 64)
    mask = np.zeros((2, 16, 16, 1))
    mask[:, :8] = 1.0
    grid = figure3_grid(images, keypoints, maps, mask, tile_size=16)
    assert grid.shape == (48, 32, 3)
    # Row 0: the first keypoint's dot has the first landmark colour; row 1: the mask in grey levels.
    np.testing.assert_array_equal(grid[5, 4], landmark_colours(1)[0])
    np.testing.assert_array_equal(grid[16:24, :, 0], 255)
    np.testing.assert_array_equal(grid[24:32, :, 0], 0)
    assert figure3_grid(images, keypoints, maps, None, tile_size=16).shape == (32, 32, 3)
    # Enlarged tiles keep keypoints on the same image content: pixel 4 of 16 -> centre at 4.5 * 8 - 0.5 of 128.
    big = figure3_grid(images, keypoints, maps, None, tile_size=128)
    np.testing.assert_array_equal(big[int(5.5 * 8), int(4.5 * 8)], landmark_colours(1)[0])


def test_part_map_overlay_colours_where_the_mass_is():
    image = np.zeros((8, 8, 3), np.uint8)
    maps = np.zeros((4, 4, 2))
    maps[0, 0, 0] = 1.0
    maps[3, 3, 1] = 1.0
    overlay = part_map_overlay(image, maps)
    colours = landmark_colours(2).astype(int)
    assert np.argmax(overlay[0, 0]) == np.argmax(colours[0])
    assert np.argmax(overlay[7, 7]) == np.argmax(colours[1])


def test_save_png_keeps_rgb_order(tmp_path):
    image = np.zeros((4, 4, 3), np.uint8)
    image[..., 0] = 255
    path = save_png(tmp_path / "red.png", image)
    assert cv2.imread(str(path))[0, 0].tolist() == [0, 0, 255]  # OpenCV reads BGR


def test_row_labels_name_each_row_on_a_strip_left_of_the_grid():
    grid = np.zeros((3 * 40, 80, 3), np.uint8)
    labelled = label_rows(grid, ["regressed keypoints", "predicted mask", "part maps"], width=100)
    assert labelled.shape == (120, 180, 3)
    np.testing.assert_array_equal(labelled[:, 100:], grid)
    strip = labelled[:, :100, 0]
    # Every row's band holds ink (its label, wrapped to the strip's width), the strip's edges none.
    for row in range(3):
        assert (strip[row * 40 : (row + 1) * 40] < 128).sum() > 20
    assert (strip[:, 97:] == 255).all()
