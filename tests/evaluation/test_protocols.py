"""Tests for fgbg_tf.evaluation.protocols, and the two BBC protocols end to end on a fixture in the released formats."""

import numpy as np
import pytest
import tensorflow as tf

from fgbg_tf.config import KEYPOINT_DATASETS, DataConfig
from fgbg_tf.data import release_crops
from fgbg_tf.data.bbc import BBCPoseDataset
from fgbg_tf.evaluation.protocols import (PROTOCOLS, SplitLandmarks, format_table, landmark_report, protocol_line,
                                         score)
from fgbg_tf.evaluation.regression import apply_regressor
from fgbg_tf.evaluation.runner import run_split
from tests.data.fixtures_video import joints_around, write_bbc


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


# A BBC Pose fixture (frames 120 x 100, crop_size 64 at S = 32): boxes that cross the frame border, per-joint jitter so
# that a regression has something to get wrong, two frames with a joint outside the frame (video 2 frame 15 in the
# fit split, video 16 frame 10 in results.mat) and results.mat frames of videos 17 and 19, which are not test_videos.
TRAIN = {1: [1, 3, 5, 7, 9, 11, 13, 15], 2: [1, 3, 5, 7, 9, 11, 13, 15]}
TEST = {16: [4, 1, 10, 6, 8, 2], 17: [3, 7], 19: [5, 12, 2]}
FRAMES = [(v, f) for group in (TRAIN, {11: [2]}, TEST) for v, frames in group.items() for f in frames]
BLUE = {vf: 20 + 8 * k for k, vf in enumerate(FRAMES)}  # tells the fake detector which frame a crop shows
_rng = np.random.default_rng(0)
JITTER = {vf: np.round(_rng.uniform(-14, 14, (7, 2)) * 4) / 4 for vf in FRAMES}
LANDMARKS = 4
NOISE = {vf: _rng.normal(0, 1.0, (LANDMARKS, 2)) for vf in FRAMES}
WIDTH, HEIGHT, HALF, SIZE = 120, 100, 32, 32


def fixture_joints(video, frame):
    """MATLAB 1-based joints [7, 2] of a fixture frame."""
    centre = (18.5 + 5 * frame + 0.25 * video, 30.5 + 12 * (video % 4) + 0.5 * frame)
    points = joints_around(*centre) + JITTER[video, frame]
    if (video, frame) == (2, 15):
        points[1, 0] = 124.5
    if (video, frame) == (16, 10):
        points[0, 1] = -3.0
    return points


def detector_means(vf):
    """What the fake detector finds on frame vf, in pixels of the S x S crop: 4 of its joints, shrunk, plus noise."""
    joints = fixture_joints(*vf)
    return (joints[[0, 1, 2, 5]] - (joints.min(0) + joints.max(0)) / 2) * 0.5 + SIZE / 2 + NOISE[vf]


def fake_detect(images):
    levels = [np.median(image[..., 2][image[..., 2] > 10]) for image in images.numpy()]
    frames = [min(BLUE, key=lambda vf: abs(BLUE[vf] - level)) for level in levels]
    means = np.stack([detector_means(vf) for vf in frames])
    return tf.constant(means, tf.float32), tf.zeros([len(frames), 1, 1, LANDMARKS])


@pytest.fixture(scope="module")
def bbc_root(tmp_path_factory):
    return write_bbc(tmp_path_factory.mktemp("bbc"), TRAIN, {11: [2]}, TEST, joints=fixture_joints,
                     blue=lambda v, f: BLUE[v, f])


def bbc_report(root, **options):
    options = {"crop_size": 2 * HALF, "train_videos": [1, 2], "val_videos": [11], **options}
    reader = BBCPoseDataset(DataConfig(name="bbc", data_dir=str(root), image_size=SIZE, temporal_offset=(2, 3),
                                       options=options))
    fit, test = run_split(fake_detect, reader, "train"), run_split(fake_detect, reader, "test")
    return (*landmark_report("bbc", ("train", "test"), fit, test, SIZE, reader.keypoint_names,
                             protocol=reader.protocol), test)


