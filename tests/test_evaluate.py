"""The evaluation command end to end on a tiny trained run, and its pieces on stubs."""

import hashlib
import json
import shutil

import numpy as np
import pytest
import tensorflow as tf

from fgbg_tf.config import DataConfig
from fgbg_tf.data import DatasetError
from fgbg_tf.evaluate import main
from fgbg_tf.evaluation.runner import choose_protocol, evaluate_checkpoint, run_split
from fgbg_tf.evaluation.regression import load_regressor
from tests.data.fixtures_video import write_bbc

@pytest.fixture
def run_dir(tiny_run, tmp_path):
    # A private copy: these tests check that evaluation leaves the checkpoint's bytes alone.
    copy = tmp_path / "run"
    shutil.copytree(tiny_run, copy)
    return copy


def _digest(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted((folder / "checkpoints").iterdir())}


def test_cli_writes_report_regressor_and_pictures_without_touching_the_checkpoint(run_dir, tmp_path, capsys):
    before = _digest(run_dir)
    out = tmp_path / "eval"
    assert main(["--checkpoint", str(run_dir), "--output", str(out), "--log-dir", str(tmp_path / "logs"),
                 "--num-images", "3"]) == 0
    assert _digest(run_dir) == before
    report = json.loads((out / "report.json").read_text())
    assert report["dataset"] == "synthetic" and report["step"] == 2 and report["origin"] == "centre"
    assert report["splits"]["fit"]["frames"] == 16 and report["splits"]["report"]["frames"] == 8
    for origin in ("centre", "top_left"):
        values = report["results"][origin]
        assert 0 <= values["accuracy_pct"] <= 100 and values["error_by_image_size_pct"] > 0
        assert values["accuracy_threshold_px"] == 1.5  # 6 px at 128 scaled to 32
    containment = report["containment"]
    assert sorted(containment["landmarks_sorted"]) == [0, 1, 2, 3]
    assert containment["percent_sorted"] == sorted(containment["percent_sorted"])
    assert 0 <= containment["percent_sorted"][0] and containment["percent_sorted"][-1] <= 100
    regressor = load_regressor(out / "regressor.json")
    assert regressor.origin == "centre" and regressor.coefficients.shape == (8, 28)
    assert (out / "figure3.png").is_file() and (out / "containment.png").is_file()
    assert "accuracy_pct" in (out / "report.txt").read_text() and "centre *" in capsys.readouterr().out
    assert list((tmp_path / "logs").iterdir())


def test_evaluation_reads_the_trained_weights_reproducibly(run_dir, tmp_path):
    # Two loads of one checkpoint must score identically; weights the checkpoint failed
    # to restore would be freshly (randomly) initialised each time and differ.
    first = evaluate_checkpoint(run_dir, output=tmp_path / "a", num_images=0)
    second = evaluate_checkpoint(run_dir, output=tmp_path / "b", num_images=0)
    assert first["results"] == second["results"]
    assert first["containment"]["percent_sorted"] == second["containment"]["percent_sorted"]


def test_datasets_without_keypoints_fail_clearly(run_dir, tmp_path):
    with pytest.raises(DatasetError, match="no keypoint annotations"):
        evaluate_checkpoint(run_dir, dataset="kth", output=tmp_path)


class _StubDataset:
    name = "stub"
    partial_keypoints = False  # as LandmarkDataset's default

    def eval_split(self, split):
        keypoints = np.zeros((5, 1, 2), np.float32)
        keypoints[3] = np.nan
        return tf.data.Dataset.from_tensor_slices({
            "image": np.broadcast_to(np.arange(5, dtype=np.uint8)[:, None, None, None], (5, 4, 4, 3)).copy(),
            "keypoints": keypoints,
            "mask": np.ones((5, 4, 4), np.uint8),
            "valid": np.array([True, False, True, True, True]),
            "source": np.array([f"f{i}" for i in range(5)]),
        })


def test_run_split_drops_and_reports_invalid_frames():
    def detect(images):
        n = tf.shape(images)[0]
        return tf.zeros([n, 2, 2]), tf.fill([n, 2, 2, 2], 0.25)

    result = run_split(detect, _StubDataset(), "test", batch_size=2, with_masks=True, sample_size=2)
    assert result.dropped == [("f1", "unreadable"), ("f3", "keypoints not finite")]
    assert len(result.keypoints) == 3 and result.foreground_fraction == 1.0
    # Samples are spread over the split with stride 5 // 2 = 2: frames 0 and 2.
    assert result.sample["image"][:, 0, 0, 0].tolist() == [0, 2]
    np.testing.assert_allclose(result.containment, 1.0)  # an all-foreground mask contains everything


