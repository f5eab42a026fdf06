"""The foreground decoder: a SPADE generator conditioned on landmark heatmaps.

Follows the released code's stripped-down SPADE (reference doc section 3.5): the
projected appearance map is sampled down to 1/16 and 1/8 of the image, both
scales go through a shared conv and SPADE block and are averaged, then SPADE
residual blocks upsample back to full resolution. SPADE's resizing is bilinear
half-pixel (align_corners=False), unlike the UNets'.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from fgbg_tf.model.presets import SPECTRAL_NORMS
from fgbg_tf.model.spectral_norm import SpectralConv2D
from fgbg_tf.model.unet import EagerBuild, conv_initializers, instance_norm


def resize_bilinear(x: tf.Tensor, height: int, width: int) -> tf.Tensor:
    """Half-pixel bilinear resize without antialiasing (PyTorch align_corners=False)."""
    if (x.shape[1], x.shape[2]) == (height, width):
        return x
    return tf.cast(tf.image.resize(x, (height, width), method="bilinear", antialias=False), x.dtype)


@keras.saving.register_keras_serializable("fgbg_tf")
class SPADE(EagerBuild, keras.layers.Layer):
    """Spatially-adaptive normalisation: IN(x) * (1 + gamma(seg)) + beta(seg).

    Args:
        channels: channels of the normalised input x.
        hidden: width of the shared conv on the segmentation (heatmap) input.

    Shapes: x [B, H, W, channels], seg [B, h, w, K] (resized to H x W) -> [B, H, W, channels].
    Example: `SPADE(256)(x, heatmaps)`.
    """

    def __init__(self, channels: int, hidden: int = 128, **kwargs):
        super().__init__(**kwargs)
        self.channels, self.hidden = channels, hidden
        dtype = self.dtype_policy
        self.norm = instance_norm(dtype)
        self.shared = keras.layers.Conv2D(hidden, 3, padding="same", activation="relu", dtype=dtype, **conv_initializers())
        self.gamma = keras.layers.Conv2D(channels, 3, padding="same", dtype=dtype, **conv_initializers())
        self.beta = keras.layers.Conv2D(channels, 3, padding="same", dtype=dtype, **conv_initializers())

    def call(self, x, seg):
        seg = resize_bilinear(tf.cast(seg, x.dtype), x.shape[1], x.shape[2])
        features = self.shared(seg)
        return self.norm(x) * (1.0 + self.gamma(features)) + self.beta(features)

    def get_config(self):
        return {**super().get_config(), "channels": self.channels, "hidden": self.hidden}


@keras.saving.register_keras_serializable("fgbg_tf")
class SPADEResBlock(EagerBuild, keras.layers.Layer):
    """SPADE residual block with spectral normalisation on its convolutions.

    Main path: SPADE, LeakyReLU(0.2), 3x3 conv to min(fin, fout), SPADE, LeakyReLU,
    3x3 conv to fout. Shortcut: identity when fin == fout, else SPADE then a 1x1
    conv without bias. Spectral norm (one power iteration per training call) on
    the three convs only, as in the release.

    Args:
        filters_in: input channels.
        filters_out: output channels.
        hidden: SPADE hidden width.
        spectral_norm: "release" (PyTorch semantics) or "keras" (see `SPECTRAL_NORMS`).

    Shapes: x [B, H, W, filters_in], seg [B, h, w, K] -> [B, H, W, filters_out].
    Example: `SPADEResBlock(256, 128)(x, heatmaps, training=True)`.
    """

    def __init__(self, filters_in: int, filters_out: int, hidden: int = 128, spectral_norm: str = "release", **kwargs):
        super().__init__(**kwargs)
        if spectral_norm not in SPECTRAL_NORMS:
            raise ValueError(f"spectral_norm must be one of {SPECTRAL_NORMS}, got {spectral_norm!r}")
        self.filters_in, self.filters_out, self.hidden = filters_in, filters_out, hidden
        self.spectral_norm = spectral_norm
        middle = min(filters_in, filters_out)
        dtype = self.dtype_policy

        def spectral_conv(channels_in, filters, kernel_size, use_bias=True):
            if spectral_norm == "release":
                return SpectralConv2D(filters, kernel_size, use_bias=use_bias, dtype=dtype)
            conv = keras.layers.Conv2D(
                filters, kernel_size, padding="same", use_bias=use_bias, dtype=dtype, **conv_initializers()
            )
            wrapper = keras.layers.SpectralNormalization(conv, power_iterations=1, dtype=dtype)
            # Built here, outside any call: the wrapper gives its power-iteration vector the kernel's dtype as read
            # at build time, which inside a mixed_bfloat16 call is bfloat16, and a bfloat16 checkpoint then does
            # not restore into the float32 model that evaluate and export build.
            wrapper.build((None, None, None, channels_in))
            return wrapper

        self.norm_0 = SPADE(filters_in, hidden, dtype=dtype)
        self.conv_0 = spectral_conv(filters_in, middle, 3)
        self.norm_1 = SPADE(middle, hidden, dtype=dtype)
        self.conv_1 = spectral_conv(middle, filters_out, 3)
        self.learned_shortcut = filters_in != filters_out
        if self.learned_shortcut:
            self.norm_s = SPADE(filters_in, hidden, dtype=dtype)
            self.conv_s = spectral_conv(filters_in, filters_out, 1, use_bias=False)

    def call(self, x, seg, training=False):
        shortcut = x
        if self.learned_shortcut:
            shortcut = self.conv_s(self.norm_s(x, seg), training=training)
        y = self.conv_0(tf.nn.leaky_relu(self.norm_0(x, seg), 0.2), training=training)
        y = self.conv_1(tf.nn.leaky_relu(self.norm_1(y, seg), 0.2), training=training)
        return shortcut + y

    def get_config(self):
        return {
            **super().get_config(),
            "filters_in": self.filters_in,
            "filters_out": self.filters_out,
            "hidden": self.hidden,
            "spectral_norm": self.spectral_norm,
        }


@keras.saving.register_keras_serializable("fgbg_tf")
class SPADEGenerator(EagerBuild, keras.layers.Layer):
    """FGDec: renders the foreground from heatmaps and the projected appearance map.

    Args:
        channels: width of the low-resolution blocks (fc, head, two middle blocks).
        up_channels: widths of the three upsampling blocks (1/8 -> 1/4 -> 1/2 -> 1).
        hidden: SPADE hidden width.
        spectral_norm: "release" (PyTorch semantics) or "keras" (see `SPECTRAL_NORMS`).

    Shapes: heatmaps [B, S, S, K], appearance [B, S, S, C] -> [B, S, S, 3] (no tanh: unbounded, as released).
    Example: `SPADEGenerator(256, (128, 64, 32))(heatmaps, appearance_map, training=True)`.
    """

    def __init__(self, channels: int = 256, up_channels=(128, 64, 32), hidden: int = 128, spectral_norm: str = "release",
                 **kwargs):
        super().__init__(**kwargs)
        self.channels, self.up_channels, self.hidden = channels, tuple(up_channels), hidden
        self.spectral_norm = spectral_norm
        if len(self.up_channels) != 3:
            raise ValueError(f"up_channels must have 3 widths (1/8 -> 1), got {up_channels}")
        dtype = self.dtype_policy
        self.fc = keras.layers.Conv2D(channels, 3, padding="same", dtype=dtype, **conv_initializers())
        self.head = SPADEResBlock(channels, channels, hidden, spectral_norm, dtype=dtype)
        self.middle = [SPADEResBlock(channels, channels, hidden, spectral_norm, dtype=dtype) for _ in range(2)]
        widths = (channels,) + self.up_channels
        self.ups = [SPADEResBlock(a, b, hidden, spectral_norm, dtype=dtype) for a, b in zip(widths[:-1], widths[1:])]
        self.to_rgb = keras.layers.Conv2D(3, 3, padding="same", dtype=dtype, **conv_initializers())

    def call(self, heatmaps, appearance, training=False):
        size = appearance.shape[1]
        appearance = tf.cast(appearance, self.compute_dtype)
        # PyTorch's nearest downsampling picks the top-left sample of each block.
        coarse = self.head(self.fc(appearance[:, ::16, ::16]), heatmaps, training=training)
        fine = self.head(self.fc(appearance[:, ::8, ::8]), heatmaps, training=training)
        x = 0.5 * resize_bilinear(coarse, size // 8, size // 8) + 0.5 * fine
        for block in self.middle:
            x = block(x, heatmaps, training=training)
        for block in self.ups:
            x = resize_bilinear(x, 2 * x.shape[1], 2 * x.shape[2])
            x = block(x, heatmaps, training=training)
        return self.to_rgb(tf.nn.leaky_relu(x, 0.2))

    def get_config(self):
        return {
            **super().get_config(),
            "channels": self.channels,
            "up_channels": self.up_channels,
            "hidden": self.hidden,
            "spectral_norm": self.spectral_norm,
        }
