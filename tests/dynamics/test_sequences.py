import numpy as np
import pytest
import tensorflow as tf

from fgbg_tf.data import DatasetError, get_dataset
from fgbg_tf.data.pipeline import to_model_range
from fgbg_tf.dynamics.sequences import extract_states, sample_windows, video_clips
from fgbg_tf.dynamics.state import encode_state
from fgbg_tf.model.factorized import build_model


class _FramesInClipOrder:
    """The shape of KTH's and BAIR's eval splits: ordered frames with a clip id and a validity flag."""

    name = "fake"

    def __init__(self, ids, valid):
        self.ids, self.valid = ids, valid

    def eval_split(self, split):
        images = np.arange(len(self.ids), dtype=np.uint8)[:, None, None, None] * np.ones((1, 2, 2, 3), np.uint8)
        return tf.data.Dataset.from_tensor_slices(
            {"image": images, "video": np.asarray(self.ids, np.int64), "valid": np.asarray(self.valid)})


def test_clips_group_ordered_frames_by_clip_and_end_at_an_unreadable_frame():
    dataset = _FramesInClipOrder(ids=[0, 0, 0, 1, 1, 1, 1], valid=[True, True, True, True, False, True, True])
    clips = video_clips(dataset, "test")
    # Frame values are their row numbers: clip 0 = rows 0-2; clip 1 is cut by the unreadable row 4.
    assert [name for name, _ in clips] == ["fake/test/0", "fake/test/1", "fake/test/1"]
    assert [frames[:, 0, 0, 0].tolist() for _, frames in clips] == [[0, 1, 2], [3], [5, 6]]


def test_clips_need_a_clip_id():
    class NoIds(_FramesInClipOrder):
        def eval_split(self, split):
            return super().eval_split(split).map(lambda e: {"image": e["image"]})

    with pytest.raises(DatasetError, match="no clip id"):
        video_clips(NoIds([0], [True]), "test")


def test_synthetic_clips_are_its_videos(tiny_config):
    dataset = get_dataset(tiny_config.data)
    clips = video_clips(dataset, "train")
    assert len(clips) == 2
    np.testing.assert_array_equal(clips[1][1], dataset.splits["train"].frames[1])


def test_states_are_the_encoded_gaussians_of_each_frame(tiny_config):
    model = build_model(tiny_config.model, 32)
    frames = get_dataset(tiny_config.data).splits["test"].frames[0]
    (states,) = extract_states(model, [frames], batch_size=3)  # batches of 3, 3 and 2 frames
    landmarks = model.detect(to_model_range(frames))
    assert states.shape == (8, 5 * 4)
    np.testing.assert_allclose(states, encode_state(landmarks["mean"], landmarks["covariance"]), atol=1e-5)


def test_windows_are_consecutive_states_of_clips_long_enough():
    # A clip of 2 frames holds no window of 3; the clip of 5 holds three, the clip of 4 two.
    sequences = [np.arange(2)[:, None] + 100.0, np.arange(5)[:, None] + 200.0, np.arange(4)[:, None] + 300.0]
    windows = sample_windows(sequences, 3, 500, np.random.default_rng(0))[..., 0]
    assert windows.shape == (500, 3)
    np.testing.assert_array_equal(np.diff(windows, axis=1), 1.0)
    clip = windows[:, 0] // 100
    assert set(clip) == {2, 3}
    # Every window of the set is equally likely: 3 of the 5 come from the clip of 5 frames.
    assert abs(np.mean(clip == 2) - 0.6) < 0.07
    assert set(windows[clip == 2, 0] % 100) == {0, 1, 2} and set(windows[clip == 3, 0] % 100) == {0, 1}
    with pytest.raises(DatasetError, match="has the 6 frames"):
        sample_windows(sequences, 6, 1, np.random.default_rng(0))
