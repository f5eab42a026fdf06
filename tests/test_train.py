"""Tests for fgbg_tf.train and training/loop: resume, interrupts, NaN losses, failed saves, the run folder's checks,
failures before any work, the command line."""

import logging
import os
import shutil
import signal
import threading

import numpy as np
import pytest
import tensorflow as tf

from fgbg_tf.config import ConfigError, load_config
from fgbg_tf.data import DatasetError
from fgbg_tf.train import main
from fgbg_tf.training.loop import prepare_output, train
from tests.conftest import TINY_OVERRIDES


def test_resume_continues_with_identical_losses(tiny_config, tmp_path, caplog):
    tiny_config.train.max_steps = 4
    tiny_config.train.checkpoint_every = 2
    tiny_config.train.image_every = 1000  # pictures are not what is compared; the fg/bg probe still runs every step
    with caplog.at_level(logging.INFO, logger="fgbg_tf.train"):
        straight = [h["loss"] for h in train(tiny_config, tmp_path / "straight", progress=False)]
    # Without a progress bar, a plain line per log step (train.log_every is 1 here) with that step's loss.
    assert f"step 4/4: loss {straight[3]:.4f}" in caplog.text
    assert list((tmp_path / "straight" / "logs").glob("events.out.tfevents.*"))
    # Resume a copy of the straight run's step-2 checkpoint: steps 3 and 4 must repeat its losses. A resume that
    # lost Adam's moments, the step counter or the data position would change step 4 by percents, not 1e-6.
    resumed = tmp_path / "resumed" / "checkpoints"
    resumed.mkdir(parents=True)
    shutil.copy(tmp_path / "straight" / "config.yaml", tmp_path / "resumed")
    for part in (tmp_path / "straight" / "checkpoints").glob("ckpt-2.*"):
        shutil.copy(part, resumed)
    tf.compat.v1.train.update_checkpoint_state(str(resumed), str(resumed / "ckpt-2"))
    continued = [h["loss"] for h in train(tiny_config, tmp_path / "resumed", progress=False)]
    np.testing.assert_allclose(continued, straight[2:], rtol=1e-4)
    assert (resumed / "ckpt-4.index").exists()
    # Run again, a finished run trains nothing and says so.
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="fgbg_tf.train"):
        assert train(tiny_config, tmp_path / "resumed", progress=False) == []
    assert "is complete: step 4 of train.max_steps 4" in caplog.text


def test_a_resumed_run_trains_at_its_new_learning_rate(tiny_config, tmp_path):
    # The optimizer's rate is one of the checkpoint's variables; a resume with another train.learning_rate (the
    # config allows it) must train at the new rate, not at the one restored with Adam's moments.
    tiny_config.train.max_steps = 2
    tiny_config.train.image_every = 1000
    first = train(tiny_config, tmp_path, progress=False)
    assert [h["optimizer/learning_rate"] for h in first] == pytest.approx([tiny_config.train.learning_rate] * 2)
    tiny_config.train.max_steps = 3
    tiny_config.train.learning_rate /= 10
    (resumed,) = train(tiny_config, tmp_path, progress=False)
    assert resumed["optimizer/learning_rate"] == pytest.approx(tiny_config.train.learning_rate)


def test_output_folder_of_a_different_model_or_data_stream_is_refused(tiny_config, tmp_path):
    prepare_output(tmp_path, tiny_config)
    tiny_config.model.num_landmarks = 6
    with pytest.raises(ConfigError, match="different model.*model.num_landmarks: 4 in the run, 6 now"):
        prepare_output(tmp_path, tiny_config)
    tiny_config.model.num_landmarks = 4
    # Another data stream: other videos, or another order, would not continue the run's checkpoint either.
    tiny_config.data.options = {**tiny_config.data.options, "train_videos": 3}
    tiny_config.train.seed = 5
    with pytest.raises(ConfigError, match=r"data.options.train_videos: 2 in the run, 3 now; train.seed: 0 in the run"):
        prepare_output(tmp_path, tiny_config)
    tiny_config.data.options = {**tiny_config.data.options, "train_videos": 2}
    tiny_config.train.seed = 0
    # Training settings and the data's location may change between sessions of a run.
    tiny_config.train.max_steps = 10
    tiny_config.train.learning_rate = 1e-4
    tiny_config.data.data_dir = str(tmp_path / "moved")
    prepare_output(tmp_path, tiny_config)


