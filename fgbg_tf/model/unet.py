"""The UNet the released code builds four networks from (reference doc section 3.1).

The pose encoder, appearance encoder, MaskNet and BGNet are all this UNet with
different widths. Two conventions matter for comparable landmarks (reference doc
section 14): stride-2 convolutions pad one pixel on every side, as PyTorch does,
not Keras' bottom/right-only "same"; and the decoder's x2 upsampling is bilinear
with align_corners=True, done here with fixed interpolation matrices.
"""

from __future__ import annotations

import numpy as np
import keras
import tensorflow as tf


def conv_initializers() -> dict:
    """The release's init for every convolution: Glorot-uniform kernels, biases 0.1."""
    return {"kernel_initializer": "glorot_uniform", "bias_initializer": keras.initializers.Constant(0.1)}


def instance_norm(dtype=None, name=None) -> keras.layers.Layer:
    """PyTorch's InstanceNorm2d(affine=False): per-sample, per-channel, eps 1e-5."""
    return InstanceNorm(epsilon=1e-5, dtype=dtype, name=name)


@keras.saving.register_keras_serializable("fgbg_tf")
class InstanceNorm(keras.layers.Layer):
    """Each sample's channels normalised over H and W with the biased variance; no scale or offset.

    The statistics are computed in float32 whatever the compute dtype (bfloat16 sums over 4,096 pixels lose the
    variance). Written as moments and one rsqrt (`keras.layers.GroupNormalization(groups=-1)` computes the same in
    58 graph ops per layer, 28 % of the training graph of the small preset), with the closed-form gradient of
    `normalise_instances`: autodiff of the moments was 17 % of a bfloat16 training step's op time.

    Args:
        epsilon: added to the variance (PyTorch's 1e-5).

    Shapes: [B, H, W, C] -> [B, H, W, C].
    Example: `InstanceNorm()(features)`.
    """

    def __init__(self, epsilon: float = 1e-5, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = epsilon

    def call(self, x):
        return normalise_instances(x, self.epsilon)

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}


def normalise_instances(x: tf.Tensor, epsilon: float = 1e-5) -> tf.Tensor:
    """(x - mean) / sqrt(variance + epsilon) over axes 1 and 2 of [B, H, W, C], in float32, returned in x's dtype.

    The gradient is the closed form dx = r * (dy - mean(dy) - y * mean(dy * y)), with y the output and r the
    reciprocal standard deviation, where autodiff of the moments made about ten passes over the pixels (Tile, Mul,
    Sub, Cast, ...): the faces5pt training step is 9 % faster in bfloat16 and 2 % in float32, and 170 MiB smaller
    (docs/benchmarks.md). The outputs are those of tf.nn.moments bit for bit (tests/model/test_unet.py).
    Example: `normalise_instances(tf.random.normal([2, 8, 8, 4]))`.
    """

    @tf.custom_gradient
    def normalise(x):
        x32 = tf.cast(x, tf.float32)
        centred = x32 - tf.reduce_mean(x32, axis=[1, 2], keepdims=True)
        reciprocal = tf.math.rsqrt(tf.reduce_mean(tf.square(centred), axis=[1, 2], keepdims=True) + epsilon)
        y = centred * reciprocal

        def gradient(dy):
            dy = tf.cast(dy, tf.float32)
            dx = dy - tf.reduce_mean(dy, axis=[1, 2], keepdims=True)
            dx -= y * tf.reduce_mean(dy * y, axis=[1, 2], keepdims=True)
            return tf.cast(reciprocal * dx, x.dtype)

        return tf.cast(y, x.dtype), gradient

    return normalise(x)


def align_corners_matrix(size: int, factor: int = 2) -> np.ndarray:
    """[size * factor, size] bilinear interpolation weights with align_corners=True."""
    out = size * factor
    positions = np.arange(out) * (size - 1) / max(out - 1, 1)
    low = np.floor(positions).astype(int)
    high = np.minimum(low + 1, size - 1)
    frac = positions - low
    matrix = np.zeros((out, size), np.float32)
    matrix[np.arange(out), low] += 1 - frac
    matrix[np.arange(out), high] += frac
    return matrix


def upsample_align_corners(x: tf.Tensor, factor: int = 2) -> tf.Tensor:
    """Bilinear upsampling of [B, H, W, C] matching PyTorch's align_corners=True."""
    height, width, channels = x.shape[1], x.shape[2], x.shape[3]
    rows = tf.constant(align_corners_matrix(height, factor), dtype=x.dtype)
    cols = tf.constant(align_corners_matrix(width, factor), dtype=x.dtype)
    # Two broadcast matmuls, not tf.einsum: the same products without transposes, and ops that every converter
    # (TFLite, ONNX, TF.js' WASM backend, which lacks Einsum) runs.
    batch = tf.shape(x)[0]
    x = tf.matmul(rows, tf.reshape(x, [batch, height, width * channels]))  # [B, P, W * C]
    x = tf.matmul(cols, tf.reshape(x, [batch * height * factor, width, channels]))  # [B * P, Q, C]
    return tf.reshape(x, [batch, height * factor, width * factor, channels])


class EagerBuild:
    """Mixin for layers made only of sublayers: they build during the first call, eagerly.

    Keras builds a layer that has no `build` method by first tracing `call()` symbolically, and for these composites
    that trace was most of a model build's time (26-33 s against 4-5 s for the small preset on 2 cores,
    docs/benchmarks.md). They have no weights of their own, so `build` only marks them built.
    Example: `class UNet(EagerBuild, keras.layers.Layer): ...`.
    """

    def build(self, input_shape):
        pass


