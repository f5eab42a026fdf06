"""The training loop behind `python -m fgbg_tf.train`: `train(config, output_dir)`.

The output folder holds `config.yaml` (the resolved configuration), `checkpoints/` (tf.train.CheckpointManager; a
run restarted on the same folder resumes exactly where its last checkpoint left it) and `logs/` (TensorBoard scalars
and the paper's Figure 6 image grid). The loop owns everything that must stay consistent across an interruption (the
run folder's checks, restore, the data position, logging and checkpointing, the cluster's failures); the step itself
is `step.py`.

Example:
    history = train(load_config("synthetic"), "runs/synthetic")   # [{"step": 25, "loss": ...}, ...]
"""

from __future__ import annotations

import collections
import logging
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
import yaml

from fgbg_tf.config import Config, ConfigError, config_from_dict
from fgbg_tf.data import DatasetError, get_dataset
from fgbg_tf.data.pipeline import check_views, training_batches
from fgbg_tf.data.skipped_frames import SkippedFrames
from fgbg_tf.data.sources import write_sources
from fgbg_tf.evaluation.runner import factorisation_report, make_renderer
from fgbg_tf.evaluation.summaries import log_figure6
from fgbg_tf.model.factorized import build_model
from fgbg_tf.training.checkpoints import CheckpointError, RunState, restore_newest
from fgbg_tf.training.distribute import resolve_precision
from fgbg_tf.training.step import build_loss, build_optimizer, make_train_step
from fgbg_tf.training.stop_request import StopRequest

logger = logging.getLogger("fgbg_tf.train")


def is_chief(strategy) -> bool:
    """Whether this process writes the run folder: always, except on the non-chief workers of a cluster."""
    resolver = strategy.cluster_resolver
    if resolver is None or resolver.task_type in (None, "chief"):
        return True
    cluster = resolver.cluster_spec().as_dict()
    return resolver.task_type == "worker" and resolver.task_id == 0 and "chief" not in cluster


class ClusterError(RuntimeError):
    """A peer of a multi-worker run stopped answering; the run stopped instead of waiting for it."""


# What a resumed run must keep: the model and the data stream (which frames, pairs and views each step sees), so that
# its checkpoint continues the run it came from. Training settings (learning rate, logging, ...) may change; the
# global batch is checked against the checkpoint itself; where the data lives may move, and the annotations, the
# benchmark protocol and the faces5pt fit policy that only `evaluate` reads may be added or changed.
def _must_match(key: str) -> bool:
    free = ("data.data_dir", "data.options.cache_dir", "data.options.tfds_data_dir",
            "data.options.keypoints", "data.options.masks", "data.options.normalise_by", "data.options.protocol",
            "data.options.misaligned_annotations")
    return key.startswith(("model.", "data.")) and key not in free or key == "train.seed"


