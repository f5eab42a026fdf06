"""`python -m fgbg_tf.video_prediction`: train, evaluate and predict on the tiny synthetic run."""

import json
import runpy

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



@pytest.fixture(scope="module")
def exported(trained, tmp_path_factory):
    """The tiny run's video predictor, exported one frame past the run's horizon (4) to exercise --horizon."""
    output = tmp_path_factory.mktemp("video_export")
    assert video_prediction.main(["export", "--run", str(trained), "--output", str(output), "--horizon", "5"]) == 0
    return output


@pytest.fixture(scope="module")
def loaded(trained):
    """`_load_run` of the tiny run: (settings, landmark model, LSTM, normaliser, test clips, their states)."""
    from fgbg_tf.dynamics.pipeline import _load_run

    return _load_run(trained)


def test_the_exported_signature_equals_the_in_process_rollout(loaded, exported):
    import tensorflow as tf

    from fgbg_tf.dynamics.evaluation import evaluate_rollouts, predict_states
    from fgbg_tf.dynamics.state import decode_state

    settings, model, dynamics, normaliser, clips, states = loaded
    report = json.loads((exported / "export_report.json").read_text())
    assert {k: report[k] for k in ("seed_frames", "horizon", "image_size", "num_landmarks", "variant")} == \
        {"seed_frames": 3, "horizon": 5, "image_size": 32, "num_landmarks": 4, "variant": "full"}
    assert report["landmark_checkpoint"] == settings["landmark_checkpoint"]
    assert report["saved_model"]["checked_windows"] == 2 and report["saved_model"]["max_frame_deviation"] <= 1
    # The first scored window as `evaluate` and `predict` roll it out (appearance from the last seed), and the next.
    _, strips = evaluate_rollouts(model, dynamics, normaliser, clips, states, settings["config"], max_windows=1)
    seed_frames = np.stack([strips[0]["seed"], clips[0][1][3:6]])
    predict = tf.saved_model.load(str(exported / "saved_model")).signatures["predict_video"]
    outputs = {k: v.numpy() for k, v in predict(seed_frames=tf.constant(seed_frames)).items()}
    assert outputs["frames"].shape == (2, 5, 32, 32, 3) and outputs["frames"].dtype == np.uint8
    assert outputs["covariances"].shape == (2, 5, 4, 2, 2)
    means = decode_state(predict_states(dynamics, normaliser, np.stack([states[0][0:3], states[0][3:6]]), 5))[0]
    np.testing.assert_allclose(outputs["means"], means, atol=1e-4)
    np.testing.assert_allclose(outputs["means_pixels"], (means + 1) * 16, atol=2e-3)
    # The rollout is causal: the first 4 of the 5 frames are those of the run's own 4-frame horizon.
    assert np.abs(outputs["frames"][0, :4].astype(int) - strips[0]["predicted"]).max() <= 1


def test_an_export_that_does_not_reproduce_the_pipeline_fails():
    from fgbg_tf.serving.video_module import deviation_from_pipeline

    reference = {"means": np.zeros((1, 2, 4, 2), np.float32), "frames": np.full((1, 2, 8, 8, 3), 100, np.uint8)}
    close = {"means": reference["means"] + 5e-5, "frames": reference["frames"] + 1}
    assert deviation_from_pipeline(close, reference, 32, "close")["max_frame_deviation"] == 1
    for name, far in [("means", {**close, "means": reference["means"] + 1e-3}),
                      ("frames", {**close, "frames": reference["frames"] - 2}),
                      ("nan", {**close, "means": reference["means"] * np.nan})]:
        with pytest.raises(RuntimeError, match=f"{name} does not reproduce the Python pipeline"):
            deviation_from_pipeline(far, reference, 32, name)


def test_the_consumer_predicts_from_a_folder_and_a_video_without_fgbg_tf(loaded, exported, tmp_path):
    import tensorflow as tf

    from fgbg_tf.data.media import VideoWriter, read_image, write_image
    from tests.test_consumers import EXPORT, printed, run_consumer

    seed_frames = loaded[4][0][1][:3]
    for i, frame in enumerate(seed_frames):
        write_image(tmp_path / "seeds" / f"frame_{i}.png", frame)
    saved = exported / "saved_model"
    result = run_consumer("consume_saved_model.py", saved, tmp_path / "seeds", "--output", tmp_path / "folder")
    assert result.returncode == 0, result.stderr
    assert "imported: tensorflow" in result.stdout and "wrote 5 predicted frames" in result.stdout
    expected = tf.saved_model.load(str(saved)).signatures["predict_video"](seed_frames=tf.constant(seed_frames[None]))
    written = sorted((tmp_path / "folder").iterdir())
    assert [p.name for p in written] == [f"predicted_{t:03d}.png" for t in range(5)]
    np.testing.assert_array_equal(np.stack([read_image(p) for p in written]), expected["frames"].numpy()[0])
    np.testing.assert_allclose(printed(result.stdout, "landmark"), expected["means_pixels"].numpy()[0].reshape(-1, 2),
                               atol=1e-3)

    # A video of another size, read through --resize; its frames' own pixels are the landmarks' unit.
    with VideoWriter(tmp_path / "clip", 5.0, (40, 48)) as video:
        for frame in np.repeat(np.repeat(loaded[4][0][1], 3, axis=1), 3, axis=2)[:, :48, :40]:
            video.write(frame)
    result = run_consumer("consume_saved_model.py", saved, video.path, "--output", tmp_path / "video", "--resize")
    assert result.returncode == 0, result.stderr
    assert len(list((tmp_path / "video").glob("predicted_*.png"))) == 5
    points = printed(result.stdout, "landmark")
    assert points.shape == (5 * 4, 2) and np.all((points > -1) & (points < [40, 48]))
    # Without --resize the frame is refused (checked in this process: a third subprocess would cost seconds).
    consumer = runpy.run_path(str(EXPORT / "consume_saved_model.py"))
    with pytest.raises(consumer["InputError"], match="clip frame 0 is 40x48; the model takes 32x32"):
        consumer["model_input"](np.zeros((48, 40, 3), np.uint8), "clip frame 0", 32, resize=False)
