"""Tests for fgbg_tf.training.checkpoints: restoring past damaged checkpoints."""

import pytest
import tensorflow as tf

from fgbg_tf.training.checkpoints import CheckpointError, restore_newest


def test_restore_falls_back_past_damaged_checkpoints_and_sets_them_aside(tmp_path, caplog):
    value = tf.Variable(0.0)
    checkpoint = tf.train.Checkpoint(v=value)
    manager = tf.train.CheckpointManager(checkpoint, tmp_path, 5)
    for number in (2, 4, 6):
        value.assign(float(number))
        manager.save(checkpoint_number=number)
    (tmp_path / "checkpoint").write_text("garbage {")  # the state file: latest_checkpoint() now says None
    (tmp_path / "ckpt-6.data-00000-of-00001").write_bytes(b"xx")  # a truncated newest checkpoint
    value.assign(-1.0)
    assert restore_newest(checkpoint, tmp_path) == str(tmp_path / "ckpt-4")
    assert float(value.numpy()) == 4.0 and "ckpt-6 does not read" in caplog.text
    assert (tmp_path / "ckpt-6.unreadable.index").is_file() and not (tmp_path / "ckpt-6.index").exists()
    for part in tmp_path.glob("ckpt-[24].data*"):
        part.write_bytes(b"")
    with pytest.raises(CheckpointError, match="no checkpoint .* reads.*Nothing was overwritten"):
        restore_newest(checkpoint, tmp_path)
    assert restore_newest(checkpoint, tmp_path / "empty") is None