def test_a_run_resumes_with_another_benchmark_protocol_or_fit_policy(tiny_config, tmp_path):
    # data.options.protocol only says how `evaluate` builds and scores the benchmark splits, never what trains; so
    # does faces5pt's misaligned_annotations (which training crops the regressor is fitted on).
    prepare_output(tmp_path, tiny_config)
    tiny_config.data.options = {**tiny_config.data.options, "protocol": "ours", "misaligned_annotations": "keep"}
    prepare_output(tmp_path, tiny_config)


def test_a_start_that_fails_on_its_data_leaves_no_config_behind(tmp_path):
    config = load_config("faces5pt", overrides=[f"data.data_dir={tmp_path / 'nowhere'}"])
    with pytest.raises(DatasetError):
        train(config, tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / "config.yaml").exists()  # the corrected command can use the same folder


def test_a_decay_that_ends_before_max_steps_is_refused_before_any_work(tmp_path):
    overrides = TINY_OVERRIDES + ["train.max_steps=600", "train.learning_rate_decay=[100,200]"]
    config = load_config("synthetic", overrides=overrides)  # a valid config: saved runs with it stay loadable
    with pytest.raises(ConfigError, match=r"train.learning_rate_decay ends at step 200, before train.max_steps 600"):
        train(config, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_views_the_dataset_cannot_give_are_refused_before_any_work(tmp_path):
    from tests.data.fixtures_images import make_faces5pt

    make_faces5pt(tmp_path / "faces", num_train=4, num_test=2)
    config = load_config("faces5pt", overrides=[f"data.data_dir={tmp_path / 'faces'}", "data.pose_perturbation=temporal"])
    with pytest.raises(ConfigError, match="data.pose_perturbation: dataset 'faces5pt' has no videos"):
        train(config, tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / "config.yaml").exists()


def test_cli_reports_config_errors_and_unavailable_data(tmp_path, capsys):
    assert main(["--set", "model.num_landmark=3", "--output", str(tmp_path)]) == 2
    assert "unknown config key 'model.num_landmark'" in capsys.readouterr().err
    assert main(["--dataset", "faces5pt", "--data-dir", str(tmp_path / "nowhere"), "--output", str(tmp_path)]) == 2
    assert "nowhere" in capsys.readouterr().err


def _logged_steps(run) -> set:
    """The steps whose loss the run's TensorBoard files hold."""
    return {event.step for path in (run / "logs").glob("events.out.tfevents.*")
            for event in tf.compat.v1.train.summary_iterator(str(path))
            if any(value.tag == "loss/loss" for value in event.summary.value)}


def _at_step(make_train_step, number, hook):
    """A `make_train_step` whose step calls `hook(model, results)` right after update `number` and returns what the
    hook returns (the step's results otherwise)."""

    def make(model, *args):
        real, step = make_train_step(model, *args), args[-1]

        def train_step(batch):
            results = real(batch)
            return hook(model, results) if int(step.numpy()) == number else results

        return train_step

    return make


def _checkpoint_counts(folder) -> dict:
    """{checkpoint number: (step counter, optimizer iterations)} of every checkpoint in `folder`."""
    counts = {}
    for index in folder.glob("ckpt-*.index"):
        reader = tf.train.load_checkpoint(str(index.with_suffix("")))
        counts[int(index.stem.split("-")[1])] = tuple(
            int(reader.get_tensor(f"{key}/.ATTRIBUTES/VARIABLE_VALUE")) for key in ("step", "optimizer/iteration"))
    return counts


def test_interrupts_nan_losses_and_failed_saves_keep_a_consistent_last_checkpoint(tiny_config, tmp_path,
                                                                                 monkeypatch):
    from fgbg_tf.training import loop

    tiny_config.train.max_steps = 6
    tiny_config.train.checkpoint_every = 2
    tiny_config.train.image_every = 1000
    tiny_config.model.variant = "baseline"  # what is saved when does not depend on the variant; it traces 2x faster
    run, checkpoints = tmp_path / "run", tmp_path / "run" / "checkpoints"

    # Ctrl-C (or SIGTERM) in the middle of step 3: the step is finished (updated, logged) and the run stops after
    # it, so its last checkpoint and its logs end at the same step; the checkpoint holds exactly 3 updates, so a
    # resume neither repeats nor skips one.
    def interrupt(model, results):
        os.kill(os.getpid(), signal.SIGINT)
        return results

    monkeypatch.setattr(loop, "make_train_step", _at_step(loop.make_train_step, 3, interrupt))
    # Python's own SIGINT handler, whatever this process inherited: a suite started in the background by a
    # non-interactive shell (nohup ... &) inherits SIGINT ignored, which the loop rightly leaves alone.
    inherited = signal.signal(signal.SIGINT, signal.default_int_handler)
    handler = signal.getsignal(signal.SIGINT)
    assert threading.current_thread() is threading.main_thread()  # only the main thread can install handlers
    try:
        with pytest.raises(KeyboardInterrupt):
            train(tiny_config, run, progress=False)
        assert signal.getsignal(signal.SIGINT) is handler  # the loop's handler is gone again
    finally:
        signal.signal(signal.SIGINT, inherited)
    assert _checkpoint_counts(checkpoints) == {2: (2, 2), 3: (3, 3)}
    assert max(_logged_steps(run)) == 3
    monkeypatch.undo()

    # A non-finite loss at step 5 (its update poisons the weights too) stops the run, names the step and saves
    # nothing after step 4.
    def poison(model, results):
        weights = model.trainable_variables[0]
        weights.assign(tf.fill(weights.shape, float("nan")))
        return {**results, "loss": tf.constant(float("nan"))}

    monkeypatch.setattr(loop, "make_train_step", _at_step(loop.make_train_step, 5, poison))
    with pytest.raises(FloatingPointError, match="loss is nan at step 5; nothing was saved after it"):
        train(tiny_config, run, progress=False)
    counts = _checkpoint_counts(checkpoints)
    assert max(counts) == 4 and all(number == step == updates for number, (step, updates) in counts.items())
    reader = tf.train.load_checkpoint(str(checkpoints / "ckpt-4"))
    assert all(np.all(np.isfinite(reader.get_tensor(key))) for key, dtype in
               reader.get_variable_to_dtype_map().items() if dtype.is_floating)
    monkeypatch.undo()

    # A save that fails (here: the disk is full at step 6) is one clear error, tried once, and leaves no partial
    # files; the checkpoints before it stay.
    attempts = []

    def disk_full(self, checkpoint_number=None, **kwargs):
        attempts.append(checkpoint_number)
        (checkpoints / f"ckpt-{checkpoint_number}_temp").mkdir()
        (checkpoints / f"ckpt-{checkpoint_number}.data-00000-of-00001").write_bytes(b"partial")
        raise tf.errors.ResourceExhaustedError(None, None, "No space left on device")

    monkeypatch.setattr(tf.train.CheckpointManager, "save", disk_full)
    with pytest.raises(loop.CheckpointError, match="could not save step 6 .*No space left on device"):
        train(tiny_config, run, progress=False)
    assert attempts == [6]
    assert not list(checkpoints.glob("ckpt-6*"))
    assert _checkpoint_counts(checkpoints)[4] == (4, 4)


def test_an_unwritable_run_folder_fails_before_any_work(tiny_config, tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "checkpoints").write_text("a file where the checkpoints folder goes")
    with pytest.raises(ConfigError, match=r"run/checkpoints is not a folder this run can write"):
        train(tiny_config, tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / "config.yaml").exists()


def test_sigterm_stops_the_command_like_ctrl_c(tmp_path, monkeypatch, capsys):
    import time

    from fgbg_tf.training import loop

    def killed(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)  # what timeout, Docker, Kubernetes and Slurm send
        time.sleep(5)
        raise AssertionError("SIGTERM did not stop the run")

    monkeypatch.setattr(loop, "train", killed)
    handlers = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}

    def not_installed(number, frame):
        raise AssertionError("main left SIGTERM to its default (the process would die without saving)")

    signal.signal(signal.SIGTERM, not_installed)
    try:
        # In a real run the loop's finally block saves first; the command then says how to resume, no traceback.
        assert main(["--output", str(tmp_path / "run")]) == 130
        assert f"interrupted: the same command resumes from the newest checkpoint in {tmp_path / 'run'}" in (
            capsys.readouterr().err)
    finally:
        for number, handler in handlers.items():
            signal.signal(number, handler)
