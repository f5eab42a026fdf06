"""Reading image files inside tf.data so that a bad file becomes an invalid element, never an error.

`tf.io.decode_jpeg` raises on truncated or corrupt data, and `tf.io.read_file` on
a file that vanished after indexing; either would end a training run. `map_or_invalid`
runs the decoding of each element in a one-element dataset whose errors are dropped
(`ignore_errors`) and falls back to a replacement element, so the stream keeps its
length and order whatever the files contain.

Example:
    frames = map_or_invalid(paths, lambda e: {**e, "image": tf.io.decode_jpeg(tf.io.read_file(e["path"]))},
                            lambda e: {**e, "image": tf.zeros([80, 80, 3], tf.uint8)})
"""

from __future__ import annotations

from typing import Callable

import tensorflow as tf


def resize_image(image, size: int):
    """Bilinear resize of uint8 [(B,) H, W, 3] to [(B,) size, size, 3], antialiased when shrinking (as PIL does)."""
    if image.shape[-3] == size and image.shape[-2] == size:
        return image
    resized = tf.image.resize(tf.cast(image, tf.float32), [size, size], method="bilinear", antialias=True)
    return tf.cast(tf.clip_by_value(tf.round(resized), 0.0, 255.0), tf.uint8)


def map_or_invalid(dataset: tf.data.Dataset, fn: Callable, fallback: Callable) -> tf.data.Dataset:
    """Maps dict elements with `fn`; where `fn` fails, the element becomes `fallback(element)`.

    Args:
        dataset: a dataset of dict elements.
        fn: element -> dict; may fail in-graph (bad file, failed assertion).
        fallback: element -> dict of the same structure and dtypes as `fn`'s; must not fail.

    Returns:
        A dataset of the same length and order as `dataset`, decoded in parallel.
    """

    def one(element):
        attempt = tf.data.Dataset.from_tensors(element).map(fn).ignore_errors()
        replacement = tf.data.Dataset.from_tensors(element).map(fallback)
        return attempt.concatenate(replacement).take(1)

    # One-element inner datasets: a deterministic interleave keeps the input order.
    return dataset.interleave(
        one, cycle_length=8, block_length=1, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
    )
