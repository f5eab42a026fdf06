"""The reconstruction loss (VGG19 perceptual + pixel) and its weights."""
