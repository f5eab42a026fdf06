import numpy as np
import pytest
import tensorflow as tf

from fgbg_tf.model.unet import (
    ConvNormReLU, UNet, align_corners_matrix, instance_norm, normalise_instances, upsample_align_corners,
)


def test_align_corners_weights_by_hand():
    np.testing.assert_allclose(
        align_corners_matrix(2), [[1, 0], [2 / 3, 1 / 3], [1 / 3, 2 / 3], [0, 1]], atol=1e-6
    )


def test_upsampling_matches_tf1_align_corners_resize():
    x = tf.random.uniform([2, 5, 3, 4])
    expected = tf.compat.v1.image.resize_bilinear(x, [10, 6], align_corners=True)
    np.testing.assert_allclose(upsample_align_corners(x), expected, atol=1e-5)


def test_stride2_conv_pads_symmetrically_like_pytorch():
    layer = ConvNormReLU(1, 3, strides=2, norm=False)
    x = tf.reshape(tf.range(16, dtype=tf.float32), [1, 4, 4, 1])
    layer(x)
    layer.conv.kernel.assign(tf.ones([3, 3, 1, 1]))
    layer.conv.bias.assign([0.0])
    out = layer(x).numpy()[0, :, :, 0]
    # PyTorch padding=1: output (0, 0) sees rows/cols -1..1, i.e. x[0:2, 0:2] = 0 + 1 + 4 + 5.
    # Keras "same" would pad only bottom/right and see x[0:3, 0:3] = 45.
    assert out[0, 0] == pytest.approx(10.0)
    assert out[1, 1] == pytest.approx(sum(x.numpy()[0, 1:4, 1:4, 0].ravel()))


def test_instance_norm_uses_pytorch_epsilon():
    norm = instance_norm()
    x = tf.constant([[[[0.0], [0.02]]]])  # variance 1e-4 along W
    # (x - mean) / sqrt(var + eps) with eps 1e-5 (Keras' default 1e-3 would give about 0.3).
    assert float(norm(x)[0, 0, 1, 0]) == pytest.approx(0.01 / np.sqrt(1e-4 + 1e-5), rel=1e-3)


def test_instance_norm_normalises_each_sample_and_channel_over_the_image():
    x = np.random.default_rng(0).normal(3.0, 2.0, size=(2, 5, 7, 4)).astype(np.float32)
    x[1] *= np.array([0.1, 1.0, 10.0, 100.0], np.float32)  # channels of very different scales
    mean, variance = x.mean(axis=(1, 2), keepdims=True), x.var(axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(instance_norm()(x).numpy(), (x - mean) / np.sqrt(variance + 1e-5), rtol=1e-4, atol=1e-5)
    # bfloat16 inputs come back in bfloat16, normalised with float32 statistics (zero mean, unit variance).
    out = instance_norm(dtype="mixed_bfloat16")(tf.constant(x, tf.bfloat16))
    assert out.dtype == tf.bfloat16
    np.testing.assert_allclose(tf.cast(out, tf.float32).numpy().std(axis=(1, 2)), 1.0, atol=0.02)


def _autodiff_instance_norm(x):
    mean, variance = tf.nn.moments(x, axes=[1, 2], keepdims=True)
    return (x - mean) * tf.math.rsqrt(variance + 1e-5)


def test_instance_norm_gradient_is_autodiffs_and_finite_differences():
    # The layer's closed-form gradient against TensorFlow's gradient of the plain formula, for a loss that weights
    # every output differently (a constant weight has gradient 0 through a normalisation and would test nothing).
    rng = np.random.default_rng(1)
    x = tf.constant(rng.normal(2.0, 3.0, size=(2, 4, 5, 3)), tf.float64)
    weights = tf.constant(rng.normal(size=(2, 4, 5, 3)), tf.float64)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        ours, plain = normalise_instances(x), _autodiff_instance_norm(x)
        ours_loss = tf.reduce_sum((tf.square(ours) + ours) * weights)
        plain_loss = tf.reduce_sum((tf.square(plain) + plain) * weights)
    # The forward pass is the moments' float32 arithmetic, bit for bit (what the docstring promises).
    x32 = tf.cast(x, tf.float32)
    np.testing.assert_array_equal(normalise_instances(x32).numpy(), _autodiff_instance_norm(x32).numpy())
    gradient = tape.gradient(ours_loss, x).numpy()
    assert np.abs(gradient).max() > 0.1
    np.testing.assert_allclose(gradient, tape.gradient(plain_loss, x).numpy(), rtol=1e-5, atol=1e-6)
    # Finite differences of the float64 input, through the layer's float32 arithmetic: agreement to its rounding.
    analytic, numeric = tf.test.compute_gradient(normalise_instances, [x])
    np.testing.assert_allclose(analytic[0], numeric[0], atol=1e-3)


def test_instance_norm_gradient_in_bfloat16_is_the_float32_gradient_rounded():
    rng = np.random.default_rng(2)
    x = rng.normal(1.0, 2.0, size=(2, 8, 8, 4)).astype(np.float32)
    weights = tf.constant(rng.normal(size=x.shape), tf.float32)

    def gradient(dtype):
        value = tf.constant(x, dtype)
        with tf.GradientTape() as tape:
            tape.watch(value)
            loss = tf.reduce_sum(tf.cast(instance_norm(dtype="mixed_bfloat16" if dtype == tf.bfloat16 else None)(value),
                                         tf.float32) * weights)
        result = tape.gradient(loss, value)
        assert result.dtype == dtype
        return tf.cast(result, tf.float32).numpy()

    exact = gradient(tf.float32)
    np.testing.assert_allclose(gradient(tf.bfloat16), exact, atol=0.02 * np.abs(exact).max())


def test_release_pose_encoder_shapes():
    unet = UNet((6, 12), (24, 48, 96, 192), (512, 256, 128, 10))
    logits, stem = unet(tf.zeros([2, 64, 64, 3]))
    assert logits.shape == (2, 32, 32, 10)
    assert stem.shape == (2, 32, 32, 24)


def test_full_resolution_unet_and_config_round_trip():
    unet = UNet((8, 16), (16, 32, 32), (16, 16, 16, 1))
    out, _ = unet(tf.zeros([1, 32, 32, 5]))
    assert out.shape == (1, 32, 32, 1)
    clone = UNet.from_config(unet.get_config())
    clone(tf.zeros([1, 32, 32, 5]))
    assert clone.count_params() == unet.count_params()


def test_unet_rejects_more_upsamplings_than_downsamplings():
    with pytest.raises(ValueError, match="upsampling"):
        UNet((4, 4), (8,), (8, 8, 1))
