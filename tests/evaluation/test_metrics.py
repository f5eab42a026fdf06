"""Metrics of the landmark protocols on hand-made points with known answers."""

import numpy as np
import pytest

from fgbg_tf.evaluation import metrics


def test_point_errors_are_euclidean():
    truth = np.zeros((1, 2, 2))
    predicted = np.array([[[3.0, 4.0], [0.0, -2.0]]])
    np.testing.assert_allclose(metrics.point_errors(predicted, truth), [[5.0, 2.0]])


def test_interocular_error_normalises_each_frame_by_its_eye_distance():
    # Frame 0: eyes 10 px apart, every point 1 px off -> 10 %; frame 1: eyes 20 px apart, 1 px off -> 5 %.
    truth = np.array([[[0, 0], [10, 0], [5, 5]], [[0, 0], [0, 20], [5, 5]]], np.float64)
    predicted = truth + np.array([1.0, 0.0])
    assert metrics.interocular_distance(truth).tolist() == [10.0, 20.0]
    assert metrics.mean_error_by_interocular(predicted, truth) == pytest.approx(7.5)


def test_coincident_eyes_are_rejected():
    truth = np.zeros((1, 3, 2))
    with pytest.raises(ValueError, match="coincident eyes"):
        metrics.mean_error_by_interocular(truth, truth)


def test_error_by_image_size_is_a_percentage_of_the_side():
    truth = np.zeros((2, 1, 2))
    predicted = np.array([[[2.0, 0.0]], [[0.0, 4.0]]])
    assert metrics.mean_error_by_image_size(predicted, truth, 64) == pytest.approx(100 * 3 / 64)


def test_pixel_accuracy_threshold_is_inclusive():
    truth = np.zeros((1, 4, 2))
    predicted = np.array([[[5.9, 0], [6.0, 0], [6.1, 0], [0, 0]]])
    assert metrics.pixel_accuracy(predicted, truth, 6.0) == pytest.approx(0.75)


def test_matlab_halving():
    np.testing.assert_allclose(metrics.matlab_halve([1.0, 3.0, 13.0]), [1.0, 2.0, 7.0])


def test_bbc_accuracy_halves_frame_pixels_before_the_6px_threshold():
    truth = np.full((1, 3, 2), 100.0)
    # 12 frame px = 6 halved px (correct); 12.2 px = 6.1 (wrong); (7.2, 9.6) is 12 px away (correct).
    predicted = truth + np.array([[[12.0, 0.0], [12.2, 0.0], [7.2, 9.6]]])
    assert metrics.bbc_accuracy(predicted, truth) == pytest.approx(2 / 3)
    # Without the halving a 6 px threshold would accept none of them.
    assert metrics.pixel_accuracy(predicted, truth, 6.0) == 0.0


def test_points_must_be_frames_by_keypoints_by_xy():
    with pytest.raises(ValueError, match="predicted must be"):
        metrics.point_errors(np.zeros((2, 3)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="same shape"):
        metrics.point_errors(np.zeros((2, 3, 2)), np.zeros((2, 4, 2)))


def test_downsample_mask_averages_blocks():
    mask = np.array([[[1, 1, 0, 0], [1, 1, 0, 1], [1, 0, 0, 0], [0, 0, 0, 0]]])
    np.testing.assert_allclose(metrics.downsample_mask(mask, 2), [[[1.0, 0.25], [0.25, 0.0]]])


def test_foreground_containment_on_a_hand_made_mask():
    # Maps at 2x2 for a 4x4 mask: the top-left block is foreground, plus one pixel of the bottom-left block.
    mask = np.zeros((1, 4, 4))
    mask[0, :2, :2] = 1
    mask[0, 2, 0] = 1
    maps = np.zeros((1, 2, 2, 3))
    maps[0, 0, :, 0] = 0.5  # half on the foreground block, half on background
    maps[0, :, :, 1] = 0.25  # uniform
    maps[0, 1, 1, 2] = 1.0  # all on background
    containment = metrics.foreground_containment(maps, mask)
    np.testing.assert_allclose(containment, [[0.5, 0.25 * (1 + 0.25), 0.0]])


def test_containment_rejects_mismatched_sizes():
    with pytest.raises(ValueError, match="integer multiple"):
        metrics.foreground_containment(np.zeros((1, 3, 3, 2)), np.zeros((1, 4, 4)))


def test_containment_curve_sorts_frame_means_ascending():
    containment = np.array([[0.5, 0.1, 0.3], [0.3, 0.1, 0.1]])
    order, values = metrics.containment_curve(containment)
    assert order.tolist() == [1, 2, 0]
    np.testing.assert_allclose(values, [0.1, 0.2, 0.4])


def test_mask_agreement_by_hand():
    truth = np.zeros((2, 4, 4), np.uint8)
    truth[:, :2, :2] = 1  # 4 of 16 pixels
    predicted = np.zeros((2, 4, 4))
    predicted[0, :2, :2] = 0.9  # frame 0: exactly the figure
    predicted[1, :2, :] = 0.6  # frame 1: the top half, 8 pixels, 4 of them the figure
    result = metrics.mask_agreement(predicted, truth)
    assert result["iou"] == pytest.approx((1.0 + 4 / 8) / 2)
    # Frame 0 is a scaled copy of the truth (r = 1); frame 1: r = cov / (sd_p sd_t) by hand = 0.5773.
    assert result["correlation"] == pytest.approx((1.0 + 1 / np.sqrt(3)) / 2)
    assert result["mean"] == pytest.approx((4 * 0.9 + 8 * 0.6) / 32)
    # The 4 highest pixels: frame 0 the figure itself; frame 1 the first row (ties in pixel order), 2 of them the
    # figure: IoU 2 / (4 + 4 - 2).
    assert result["iou_at_area"] == pytest.approx((1.0 + 1 / 3) / 2)


def test_psnr_of_a_known_error():
    truth = np.zeros((1, 4, 4, 3))
    # MSE 0.04 on [-1, 1] images: 10 log10(4 / 0.04) = 20 dB.
    assert metrics.psnr(truth + 0.2, truth) == pytest.approx(20.0)


def test_error_by_a_named_pair_by_hand_missing_points_left_out():
    truth = np.array([[[0.0, 0.0], [10.0, 0.0], [5.0, 5.0]], [[0.0, 0.0], [0.0, 20.0], [np.nan, np.nan]]])
    predicted = truth + np.array([[[1.0, 0.0], [0.0, 0.0], [0.0, 2.0]], [[0.0, 4.0], [0.0, 0.0], [0.0, 0.0]]])
    # Frame 0: errors 1, 0, 2 over a distance of 10; frame 1: 4, 0 (the third point missing) over 20.
    expected = 100 * np.mean([0.1, 0.0, 0.2, 0.2, 0.0])
    assert metrics.mean_error_by_pair(predicted, truth, 0, 1) == pytest.approx(expected)
    assert metrics.mean_error_by_image_size(predicted, truth, 10) == pytest.approx(100 * np.mean([1, 0, 2, 4, 0]) / 10)
