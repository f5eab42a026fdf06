"""fgbg_tf: unsupervised landmarks with foreground/background factorisation (Dundar et al.) in TF2 / Keras 3."""

__version__ = "0.1.0"
