"""Tests for fgbg_tf.loss.perceptual: the loss arithmetic, on random VGG19 weights (nothing is downloaded)."""

import numpy as np
import pytest
import tensorflow as tf

from fgbg_tf.loss import perceptual, vgg19
from tests.loss.weights_files import _images


@pytest.fixture(scope="module")
def random_features(vgg_files):
    return vgg19.build_vgg19_features(weights=vgg_files["keras3"])


def test_pixel_only_loss_is_hand_computable_and_builds_no_vgg(monkeypatch):
    def no_weights(*args):
        raise AssertionError("pixel-only loss must not load VGG weights")

    monkeypatch.setattr(vgg19, "_resolve_vgg19_weights", no_weights)
    loss = perceptual.PerceptualLoss(layer_weights=(0, 0, 0, 0), pixel_weight=2.0, scale=5.0)
    assert loss.features is None
    target = np.zeros((2, 32, 32, 3), np.float32)
    recon = target.copy()
    recon[1, :8, :8, 0] = 0.5  # 64 of 3072 values off by 0.5
    out = loss(recon, target)
    np.testing.assert_allclose(out["pixel"].numpy(), [0.0, 0.25 * 64 / 3072], rtol=1e-6)
    np.testing.assert_allclose(out["total"].numpy(), [0.0, 5.0 * 2.0 * 0.25 * 64 / 3072], rtol=1e-6)
    np.testing.assert_array_equal(out["perceptual"].numpy(), [0.0, 0.0])


def test_layer_weights_scale_linearly_and_match_direct_feature_mse(vgg_files, random_features):
    features = random_features
    target = _images(2)
    recon = tf.concat([target[:1], _images(3)[1:]], axis=0)  # example 0 is a perfect reconstruction
    per_layer = []
    for i in range(4):
        one_hot = [0.0] * 4
        one_hot[i] = 1.0
        loss = perceptual.PerceptualLoss(layer_weights=one_hot, pixel_weight=0.0, weights=vgg_files["keras3"],
                                         feature_scale=1.0)
        per_layer.append(loss(recon, target)["perceptual"].numpy())
    direct = [tf.reduce_mean(tf.square(a - b), axis=[1, 2, 3]).numpy()
              for a, b in zip(features(vgg19.to_caffe_input(recon)), features(vgg19.to_caffe_input(target)))]
    np.testing.assert_allclose(per_layer, direct, rtol=1e-5)
    # The default feature scale puts 0..255-input features on the release's [-1, 1]-input scale.
    release_scaled = perceptual.PerceptualLoss(layer_weights=(0, 0, 0, 1), pixel_weight=0.0, weights=vgg_files["keras3"])
    np.testing.assert_allclose(release_scaled(recon, target)["perceptual"], direct[3] / 127.5**2, rtol=1e-5)
    assert np.all(np.array(per_layer)[:, 0] == 0) and np.all(np.array(per_layer)[:, 1] > 0)

    weights = (1 / 32, 1 / 16, 1 / 8, 1 / 4)
    loss = perceptual.PerceptualLoss(layer_weights=weights, pixel_weight=3.0, scale=5.0, weights=vgg_files["keras3"],
                                     feature_scale=1.0)
    out = loss(recon, target)
    expected_perceptual = sum(w * l for w, l in zip(weights, per_layer))
    pixel = tf.reduce_mean(tf.square(recon - target), axis=[1, 2, 3]).numpy()
    np.testing.assert_allclose(out["perceptual"].numpy(), expected_perceptual, rtol=1e-5)
    np.testing.assert_allclose(out["pixel"].numpy(), pixel, rtol=1e-6)
    np.testing.assert_allclose(out["total"].numpy(), 5.0 * (expected_perceptual + 3.0 * pixel), rtol=1e-5)
    assert all(v.dtype == tf.float32 and v.shape == (2,) for v in out.values())


def test_target_gets_no_gradient(vgg_files):
    loss = perceptual.PerceptualLoss(weights=vgg_files["keras3"])
    recon, target = tf.Variable(_images(4)), tf.Variable(_images(5))
    with tf.GradientTape(persistent=True) as tape:
        out = loss(recon, target)
    assert tape.gradient(out["perceptual"], target) is None
    assert tape.gradient(out["total"], target) is None
    assert float(tf.reduce_max(tf.abs(tape.gradient(out["total"], recon)))) > 0


def test_mixed_bfloat16_runs_vgg_in_bf16_and_reduces_in_float32(vgg_files):
    recon, target = _images(6), _images(7)
    reference = perceptual.PerceptualLoss(weights=vgg_files["keras3"])(recon, target)
    loss = perceptual.PerceptualLoss(weights=vgg_files["keras3"], dtype="mixed_bfloat16")
    assert loss.features.get_layer("block4_conv2").compute_dtype == "bfloat16"
    assert loss.features.get_layer("block4_conv2").kernel.dtype == "float32"
    out = loss(recon, target)
    assert out["total"].dtype == tf.float32
    np.testing.assert_allclose(out["perceptual"].numpy(), reference["perceptual"].numpy(), rtol=3e-2)


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="layer_weights"):
        perceptual.PerceptualLoss(layer_weights=(1, 1, 1))
    with pytest.raises(ValueError, match="pixel_weight"):
        perceptual.PerceptualLoss(layer_weights=(0, 0, 0, 0), pixel_weight=-1)
    loss = perceptual.PerceptualLoss(layer_weights=(0, 0, 0, 0))
    with pytest.raises(ValueError, match="differ in shape"):
        loss(tf.zeros([1, 32, 32, 3]), tf.zeros([1, 16, 16, 3]))
    with pytest.raises(ValueError, match="reconstruction"):
        loss(tf.zeros([1, 32, 32, 1]), tf.zeros([1, 32, 32, 1]))
    config = perceptual.PerceptualLoss(layer_weights=(0, 0, 0, 0), pixel_weight=2.0, scale=5.0).get_config()
    assert perceptual.PerceptualLoss(**config).get_config() == config
    assert config["pixel_weight"] == 2.0 and config["scale"] == 5.0
