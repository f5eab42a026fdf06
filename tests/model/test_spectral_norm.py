import keras
import numpy as np
import pytest
import tensorflow as tf

from fgbg_tf.model.spectral_norm import SpectralConv2D


def conv64(x, kernel):
    return tf.nn.conv2d(tf.constant(x, tf.float64), tf.constant(kernel, tf.float64), 1, "SAME").numpy()


def test_gradient_flows_through_sigma_as_in_pytorch():
    # PyTorch: y = conv(x, W / sigma(W)), sigma = u^T W v with u, v from a power iteration that carries no
    # gradient; the gradient w.r.t. W (weight_orig) includes the path through sigma.
    rng = np.random.default_rng(0)
    layer = SpectralConv2D(5, 3, use_bias=False)
    x = rng.normal(size=(2, 6, 6, 4)).astype(np.float32)
    r = rng.normal(size=(2, 6, 6, 5))
    layer(x)  # build
    with tf.GradientTape() as tape:
        y = layer(x, training=True)
        objective = tf.reduce_sum(tf.cast(y, tf.float64) * r)
    analytic = tape.gradient(objective, layer.kernel.value).numpy()
    # Finite differences of f(W) = <r, conv(x, W / (u^T W v))> with this call's u and v held fixed.
    kernel = layer.kernel.numpy().astype(np.float64)
    u, v = layer.u.numpy().astype(np.float64), layer.v.numpy().astype(np.float64)

    def f(w):
        sigma = v @ w.reshape(-1, 5) @ u
        return np.sum(conv64(x, w / sigma) * r)

    numeric = np.zeros_like(kernel)
    for index in np.ndindex(kernel.shape):
        delta = np.zeros_like(kernel)
        delta[index] = 1e-6
        numeric[index] = (f(kernel + delta) - f(kernel - delta)) / 2e-6
    np.testing.assert_allclose(analytic, numeric, rtol=2e-3, atol=2e-3 * np.abs(numeric).max())
    error = np.abs(analytic - numeric).max()
    # Keras' SpectralNormalization passes no gradient through sigma: that gradient is clearly different
    sigma = v @ kernel.reshape(-1, 5) @ u
    r32 = tf.constant(r, tf.float32)
    with tf.GradientTape() as tape:
        w = tf.constant(kernel, tf.float32)
        tape.watch(w)
        frozen = tf.reduce_sum(tf.nn.conv2d(x, w / tf.stop_gradient(tf.constant(sigma, tf.float32)), 1, "SAME") * r32)
    without_sigma = tape.gradient(frozen, w).numpy()
    # (here its error is about 2 % of the gradient's largest element, over 10x the error of the layer's gradient).
    assert np.abs(without_sigma - numeric).max() > 10 * error


def test_power_iteration_runs_in_training_only_and_finds_the_top_singular_value():
    rng = np.random.default_rng(1)
    # A fixed initial kernel and u: 30 power iterations converge to 1e-4 only when the top two singular values are
    # apart, which a kernel drawn from whatever state earlier tests left is not always.
    keras.utils.set_random_seed(1)
    layer = SpectralConv2D(8, 3)
    x = rng.normal(size=(1, 5, 5, 3)).astype(np.float32)
    layer(x)
    u_before = layer.u.numpy().copy()
    inference = layer(x, training=False).numpy()
    np.testing.assert_array_equal(layer.u.numpy(), u_before)  # inference keeps u and v
    kernel = layer.kernel.numpy()
    sigma = layer.v.numpy() @ kernel.reshape(-1, 8) @ u_before
    expected = conv64(x, kernel / sigma) + 0.1  # the stored vectors' sigma, the release's 0.1 bias
    np.testing.assert_allclose(inference, expected, rtol=1e-4, atol=1e-5)
    for _ in range(30):
        layer(x, training=True)
    assert not np.allclose(layer.u.numpy(), u_before)
    top = np.linalg.svd(kernel.reshape(-1, 8), compute_uv=False)[0]
    assert float(layer.sigma()) == pytest.approx(top, rel=1e-4)
    # The trainable kernel itself is never overwritten (PyTorch's weight_orig).
    np.testing.assert_array_equal(layer.kernel.numpy(), kernel)


def test_config_round_trip():
    layer = SpectralConv2D(4, 1, use_bias=False, power_iterations=2)
    again = SpectralConv2D.from_config(layer.get_config())
    assert (again.filters, again.kernel_size, again.use_bias, again.power_iterations) == (4, 1, False, 2)
