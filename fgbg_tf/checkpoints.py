"""Loading a trained model from a training output folder (or one of its checkpoints).

A training run writes `<run>/config.yaml` and `<run>/checkpoints/ckpt-N.*`.
`load_trained_model` accepts the run folder, its `checkpoints/` folder, or a
checkpoint prefix such as `<run>/checkpoints/ckpt-1500`, and always builds the
model in float32 (evaluation and export need no mixed precision).

Example:
    model, config, step = load_trained_model("runs/synthetic")
"""

from __future__ import annotations

from pathlib import Path

import keras
import tensorflow as tf
import yaml

from fgbg_tf.config import Config, config_from_dict
from fgbg_tf.model.factorized import FactorizedLandmarkModel, build_model


def variables_checkpoint(variables) -> tf.train.Checkpoint:
    """A checkpoint object holding exactly `variables`, keyed by their order.

    `tf.train.Checkpoint(model=keras_model)` does not find every Keras 3 variable
    (nested layer lists, spectral-norm vectors), and Keras' auto-generated layer
    names differ between processes; creation order is the same for the same
    architecture, and restoring checks every shape.
    """
    return tf.train.Checkpoint(**{f"v{i:04d}": v.value for i, v in enumerate(variables)})


def resolve_checkpoint(path: str | Path) -> tuple[Path, str]:
    """Returns (run folder, checkpoint prefix) for a run folder, checkpoints folder or prefix."""
    path = Path(path)
    if path.is_dir():
        folder = path / "checkpoints" if (path / "checkpoints").is_dir() else path
        prefix = tf.train.latest_checkpoint(str(folder))
        if prefix is None:
            raise FileNotFoundError(f"no checkpoint in {folder} (expected ckpt-N.index files written by fgbg_tf.train)")
    elif Path(f"{path}.index").is_file():
        prefix = str(path)
    else:
        raise FileNotFoundError(f"{path} is neither a training output folder nor a checkpoint prefix")
    run = Path(prefix).parent
    if run.name == "checkpoints":
        run = run.parent
    return run, prefix


def load_run_config(path: str | Path) -> tuple[Config, Path, str]:
    """Returns (the run's config, run folder, checkpoint prefix) for a run folder or checkpoint."""
    run, prefix = resolve_checkpoint(path)
    config_path = run / "config.yaml"
    if not config_path.is_file():
        raise FileNotFoundError(f"{config_path} is missing: it records the model the checkpoint {prefix} belongs to")
    return config_from_dict(yaml.safe_load(config_path.read_text())), run, prefix


def load_trained_model(path: str | Path, initial: bool = False) -> tuple[FactorizedLandmarkModel, Config, int]:
    """Builds the run's model in float32 and restores its weights; returns (model, config, step).

    With `initial=True` the model keeps the weights the run started from (its seeded
    initialisation, step 0): the reference against which training is judged.
    """
    config, _, prefix = load_run_config(path)
    # The same seed and build order as fgbg_tf.train, so `initial` reproduces the run's starting weights.
    keras.utils.set_random_seed(config.train.seed)
    model = build_model(config.model, config.data.image_size, "float32")
    if initial:
        return model, config, 0
    step = tf.Variable(0, dtype=tf.int64)
    # Only the model is needed; the optimizer's slots in the checkpoint are left unread.
    restored = tf.train.Checkpoint(model=variables_checkpoint(model.variables), step=step).restore(prefix)
    restored.expect_partial().assert_existing_objects_matched()
    return model, config, int(step)