def released_rows(frames):
    """The released scripts on `frames`, by hand: features, targets, unrounded boxes and MATLAB joints."""
    features, targets, boxes, joints = [], [], [], []
    for vf in frames:
        g = fixture_joints(*vf)  # the MATLAB values, used as 0-based pixels
        centre = (g.min(0) + g.max(0)) / 2
        x0, y0 = max(0, centre[0] - HALF), max(0, centre[1] - HALF)
        x1, y1 = min(WIDTH, centre[0] + HALF), min(HEIGHT, centre[1] + HALF)
        w, h = x1 - x0, y1 - y0
        t = (g - [x0 + w / 2, y0 + h / 2]) / [w, h]
        mu = 2 * detector_means(vf) / SIZE - 1  # the means in the model's [-1, 1] units
        features.append(np.concatenate([mu[:, 0], mu[:, 1]]))
        targets.append(np.concatenate([t[:, 0], t[:, 1]]))
        boxes.append([x0, y0, w, h])
        joints.append(g)
    return np.array(features), np.array(targets), np.array(boxes), np.array(joints)


def test_release_protocol_reproduces_the_released_scripts_by_hand(bbc_root):
    report, regressors, test = bbc_report(bbc_root, protocol="release")
    # Every annotated fit frame and every frame of results.mat, joints outside the frame included.
    assert report["protocol"] == "release" and report["origin"] == "release"
    assert (report["splits"]["fit"]["frames"], report["splits"]["report"]["frames"]) == (16, 11)

    fit_x, fit_y, _, _ = released_rows([(v, f) for v, frames in TRAIN.items() for f in frames])
    test_x, _, boxes, joints = released_rows([(v, f) for v, frames in TEST.items() for f in frames])
    coefficients = np.linalg.lstsq(fit_x, fit_y, rcond=None)[0]  # OLS without intercept
    predicted = (test_x @ coefficients).reshape(-1, 2, 7).transpose(0, 2, 1)  # [N, 7, (x, y)], box units
    predicted = predicted * boxes[:, None, 2:] + boxes[:, None, 2:] / 2 + boxes[:, None, :2]
    distance = np.linalg.norm((0.5 * (predicted - 1) + 1) - (0.5 * (joints - 1) + 1), axis=-1)
    correct = distance <= 6
    assert np.abs(distance - 6).min() > 1e-3  # no joint so near the threshold that rounding could decide it
    assert report["results"]["release"]["accuracy_pct"] == pytest.approx(100 * correct.mean(), abs=1e-9)
    assert report["headline"]["value"] == pytest.approx(100 * correct.mean(), abs=1e-9)
    by_joint = list(report["accuracy_by_joint_pct"].values())
    np.testing.assert_allclose(by_joint, 100 * correct.mean(axis=0), atol=1e-9)
    assert 0 < correct.mean() < 1 and len(set(np.round(by_joint, 6))) > 2
    # The regressor and the map back to the frame agree with the release's too, joint by joint.
    ours_frame = release_crops.frame_coordinates(apply_regressor(regressors["release"], test.means_pixels),
                                                 test.boxes, SIZE)
    np.testing.assert_allclose(ours_frame, predicted, atol=1e-3)


def test_our_protocol_keeps_its_numbers(bbc_root):
    report, _, _ = bbc_report(bbc_root, test_videos=[16])
    # As before the release protocol existed: frames with a joint outside the frame and videos 17, 19 left out.
    assert report["protocol"] == "ours" and report["origin"] == "centre"
    assert (report["splits"]["fit"]["frames"], report["splits"]["report"]["frames"]) == (15, 5)
    assert report["results"]["centre"]["accuracy_pct"] == pytest.approx(100 * 29 / 35, abs=1e-9)
    assert report["results"]["top_left"]["accuracy_pct"] == pytest.approx(100 * 28 / 35, abs=1e-9)
    assert report["mean_pose_reference"]["accuracy_pct"] == pytest.approx(100 * 25 / 35, abs=1e-9)
    assert np.mean(list(report["accuracy_by_joint_pct"].values())) == pytest.approx(100 * 29 / 35)


