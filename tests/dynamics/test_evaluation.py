import numpy as np
import pytest

from fgbg_tf.config import DynamicsConfig
from fgbg_tf.data import DatasetError, get_dataset
from fgbg_tf.dynamics.evaluation import evaluate_rollouts, landmark_distance, scored_frames, scored_windows
from fgbg_tf.dynamics.model import LandmarkDynamics
from fgbg_tf.dynamics.render import render_states
from fgbg_tf.dynamics.sequences import extract_states, video_clips
from fgbg_tf.dynamics.state import StateNormaliser
from fgbg_tf.model.factorized import build_model


def test_windows_tile_each_clip_from_its_start():
    clips = [("a", np.zeros(10)), ("b", np.zeros(4)), ("c", np.zeros(7))]
    assert scored_windows(clips, 3) == [(0, 0), (0, 3), (0, 6), (1, 0), (2, 0), (2, 3)]
    with pytest.raises(DatasetError, match="the 11 frames"):
        scored_windows(clips, 11)


def test_landmark_distance_is_in_pixels_averaged_over_landmarks():
    # Two landmarks; the first moves by (0.1, 0) in [-1, 1] units = 3.2 px at 64 px, the second by (0, 0.2) = 6.4 px.
    state = np.zeros(10)
    moved = state.copy()
    moved[0], moved[6] = 0.1, 0.2
    assert landmark_distance(moved[None], state[None], 64)[0] == pytest.approx(4.8)


def test_scored_frames_resize_by_area_and_average_the_channels():
    videos = np.zeros((1, 1, 4, 4, 3), np.uint8)
    videos[..., :2, :, 0] = 255  # top half red: each 2 x 2 block is all red or all black
    small = scored_frames(videos, DynamicsConfig(score_size=2))
    np.testing.assert_array_equal(small[0, 0, :, :, 0], [[255, 255], [0, 0]])
    grey = scored_frames(videos, DynamicsConfig(score_grey=True))
    assert grey.shape == (1, 1, 4, 4, 1) and grey[0, 0, 0, 0, 0] == 85


def test_an_untrained_lstm_scores_as_holding_the_last_seed_frame(tiny_config):
    # The residual head starts at zero: the rollout repeats the last seed state, so its landmark error equals the
    # hold-last reference and its frames are the last seed state rendered; the true-landmark anchor renders the truth.
    model = build_model(tiny_config.model, 32)
    clips = video_clips(get_dataset(tiny_config.data), "test")
    states = extract_states(model, [frames for _, frames in clips])
    config = DynamicsConfig(seed_frames=3, predicted_frames=4)
    normaliser = StateNormaliser.fit(np.concatenate(states))
    report, strips = evaluate_rollouts(model, LandmarkDynamics(4, hidden=8), normaliser, clips, states, config)
    landmarks = report["landmarks"]
    np.testing.assert_allclose(landmarks["predicted"]["curve"], landmarks["hold_last"]["curve"], atol=1e-4)
    last_seed = clips[0][1][2]
    held = render_states(model, np.repeat(states[0][2:3], 4, axis=0), last_seed)
    assert np.abs(strips[0]["predicted"].astype(int) - held).max() <= 1
    truth = render_states(model, states[0][3:7], last_seed)
    np.testing.assert_array_equal(strips[0]["true_landmarks"], truth)
    np.testing.assert_array_equal(strips[0]["copy_last_frame"], np.repeat(last_seed[None], 4, axis=0))
    assert report["frames"]["copy_last_frame"]["psnr"]["frames"] == 4
