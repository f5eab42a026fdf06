"""Loading a trained model from a training output folder (or one of its checkpoints).

A training run writes `<run>/config.yaml` and `<run>/checkpoints/ckpt-N.*`.
`load_trained_model` accepts the run folder, its `checkpoints/` folder, or a
checkpoint prefix such as `<run>/checkpoints/ckpt-1500`, and always builds the
model in float32 (evaluation and export need no mixed precision).

Example:
    model, config, step = load_trained_model("runs/synthetic")
"""

from __future__ import annotations

import functools
import logging
import re
from pathlib import Path

import keras
import tensorflow as tf
import yaml

from fgbg_tf.config import Config, ConfigError, config_from_dict
from fgbg_tf.model.factorized import FactorizedLandmarkModel, build_model

logger = logging.getLogger(__name__)


class CheckpointError(RuntimeError):
    """A run folder holds checkpoints and none of them reads, or a checkpoint could not be written."""


class CheckpointMismatch(CheckpointError):
    """A checkpoint that reads but holds other variables than the model built now (the code changed)."""


_VALUE = "/.ATTRIBUTES/VARIABLE_VALUE"


def variable_paths(root: keras.layers.Layer) -> dict[str, keras.Variable]:
    """Every variable of a layer tree keyed by where it sits: the attribute names from `root` down (list items by
    their index) and the variable's own name, e.g. "pose_encoder/down/0/1/conv/kernel".

    Unlike Keras' `variable.path` this does not depend on how many layers the process built before (Keras numbers
    auto-named layers globally), and unlike creation order it does not let a reordered or added layer take another
    layer's weights. Raises ValueError if a variable cannot be placed (the walk covers every variable or none).
    """
    paths: dict[str, keras.Variable] = {}
    visited: set[int] = set()
    placed: set[int] = set()

    def visit(value, prefix: str) -> None:
        if isinstance(value, keras.layers.Layer) and id(value) not in visited:
            visited.add(id(value))
            # The variables the layer tracks itself; its sublayers' are reached through its attributes. A variable
            # tracked twice (keras.layers.SpectralNormalization keeps its layer's kernel as its own) keeps the first
            # place it is found at, which attribute order makes the same in every process.
            for variable in [*value._trainable_variables, *value._non_trainable_variables]:
                if id(variable) in placed:
                    continue
                if prefix + variable.name in paths:
                    raise ValueError(f"two variables of {value.name} are both named {prefix + variable.name}")
                paths[prefix + variable.name] = variable
                placed.add(id(variable))
            for name, attribute in vars(value).items():
                if not name.startswith("_"):
                    visit(attribute, f"{prefix}{name}/")
        elif isinstance(value, (list, tuple)):
            for index, item in enumerate(value):
                visit(item, f"{prefix}{index}/")
        elif isinstance(value, keras.random.SeedGenerator) and id(value.state) not in placed:
            # Random layers (an LSTM cell's dropout) keep their generator's state outside any sublayer.
            paths[prefix + value.state.name] = value.state
            placed.add(id(value.state))

    visit(root, "")
    unplaced = [v.path for v in root.variables if id(v) not in placed]
    if unplaced or len(paths) != len(root.variables):
        raise ValueError(f"cannot name every variable of {root.name} by its place: {unplaced[:3]} and "
                         f"{len(paths)} paths for {len(root.variables)} variables")
    return paths


def optimizer_paths(optimizer: keras.optimizers.Optimizer, model: keras.layers.Layer) -> dict[str, keras.Variable]:
    """Adam's state keyed like the model: "m/<path>" and "v/<path>" for each trainable variable's moments, and
    the optimizer's own counters by name ("iteration", "learning_rate")."""
    slots = {}
    for path, variable in variable_paths(model).items():
        if variable.trainable:
            index = optimizer._get_variable_index(variable)
            slots[f"m/{path}"], slots[f"v/{path}"] = optimizer._momentums[index], optimizer._velocities[index]
    placed = {id(v) for v in slots.values()}
    slots.update({v.name: v for v in optimizer.variables if id(v) not in placed})
    if len(slots) != len(optimizer.variables):
        raise ValueError(f"cannot name every variable of the optimizer: {len(slots)} for {len(optimizer.variables)}")
    return slots


