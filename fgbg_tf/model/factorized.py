"""The factorised landmark model: pose, appearance, foreground, mask and background.

One forward pass (paper section 3.2, eqs. 3-7), for a pose image P = T_cj(x) and
an appearance image Q = T_temp(x) or T_tps(x):

    eq. 3  part maps and Gaussians of P and of Q (pose encoder, shared weights)
    eq. 4  appearance features of Q from Q's part maps and stem features
    eq. 1  one appearance vector per part, projected onto P's heatmaps
    eq. 6  foreground = SPADE decoder(P's heatmaps, projected appearance)
    eq. 5  masks M_cj, M_temp = MaskNet(heatmaps of P), MaskNet(heatmaps of Q)
    eq. 6  background = BGNet((1 - M_temp) * Q)
    eq. 7  reconstruction = M_cj * foreground + (1 - M_cj) * background

Variants: "full" as above; "nomask" adds foreground and background without
masks, BGNet seeing Q itself (paper Table 2); "baseline" has no background branch
(reconstruction = foreground), the paper's internal baseline.

Images are float in [-1, 1], [B, S, S, 3]. Landmark means are (x, y) in [-1, 1).
"""

from __future__ import annotations

import keras
import tensorflow as tf

from fgbg_tf.model.appearance import pool_part_appearance, project_appearance
from fgbg_tf.model.landmarks import fit_gaussians, render_heatmaps, spatial_softmax
from fgbg_tf.model.presets import VARIANTS, architecture
from fgbg_tf.model.spade import SPADEGenerator, resize_bilinear
from fgbg_tf.model.unet import EagerBuild, UNet



