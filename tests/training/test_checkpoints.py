"""Tests for fgbg_tf.training.checkpoints: variables keyed by their place, mismatches, damaged checkpoints."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from fgbg_tf.training.checkpoints import CheckpointError, CheckpointMismatch, RunState, restore_newest, variable_paths


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

    def restore(prefix):
        checkpoint.restore(prefix).assert_consumed()

    assert restore_newest(restore, tmp_path) == str(tmp_path / "ckpt-4")
    assert float(value.numpy()) == 4.0 and "ckpt-6 does not read" in caplog.text
    assert (tmp_path / "ckpt-6.unreadable.index").is_file() and not (tmp_path / "ckpt-6.index").exists()
    for part in tmp_path.glob("ckpt-[24].data*"):
        part.write_bytes(b"")
    with pytest.raises(CheckpointError, match="no checkpoint .* reads.*Nothing was overwritten"):
        restore_newest(restore, tmp_path)
    assert restore_newest(restore, tmp_path / "empty") is None


class _Pair(keras.layers.Layer):
    """Two same-shaped layers, `first` and `second`; `reverse` assigns them the other way round, which reverses
    their order in `layer.variables` (what fgbg_tf 0.1 keyed checkpoints by)."""

    def __init__(self, reverse=False, extra=False, **kwargs):
        super().__init__(**kwargs)
        if reverse:
            self.second, self.first = keras.layers.Dense(3), keras.layers.Dense(3)
        else:
            self.first, self.second = keras.layers.Dense(3), keras.layers.Dense(3)
        self.blocks = [[keras.layers.Dense(3)]] + ([[keras.layers.Dense(3)]] if extra else [])

    def build(self, shape):
        self.first.build(shape)
        self.second.build(shape)
        for (block,) in self.blocks:
            block.build((None, 3))

    def call(self, x):
        return self.blocks[0][0](self.first(x) + self.second(x))


def _pair(**kwargs):
    layer = _Pair(**kwargs)
    layer.build((None, 3))
    return layer


def test_variables_are_keyed_by_their_place_not_their_creation_order(tmp_path):
    saved = _pair()
    assert sorted(variable_paths(saved)) == ["blocks/0/0/bias", "blocks/0/0/kernel", "first/bias", "first/kernel",
                                            "second/bias", "second/kernel"]
    for i, variable in enumerate(saved.variables):
        variable.assign(np.full(variable.shape, float(i + 1)))
    prefix = tf.train.CheckpointManager(RunState(saved).checkpoint, tmp_path, 1).save(checkpoint_number=1)
    # The same layers in the other order: keyed by their order, `first` would get `second`'s weights.
    reordered = _pair(reverse=True)
    assert [v.shape for v in reordered.variables] == [v.shape for v in saved.variables]
    assert reordered.variables[0] is reordered.second.kernel and saved.variables[0] is saved.first.kernel
    RunState(reordered).restore(prefix)
    for name in ("first", "second"):
        np.testing.assert_array_equal(getattr(reordered, name).kernel.numpy(), getattr(saved, name).kernel.numpy())
    # A model with a layer more is refused, naming what the checkpoint lacks.
    with pytest.raises(CheckpointMismatch, match="has no model/blocks/1/0/kernel"):
        RunState(_pair(extra=True)).restore(prefix)
    # A different shape is named with both shapes.
    narrow = _Pair()
    narrow.first = keras.layers.Dense(2)
    narrow.build((None, 3))
    with pytest.raises(CheckpointMismatch, match=r"model/first/kernel has shape \(3, 3\) there and \(3, 2\)"):
        RunState(narrow).restore(prefix)


def test_a_checkpoint_of_another_model_stops_the_search_at_once(tmp_path):
    saved = _pair()
    manager = tf.train.CheckpointManager(RunState(saved).checkpoint, tmp_path, 3)
    manager.save(checkpoint_number=1)
    manager.save(checkpoint_number=2)
    with pytest.raises(CheckpointMismatch, match="ckpt-2 has no model/blocks/1/0/kernel"):
        restore_newest(RunState(_pair(extra=True)).restore, tmp_path)
    assert (tmp_path / "ckpt-2.index").is_file()  # not set aside: it reads, it belongs to another model


@pytest.mark.parametrize("spectral_norm", ["release", "keras"])
def test_every_variable_of_the_model_has_one_place(spectral_norm):
    from fgbg_tf.model.factorized import FactorizedLandmarkModel

    model = FactorizedLandmarkModel(4, 32, preset="small", spectral_norm=spectral_norm)
    model.build_all()
    paths = variable_paths(model)
    assert len(paths) == len(model.variables) and {id(v) for v in paths.values()} == {id(v) for v in model.variables}
    assert "pose_encoder/stem/0/conv/kernel" in paths


def test_checkpoints_of_version_0_1_keyed_by_order_still_restore(tmp_path):
    saved = _pair()
    for i, variable in enumerate(saved.variables):
        variable.assign(np.full(variable.shape, float(i + 1)))
    step = tf.Variable(7, dtype=tf.int64)
    by_order = {f"v{i:04d}": v.value for i, v in enumerate(saved.variables)}  # what fgbg_tf 0.1 wrote
    old = tf.train.Checkpoint(model=tf.train.Checkpoint(**by_order), step=step)
    prefix = tf.train.CheckpointManager(old, tmp_path, 1).save(checkpoint_number=7)
    again, restored_step = _pair(), tf.Variable(0, dtype=tf.int64)
    RunState(again, step=restored_step).restore(prefix)
    assert int(restored_step.numpy()) == 7
    for a, b in zip(again.variables, saved.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_a_run_folder_loads_its_newest_checkpoint_that_reads_and_renames_nothing(tiny_run, tmp_path, caplog):
    import shutil

    from fgbg_tf.config import ConfigError
    from fgbg_tf.training.checkpoints import load_trained_model

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    model, _, step = load_trained_model(run)
    assert step == 2
    # An older checkpoint with other weights, then the crash: a damaged state file and a truncated newest checkpoint.
    moved = model.variables[0].numpy() + 1.0
    model.variables[0].assign(moved)
    older = RunState(model, step=tf.Variable(1, dtype=tf.int64)).checkpoint
    tf.train.CheckpointManager(older, run / "checkpoints", 5).save(checkpoint_number=1)
    (run / "checkpoints" / "checkpoint").write_text("garbage {")
    for part in (run / "checkpoints").glob("ckpt-2.data*"):
        part.write_bytes(b"xx")
    files = sorted(p.name for p in (run / "checkpoints").iterdir())
    again, _, step = load_trained_model(run)
    assert step == 1 and "ckpt-2 does not read" in caplog.text
    np.testing.assert_array_equal(again.variables[0].numpy(), moved)
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == files  # evaluate and export only read
    (run / "config.yaml").write_text("model: [")
    with pytest.raises(ConfigError, match=r"(?s)run/config.yaml is not a readable fgbg_tf config \(.*retrain"):
        load_trained_model(run)
