"""fgbg_tf: unsupervised landmarks with foreground/background factorisation (Dundar et al.) in TF2 / Keras 3."""

import os

# TensorFlow reads these when it loads, so they are set here, before any module of the package imports it; a value
# the user set wins. oneDNN's CPU kernels make the training step 1.2x faster on CPUs without AVX-512, where
# TensorFlow leaves them off (docs/benchmarks.md); TensorFlow then says so in a notice that no log level silences
# (the command lines leave it out: cli.import_tensorflow).
# Level 3 silences TensorFlow's other C++ log lines (CPU features, grappler's chatter); its failures still reach
# Python as exceptions, and TF_CPP_MIN_LOG_LEVEL=0 shows them all.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

__version__ = "0.1.0"
