"""From a reader's frame pairs to training batches of (target, pose, appearance).

Per element (paper section 3.2; release section 1.1):
    x          = S(frame)                    (data.similarity: a random similarity, off by default; a deviation)
    target     = x                           (clean frame)
    pose       = T_cj(x)                     (colour jitter only)
    appearance = T_temp(x) = partner frame   ("temporal")
               | T_tps(x)                    ("tps")
               | both, as two examples       ("both": the release doubles the batch the same way)

All randomness is stateless, keyed on the element's index in the run's stream,
so the batches of step s are the same whether a run got there directly or
resumed from a checkpoint.

Example:
    batches = training_batches(dataset, config, global_batch_size=16, start_step=0)
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

from fgbg_tf.augment.color_jitter import color_jitter
from fgbg_tf.augment.similarity import random_similarity
from fgbg_tf.augment.tps import random_tps_warp
from fgbg_tf.config import Config, ConfigError
from fgbg_tf.data.base import LandmarkDataset, Shard, element_seed

_JITTER_SALT, _TPS_SALT, _SIMILARITY_SALT = 11, 12, 13


def to_model_range(images: tf.Tensor) -> tf.Tensor:
    """uint8 [0, 255] -> float32 [-1, 1] (the release's Normalize(0.5, 0.5))."""
    return tf.cast(images, tf.float32) / 127.5 - 1.0


def from_model_range(images: tf.Tensor) -> tf.Tensor:
    """float [-1, 1] -> float32 [0, 1], clipped, for display."""
    return tf.clip_by_value((tf.cast(images, tf.float32) + 1.0) / 2.0, 0.0, 1.0)


def to_uint8(images, low: float = -1.0) -> np.ndarray:
    """Float images in [low, 1] (-1: the model's range; 0: display [0, 1]) -> uint8 [0, 255], rounded and clipped."""
    scaled = (np.asarray(images, np.float32) - low) * (255.0 / (1.0 - low))
    return np.clip(scaled + 0.5, 0, 255).astype(np.uint8)


def make_views(element: dict, config: Config) -> dict:
    """Builds the training views of one element; returns a batch of 1 or 2 examples."""
    seed, data = config.train.seed, config.data
    # The partner is only a view of its own under temporal perturbation (for still images it is the frame).
    temporal = data.pose_perturbation in ("temporal", "both")
    frames = tf.cast(tf.stack([element["frame"], element["partner"]] if temporal else [element["frame"]]), tf.float32)
    frames = frames / 255.0
    if data.similarity.enabled:
        # One transform for the frame and its partner: they share a crop box (augment/similarity.py).
        similarity_seed = element_seed(seed, element["index"], _SIMILARITY_SALT)
        frames = random_similarity(frames, similarity_seed, **dataclasses.asdict(data.similarity))
    frame = frames[0]
    jitter_seed = element_seed(seed, element["index"], _JITTER_SALT)
    pose = color_jitter(frame, jitter_seed, **dataclasses.asdict(data.color_jitter))
    appearances = []
    if data.pose_perturbation in ("tps", "both"):
        tps_seed = element_seed(seed, element["index"], _TPS_SALT)
        appearances.append(random_tps_warp(frame, tps_seed, **dataclasses.asdict(data.tps)))
    if temporal:
        appearances.append(frames[1])
    copies = len(appearances)
    valid = tf.cast(element.get("valid", True), tf.float32)
    return {
        "target": tf.stack([frame] * copies) * 2.0 - 1.0,
        "pose": tf.stack([pose] * copies) * 2.0 - 1.0,
        "appearance": tf.stack(appearances) * 2.0 - 1.0,
        # Undecodable frames stay in the batch with zero weight and are reported (data/base.py).
        "weight": tf.fill([copies], valid),
        "source": tf.fill([copies], element.get("source", tf.constant(""))),
        "index": tf.fill([copies], tf.cast(element["index"], tf.int64)),
    }


def check_views(dataset: LandmarkDataset, config: Config) -> None:
    """Raises ConfigError when the config asks for views the dataset cannot give (before any work starts)."""
    if dataset.image_size != config.data.image_size:
        raise ConfigError(f"dataset image size {dataset.image_size} != data.image_size {config.data.image_size}")
    if config.data.pose_perturbation != "tps" and not dataset.is_video:
        raise ConfigError(
            f"data.pose_perturbation: dataset {dataset.name!r} has no videos, so it must be 'tps', "
            f"not {config.data.pose_perturbation!r}"
        )


def training_batches(
    dataset: LandmarkDataset,
    config: Config,
    global_batch_size: int,
    start_step: int = 0,
    input_context: tf.distribute.InputContext | None = None,
):
    """Endless batches of views for the steps from `start_step` on.

    Without `input_context`, batches of `global_batch_size`. With one (from
    `strategy.distribute_datasets_from_function`), this input pipeline's share:
    per-replica batches of its local replicas, in replica order, step after step.
    Replica r of the cluster gets examples [r * b, (r + 1) * b) of each global
    batch (b per replica), the same examples a one-replica run puts at those
    places, so every replica count trains on the same global batches.
    """
    check_views(dataset, config)
    copies = 2 if config.data.pose_perturbation == "both" else 1
    replicas = input_context.num_replicas_in_sync if input_context else 1
    pipelines = input_context.num_input_pipelines if input_context else 1
    pipeline = input_context.input_pipeline_id if input_context else 0
    if global_batch_size % replicas or (global_batch_size // replicas) % copies:
        raise ValueError(
            f"the global batch of {global_batch_size} must split into {replicas} equal replica batches"
            + (" of an even size (pose_perturbation 'both' makes two examples of each frame)" if copies > 1 else "")
        )
    batch_size = global_batch_size // replicas
    per_step = global_batch_size // copies  # frames of one global step
    shard = None
    if pipelines > 1:
        count = per_step // pipelines
        shard = Shard(period=per_step, first=pipeline * count, count=count)
    views = dataset.train_pairs(config.train.seed, start_step * per_step, shard).map(
        lambda e: make_views(e, config), num_parallel_calls=tf.data.AUTOTUNE
    )
    return views.unbatch().batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
