"""Tests for fgbg_tf.data.skipped_frames: a run without readable frames stops."""

import numpy as np
import pytest

from fgbg_tf.data import DatasetError
from fgbg_tf.data.skipped_frames import SkippedFrames


def test_a_training_set_without_readable_frames_stops_the_run():
    def batch(indices, readable):
        return {"weight": np.full(len(indices), float(readable)), "index": np.array(indices),
                "source": np.array([f"frame{i}.jpg".encode() for i in indices])}

    nothing = SkippedFrames(epoch_size=100, first_batches=3)
    nothing.add(batch([0, 1], False))
    nothing.add(batch([2, 3], False))
    with pytest.raises(DatasetError, match=r"first 3 batches \(6 skipped, e.g. frame0.jpg"):
        nothing.add(batch([4, 5], False))
    # Readable frames early on, then a whole epoch without any: stopped when that epoch ends.
    later = SkippedFrames(epoch_size=4, first_batches=2)
    for indices, readable in (([0, 1], True), ([2, 3], False), ([4, 5], False), ([6, 7], False)):
        later.add(batch(indices, readable))
    with pytest.raises(DatasetError, match="epoch 1"):
        later.add(batch([8, 9], True))
    # A run shorter than first_batches is judged on all its steps, not let through to exit code 0.
    short = SkippedFrames(epoch_size=100, first_batches=10, steps=2)
    short.add(batch([0, 1], False))
    with pytest.raises(DatasetError, match="first 2 batches"):
        short.add(batch([2, 3], False))
