"""Architecture presets: the widths of every sub-network.

* `release`: the released PyTorch code's widths (reference doc section 3), the
  default, so numbers are comparable with the released code.
* `paper`: the widths the paper's Appendix A describes (pose encoder 64 -> 512,
  MaskNet 32 throughout, BGNet 32 -> 128); where the appendix is silent (the
  appearance encoder, the SPADE hidden width) the release's values are used.
* `small`: narrow networks for tests and CPU demos (64 px inputs).

Example:
    widths = architecture("release", num_landmarks=30)
"""

from __future__ import annotations

# The model's other choices, listed once (config.py validates against these; the model classes check them too).
VARIANTS = ("full", "nomask", "baseline")
COVARIANCES = ("fitted", "fixed")  # fitted from each part map, or fixed_covariance * I
# "release": PyTorch's spectral_norm semantics (spectral_norm.py); "keras": keras.layers.SpectralNormalization,
# which renormalises the stored kernel in place and passes no gradient through sigma.
SPECTRAL_NORMS = ("release", "keras")


NETWORKS = ("pose", "appearance", "decoder", "mask", "background")


def architecture(preset: str, num_landmarks: int, low_res_mask: bool = False, subnetworks: dict | None = None) -> dict:
    """Returns {network: keyword arguments} for the sub-networks of `FactorizedLandmarkModel`.

    The appearance encoder's width follows the release's rule f = 2 x its input
    channels (K part maps + the pose encoder's stem features); `small` halves it.
    `subnetworks` ({network: preset}) takes single networks from another preset,
    e.g. {"mask": "release", "background": "release"} on `small`.
    """
    widths = _architecture(preset, num_landmarks, low_res_mask)
    for network, other in (subnetworks or {}).items():
        if network not in NETWORKS:
            raise ValueError(f"subnetworks: unknown network {network!r}; known: {list(NETWORKS)}")
        widths[network] = _architecture(other, num_landmarks, low_res_mask)[network]
    return widths


# Per preset, the widths of each sub-network; `_architecture` adds the pose encoder's output width (K heatmaps) and
# derives the appearance encoder's from its (output dim, middle width).
WIDTHS = {
    "release": dict(
        pose=dict(stem_channels=(6, 12), encoder_channels=(24, 48, 96, 192), decoder_channels=(512, 256, 128)),
        appearance=(32, 64),
        decoder=dict(channels=256, up_channels=(128, 64, 32), hidden=128),
        mask=dict(stem_channels=(32, 64), encoder_channels=(128, 256, 512), decoder_channels=(32, 32, 32, 1)),
        background=dict(stem_channels=(32, 64), encoder_channels=(128, 256, 512), decoder_channels=(32, 64, 128, 3)),
    ),
    "paper": dict(
        pose=dict(stem_channels=(16, 32), encoder_channels=(64, 128, 256, 512), decoder_channels=(512, 256, 128)),
        appearance=(32, 64),
        decoder=dict(channels=256, up_channels=(128, 64, 32), hidden=128),
        mask=dict(stem_channels=(32, 32), encoder_channels=(32, 32, 32), decoder_channels=(32, 32, 32, 1)),
        background=dict(stem_channels=(32, 32), encoder_channels=(32, 64, 128), decoder_channels=(128, 64, 32, 3)),
    ),
    "small": dict(
        pose=dict(stem_channels=(8, 16), encoder_channels=(32, 32, 64, 64), decoder_channels=(64, 64, 32)),
        appearance=(16, 32),
        decoder=dict(channels=64, up_channels=(64, 32, 16), hidden=32),
        mask=dict(stem_channels=(8, 16), encoder_channels=(16, 32, 32), decoder_channels=(16, 16, 16, 1)),
        background=dict(stem_channels=(8, 16), encoder_channels=(16, 32, 64), decoder_channels=(32, 16, 16, 3)),
    ),
}
PRESETS = tuple(sorted(WIDTHS))


def _architecture(preset: str, num_landmarks: int, low_res_mask: bool) -> dict:
    if preset not in WIDTHS:
        raise ValueError(f"preset must be one of {PRESETS}, got {preset!r}")
    k, widths = num_landmarks, WIDTHS[preset]
    pose = dict(widths["pose"], decoder_channels=widths["pose"]["decoder_channels"] + (k,))
    appearance_dim, appearance_mid = widths["appearance"]
    decoder, mask_net, background = (dict(widths[name]) for name in ("decoder", "mask", "background"))
    inputs = k + pose["encoder_channels"][0]
    stem_width = inputs if preset == "small" else 2 * inputs
    appearance = dict(
        stem_channels=(stem_width, 2 * stem_width),
        encoder_channels=(4 * stem_width,),
        decoder_channels=(appearance_mid, appearance_dim),
    )
    if low_res_mask:
        # Release option for KTH / grayscale data: predict at 1/4 resolution, upsample x4.
        mask_net = dict(mask_net, decoder_channels=(mask_net["decoder_channels"][0], 1))
    return dict(pose=pose, appearance=appearance, decoder=decoder, mask=mask_net, background=background)
