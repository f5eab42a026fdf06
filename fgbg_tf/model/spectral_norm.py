"""A spectrally normalised convolution with PyTorch's `torch.nn.utils.spectral_norm` semantics.

The release wraps the SPADE blocks' convolutions in PyTorch's spectral norm. Keras'
`SpectralNormalization` differs from it in what training does (reference doc
section 14; issue "Training that learns", item 1): it overwrites its kernel with
kernel / sigma on every training call and passes no gradient through sigma, so
coupled L2 on that kernel has no effect and a block called twice per step is
renormalised twice. PyTorch keeps the free weight (`weight_orig`), computes
W / sigma(W) in every forward and differentiates through sigma, with u and v
from one power iteration that carries no gradient.

Example:
    conv = SpectralConv2D(64, 3)
    y = conv(x, training=True)   # one power iteration, then conv(x, W / sigma(W)) + b
"""

from __future__ import annotations

import keras
import tensorflow as tf

# PyTorch's default eps of normalize() in spectral_norm.
_EPS = 1e-12


def _normalize(vector: tf.Tensor) -> tf.Tensor:
    return vector / tf.maximum(tf.norm(vector), _EPS)


@keras.saving.register_keras_serializable("fgbg_tf")
class SpectralConv2D(keras.layers.Layer):
    """Conv2D ("same" padding, stride 1) of x with W / sigma(W), as PyTorch's spectral_norm(nn.Conv2d).

    The trainable `kernel` [k, k, C_in, filters] is the unnormalised weight. Its matrix
    is taken as [filters, k * k * C_in] (PyTorch's [out, in * k * k] up to a permutation
    of columns, which leaves sigma unchanged). State: `u` [filters] and `v` [k * k * C_in],
    unit vectors, not trainable. A training call runs `power_iterations` steps
    v = normalize(W^T u), u = normalize(W v) without gradient and stores u and v; every
    call then uses sigma = u^T W v, differentiated with respect to W.

    Args:
        filters: output channels.
        kernel_size: odd kernel size.
        use_bias: add a bias (initialised to 0.1, the release's init).
        power_iterations: power-iteration steps per training call (PyTorch default 1).

    Shapes: [B, H, W, C_in] -> [B, H, W, filters].
    Example: `SpectralConv2D(128, 3)(x, training=True)`.
    """

    def __init__(self, filters: int, kernel_size: int = 3, use_bias: bool = True, power_iterations: int = 1, **kwargs):
        # No autocast: the power iteration and sigma stay float32 under mixed precision; only the conv runs in
        # the input's dtype.
        kwargs.setdefault("autocast", False)
        super().__init__(**kwargs)
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        if power_iterations < 1:
            raise ValueError(f"power_iterations must be >= 1, got {power_iterations}")
        self.filters, self.kernel_size = filters, kernel_size
        self.use_bias, self.power_iterations = use_bias, power_iterations

    def build(self, input_shape):
        channels = int(input_shape[-1])
        k = self.kernel_size
        self.kernel = self.add_weight(shape=(k, k, channels, self.filters), initializer="glorot_uniform", name="kernel")
        self.bias = (
            self.add_weight(shape=(self.filters,), initializer=keras.initializers.Constant(0.1), name="bias")
            if self.use_bias else None
        )
        # Random unit vectors, as PyTorch initialises weight_u and weight_v.
        self.u = self.add_weight(shape=(self.filters,), initializer="random_normal", trainable=False,
                                 aggregation="mean", name="u")
        self.v = self.add_weight(shape=(k * k * channels,), initializer="random_normal", trainable=False,
                                 aggregation="mean", name="v")
        self.u.assign(_normalize(self.u.value))
        self.v.assign(_normalize(self.v.value))

    def sigma(self, training: bool = False) -> tf.Tensor:
        """The spectral-norm estimate u^T W v (after the power iteration when `training`)."""
        matrix = tf.reshape(self.kernel.value, [-1, self.filters])  # [k*k*C_in, filters] = W^T
        u, v = self.u.value, self.v.value
        if training:
            for _ in range(self.power_iterations):
                v = _normalize(tf.linalg.matvec(matrix, u))
                u = _normalize(tf.linalg.matvec(matrix, v, transpose_a=True))
            u, v = tf.stop_gradient(u), tf.stop_gradient(v)
            self.u.assign(u)
            self.v.assign(v)
        return tf.tensordot(v, tf.linalg.matvec(matrix, u), 1)

    def call(self, x, training=False):
        kernel = self.kernel.value / self.sigma(training)
        y = tf.nn.conv2d(x, tf.cast(kernel, x.dtype), strides=1, padding="SAME")
        if self.bias is not None:
            y = y + tf.cast(self.bias.value, x.dtype)
        return y

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.filters)

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "use_bias": self.use_bias,
            "power_iterations": self.power_iterations,
        }
