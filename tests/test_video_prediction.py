"""`python -m fgbg_tf.video_prediction`: train, evaluate and predict on the tiny synthetic run."""

import json

import numpy as np
import pytest

from fgbg_tf import video_prediction
from tests.data.test_train_on_fixtures import bair, kth

# The tiny run's videos have 8 frames: 3 seeds -> 4 predicted, training windows of 3 + 2.
DYNAMICS = ["dynamics.seed_frames=3", "dynamics.predicted_frames=4", "dynamics.train_input=3",
            "dynamics.train_future=2", "dynamics.hidden=8", "dynamics.layers=1", "dynamics.batch_size=4",
            "dynamics.max_steps=4", "dynamics.log_every=2"]


def _train(tiny_run, output, *extra):
    args = ["train", "--checkpoint", str(tiny_run), "--output", str(output), "--no-progress"]
    return video_prediction.main(args + [a for s in [*DYNAMICS, *extra] for a in ("--set", s)])


@pytest.fixture(scope="module")
def trained(tiny_run, tmp_path_factory):
    output = tmp_path_factory.mktemp("video_prediction") / "run"
    assert _train(tiny_run, output) == 0
    return output


def test_train_records_its_settings_and_resumes_only_with_them(trained, tiny_run, capsys):
    settings = (trained / "video_prediction.yaml").read_text()
    assert "seed_frames: 3" in settings and "ckpt-2" in settings
    assert sorted(p.name for p in (trained / "checkpoints").glob("ckpt-*.index")) == ["ckpt-2.index", "ckpt-4.index"]
    assert _train(tiny_run, trained) == 0  # the same settings: already done, nothing changes
    assert _train(tiny_run, trained, "dynamics.hidden=16") == 2
    assert "dynamics differ" in capsys.readouterr().err
    assert _train(tiny_run, trained, "model.num_landmarks=3") == 2
    assert "only dynamics.* keys" in capsys.readouterr().err


def test_evaluate_scores_the_rollouts_against_both_anchors(trained, tmp_path):
    assert video_prediction.main(["evaluate", "--run", str(trained), "--output", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "report.json").read_text())
    # One test video of 8 frames holds one window of 3 + 4.
    assert report["windows"] == 1 and report["predicted_frames"] == 4 and report["lpips"] == "LPIPS: no weights"
    for method in ("predicted", "copy_last_frame", "true_landmarks"):
        scores = report["frames"][method]
        assert len(scores["psnr"]["curve"]) == 4 and 0 < scores["ssim"]["mean"] <= 1
        assert scores["lpips"] is None
    landmarks = report["landmarks"]
    assert len(landmarks["predicted"]["curve"]) == 4 and np.isfinite(landmarks["hold_last"]["mean"])
    for name in ("report.txt", "figure4.png", "figure5.png"):
        assert (tmp_path / name).stat().st_size > 0


def test_predict_writes_a_strip_and_a_video_per_clip(trained, tmp_path):
    assert video_prediction.main(["predict", "--run", str(trained), "--output", str(tmp_path), "--num-clips", "1"]) == 0
    files = sorted(tmp_path.iterdir())
    assert sorted(p.stem for p in files) == ["synthetic_test_0_from_0"] * 2
    assert {p.suffix for p in files} - {".png"} <= {".mp4", ".avi"} and any(p.suffix == ".png" for p in files)


def test_a_folder_that_is_not_a_run_is_a_clear_error(tmp_path, capsys):
    assert video_prediction.main(["evaluate", "--run", str(tmp_path)]) == 2
    assert "video_prediction.yaml is missing" in capsys.readouterr().err


@pytest.mark.parametrize("make", [kth, bair], ids=lambda f: f.__name__)
def test_kth_and_bair_run_end_to_end_from_their_distributed_files(make, tiny_run, tmp_path, monkeypatch):
    # The tiny synthetic landmark model reads the other dataset's clips at its own 32 px (evaluate's rule for
    # --dataset); the protocols' 64 x 64 scoring resizes its frames up.
    root = tmp_path / "data"
    root.mkdir()
    data_dir, _ = make(root, monkeypatch)
    output = tmp_path / "run"
    args = ["train", "--checkpoint", str(tiny_run), "--output", str(output), "--no-progress",
            "--dataset", make.__name__, "--data-dir", str(data_dir)]
    assert video_prediction.main(args + [a for s in DYNAMICS for a in ("--set", s)]) == 0
    assert video_prediction.main(["evaluate", "--run", str(output)]) == 0
    report = json.loads((output / "eval" / "report.json").read_text())
    assert report["dataset"] == make.__name__ and report["windows"] >= 1
    assert report["scored_at"] == ("64 x 64, grey" if make is kth else "32 x 32, RGB")
