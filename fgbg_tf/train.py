"""Training: `python -m fgbg_tf.train [--dataset NAME] [--config FILE] [--set key=value ...]`.

The output folder holds `config.yaml` (the resolved configuration), `checkpoints/`
(tf.train.CheckpointManager; a run restarted on the same folder resumes exactly
where its last checkpoint left it) and `logs/` (TensorBoard scalars and the
paper's Figure 6 image grid).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
import yaml

from fgbg_tf.checkpoints import variables_checkpoint
from fgbg_tf.config import DATASET_NAMES, Config, ConfigError, config_from_dict, load_config
from fgbg_tf.data import DatasetError, get_dataset
from fgbg_tf.distribute import STRATEGIES, make_strategy
from fgbg_tf.model import build_model
from fgbg_tf.perceptual import PerceptualLoss
from fgbg_tf.pipeline import training_batches
from fgbg_tf.summaries import figure6_grid

logger = logging.getLogger("fgbg_tf.train")


def build_loss(config: Config) -> PerceptualLoss:
    """The reconstruction loss a config describes, computed in the run's precision."""
    return PerceptualLoss(
        layer_weights=config.loss.layer_weights,
        pixel_weight=config.loss.pixel_weight,
        scale=config.loss.scale,
        feature_scale=config.loss.feature_scale,
        weights=config.loss.vgg_weights,
        dtype=config.train.precision,
    )


def worker_folder(output_dir: Path, strategy) -> Path:
    """Where this worker writes: the output folder for the chief, a scratch folder for other workers.

    MultiWorkerMirroredStrategy needs every worker to save checkpoints (saving is a
    collective operation), but only the chief's copy is the run's.
    """
    resolver = strategy.cluster_resolver
    if resolver is None or resolver.task_type in (None, "chief"):
        return output_dir
    cluster = resolver.cluster_spec().as_dict()
    if resolver.task_type == "worker" and resolver.task_id == 0 and "chief" not in cluster:
        return output_dir
    return output_dir / f".{resolver.task_type}-{resolver.task_id}"


def make_train_step(model, loss_fn, optimizer, strategy, config: Config, global_batch_size: int):
    """Returns a tf.function running one distributed optimisation step on a distributed batch."""
    # PyTorch's Adam(weight_decay=wd) adds wd * w to the gradient (coupled L2), unlike
    # Keras' decoupled `weight_decay`. Gradients are summed over replicas, so each adds its share.
    decay = config.train.weight_decay / strategy.num_replicas_in_sync

    def replica_step(batch):
        with tf.GradientTape() as tape:
            outputs = model({"pose": batch["pose"], "appearance": batch["appearance"]}, training=True)
            losses = loss_fn(outputs["reconstruction"], batch["target"])
            # Per-example losses over the global batch, so replicas add up to the batch mean.
            weight = batch["weight"] / global_batch_size
            loss = tf.reduce_sum(losses["total"] * weight)
        variables = model.trainable_variables
        gradients = tape.gradient(loss, variables)
        gradients = [g + decay * v for g, v in zip(gradients, variables)]
        optimizer.apply(gradients, variables)
        return {
            "loss": loss,
            "perceptual": tf.reduce_sum(losses["perceptual"] * weight),
            "pixel": tf.reduce_sum(losses["pixel"] * weight),
        }

    @tf.function
    def train_step(batch):
        per_replica = strategy.run(replica_step, args=(batch,))
        return {k: strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None) for k, v in per_replica.items()}

    return train_step


class SkippedFrames:
    """Collects the frames a reader could not decode and reports them once per epoch."""

    def __init__(self, epoch_size: int):
        self.epoch_size = epoch_size
        self.epoch = None
        self.sources: list[str] = []

    def add(self, batch) -> None:
        weight = _local(batch["weight"])
        index = _local(batch["index"])
        epoch = int(index.max()) // self.epoch_size
        if self.epoch is not None and epoch != self.epoch:
            self.report()
        self.epoch = epoch
        bad = weight == 0
        if bad.any():
            self.sources += [s.decode() for s in _local(batch["source"])[bad]]

    def report(self) -> None:
        if self.sources:
            unique = sorted(set(self.sources))
            logger.warning(
                "epoch %d: skipped %d unreadable frame(s) (zero loss weight): %s%s",
                self.epoch, len(self.sources), ", ".join(unique[:10]), " ..." if len(unique) > 10 else "",
            )
        self.sources = []


def _local(value) -> np.ndarray:
    """Concatenates a (possibly per-replica) tensor into one numpy array."""
    parts = value.values if hasattr(value, "values") else (value,)
    return np.concatenate([np.asarray(p) for p in parts])


def prepare_output(output_dir: Path, config: Config) -> Config:
    """Writes config.yaml, or on resume checks that the folder's run used a compatible model."""
    output_dir.mkdir(parents=True, exist_ok=True)
    saved_path = output_dir / "config.yaml"
    if saved_path.exists():
        saved = config_from_dict(yaml.safe_load(saved_path.read_text()))
        if saved.model != config.model or saved.data.image_size != config.data.image_size:
            raise ConfigError(
                f"{output_dir} holds a run with a different model ({saved_path}); "
                "use a new --output folder or the same model settings to resume"
            )
    saved_path.write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
    return config


