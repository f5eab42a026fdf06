"""Tests for fgbg_tf.evaluation.unannotated: the still-image report's TPS equivariance has the warp's direction."""

import numpy as np
import pytest
import tensorflow as tf

from fgbg_tf.config import DataConfig
from fgbg_tf.evaluation.unannotated import unannotated_image_report

SIZE = 48


class BlobDetector:
    """A model whose one landmark is the brightness-weighted centroid of the image's bright pixels: it follows any
    warp of a small blob exactly, so the report's TPS error must be near 0 and the warp's displacement not."""

    image_size = SIZE

    def detect(self, images):
        grey = tf.reduce_mean(images, axis=-1)  # [B, S, S]
        low, high = (f(grey, axis=[1, 2], keepdims=True) for f in (tf.reduce_min, tf.reduce_max))
        weight = tf.nn.relu(grey - (low + high) / 2)  # the blob's upper half, whatever the jitter's brightness
        grid = (tf.range(SIZE, dtype=tf.float32) * 2.0 / SIZE) - 1.0  # pixel j at -1 + 2j / S (to_pixels' inverse)
        total = tf.reduce_sum(weight, axis=[1, 2])
        x = tf.reduce_sum(weight * grid[None, None, :], axis=[1, 2]) / total
        y = tf.reduce_sum(weight * grid[None, :, None], axis=[1, 2]) / total
        return {"mean": tf.stack([x, y], axis=-1)[:, None, :]}  # [B, 1, 2], (x, y) as the model's

    def __call__(self, views, training=False):
        return {"reconstruction": views["appearance"], "mean": self.detect(views["pose"])["mean"]}


def blob_images(count):
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:SIZE, :SIZE]
    images = []
    for cx, cy in rng.uniform(14, 34, (count, 2)):
        blob = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * 1.5 ** 2))
        images.append(np.repeat((40 + 215 * blob)[..., None], 3, axis=-1).astype(np.uint8))
    return np.stack(images)


def test_tps_error_maps_the_warped_landmarks_back_through_the_warp():
    data = DataConfig(name="images", image_size=SIZE)
    data.color_jitter.hue = 0.0  # grey images: only brightness and contrast change, and the blob stays brightest
    report = unannotated_image_report(BlobDetector(), [f"{i}.png" for i in range(8)], blob_images(8), data)
    assert report["tps_displacement_px"] > 1.0  # the warp does move an image-ignoring constellation
    # Mapped the wrong way the error would be about twice the displacement; the right way it is what resampling leaves.
    assert report["landmark_tps_error_px"] < 0.25 * report["tps_displacement_px"]
    assert report["landmark_jitter_shift_px"] == pytest.approx(0.0, abs=0.2)
