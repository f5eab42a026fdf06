"""The frame similarity (augment/similarity.py): identity, where a point goes, and its random draw."""

import math

import numpy as np
import pytest
import tensorflow as tf

from fgbg_tf.augment.similarity import random_similarity, random_similarity_params, similarity_warp
from fgbg_tf.config import ConfigError, load_config


def _blob(size, centre, sigma=1.5):
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    blob = np.exp(-((xs - centre[0]) ** 2 + (ys - centre[1]) ** 2) / (2 * sigma**2))
    return np.stack([blob] * 3, axis=-1)


def _centroid(image):
    weights = image[..., 0]
    ys, xs = np.mgrid[0 : weights.shape[0], 0 : weights.shape[1]]
    return np.array([(weights * xs).sum(), (weights * ys).sum()]) / weights.sum()


def test_identity_returns_the_image():
    image = np.random.default_rng(0).uniform(size=(2, 32, 32, 3)).astype(np.float32)
    np.testing.assert_allclose(similarity_warp(image, 0.0, 1.0, [0.0, 0.0]).numpy(), image, atol=1e-6)


@pytest.mark.parametrize("angle, zoom, shift, mirror, aspect",
                         [(0.3, 1.5, (3.0, -2.0), False, 1.0), (-0.5, 0.8, (0.0, 4.0), False, 1.0),
                          (0.0, 2.0, (0.0, 0.0), False, 1.0), (0.0, 1.0, (0.0, 0.0), True, 1.0),
                          (0.4, 1.2, (-3.0, 2.0), True, 1.0), (0.0, 1.0, (0.0, 0.0), False, 0.5),
                          (0.5, 1.1, (2.0, -1.0), True, 1.44)])
def test_a_point_moves_to_c_plus_zoom_rotation_aspect_mirror_plus_shift(angle, zoom, shift, mirror, aspect):
    size, point = 64, np.array([24.0, 26.0])
    moved = similarity_warp(_blob(size, point), angle, zoom, shift, mirror, aspect).numpy()
    centre = (size - 1) / 2
    rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    flip = np.diag([-1.0 if mirror else 1.0, 1.0])
    stretch = np.diag([math.sqrt(aspect), 1 / math.sqrt(aspect)])
    expected = centre + zoom * rotation @ stretch @ flip @ (point - centre) + np.array(shift)
    np.testing.assert_allclose(_centroid(moved), expected, atol=0.05)


def test_a_mirror_alone_is_numpys_left_right_flip():
    image = np.random.default_rng(2).uniform(size=(16, 24, 3)).astype(np.float32)
    np.testing.assert_allclose(similarity_warp(image, 0.0, 1.0, [0.0, 0.0], True).numpy(), image[:, ::-1], atol=1e-5)


def test_the_draw_is_a_pure_function_of_the_seed_and_within_its_ranges():
    draws = [random_similarity_params(tf.constant([7, i]), 64, 0.25, (0.8, 1.6), 0.1, 0.3, (0.6, 1.2))
             for i in range(200)]
    angles, zooms, shifts, mirrors, aspects = (np.array([d[k].numpy() for d in draws]) for k in range(5))
    assert np.abs(angles).max() <= 0.25 and angles.std() > 0.1
    assert 0.8 <= zooms.min() and zooms.max() <= 1.6
    # log-uniform: the geometric middle (1.131) splits the draws in halves
    assert 0.4 < np.mean(zooms < math.sqrt(0.8 * 1.6)) < 0.6
    assert np.abs(shifts).max() <= 6.4 + 1e-5
    assert 0.2 < mirrors.mean() < 0.4
    assert 0.6 <= aspects.min() and aspects.max() <= 1.2 and 0.4 < np.mean(aspects < math.sqrt(0.72)) < 0.6
    again = random_similarity_params(tf.constant([7, 3]), 64, 0.25, (0.8, 1.6), 0.1, 0.3, (0.6, 1.2))
    assert [float(x.numpy().sum()) for x in again] == [float(x.sum()) for x in (angles[3], zooms[3], shifts[3],
                                                                                 mirrors[3], aspects[3])]
    # The flip and aspect draws extend the stream: the other parameters are those drawn without them.
    plain = random_similarity_params(tf.constant([7, 3]), 64, 0.25, (0.8, 1.6), 0.1)
    assert [float(x.numpy().sum()) for x in plain[:3]] == [float(x.numpy().sum()) for x in again[:3]]
    assert not bool(plain[3]) and float(plain[4]) == 1.0


def test_a_frame_and_its_partner_get_the_same_transform():
    image = np.random.default_rng(1).uniform(size=(32, 32, 3)).astype(np.float32)
    frame, partner = tf.unstack(random_similarity(np.stack([image, image]), tf.constant([1, 2]), 0.3, (1.0, 1.5), 0.1))
    np.testing.assert_array_equal(frame.numpy(), partner.numpy())
    assert np.abs(frame.numpy() - image).mean() > 0.05


def test_bad_settings_are_refused_naming_the_key():
    with pytest.raises(ConfigError, match="data.similarity"):
        load_config("synthetic", overrides=["data.similarity.zoom=[1.5, 1.0]"])
    with pytest.raises(ConfigError, match="flip"):
        load_config("synthetic", overrides=["data.similarity.flip=1.5"])
    with pytest.raises(ConfigError, match="aspect"):
        load_config("synthetic", overrides=["data.similarity.aspect=[0, 1]"])
    assert not load_config("synthetic").data.similarity.enabled
    assert load_config("synthetic", overrides=["data.similarity.rotation=0.1"]).data.similarity.enabled
    assert load_config("synthetic", overrides=["data.similarity.flip=0.5"]).data.similarity.enabled
    assert load_config("synthetic", overrides=["data.similarity.aspect=[0.8, 1]"]).data.similarity.enabled