def test_run_split_maps_the_transform_over_the_frames_before_detection():
    def detect(images):  # each frame's landmark at (its first pixel value, 0)
        value = tf.cast(images[:, 0, 0, 0], tf.float32)
        return tf.stack([value, tf.zeros_like(value)], -1)[:, None], tf.zeros([tf.shape(images)[0], 2, 2, 1])

    def brighten(frame):
        return {**frame, "image": frame["image"] + 10}

    result = run_split(detect, _StubDataset(), "test", batch_size=2, transform=brighten)
    assert result.means_pixels[:, 0, 0].tolist() == [10.0, 12.0, 14.0]  # frames 0, 2, 4 (1 and 3 dropped)


def test_untrained_baseline_is_the_runs_initial_model(run_dir, tmp_path):
    import keras

    from fgbg_tf.training.checkpoints import load_trained_model
    from fgbg_tf.model.factorized import build_model

    initial, config, step = load_trained_model(run_dir, initial=True)
    keras.utils.set_random_seed(config.train.seed)
    again = build_model(config.model, config.data.image_size)
    trained, _, _ = load_trained_model(run_dir)
    assert step == 0
    for a, b in zip(initial.get_weights(), again.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(initial.get_weights(), trained.get_weights()))
    report = evaluate_checkpoint(run_dir, output=tmp_path / "untrained", untrained=True, num_images=0)
    assert (tmp_path / "untrained" / "report.json").is_file() and report


def test_benchmark_protocol_defaults_to_the_release_and_is_named_in_the_report(run_dir, tmp_path):
    odd = [1, 3, 5, 7, 9, 11, 13, 15]
    root = write_bbc(tmp_path / "bbc", train={1: odd, 2: odd}, val={11: [2]}, test={16: [5, 1], 17: [3]})
    options = {"crop_size": 64, "train_videos": [1, 2], "val_videos": [11]}
    release = evaluate_checkpoint(run_dir, dataset="bbc", data_dir=str(root), output=tmp_path / "release",
                                  num_images=0, annotations=options)
    # Every frame of results.mat (video 17 is not a test video), the release's origin and regressor.
    assert release["protocol"] == "release" and release["splits"]["report"]["frames"] == 3
    assert release["origin"] == load_regressor(tmp_path / "release" / "regressor.json").origin == "release"
    text = (tmp_path / "release" / "report.txt").read_text()
    assert "protocol: release, reproducing NVIDIA's released scripts" in text and "accuracy per joint, %" in text
    ours = evaluate_checkpoint(run_dir, dataset="bbc", data_dir=str(root), output=tmp_path / "ours", num_images=0,
                               annotations={**options, "test_videos": [16]}, protocol="ours")
    assert ours["protocol"] == "ours" and ours["origin"] == "centre" and ours["splits"]["report"]["frames"] == 2
    assert "protocol: ours" in (tmp_path / "ours" / "report.txt").read_text()
    with pytest.raises(DatasetError, match="test_videos"):  # the release scores all of results.mat
        evaluate_checkpoint(run_dir, dataset="bbc", data_dir=str(root), output=tmp_path / "x", num_images=0,
                            annotations={**options, "test_videos": [16]})


def test_release_protocol_of_a_dataset_without_one_is_refused(run_dir, tmp_path, capsys):
    assert main(["--checkpoint", str(run_dir), "--output", str(tmp_path / "eval"), "--protocol", "release"]) == 2
    assert "synthetic has no released evaluation to reproduce" in capsys.readouterr().err


def test_protocol_comes_from_the_command_then_the_run_then_the_release():
    chosen = []
    for name, options, asked in (("bbc", {}, None), ("h36m", {"protocol": "ours"}, None), ("celeba", {}, "ours"),
                                 ("synthetic", {}, "ours")):
        data = DataConfig(name=name, options=dict(options))
        choose_protocol(data, asked)
        chosen.append(data.options.get("protocol"))
    assert chosen == ["release", "ours", "ours", None]  # synthetic has our protocol only, and no option for it
