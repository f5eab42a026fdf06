"""The model and its layers: landmarks (eq. 2-3), UNet, SPADE decoder, appearance pooling, spectral norm, presets."""
