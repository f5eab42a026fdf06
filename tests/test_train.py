"""Tests for fgbg_tf.train: resume, the run folder's checks, failures before any work, the command line."""

import logging
import shutil

import numpy as np
import pytest
import tensorflow as tf

from fgbg_tf.config import ConfigError, load_config
from fgbg_tf.data import DatasetError
from fgbg_tf.train import main
from fgbg_tf.training.loop import prepare_output, train


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


def test_output_folder_of_a_different_model_or_data_stream_is_refused(tiny_config, tmp_path):
    prepare_output(tmp_path, tiny_config)
    tiny_config.model.num_landmarks = 6
    with pytest.raises(ConfigError, match="different model.*model.num_landmarks: 4 in the run, 6 now"):
        prepare_output(tmp_path, tiny_config)
    tiny_config.model.num_landmarks = 4
    # Another data stream: other videos, or another order, would not continue the run's checkpoint either.
    tiny_config.data.options = {**tiny_config.data.options, "train_videos": 3}
    tiny_config.train.seed = 5
    with pytest.raises(ConfigError, match=r"data.options: .*; train.seed: 0 in the run, 5 now"):
        prepare_output(tmp_path, tiny_config)
    tiny_config.data.options = {**tiny_config.data.options, "train_videos": 2}
    tiny_config.train.seed = 0
    # Training settings and the data's location may change between sessions of a run.
    tiny_config.train.max_steps = 10
    tiny_config.train.learning_rate = 1e-4
    tiny_config.data.data_dir = str(tmp_path / "moved")
    prepare_output(tmp_path, tiny_config)


def test_a_start_that_fails_on_its_data_leaves_no_config_behind(tmp_path):
    config = load_config("faces5pt", overrides=[f"data.data_dir={tmp_path / 'nowhere'}"])
    with pytest.raises(DatasetError):
        train(config, tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / "config.yaml").exists()  # the corrected command can use the same folder


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
