"""The measurements behind `python -m fgbg_tf.benchmark`: the train step, landmark inference, the input pipeline.

Example:
    figures = run_benchmark("train", load_config("synthetic"), steps=20, warmup=3)   # images_per_second, ms_per_image, ...
"""

from __future__ import annotations

import resource
import time

import tensorflow as tf

from fgbg_tf.data import get_dataset
from fgbg_tf.data.pipeline import training_batches
from fgbg_tf.model.factorized import build_model
from fgbg_tf.training.distribute import resolve_precision
from fgbg_tf.training.step import build_loss, build_optimizer, make_train_step


def peak_memory_mib() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(fn, steps: int, warmup: int) -> float:
    """Seconds per call of `fn` after `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    return (time.perf_counter() - start) / steps


def random_batch(config, batch_size: int) -> dict:
    size = config.data.image_size
    shape = [batch_size, size, size, 3]
    batch = {k: tf.random.stateless_uniform(shape, [i, 0], -1.0, 1.0) for i, k in enumerate(("pose", "appearance", "target"))}
    return {**batch, "weight": tf.ones([batch_size])}


def bench_train(config, steps: int, warmup: int) -> dict:
    strategy = tf.distribute.get_strategy()
    batch_size = config.train.batch_size
    model = build_model(config.model, config.data.image_size, resolve_precision(config.train.precision))
    optimizer = build_optimizer(config)
    optimizer.build(model.trainable_variables)
    # The counter starts past any background warm-up, so the steps timed are the full composite of eq. 7.
    counter = tf.Variable(config.train.background_warmup_steps, dtype=tf.int64, trainable=False)
    step = make_train_step(model, build_loss(config), optimizer, strategy, config, batch_size, step=counter)
    batch = random_batch(config, batch_size)
    seconds = timed(lambda: step(batch)["loss"].numpy(), steps, warmup)
    return {"images_per_second": batch_size / seconds, "ms_per_image": 1000 * seconds / batch_size,
            "ms_per_step": 1000 * seconds, "parameters": model.count_params()}


def bench_landmarks(config, steps: int, warmup: int) -> dict:
    model = build_model(config.model, config.data.image_size, resolve_precision(config.train.precision))
    detect = tf.function(lambda images: model.detect(images)["mean"])
    images = random_batch(config, config.train.batch_size)["pose"]
    seconds = timed(lambda: detect(images).numpy(), steps, warmup)
    return {"images_per_second": len(images) / seconds, "ms_per_image": 1000 * seconds / len(images)}


def bench_pipeline(config, steps: int, warmup: int) -> dict:
    batch_size = config.train.batch_size
    iterator = iter(training_batches(get_dataset(config.data), config, batch_size))
    seconds = timed(lambda: next(iterator)["pose"].numpy(), steps, warmup)
    return {"images_per_second": batch_size / seconds, "ms_per_image": 1000 * seconds / batch_size}


BENCHMARKS = {"train": bench_train, "landmarks": bench_landmarks, "pipeline": bench_pipeline}

# NVIDIA's released PyTorch code measured side by side with fgbg_tf in one run (issue 14): torch 2.13 CPU on 2
# threads, float32, fg/bg on, batch 16, 128 px, on 2 cores with AVX-512 and AMX. Only that setting is comparable.
RELEASE_FIGURES = {"train": ("images_per_second", 0.636), "landmarks": ("ms_per_image", 19.1)}
RELEASE_MACHINE = "2 cores, AVX-512 + AMX"


def release_comparison(what: str, config, result: dict) -> dict:
    """{"speedup_vs_release": ..., ...} for the release's own setting (release preset, full variant, 128 px, batch
    16), else {}: how many times faster than the released code's side-by-side figure (a ratio above 1 is faster)."""
    if what not in RELEASE_FIGURES or (config.model.preset, config.model.variant, config.data.image_size,
                                       config.train.batch_size) != ("release", "full", 128, 16):
        return {}
    key, release = RELEASE_FIGURES[what]
    ratio = result[key] / release if key == "images_per_second" else release / result[key]
    return {"speedup_vs_release": ratio, f"release_{key}": release, "release_measured_on": RELEASE_MACHINE}


def run_benchmark(what: str, config, steps: int, warmup: int) -> dict:
    """Runs one of BENCHMARKS; returns its figures with the run's settings and the peak memory, as printed."""
    result = BENCHMARKS[what](config, steps, warmup)
    if what == "train":
        # What a user plans a run with: `train.max_steps` / 100 of these, plus start-up and evaluation.
        result["seconds_per_100_steps"] = result["ms_per_step"] / 10
    result.update(release_comparison(what, config, result))
    return {
        "benchmark": what,
        "dataset": config.data.name,
        "image_size": config.data.image_size,
        "batch_size": config.train.batch_size,
        "preset": config.model.preset,
        "variant": config.model.variant,
        "precision": resolve_precision(config.train.precision),
        **{k: round(v, 3) if isinstance(v, float) else v for k, v in result.items()},
        "peak_memory_mib": round(peak_memory_mib(), 1),
    }