def _flatten(values: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in values.items():
        if isinstance(value, dict) and value and key != "subnetworks":
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def prepare_output(output_dir: Path, config: Config) -> Config:
    """Writes config.yaml, or on resume checks that the folder's run had the same model and data stream.

    Raises ConfigError naming every model, data or seed key that differs.
    """
    output_dir.mkdir(parents=True, exist_ok=True)
    saved_path = output_dir / "config.yaml"
    if saved_path.exists():
        try:
            saved = _flatten(config_from_dict(yaml.safe_load(saved_path.read_text())).to_dict())
        except (yaml.YAMLError, ConfigError) as error:
            raise ConfigError(f"{saved_path} is not a readable fgbg_tf config ({error}); use a new --output folder") from None
        current = _flatten(config.to_dict())
        differ = [k for k in sorted(set(saved) | set(current))
                  if _must_match(k) and saved.get(k) != current.get(k)]
        if differ:
            details = "; ".join(f"{k}: {saved.get(k)!r} in the run, {current.get(k)!r} now" for k in differ[:6])
            raise ConfigError(
                f"{output_dir} holds a run with a different model or data stream ({saved_path}): {details}"
                f"{' ...' if len(differ) > 6 else ''}. Use a new --output folder, or the run's settings to resume"
            )
    saved_path.write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
    return config


def check_writable(*folders: Path) -> None:
    """Creates each folder and writes a file in it, so that an unwritable run folder fails at the start rather than
    at the first checkpoint, `checkpoint_every` steps of work later. Raises ConfigError naming the folder."""
    for folder in folders:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            tempfile.TemporaryFile(dir=folder).close()
        except OSError as error:
            raise ConfigError(f"{folder} is not a folder this run can write ({type(error).__name__}: "
                              f"{error.strerror or error}); choose another --output") from None


def save_checkpoint(manager: tf.train.CheckpointManager, number: int, cluster: bool = False) -> None:
    """Saves checkpoint `number`; if that fails (a full disk, a folder gone), removes what the save left behind,
    so that it neither fills the disk nor looks like a checkpoint, and raises CheckpointError.

    A checkpoint that was written whole before the failure (TensorFlow writes it, then its state file, then sweeps
    old ones) is kept; so are checkpoints set aside as unreadable. On a cluster a peer's failure is raised as it is.
    """
    try:
        manager.save(checkpoint_number=number)
    except (OSError, tf.errors.OpError) as error:
        if cluster and isinstance(error, _PEER_ERRORS):
            raise
        folder = Path(manager.directory)
        for temporary in folder.glob(f"ckpt-{number}_temp*"):  # TensorFlow's scratch folder for the shards
            shutil.rmtree(temporary, ignore_errors=True)
        if not _readable(folder / f"ckpt-{number}"):
            for partial in folder.glob(f"ckpt-{number}.*"):
                if re.fullmatch(rf"ckpt-{number}\.(index|data-.*)", partial.name):  # not ckpt-N.unreadable.*
                    partial.unlink(missing_ok=True)
        reason = str(error).splitlines()[0] if str(error) else ""
        raise CheckpointError(f"could not save step {number} in {folder} ({type(error).__name__}: {reason}); no "
                              "partial checkpoint was left and the checkpoints written before are as they were. Free "
                              "the space or mend the folder, then run the same command to resume") from None


def _readable(prefix: Path) -> bool:
    try:
        tf.train.load_checkpoint(str(prefix))
    except (OSError, ValueError, tf.errors.OpError):
        return False
    return True


def train(config: Config, output_dir: str | Path, strategy=None, progress: bool = True) -> list[dict]:
    """Trains until `config.train.max_steps`, resuming from the output folder's checkpoint.

    Works under every strategy `distribute.make_strategy` offers. Only the chief
    writes the run folder (config.yaml, checkpoints, logs); the other workers of a
    cluster save their (collective) checkpoints to a temporary folder they delete.
    Returns the per-step losses of this call (for tests and scripts).
    """
    decay = config.train.learning_rate_decay
    if decay is not None and decay[1] < config.train.max_steps:
        # A training-time check, not Config.validate's: a saved run with such a schedule stays loadable by evaluate,
        # export and a resume that fixes it. The rate is 0 after `end`, so the steps up to max_steps would change
        # nothing (e.g. a config's decay kept under a larger --max-steps).
        raise ConfigError(
            f"train.learning_rate_decay ends at step {decay[1]}, before train.max_steps {config.train.max_steps}: the "
            f"steps after it would train at learning rate 0; set train.learning_rate_decay=[start, "
            f"{config.train.max_steps}] or null")
    strategy = strategy or tf.distribute.get_strategy()
    output_dir = Path(output_dir)
    chief = is_chief(strategy)
    cluster = isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
    global_batch_size = config.train.batch_size * strategy.num_replicas_in_sync
    # The data first: a start that fails on it leaves no config.yaml to block the corrected command.
    dataset = get_dataset(config.data)
    check_views(dataset, config)
    if chief:
        check_writable(output_dir, output_dir / "checkpoints", output_dir / "logs")
        prepare_output(output_dir, config)
        write_sources(output_dir, dataset)
    precision = resolve_precision(config.train.precision)
    # Same seed, same initial weights and data: runs are reproducible and resumable from any checkpoint.
    keras.utils.set_random_seed(config.train.seed)

    with strategy.scope():
        model = build_model(config.model, config.data.image_size, precision)
        optimizer = build_optimizer(config)
        optimizer.build(model.trainable_variables)
        step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
    loss_fn = build_loss(config, precision)
    # The data stream's position is step x global batch, so a run resumes only with the global batch it had.
    trained_batch = tf.Variable(global_batch_size, dtype=tf.int64, trainable=False, name="global_batch_size")
    state = RunState(model, optimizer, step=step, global_batch_size=trained_batch)
    run_checkpoints = output_dir / "checkpoints"
    scratch = None if chief else Path(tempfile.mkdtemp(prefix="fgbg_tf-worker-"))
    manager = tf.train.CheckpointManager(state.checkpoint, scratch or run_checkpoints, config.train.keep_checkpoints)
    latest = restore_newest(state.restore, run_checkpoints, set_aside=chief) if run_checkpoints.is_dir() else None
    if latest:
        if int(trained_batch.numpy()) != global_batch_size:
            raise ConfigError(
                f"{latest} was trained with a global batch of {int(trained_batch.numpy())} images per step; this "
                f"run's is {global_batch_size} ({strategy.num_replicas_in_sync} replica(s) x train.batch_size "
                f"{config.train.batch_size}). Resume with replicas x train.batch_size = {int(trained_batch.numpy())}, "
                "or start a new --output folder"
            )
        logger.info("resumed from %s at step %d", latest, int(step.numpy()))

    start = int(step.numpy())
    if start >= config.train.max_steps:
        logger.info("%s is complete: step %d of train.max_steps %d; raise --max-steps to train on", output_dir, start,
                    config.train.max_steps)
        return []
    batches = strategy.distribute_datasets_from_function(
        lambda context: training_batches(dataset, config, global_batch_size, start_step=start, input_context=context)
    )
    preview = next(iter(training_batches(dataset, config, min(4, global_batch_size))))
    # Datasets that know their masks and backgrounds (synthetic) are scored on a fixed probe at every log step.
    probe = None
    if chief and hasattr(dataset, "factorisation_split") and config.model.variant != "baseline":
        arrays = dataset.factorisation_split("train")
        picks = np.random.default_rng(0).choice(len(arrays["image"]), min(32, len(arrays["image"])), replace=False)
        probe = {k: v[np.sort(picks)] for k, v in arrays.items()}
        render = make_renderer(model, config.data.image_size)  # one trace, not an eager pass at every log step
    train_step = make_train_step(model, loss_fn, optimizer, strategy, config, global_batch_size, step)
    writer = tf.summary.create_file_writer(str(output_dir / "logs")) if chief else tf.summary.create_noop_writer()
    skipped = SkippedFrames(dataset.num_train_items, steps=config.train.max_steps - start)
    # A progress bar on a terminal; otherwise (a log file, --no-progress) a plain line every train.log_every steps.
    interactive = progress and chief and sys.stdout.isatty()
    bar = keras.utils.Progbar(config.train.max_steps, stateful_metrics=["loss", "img/s"]) if interactive else None
    logger.info(
        "training %s: steps %d -> %d, %d replica(s) x %d images, %s, output %s",
        config.data.name, start, config.train.max_steps, strategy.num_replicas_in_sync, config.train.batch_size,
        precision, output_dir,
    )
    history = []
    last_saved = current = start
    healthy = True
    window = collections.deque(maxlen=config.train.log_every + 1)
    window.append((start, time.perf_counter()))

    stop = StopRequest().install()
    try:
        for batch in batches:
            if current >= config.train.max_steps:
                break
            if stop.requested:
                logger.warning("%s: stopping after step %d, the last one done", stop.requested, current)
                raise KeyboardInterrupt
            results = {k: float(v) for k, v in train_step(batch).items()}
            current = int(step.numpy())
            if not np.isfinite(results["loss"]):
                healthy = False
                raise FloatingPointError(
                    f"loss is {results['loss']} at step {current}; nothing was saved after it, "
                    f"the last checkpoint ({last_saved and f'step {last_saved}' or 'none'}) is intact in {run_checkpoints}"
                )
            try:
                skipped.add(batch)
            except DatasetError:
                healthy = False  # nothing was learnt from these batches: keep the last checkpoint as it is
                raise
            history.append(results)
            window.append((current, time.perf_counter()))
            # The recent rate (the last log_every steps), not an average that includes tracing.
            (first_step, first_time), (last_step, last_time) = window[0], window[-1]
            images_per_second = global_batch_size * (last_step - first_step) / max(last_time - first_time, 1e-9)
            if bar is not None:
                bar.update(current, [("loss", results["loss"]), ("img/s", images_per_second)])
            if current % config.train.log_every == 0 or current == config.train.max_steps:
                if bar is None and chief:
                    logger.info("step %d/%d: loss %.4f, %.2f images/s", current, config.train.max_steps,
                                results["loss"], images_per_second)
                with writer.as_default(step=current):
                    for name, value in results.items():
                        tf.summary.scalar(name if "/" in name else f"loss/{name}", value)
                    tf.summary.scalar("speed/images_per_second", images_per_second)
                    if probe is not None:
                        for name, value in factorisation_report(model, probe, render=render).items():
                            if name != "frames":
                                tf.summary.scalar(f"factorisation/{name}", value)
            if chief and (current % config.train.image_every == 0 or current == config.train.max_steps):
                log_figure6(writer, model, preview, current)
            if current % config.train.checkpoint_every == 0:
                try:
                    save_checkpoint(manager, current, cluster)
                except CheckpointError:
                    healthy = False  # the finally block does not try again
                    raise
                last_saved = current
    except _PEER_ERRORS as error:
        # Any collective (a step, a reduction, a checkpoint) fails once TensorFlow's health check has aborted them.
        if not cluster:
            raise
        healthy = False
        raise ClusterError(
            f"a worker of the cluster stopped answering at step {current + 1} ({type(error).__name__}: "
            f"{str(error).splitlines()[0] if str(error) else ''}); the last checkpoint is in {run_checkpoints}. "
            "Restart every worker with the same command to resume."
        ) from None
    finally:
        # Whatever stops the loop (the end, Ctrl-C, an error), keep the work done so far, unless it is broken
        # (a non-finite loss) or cannot be saved (a cluster whose peers no longer answer: saving is collective).
        try:
            if healthy and not cluster:
                # The counter moves with the update in one graph call: an interrupt that lands after the call but
                # before `current` is read must not save step N's weights under N - 1.
                current = int(step.numpy())
                if current > last_saved:
                    save_checkpoint(manager, current)
        finally:
            stop.restore()
            skipped.report()
            writer.flush()
            if scratch is not None:
                shutil.rmtree(scratch, ignore_errors=True)
    return history


# What a collective op raises when a peer of a multi-worker run has gone.
_PEER_ERRORS = (
    tf.errors.UnavailableError,
    tf.errors.DeadlineExceededError,
    tf.errors.AbortedError,
    tf.errors.CancelledError,
    tf.errors.InternalError,
    tf.errors.FailedPreconditionError,
)
