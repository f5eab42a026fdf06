"""Tests for fgbg_tf.evaluation.protocols."""

import numpy as np
import pytest

from fgbg_tf.config import KEYPOINT_DATASETS
from fgbg_tf.evaluation.protocols import PROTOCOLS, SplitLandmarks, score


def test_bbc_score_maps_crops_to_frames_before_halving():
    # 32 px crops of 300 frame px: 1 crop px = 9.375 frame px = 4.6875 halved px (within 6), 2 crop px are not.
    truth = np.full((2, 7, 2), 16.0)
    boxes = np.array([[100.0, 50.0, 300.0], [0.0, 0.0, 300.0]])
    landmarks = SplitLandmarks(np.zeros((2, 1, 2)), truth, boxes, None, None, [], {})
    predicted = truth.copy()
    predicted[:, :3, 0] += 1.0
    predicted[:, 3:, 1] += 2.0
    assert score("bbc", predicted, landmarks, 32)["accuracy_pct"] == pytest.approx(100 * 3 / 7)


def test_every_keypoint_dataset_has_a_protocol():
    # config.KEYPOINT_DATASETS is what the command lines offer before TensorFlow loads; PROTOCOLS is what scores.
    assert sorted(KEYPOINT_DATASETS) == sorted(PROTOCOLS)
