"""Tests for fgbg_tf.data.base helpers shared by the readers."""

import logging

from fgbg_tf.data.base import report_skipped


def test_every_item_left_out_at_index_time_is_named_in_a_file_the_warning_points_to(caplog):
    skipped = [(f"video{i}/frame{i}.jpg", "no annotation" if i % 2 else "unreadable") for i in range(12)]
    with caplog.at_level(logging.WARNING):
        path = report_skipped("bbc", skipped)
    assert path.read_text().splitlines() == [f"{s}\t{r}" for s, r in skipped]  # all 12, not the first 5
    assert "12 items" in caplog.text and str(path) in caplog.text
    # The same items indexed again (train, then evaluate, then export) reuse the file; other items get their own.
    assert report_skipped("bbc", skipped) == path
    assert report_skipped("bbc", skipped[:3]) != path
    assert report_skipped("bbc", []) is None


def test_a_data_dir_the_dataset_would_ignore_is_refused(tmp_path, capsys):
    from fgbg_tf.train import main

    # What a user trying their own images would type: before, this trained the synthetic dataset silently.
    assert main(["--data-dir", str(tmp_path), "--output", str(tmp_path / "run")]) == 2
    error = capsys.readouterr().err
    assert f"synthetic reads no folder, so data.data_dir (--data-dir) {tmp_path} would be ignored" in error
    assert not (tmp_path / "run").exists()


def test_dataset_options_fill_the_readers_defaults_under_what_a_run_set():
    from fgbg_tf.config import load_config
    from fgbg_tf.data import dataset_options

    # A run's config.yaml may hold only some options (one written before `--set data.options.KEY` merged into the
    # dataset YAML's, or by hand); predict and export still need the framing the frames were made square with.
    config = load_config(None, overrides=["data.name=videos", "data.options.cache_dir=/tmp/cache"])
    assert config.data.options == {"cache_dir": "/tmp/cache"}
    defaults = {"framing": "centre_crop", "test_videos": 0.2, "cache_dir": "/tmp/cache", "keypoints": None,
                "masks": None, "normalise_by": None}
    assert dataset_options(config.data) == defaults
    assert dataset_options(load_config("images", overrides=["data.options.framing=pad"]).data) == {
        "framing": "pad", "test_images": 0.2, "keypoints": None, "masks": None, "normalise_by": None}
    # A run's config.yaml from before the held-out split names no test_images: it trained on every image, and still does.
    old_run = load_config(None, overrides=["data.name=images", "data.options.framing=centre_crop"])
    assert dataset_options(old_run.data)["test_images"] == 0