def test_release_protocol_is_offered_only_where_code_was_released():
    assert {name for name, spec in PROTOCOLS.items() if spec.release} == {"bbc", "h36m", "celeba"}
    landmarks = SplitLandmarks(np.zeros((2, 1, 2)), np.ones((2, 1, 2)), None, None, None, [], {})
    with pytest.raises(ValueError, match="synthetic has no release protocol"):
        landmark_report("synthetic", ("train", "test"), landmarks, landmarks, 32, protocol="release")
    assert protocol_line("synthetic", "ours") == "protocol: ours (the only one for this dataset)"
    assert protocol_line("celeba", "release").startswith("protocol: release, reproducing IMM's scripts/test.py")
    assert "--protocol release reproduces our reading of the paper" in protocol_line("h36m", "ours")


def test_the_table_says_how_many_fit_frames_were_excluded_and_why():
    rng = np.random.default_rng(0)
    means = rng.uniform(0, 32, (6, 5, 2))
    landmarks = SplitLandmarks(means, means + 1.0, None, None, None, [], {})
    report, _ = landmark_report("faces5pt", ("train", "test"), landmarks, landmarks, 32)
    report.update({"checkpoint": "run", "step": 1, "variant": "full", "num_landmarks": 5})
    assert "fit on 'train' (6 frames), report" in format_table(report)
    report["splits"]["fit"]["excluded"] = {"frames": 2, "reasons": ["off its face"], "sources": ["a", "b"]}
    assert "fit on 'train' (6 frames; 2 excluded: off its face), report on 'test' (6 frames)" in format_table(report)


def test_self_fitted_reference_separates_the_landmarks_from_the_transfer_between_splits():
    # Keypoints an exact linear map of the means, but another map on each split: the protocol's regressor (fitted on
    # the fit split) cannot transfer, the report split fitted on itself (5-fold) scores 0.
    rng = np.random.default_rng(1)
    fit_means, test_means = rng.uniform(0, 32, (40, 3, 2)), rng.uniform(0, 32, (40, 3, 2))
    fit_map, test_map = rng.normal(0, 0.5, (6, 10)), rng.normal(0, 0.5, (6, 10))

    def split(means, linear_map):
        return SplitLandmarks(means, (means.reshape(40, 6) @ linear_map).reshape(40, 5, 2), None, None, None, [], {})

    report, _ = landmark_report("faces5pt", ("train", "test"), split(fit_means, fit_map), split(test_means, test_map),
                                32)
    assert report["results"]["top_left"]["error_by_iod_pct"] > 50
    assert report["fit_split_results"]["top_left"]["error_by_iod_pct"] < 1e-6
    assert report["self_fit_reference"]["error_by_iod_pct"] < 1e-6
    report.update({"checkpoint": "run", "step": 1, "variant": "full", "num_landmarks": 3})
    assert "self-fitted   0.000" in format_table(report)
    # Too few frames for a fold's fit (a fold leaves 4 of 5 frames, the regressor has 6 inputs): no reference.
    few = SplitLandmarks(test_means[:5], split(test_means, test_map).keypoints[:5], None, None, None, [], {})
    report, _ = landmark_report("faces5pt", ("train", "test"), split(fit_means, fit_map), few, 32)
    assert report["self_fit_reference"] is None
    # 12 frames, 5 landmarks (10 inputs): the largest held-out fold (3 frames) leaves 9 to fit: no reference.
    twelve = SplitLandmarks(rng.uniform(0, 32, (12, 5, 2)), rng.uniform(0, 32, (12, 5, 2)), None, None, None, [], {})
    assert landmark_report("faces5pt", ("train", "test"), twelve, twelve, 32)[0]["self_fit_reference"] is None