def train(config: Config, output_dir: str | Path, strategy=None, progress: bool = True) -> list[dict]:
    """Trains until `config.train.max_steps`, resuming from the output folder's checkpoint.

    Returns the per-step losses of this call (for tests and scripts).
    """
    strategy = strategy or tf.distribute.get_strategy()
    output_dir = worker_folder(Path(output_dir), strategy)
    prepare_output(output_dir, config)
    global_batch_size = config.train.batch_size * strategy.num_replicas_in_sync
    dataset = get_dataset(config.data)
    # Same seed, same initial weights and data: runs are reproducible and resumable from any checkpoint.
    keras.utils.set_random_seed(config.train.seed)

    with strategy.scope():
        model = build_model(config.model, config.data.image_size, config.train.precision)
        optimizer = keras.optimizers.Adam(config.train.learning_rate, epsilon=config.train.adam_epsilon)
        optimizer.build(model.trainable_variables)
        step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
    loss_fn = build_loss(config)
    checkpoint = tf.train.Checkpoint(
        model=variables_checkpoint(model.variables), optimizer=variables_checkpoint(optimizer.variables), step=step
    )
    manager = tf.train.CheckpointManager(checkpoint, output_dir / "checkpoints", config.train.keep_checkpoints)
    if manager.latest_checkpoint:
        checkpoint.restore(manager.latest_checkpoint).assert_consumed()
        logger.info("resumed from %s at step %d", manager.latest_checkpoint, int(step))

    start = int(step)
    batches = training_batches(dataset, config, global_batch_size, start_step=start)
    preview = next(iter(training_batches(dataset, config, min(4, global_batch_size))))
    train_step = make_train_step(model, loss_fn, optimizer, strategy, config, global_batch_size)
    writer = tf.summary.create_file_writer(str(output_dir / "logs"))
    skipped = SkippedFrames(dataset.num_train_items)
    bar = keras.utils.Progbar(config.train.max_steps, stateful_metrics=["loss", "img/s"]) if progress else None
    history = []
    last_saved = start
    started = time.perf_counter()

    try:
        for batch in strategy.experimental_distribute_dataset(batches):
            if int(step) >= config.train.max_steps:
                break
            losses = {k: float(v) for k, v in train_step(batch).items()}
            if not np.isfinite(losses["loss"]):
                raise FloatingPointError(
                    f"loss is {losses['loss']} at step {int(step) + 1}; the last checkpoint is intact in {output_dir}"
                )
            step.assign_add(1)
            current = int(step)
            skipped.add(batch)
            history.append(losses)
            images_per_second = global_batch_size * (current - start) / (time.perf_counter() - started)
            if bar is not None:
                bar.update(current, [("loss", losses["loss"]), ("img/s", images_per_second)])
            if current % config.train.log_every == 0 or current == config.train.max_steps:
                with writer.as_default(step=current):
                    for name, value in losses.items():
                        tf.summary.scalar(f"loss/{name}", value)
                    tf.summary.scalar("speed/images_per_second", images_per_second)
            if current % config.train.image_every == 0 or current == config.train.max_steps:
                write_figure6(writer, model, preview, current)
            if current % config.train.checkpoint_every == 0:
                manager.save(checkpoint_number=current)
                last_saved = current
    finally:
        # Whatever stops the loop (the end, Ctrl-C, an error), keep the work done so far.
        if int(step) > last_saved:
            manager.save(checkpoint_number=int(step))
        skipped.report()
        writer.flush()
    return history


def write_figure6(writer, model, batch, step: int) -> None:
    outputs = model({"pose": batch["pose"], "appearance": batch["appearance"]}, training=False)
    grid = figure6_grid({k: v.numpy() for k, v in batch.items()}, {k: v.numpy() for k, v in outputs.items()})
    with writer.as_default(step=step):
        tf.summary.image("figure6 (input, T_cj, appearance, background, foreground, mask, reconstruction)",
                         grid[None], max_outputs=1)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m fgbg_tf.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="synthetic", choices=DATASET_NAMES, help="dataset (default: synthetic)")
    parser.add_argument("--data-dir", help="where the dataset lives (sets data.data_dir)")
    parser.add_argument("--config", action="append", default=[], metavar="FILE",
                        help="YAML applied after the dataset's config (repeatable, e.g. configs/variants/nomask.yaml)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                        help="override one setting, e.g. --set model.num_landmarks=16 (repeatable)")
    parser.add_argument("--output", default=None, help="output folder (default: runs/<dataset>)")
    parser.add_argument("--max-steps", type=int, help="stop after this many steps in total (sets train.max_steps)")
    parser.add_argument("--strategy", default="auto", choices=STRATEGIES,
                        help="auto: MirroredStrategy over several GPUs, else one device")
    parser.add_argument("--cpu-replicas", type=int, default=0,
                        help="split the CPU into N logical devices and mirror over them (tests multi-replica code)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    overrides = list(args.overrides)
    if args.data_dir:
        overrides.append(f"data.data_dir={args.data_dir}")
    if args.max_steps is not None:
        overrides.append(f"train.max_steps={args.max_steps}")
    try:
        config = load_config(args.dataset, args.config, overrides)
        strategy = make_strategy(args.strategy, args.cpu_replicas)
        output = args.output or os.path.join("runs", args.dataset)
        history = train(config, output, strategy=strategy, progress=not args.no_progress)
    except (ConfigError, DatasetError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if history:
        first, last = history[0]["loss"], np.mean([h["loss"] for h in history[-10:]])
        print(f"trained {len(history)} steps: loss {first:.4f} -> {last:.4f} (mean of the last 10); output in {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
