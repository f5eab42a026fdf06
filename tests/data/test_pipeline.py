import numpy as np
import pytest
import tensorflow as tf

from fgbg_tf.data import get_dataset
from fgbg_tf.data.pipeline import make_views, training_batches


def test_views_follow_the_paper_routing(tiny_config):
    frame = tf.random.stateless_uniform([32, 32, 3], [1, 2], 0, 256, tf.int32)
    partner = tf.random.stateless_uniform([32, 32, 3], [3, 4], 0, 256, tf.int32)
    element = {"index": tf.constant(7, tf.int64), "frame": tf.cast(frame, tf.uint8), "partner": tf.cast(partner, tf.uint8)}
    views = make_views(element, tiny_config)
    np.testing.assert_allclose(views["target"][0], frame.numpy() / 127.5 - 1, atol=1e-6)
    np.testing.assert_allclose(views["appearance"][0], partner.numpy() / 127.5 - 1, atol=1e-6)
    assert np.abs(views["pose"][0] - views["target"][0]).max() > 0.01  # colour jittered
    assert views["weight"].numpy().tolist() == [1.0]

    tiny_config.data.pose_perturbation = "both"
    both = make_views(element, tiny_config)
    assert both["target"].shape[0] == 2
    np.testing.assert_allclose(both["pose"][0], both["pose"][1])
    np.testing.assert_allclose(both["appearance"][1], views["appearance"][0], atol=1e-6)
    assert np.abs(both["appearance"][0] - both["target"][0]).max() > 0.01  # TPS warped


def test_batches_of_a_resumed_stream_equal_the_original(tiny_config):
    dataset = get_dataset(tiny_config.data)
    full = [b["pose"].numpy() for b in training_batches(dataset, tiny_config, 4, start_step=0).take(5)]
    resumed = [b["pose"].numpy() for b in training_batches(dataset, tiny_config, 4, start_step=3).take(2)]
    np.testing.assert_array_equal(resumed[0], full[3])
    np.testing.assert_array_equal(resumed[1], full[4])


def test_temporal_partners_are_within_the_offset_range(tiny_config):
    dataset = get_dataset(tiny_config.data)
    frames = dataset.splits["train"].frames.reshape(-1, 32, 32, 3)
    length = dataset.splits["train"].frames.shape[1]
    for element in dataset.train_pairs(seed=0, start=0).take(40):
        match = lambda image: int(np.flatnonzero((frames == image.numpy()).all(axis=(1, 2, 3)))[0])
        a, b = match(element["frame"]), match(element["partner"])
        assert a // length == b // length and 1 <= abs(a - b) <= 3


def test_still_image_datasets_need_tps(tiny_config):
    dataset = get_dataset(tiny_config.data)
    dataset.is_video = False
    with pytest.raises(ValueError, match="must be 'tps'"):
        training_batches(dataset, tiny_config, 4)
