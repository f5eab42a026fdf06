"""Shared test setup: quiet TensorFlow, two logical CPU devices, tiny configurations."""

import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import pytest  # noqa: E402

# Two logical CPU devices let the MirroredStrategy tests run without GPUs; this must
# happen before TensorFlow executes its first op, hence at import time.
from fgbg_tf.training.distribute import split_cpu  # noqa: E402

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
    # The release's start and schedule (the synthetic config's flat heads and warm-up would keep MaskNet and BGNet
    # out of every short test run); tests of those options set them.
    "model.zero_heads=false",
    "train.background_warmup_steps=0",
    "train.batch_size=2",
    "train.log_every=1",
    "train.image_every=2",
]


def shared_folder(tmp_path_factory, worker_id: str, name: str, make) -> Path:
    """A folder that `make(folder)` fills once per test session, also when pytest-xdist runs several workers.

    The workers of one session share the parent of their base temporary folders; the first to arrive builds the
    folder under a file lock, the others wait for it and reuse it. Without xdist it is a plain session folder.
    """
    from filelock import FileLock

    base = tmp_path_factory.getbasetemp()
    root = base if worker_id == "master" else base.parent
    folder, done = root / name, root / f"{name}.done"
    with FileLock(str(root / f"{name}.lock")):
        if not done.exists():
            folder.mkdir(exist_ok=True)
            make(folder)
            done.touch()
    return folder


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, worker_id):
    """A 2-step run of the tiny config, trained once per session (evaluate, export, predict tests)."""
    from fgbg_tf.config import load_config
    from fgbg_tf.training.loop import train

    def make(run):
        train(load_config("synthetic", overrides=TINY_OVERRIDES + ["train.max_steps=2"]), run, progress=False)

    return shared_folder(tmp_path_factory, worker_id, "tiny_run", make)


@pytest.fixture(scope="session")
def tiny_regressor():
    from fgbg_tf.evaluation.regression import Regressor

    return Regressor(np.random.default_rng(0).normal(size=(8, 6)), "centre", 32, ("a", "b", "c"))


@pytest.fixture(scope="session")
def tiny_export(tiny_run, tiny_regressor, tmp_path_factory, worker_id):
    """The tiny run exported once per session in every format: SavedModels with a keypoints signature, all TFLite
    variants, ONNX."""
    from fgbg_tf.training.checkpoints import load_trained_model
    from fgbg_tf.serving import FORMATS
    from fgbg_tf.serving.export import dataset_images, export_model

    def make(out):
        model, config, _ = load_trained_model(tiny_run)
        export_model(model, out, FORMATS, regressor=tiny_regressor, calibration_images=dataset_images(config, 0, 8),
                     evaluation_images=dataset_images(config, 1, 2))

    return shared_folder(tmp_path_factory, worker_id, "tiny_export", make)


@pytest.fixture
def tiny_config():
    from fgbg_tf.config import load_config

    return load_config("synthetic", overrides=TINY_OVERRIDES)


@pytest.fixture(autouse=True)
def _fresh_keras_names():
    import keras

    keras.backend.clear_session()
    yield


# The slowest tests, slowest first (seconds on 2 AVX2 cores, docs/benchmarks.md). Collected first, so that with
# `--dist load` the two workers start on them in turn and the short tests fill the gaps, instead of one of them being
# reached last and running alone at the end.
SLOWEST = (
    "tests/test_learning.py::test_a_short_run_learns_landmarks_that_predict_the_keypoints",
    "tests/test_train.py::test_resume_continues_with_identical_losses",
    "tests/test_own_videos.py::test_train_resume_evaluate_and_predict_own_videos",
    "tests/test_distributed.py::test_two_workers_match_one_replica_only_the_chief_writes_and_a_killed_worker_stops_the_other",
    "tests/test_distributed.py::test_two_replicas_train_resume_on_one_replica_and_evaluate",
    "tests/test_train.py::test_interrupts_nan_losses_and_failed_saves_keep_a_consistent_last_checkpoint",
    "tests/training/test_step.py::test_two_replicas_equal_one_replica_on_the_same_global_batch[None]",
    "tests/test_distributed.py::test_eight_cpu_replicas_from_the_command_line_resume_a_one_replica_run",
    "tests/training/test_step.py::test_two_replicas_equal_one_replica_on_the_same_global_batch[0.5]",
    "tests/test_consumers.py::test_saved_model_consumer_prints_landmarks_and_keypoints",
    "tests/test_video_prediction.py::test_the_consumer_predicts_from_a_folder_and_a_video_without_fgbg_tf",
    "tests/test_video_prediction.py::test_kth_and_bair_run_end_to_end_from_their_distributed_files[bair]",
    "tests/test_video_prediction.py::test_kth_and_bair_run_end_to_end_from_their_distributed_files[kth]",
    "tests/dynamics/test_evaluation.py::test_an_untrained_lstm_scores_as_holding_the_last_seed_frame",
)


def pytest_collection_modifyitems(config, items):
    rank = {nodeid: i for i, nodeid in enumerate(SLOWEST)}
    items.sort(key=lambda item: rank.get(item.nodeid, len(rank)))  # stable: the rest keep their order
