"""Tests for fgbg_tf.evaluation.speed: what `python -m fgbg_tf.benchmark` adds to its measurements."""

import pytest

from fgbg_tf.config import load_config
from fgbg_tf.evaluation import speed


def _release_setting(*overrides):
    return load_config("synthetic", [], ["model.preset=release", "model.variant=full", "data.image_size=128",
                                         "train.batch_size=16", *overrides])


def test_ratio_to_the_released_code_only_in_its_own_setting():
    train = speed.release_comparison("train", _release_setting(), {"images_per_second": 3.816})
    assert train["speedup_vs_release"] == pytest.approx(6.0)  # 3.816 / 0.636
    landmarks = speed.release_comparison("landmarks", _release_setting(), {"ms_per_image": 6.366})
    assert landmarks["speedup_vs_release"] == pytest.approx(3.0, rel=1e-3)  # 19.1 / 6.366: fewer ms is faster
    assert landmarks["release_ms_per_image"] == 19.1
    for other in ("model.preset=small", "model.variant=baseline", "data.image_size=64", "train.batch_size=8"):
        assert speed.release_comparison("train", _release_setting(other), {"images_per_second": 3.8}) == {}
    assert speed.release_comparison("pipeline", _release_setting(), {"images_per_second": 500.0}) == {}


def test_train_figures_include_the_time_per_100_steps(monkeypatch):
    monkeypatch.setitem(speed.BENCHMARKS, "train", lambda config, steps, warmup: {"ms_per_step": 1234.0,
                                                                                "images_per_second": 3.0})
    figures = speed.run_benchmark("train", _release_setting(), steps=1, warmup=0)
    assert figures["seconds_per_100_steps"] == pytest.approx(123.4)
    assert figures["speedup_vs_release"] == pytest.approx(3.0 / 0.636, rel=1e-3)
