"""Shared test setup: quiet TensorFlow, two logical CPU devices, tiny configurations."""

import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

# Two logical CPU devices let the MirroredStrategy tests run without GPUs; this must
# happen before TensorFlow executes its first op, hence at import time.
from fgbg_tf.distribute import split_cpu  # noqa: E402

split_cpu(2)

SHARED_FACES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "faces5pt"

# A synthetic run small enough for unit tests: 32 px, 4 landmarks, pixel-only loss (no VGG weights needed).
TINY_OVERRIDES = [
    "model.preset=small",
    "model.num_landmarks=4",
    "data.image_size=32",
    "data.options={train_videos: 2, test_videos: 1, frames_per_video: 8}",
    "data.temporal_offset=[1, 3]",
    "loss.layer_weights=[0, 0, 0, 0]",
    "train.precision=float32",
    "train.batch_size=2",
    "train.log_every=1",
    "train.image_every=2",
]


@pytest.fixture
def tiny_config():
    from fgbg_tf.config import load_config

    return load_config("synthetic", overrides=TINY_OVERRIDES)


@pytest.fixture(autouse=True)
def _fresh_keras_names():
    import keras

    keras.backend.clear_session()
    yield