@keras.saving.register_keras_serializable("fgbg_tf")
class ConvNormReLU(EagerBuild, keras.layers.Layer):
    """Conv (PyTorch-style symmetric padding) -> InstanceNorm -> ReLU.

    Args:
        filters: output channels.
        kernel_size: odd kernel size.
        strides: 1 or 2.
        norm: whether to instance-normalise (the skip mappings do not).

    Shapes: [B, H, W, C] -> [B, H / strides, W / strides, filters].
    Example: `ConvNormReLU(24, 3, strides=2)(x)`.
    """

    def __init__(self, filters: int, kernel_size: int = 3, strides: int = 1, norm: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.filters, self.kernel_size, self.strides, self.norm = filters, kernel_size, strides, norm
        self.pad = keras.layers.ZeroPadding2D(kernel_size // 2, dtype=self.dtype_policy)
        self.conv = keras.layers.Conv2D(
            filters, kernel_size, strides=strides, padding="valid", dtype=self.dtype_policy, **conv_initializers()
        )
        self.instance_norm = instance_norm(self.dtype_policy) if norm else None

    def call(self, x):
        x = self.conv(self.pad(x))
        if self.instance_norm is not None:
            x = self.instance_norm(x)
        return tf.nn.relu(x)

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "strides": self.strides,
            "norm": self.norm,
        }


@keras.saving.register_keras_serializable("fgbg_tf")
class UNet(EagerBuild, keras.layers.Layer):
    """The release's generic UNet.

    Encoder: a stem of two 3x3 conv-IN-ReLU (`stem_channels`), then one block per
    entry of `encoder_channels` (stride-2 conv-IN-ReLU, conv-IN-ReLU). The first
    block's output, at half resolution, is the "stem features" the pose encoder
    hands to the appearance encoder. Decoder: a 1x1 conv-IN-ReLU on the deepest
    features, then for each of `decoder_channels[:-1]`: add a 1x1-conv+ReLU skip
    from the matching encoder level (the first re-adds the bottleneck itself),
    conv-IN-ReLU, x2 align-corners upsampling, conv-IN-ReLU; finally a plain 1x1
    conv to `decoder_channels[-1]` outputs.

    Args:
        stem_channels: (c1, c2) widths of the two stem convolutions.
        encoder_channels: widths of the downsampling blocks (one per halving).
        decoder_channels: widths of the upsampling blocks, then the output width.
        head_bias_initializer: initializer of the output conv's bias (default: the release's 0.1).
        head_kernel_initializer: initializer of the output conv's kernel (default: the release's Glorot-uniform);
            "zeros" makes the network start with a constant output (its bias) that no input changes.

    Shapes: [B, H, W, C] -> ([B, H * 2^(u - d), W * 2^(u - d), out], [B, H/2, W/2, encoder_channels[0]])
    with d downsamplings and u = len(decoder_channels) - 1 upsamplings.
    Example: `logits, stem = UNet((6, 12), (24, 48, 96, 192), (512, 256, 128, 30))(images)`.
    """

    def __init__(self, stem_channels, encoder_channels, decoder_channels, head_bias_initializer=None,
                 head_kernel_initializer=None, **kwargs):
        super().__init__(**kwargs)
        self.head_bias_initializer = keras.initializers.get(head_bias_initializer) if head_bias_initializer else None
        self.head_kernel_initializer = (
            keras.initializers.get(head_kernel_initializer) if head_kernel_initializer else None
        )
        self.stem_channels = tuple(stem_channels)
        self.encoder_channels = tuple(encoder_channels)
        self.decoder_channels = tuple(decoder_channels)
        ups = len(self.decoder_channels) - 1
        if not 1 <= ups <= len(self.encoder_channels):
            raise ValueError(
                f"UNet needs 1 to {len(self.encoder_channels)} upsampling blocks, got decoder_channels={decoder_channels}"
            )
        dtype = self.dtype_policy
        self.stem = [ConvNormReLU(c, 3, dtype=dtype) for c in self.stem_channels]
        self.down = [
            [ConvNormReLU(c, 3, strides=2, dtype=dtype), ConvNormReLU(c, 3, dtype=dtype)] for c in self.encoder_channels
        ]
        self.bottleneck = ConvNormReLU(self.encoder_channels[-1], 1, dtype=dtype)
        widths = (self.encoder_channels[-1],) + self.decoder_channels[:-2]
        self.skips = [ConvNormReLU(w, 1, norm=False, dtype=dtype) for w in widths]
        self.up = [
            [ConvNormReLU(c, 3, dtype=dtype), ConvNormReLU(c, 3, dtype=dtype)] for c in self.decoder_channels[:-1]
        ]
        init = conv_initializers()
        if self.head_bias_initializer is not None:
            init["bias_initializer"] = self.head_bias_initializer
        if self.head_kernel_initializer is not None:
            init["kernel_initializer"] = self.head_kernel_initializer
        self.head = keras.layers.Conv2D(self.decoder_channels[-1], 1, dtype=dtype, **init)

    def call(self, x):
        for layer in self.stem:
            x = layer(x)
        levels = []
        for first, second in self.down:
            x = second(first(x))
            levels.append(x)
        x = self.bottleneck(x)
        for i, (skip, (first, second)) in enumerate(zip(self.skips, self.up)):
            x = x + skip(levels[-1 - i])
            x = second(upsample_align_corners(first(x)))
        return self.head(x), levels[0]

    def get_config(self):
        return {
            **super().get_config(),
            "stem_channels": self.stem_channels,
            "encoder_channels": self.encoder_channels,
            "decoder_channels": self.decoder_channels,
            "head_bias_initializer": (
                keras.initializers.serialize(self.head_bias_initializer) if self.head_bias_initializer else None
            ),
            "head_kernel_initializer": (
                keras.initializers.serialize(self.head_kernel_initializer) if self.head_kernel_initializer else None
            ),
        }
