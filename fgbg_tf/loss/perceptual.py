"""VGG19 perceptual reconstruction loss and its frozen feature extractor.

The released loss (reference doc section 4) is
    vgg_lambda * [ sum_l w_l * MSE(VGG_l(recon), VGG_l(target)) + pixel_weight * MSE(recon, target) ]
with l in relu1_2, relu2_2, relu3_2, relu4_2 and w = (1/32, 1/16, 1/8, 1/4) (paper, "Loss Function and Optimization
Parameters"; the pixel term is not in the paper but is in the release, with weight 1).

Porting choice (reference doc section 14): the release fed [-1, 1] RGB images into torchvision's VGG19 without any
normalisation. We use the Keras VGG19 weights (Caffe-converted) and feed them what they were trained on, BGR 0..255
minus the ImageNet BGR mean, so the VGG features are meaningful; their scale differs from the release's, which shifts
the balance against the pixel term. The release also zeroed reconstruction pixels where the target is exactly 0; with
targets made from 8-bit images that never happens, so it is not reproduced.

The VGG19 trunk and its weights: `fgbg_tf/loss/vgg19.py`.
"""

import math
import os

import keras
import tensorflow as tf

from fgbg_tf.loss.vgg19 import FEATURE_LAYERS, build_vgg19_features, to_caffe_input

LAYER_NAMES = ("relu1_2", "relu2_2", "relu3_2", "relu4_2")


# The release fed [-1, 1] images to its VGG; ours sees 0..255 (Caffe convention), so its features are about
# 127.5 times larger. Scaling the feature differences back keeps the release's balance against the pixel term.
RELEASE_FEATURE_SCALE = 1 / 127.5


def _check_weight(name, value):
    value = float(value)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name}: expected a finite number >= 0, got {value}")
    return value


class PerceptualLoss:
    """Reconstruction loss of the release: weighted VGG19 feature MSEs plus a pixel MSE, per example.

    total = scale * (sum_l layer_weights[l] * MSE_l + pixel_weight * MSE_pixel), each MSE the mean over H, W, C of
    one example. With every layer weight 0 no VGG is built or loaded (a fast pixel-only loss, handy for tests).

    Args:
        layer_weights: weights of relu1_2, relu2_2, relu3_2, relu4_2 (release BBC config: 1/32, 1/16, 1/8, 1/4).
        pixel_weight: weight of the pixel MSE in [-1, 1] space (release: 1).
        scale: global multiplier, the release's vgg_lambda (BBC: 5).
        weights, cache_dir, dtype: passed to `build_vgg19_features`.
        feature_scale: multiplies VGG feature differences before the MSE; the default 1/127.5 puts the
            Caffe-convention features on the scale of the release's [-1, 1]-input VGG (1.0: raw Keras features).
    Call: `(reconstruction, target)`, both [B, H, W, 3] RGB in [-1, 1], H and W multiples of 8 ->
        {"perceptual", "pixel", "total", and each weighted layer term "relu1_2" .. "relu4_2" whose weight is not
        0}: float32 [B]. The target gets no gradient. Per-example values let a
        distributed train step divide by the global batch size.
    Example: `loss = PerceptualLoss(scale=5.0)(recon, target)["total"]`.
    """

    def __init__(self, layer_weights=(1 / 32, 1 / 16, 1 / 8, 1 / 4), pixel_weight=1.0, scale=1.0, weights=None,
                 cache_dir=None, dtype=None, feature_scale=RELEASE_FEATURE_SCALE):
        layer_weights = tuple(layer_weights)
        if len(layer_weights) != len(FEATURE_LAYERS):
            raise ValueError(f"layer_weights: expected {len(FEATURE_LAYERS)} weights for {FEATURE_LAYERS}, "
                             f"got {layer_weights}")
        self.layer_weights = tuple(_check_weight("layer_weights", w) for w in layer_weights)
        self.pixel_weight = _check_weight("pixel_weight", pixel_weight)
        self.scale = _check_weight("scale", scale)
        self.feature_scale = _check_weight("feature_scale", feature_scale)
        self.weights = None if weights is None else os.fspath(weights)
        self.cache_dir = None if cache_dir is None else os.fspath(cache_dir)
        self.dtype = dtype
        self.features = (
            build_vgg19_features(self.weights, self.cache_dir, dtype) if any(self.layer_weights) else None
        )

    def __call__(self, reconstruction, target):
        reconstruction = tf.cast(reconstruction, tf.float32)
        target = tf.stop_gradient(tf.cast(target, tf.float32))
        for name, images in (("reconstruction", reconstruction), ("target", target)):
            if images.shape.rank is not None and (images.shape.rank != 4 or images.shape[-1] != 3):
                raise ValueError(f"{name}: expected [B, H, W, 3], got shape {images.shape}")
        if not reconstruction.shape.is_compatible_with(target.shape):
            raise ValueError(f"reconstruction {reconstruction.shape} and target {target.shape} differ in shape")
        pixel = tf.reduce_mean(tf.square(reconstruction - target), axis=[1, 2, 3])
        perceptual = tf.zeros_like(pixel)
        layers = {}
        if self.features is not None:
            # Two passes rather than one on the concatenation: the target pass then needs no backward at all.
            recon_features = self.features(to_caffe_input(reconstruction), training=False)
            target_features = self.features(to_caffe_input(target), training=False)
            for name, weight, rec, tgt in zip(LAYER_NAMES, self.layer_weights, recon_features, target_features):
                if weight:
                    diff = (tf.cast(rec, tf.float32) - tf.cast(tgt, tf.float32)) * self.feature_scale
                    layers[name] = weight * tf.reduce_mean(tf.square(diff), axis=[1, 2, 3])
                    perceptual += layers[name]
        total = self.scale * (perceptual + self.pixel_weight * pixel)
        return {"perceptual": perceptual, "pixel": pixel, "total": total, **layers}

    def get_config(self):
        """Constructor arguments; `PerceptualLoss(**loss.get_config())` rebuilds the loss."""
        return {"layer_weights": self.layer_weights, "pixel_weight": self.pixel_weight, "scale": self.scale,
                "feature_scale": self.feature_scale,
                "weights": self.weights, "cache_dir": self.cache_dir,
                "dtype": keras.dtype_policies.get(self.dtype).name if self.dtype is not None else None}