class RunState:
    """What a run's checkpoints hold: the model's variables (and the optimizer's) keyed by their place in the model
    (`variable_paths`), plus counters such as the step.

    `checkpoint` is the `tf.train.Checkpoint` to save; `restore(prefix)` first compares the checkpoint's names and
    shapes with the model's and raises CheckpointMismatch naming the first difference, so that weights never load
    into the wrong variables. Checkpoints of fgbg_tf 0.1, keyed by creation order (`v0000`, ...), still restore.

    Example:
        state = RunState(model, optimizer, step=step)
        tf.train.CheckpointManager(state.checkpoint, "run/checkpoints", 3).save()
        state.restore("run/checkpoints/ckpt-100")
    """

    def __init__(self, model: keras.layers.Layer, optimizer: keras.optimizers.Optimizer | None = None, **counters):
        groups = {"model": variable_paths(model)}
        if optimizer is not None:
            groups["optimizer"] = optimizer_paths(optimizer, model)
        self.variables = {f"{group}/{path}": v for group, paths in groups.items() for path, v in paths.items()}
        tree: dict = {}
        for key, variable in self.variables.items():
            *parents, leaf = key.split("/")
            node = tree
            for parent in parents:
                node = node.setdefault(parent, {})
            node[leaf] = variable.value
        self.checkpoint = tf.train.Checkpoint(**tree, **counters)
        legacy = {"model": model.variables, **({"optimizer": optimizer.variables} if optimizer is not None else {})}
        self._legacy = tf.train.Checkpoint(
            **{group: tf.train.Checkpoint(**{f"v{i:04d}": v.value for i, v in enumerate(variables)})
               for group, variables in legacy.items()}, **counters)

    def restore(self, prefix: str, partial: bool = False) -> None:
        """Restores `prefix`; with `partial`, the checkpoint may hold more (an evaluation needs no optimizer)."""
        stored = {key.removesuffix(_VALUE): shape for key, shape in
                  tf.train.load_checkpoint(prefix).get_variable_to_shape_map().items() if key.endswith(_VALUE)}
        if "model/v0000" in stored:
            logger.warning("%s is keyed by creation order (fgbg_tf 0.1): its names cannot be checked", prefix)
            status = self._legacy.restore(prefix)
        else:
            self._check_names(prefix, stored, partial)
            status = self.checkpoint.restore(prefix)
        if partial:
            status.expect_partial().assert_existing_objects_matched()
        else:
            status.assert_consumed()

    def _check_names(self, prefix: str, stored: dict, partial: bool) -> None:
        for key, variable in self.variables.items():
            if key not in stored:
                raise CheckpointMismatch(f"{prefix} has no {key}: it was written by another version of the model")
            if tuple(stored[key]) != tuple(variable.shape):
                raise CheckpointMismatch(f"{prefix}: {key} has shape {tuple(stored[key])} there and "
                                         f"{tuple(variable.shape)} in the model")
        groups = {key.split("/")[0] for key in self.variables}
        extra = sorted(key for key in stored if key.split("/")[0] in groups and key not in self.variables)
        if extra and not partial:
            raise CheckpointMismatch(f"{prefix} holds {extra[0]}, which the model does not have "
                                     f"({len(extra)} such variable(s))")


def checkpoint_numbers(folder: Path) -> list[int]:
    """The N of every `ckpt-N.index` in `folder`, newest first: what is there, whatever the `checkpoint` state
    file (which a crash can leave damaged) says."""
    return sorted((int(m.group(1)) for p in Path(folder).glob("ckpt-*.index")
                   if (m := re.fullmatch(r"ckpt-(\d+)\.index", p.name))), reverse=True)


def restore_newest(restore, folder: Path, set_aside: bool = True) -> str | None:
    """Restores the newest checkpoint in `folder` that reads, by calling `restore(prefix)` (e.g.
    `RunState.restore`); returns its prefix, or None when there is none.

    The checkpoints are found by their `ckpt-N.index` files, not by the `checkpoint` state file alone, so a damaged
    state file cannot restart a run from step 0 over its checkpoints. One that does not read (truncated, corrupt)
    is named in a warning and, with `set_aside`, renamed to `ckpt-N.unreadable.*` so that no later save overwrites
    it. Raises CheckpointError when checkpoints exist and none reads, and CheckpointMismatch at once for one that
    reads but belongs to another model (the older ones would too).
    """
    failures = []
    for number in checkpoint_numbers(folder):
        prefix = folder / f"ckpt-{number}"
        try:
            restore(str(prefix))
        except CheckpointMismatch:
            raise
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


def resolve_checkpoint(path: str | Path) -> tuple[Path, str]:
    """Returns (run folder, checkpoint prefix) for a run folder, checkpoints folder or prefix."""
    path = Path(path)
    if path.is_dir():
        folder = path / "checkpoints" if (path / "checkpoints").is_dir() else path
        numbers = checkpoint_numbers(folder)
        if not numbers:
            raise FileNotFoundError(f"no checkpoint in {folder} (expected ckpt-N.index files written by fgbg_tf.train)")
        prefix = str(folder / f"ckpt-{numbers[0]}")
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
    try:
        return config_from_dict(yaml.safe_load(config_path.read_text())), run, prefix
    except (yaml.YAMLError, ConfigError) as error:
        raise ConfigError(f"{config_path} is not a readable fgbg_tf config ({error}); it records the model of "
                          f"{prefix}: restore it from a copy or retrain") from None


def load_trained_model(path: str | Path, initial: bool = False) -> tuple[FactorizedLandmarkModel, Config, int]:
    """Builds the run's model in float32 and restores its weights; returns (model, config, step).

    From a folder, the newest checkpoint that reads: a damaged newest one (a crash during its write) is named in a
    warning and skipped. With `initial=True` the model keeps the weights the run started from (its seeded
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
    restore = functools.partial(RunState(model, step=step).restore, partial=True)
    if Path(path).is_dir():
        # A run folder means its newest checkpoint that reads; a reader never renames a run's files.
        restore_newest(restore, Path(prefix).parent, set_aside=False)
    else:
        restore(prefix)
    return model, config, int(step)
