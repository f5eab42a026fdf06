"""fgbg_tf: unsupervised landmarks with foreground/background factorisation (Dundar et al.) in TF2 / Keras 3."""

import os
import sys

# TensorFlow reads these when it loads, so they are set here, before any module of the package imports it; a value
# the user set wins. oneDNN's CPU kernels make the training step 1.2x faster on CPUs without AVX-512, where
# TensorFlow leaves them off (docs/benchmarks.md). Level 3 silences TensorFlow's C++ log lines (CPU features,
# grappler's chatter); its failures still reach Python as exceptions, and TF_CPP_MIN_LOG_LEVEL=0 shows them all.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def _import_tensorflow_quietly():
    """Loads TensorFlow with C-level stderr closed: its oneDNN notice ignores the log level and prints twice.

    An import error is still raised (and shown) once stderr is back.
    """
    if "tensorflow" in sys.modules or os.environ["TF_CPP_MIN_LOG_LEVEL"] != "3":
        return
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        import tensorflow  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


_import_tensorflow_quietly()

__version__ = "0.1.0"