@keras.saving.register_keras_serializable("fgbg_tf")
class FactorizedLandmarkModel(EagerBuild, keras.Model):
    """Unsupervised landmarks with foreground/background factorisation.

    Args:
        num_landmarks: K.
        image_size: S (multiple of 16); inputs are [B, S, S, 3] in [-1, 1].
        preset: "release", "paper" or "small" widths (see `presets.py`).
        variant: "full", "nomask" or "baseline".
        covariance: "fitted" or "fixed" (fixed_covariance * I).
        fixed_covariance: diagonal of the fixed covariance.
        low_res_mask: MaskNet predicts at S/4 and upsamples (release option for KTH).
        spectral_norm: "release" (PyTorch's semantics) or "keras" for the SPADE blocks (see `spade.py`).
        mask_bias: initial bias of MaskNet's output logit; None keeps the release's 0.1 (mask about 0.5), a
            negative value starts with most of each image given to the background (a deviation, see README).
        zero_heads: MaskNet's and BGNet's output convolutions start with zero kernels, so the mask starts at one
            value everywhere and the background flat: neither branch can render the figure before the foreground
            decoder does (a deviation, see README and docs/training.md).
        mask_temperature: the mask is sigmoid(mask_temperature x MaskNet's logit); 1 is the release. Above 1 each
            update moves the mask further (Adam's steps are the same size in the parameters), so it leaves the
            soft middle sooner (a deviation, see docs/training.md); the initial mask is sigmoid(T x mask_bias).
        mask_prior: adds mask_prior x (2 max_k s_k - 1) to the mask's logit (s_k the heatmaps it is computed from):
            foreground at the landmarks and background away from them before MaskNet has learnt anything, so that
            BGNet cannot render what the landmarks cover (a deviation, see docs/training.md, run W); 0 is the release.
            No gradient flows through the prior to the landmarks.
        background_downsample: BGNet sees (1 - M_temp) * Q average-pooled by this factor, and its output is
            upsampled bilinearly to S: a blurred scene, without the figure's detail (a deviation, see
            docs/training.md, run X); 1 is the release.
        subnetworks: {network: preset} taking single sub-networks' widths from another preset.

    Call: `model({"pose": P, "appearance": Q}, training=...)` returns a dict with
    "reconstruction", "foreground" [B, S, S, 3], and for the variants that have
    them "background" [B, S, S, 3] and "mask" [B, S, S, 1] (M_cj), plus the pose
    image's "mean" [B, K, 2], "covariance" [B, K, 2, 2], "heatmaps" [B, S, S, K] and "part_maps" [B, S/2, S/2, K].
    Example: `FactorizedLandmarkModel(10, 64, preset="small")({"pose": p, "appearance": q})`.
    """

    def __init__(
        self,
        num_landmarks: int,
        image_size: int,
        preset: str = "release",
        variant: str = "full",
        covariance: str = "fitted",
        fixed_covariance: float = 0.08,
        low_res_mask: bool = False,
        spectral_norm: str = "release",
        mask_bias: float | None = None,
        zero_heads: bool = False,
        mask_temperature: float = 1.0,
        mask_prior: float = 0.0,
        background_downsample: int = 1,
        subnetworks: dict | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
        if image_size % 16 or image_size < 32:
            raise ValueError(f"image_size must be a multiple of 16 and >= 32, got {image_size}")
        self.num_landmarks, self.image_size = num_landmarks, image_size
        self.preset, self.variant = preset, variant
        self.covariance, self.fixed_covariance = covariance, fixed_covariance
        self.low_res_mask = low_res_mask
        self.spectral_norm, self.mask_bias, self.zero_heads = spectral_norm, mask_bias, zero_heads
        if not mask_temperature > 0:
            raise ValueError(f"mask_temperature must be > 0, got {mask_temperature}")
        self.mask_temperature = float(mask_temperature)
        if not mask_prior >= 0:
            raise ValueError(f"mask_prior must be >= 0, got {mask_prior}")
        self.mask_prior = float(mask_prior)
        self.background_downsample = int(background_downsample)
        self.subnetworks = dict(subnetworks or {})
        widths = architecture(preset, num_landmarks, low_res_mask, self.subnetworks)
        dtype = self.dtype_policy
        self.pose_encoder = UNet(**widths["pose"], dtype=dtype, name="pose_encoder")
        self.appearance_encoder = UNet(**widths["appearance"], dtype=dtype, name="appearance_encoder")
        self.decoder = SPADEGenerator(**widths["decoder"], spectral_norm=spectral_norm, dtype=dtype,
                                      name="foreground_decoder")
        head_kernel = "zeros" if zero_heads else None
        if variant != "baseline":
            levels = 2 ** len(widths["background"]["encoder_channels"])
            if self.background_downsample < 1 or image_size % (self.background_downsample * levels):
                raise ValueError(f"background_downsample must be >= 1 and leave BGNet an input whose side is a "
                                 f"multiple of {levels}; got {background_downsample} at {image_size} px")
            self.background_net = UNet(**widths["background"], head_kernel_initializer=head_kernel, dtype=dtype,
                                       name="background_net")
        if variant == "full":
            head_bias = None if mask_bias is None else keras.initializers.Constant(mask_bias)
            self.mask_net = UNet(**widths["mask"], head_bias_initializer=head_bias, head_kernel_initializer=head_kernel,
                                 dtype=dtype, name="mask_net")

    def detect(self, images):
        """Landmarks of `images` [B, S, S, 3] in [-1, 1] (eq. 3 and the Gaussian fit).

        Returns a dict: "mean" [B, K, 2], "covariance" [B, K, 2, 2], "part_maps"
        [B, S/2, S/2, K] (softmax-normalised), "stem" [B, S/2, S/2, C] features.
        """
        self._check_images(images, "images")
        logits, stem = self.pose_encoder(tf.cast(images, self.compute_dtype))
        part_maps = spatial_softmax(logits)
        mean, cov = fit_gaussians(part_maps, self.covariance, self.fixed_covariance)
        return {"mean": mean, "covariance": cov, "part_maps": part_maps, "stem": stem}

    def call(self, inputs, training=False):
        pose_image, appearance_image = inputs["pose"], inputs["appearance"]
        pose = self.detect(pose_image)  # eq. 3, Phi_cj
        heatmaps = render_heatmaps(pose["mean"], pose["covariance"], self.image_size)
        outputs = self.render(heatmaps, appearance_image, training=training)
        return {**outputs, "mean": pose["mean"], "covariance": pose["covariance"], "heatmaps": heatmaps,
                "part_maps": pose["part_maps"]}

    def render(self, heatmaps, appearance_image, training=False):
        """Renders an image with the pose given by `heatmaps` and the look of `appearance_image`.

        Args:
            heatmaps: [B, S, S, K] eq. 2 heatmaps of the pose to render (from the
                pose image, or from external Gaussians for video manipulation).
            appearance_image: [B, S, S, 3] in [-1, 1]; its landmarks (eq. 3, Phi_temp) place its appearance.
        """
        self._check_images(appearance_image, "appearance_image")
        appearance = self.detect(appearance_image)
        encoder_input = tf.concat([tf.cast(appearance["part_maps"], self.compute_dtype), appearance["stem"]], -1)
        features, _ = self.appearance_encoder(encoder_input)  # eq. 4
        parts = pool_part_appearance(appearance["part_maps"], features)  # eq. 1
        appearance_map = project_appearance(parts, heatmaps)
        foreground = tf.cast(self.decoder(heatmaps, appearance_map, training=training), tf.float32)  # eq. 6
        if self.variant == "baseline":
            return {"reconstruction": foreground, "foreground": foreground}
        appearance_image = tf.cast(appearance_image, tf.float32)
        if self.variant == "nomask":
            background = self._background(appearance_image)
            return {"reconstruction": foreground + background, "foreground": foreground, "background": background}
        heatmaps_temp = render_heatmaps(appearance["mean"], appearance["covariance"], self.image_size)
        mask = self._mask(heatmaps)  # eq. 5, M_cj
        mask_temp = self._mask(heatmaps_temp)  # eq. 5, M_temp
        background = self._background((1.0 - mask_temp) * appearance_image)  # eq. 6
        reconstruction = mask * foreground + (1.0 - mask) * background  # eq. 7
        return {"reconstruction": reconstruction, "foreground": foreground, "background": background, "mask": mask}

    def _mask(self, heatmaps):
        logits, _ = self.mask_net(tf.cast(heatmaps, self.compute_dtype))
        logits = self.mask_temperature * resize_bilinear(tf.cast(logits, tf.float32), self.image_size, self.image_size)
        if self.mask_prior:
            # Without a gradient: through the prior the landmarks could shape the mask themselves, and they did,
            # gathering on one spot so that the mask hid almost nothing from BGNet (docs/training.md, run W1).
            nearest = tf.stop_gradient(tf.reduce_max(tf.cast(heatmaps, tf.float32), axis=-1, keepdims=True))
            logits += self.mask_prior * (2.0 * nearest - 1.0)
        return tf.sigmoid(logits)

    def _background(self, images):
        factor = self.background_downsample
        if factor > 1:
            images = tf.nn.avg_pool2d(images, factor, factor, "VALID")
        background, _ = self.background_net(tf.cast(images, self.compute_dtype))
        background = tf.cast(background, tf.float32)
        if factor > 1:
            background = resize_bilinear(background, self.image_size, self.image_size)
        return background

    def _check_images(self, images, name):
        shape = tuple(images.shape[1:])
        expected = (self.image_size, self.image_size, 3)
        if shape != expected:
            raise ValueError(f"{name} must have shape [batch, {self.image_size}, {self.image_size}, 3], got {images.shape}")

    def build_all(self, batch_size: int = 1):
        """Creates every weight by running one forward pass on zeros."""
        zeros = tf.zeros([batch_size, self.image_size, self.image_size, 3])
        self({"pose": zeros, "appearance": zeros})
        return self

    def get_config(self):
        return {
            **super().get_config(),
            "num_landmarks": self.num_landmarks,
            "image_size": self.image_size,
            "preset": self.preset,
            "variant": self.variant,
            "covariance": self.covariance,
            "fixed_covariance": self.fixed_covariance,
            "low_res_mask": self.low_res_mask,
            "spectral_norm": self.spectral_norm,
            "mask_bias": self.mask_bias,
            "zero_heads": self.zero_heads,
            "mask_temperature": self.mask_temperature,
            "mask_prior": self.mask_prior,
            "background_downsample": self.background_downsample,
            "subnetworks": self.subnetworks,
        }


def build_model(model_config, image_size: int, precision: str = "float32") -> FactorizedLandmarkModel:
    """Builds the model described by a `ModelConfig`, with all weights created."""
    model = FactorizedLandmarkModel(
        num_landmarks=model_config.num_landmarks,
        image_size=image_size,
        preset=model_config.preset,
        variant=model_config.variant,
        covariance=model_config.covariance,
        fixed_covariance=model_config.fixed_covariance,
        low_res_mask=model_config.low_res_mask,
        spectral_norm=model_config.spectral_norm,
        mask_bias=model_config.mask_bias,
        zero_heads=model_config.zero_heads,
        mask_temperature=model_config.mask_temperature,
        mask_prior=model_config.mask_prior,
        background_downsample=model_config.background_downsample,
        subnetworks=model_config.subnetworks,
        dtype=precision,
    )
    return model.build_all()
