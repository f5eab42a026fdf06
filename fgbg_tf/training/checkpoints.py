"""Loading a trained model from a training output folder (or one of its checkpoints).

A training run writes `<run>/config.yaml` and `<run>/checkpoints/ckpt-N.*`.
`load_trained_model` accepts the run folder, its `checkpoints/` folder, or a
checkpoint prefix such as `<run>/checkpoints/ckpt-1500`, and always builds the
model in float32 (evaluation and export need no mixed precision).

Example:
    model, config, step = load_trained_model("runs/synthetic")
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import keras
import tensorflow as tf
import yaml

from fgbg_tf.config import Config, config_from_dict
from fgbg_tf.model.factorized import FactorizedLandmarkModel, build_model

logger = logging.getLogger(__name__)


class CheckpointError(RuntimeError):
    """A run folder holds checkpoints and none of them reads, or a checkpoint could not be written."""


def restore_newest(checkpoint: tf.train.Checkpoint, folder: Path, set_aside: bool = True) -> str | None:
    """Restores the newest checkpoint in `folder` that reads; returns its prefix, or None when there is none.

    The checkpoints are found by their `ckpt-N.index` files, not by the `checkpoint` state file alone, so a damaged
    state file cannot restart a run from step 0 over its checkpoints. One that does not read (truncated, corrupt,
    from another model) is named in a warning and, with `set_aside`, renamed to `ckpt-N.unreadable.*` so that no
    later save overwrites it. Raises CheckpointError when checkpoints exist and none reads.
    """
    found = sorted((int(m.group(1)) for p in folder.glob("ckpt-*.index")
                    if (m := re.fullmatch(r"ckpt-(\d+)\.index", p.name))), reverse=True)
    failures = []
    for number in found:
        prefix = folder / f"ckpt-{number}"
        try:
            checkpoint.restore(str(prefix)).assert_consumed()
        except Exception as error:  # TensorFlow raises assorted types for damaged files; each is reported
            reason = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
            failures.append(f"{prefix} ({reason})")
            if set_aside:
                for part in folder.glob(f"ckpt-{number}.*"):
                    part.rename(part.with_name(part.name.replace(f"ckpt-{number}.", f"ckpt-{number}.unreadable.", 1)))
            logger.warning("%s does not read (%s)%s; trying the one before", prefix, reason,
                           ", set aside as ckpt-%d.unreadable.*" % number if set_aside else "")
            continue
        return str(prefix)
    if failures:
        raise CheckpointError(f"no checkpoint in {folder} reads: {'; '.join(failures)}. Nothing was overwritten; "
                              "start a new --output folder, or restore the files")
    return None


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
