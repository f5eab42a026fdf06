"""SavedModel and TFLite export of a tiny trained checkpoint, checked against the Keras model."""

import json

import numpy as np
import pytest
import tensorflow as tf

from fgbg_tf.export import parse_args
from fgbg_tf.serving.export import REPORT_FILE, deviation_from_keras, dataset_images, format_report
from fgbg_tf.serving.module import SAVED_MODEL_DIR, InferenceModule, keras_landmarks
from fgbg_tf.serving.tflite import run_tflite, tflite_name
from fgbg_tf.data.pipeline import from_model_range, to_model_range
from fgbg_tf.evaluation.regression import apply_regressor

@pytest.fixture(scope="module")
def exported(tiny_run, tiny_export, tiny_regressor):
    from fgbg_tf.training.checkpoints import load_trained_model

    out = tiny_export
    model, config, _ = load_trained_model(tiny_run)
    return {"model": model, "regressor": tiny_regressor, "images": dataset_images(config, 1, 6), "out": out,
            "report": json.loads((out / REPORT_FILE).read_text()),
            "loaded": tf.saved_model.load(str(out / SAVED_MODEL_DIR))}


def test_saved_model_landmarks_match_keras(exported):
    model, images = exported["model"], exported["images"]
    signatures = exported["loaded"].signatures
    reference = keras_landmarks(model, images)
    for name, batch in (("landmarks", images), ("landmarks_float", images.astype(np.float32) / 255.0)):
        out = {k: v.numpy() for k, v in signatures[name](images=tf.constant(batch)).items()}
        for key in ("means", "covariances", "part_maps"):
            np.testing.assert_allclose(out[key], reference[key], atol=1e-5, err_msg=f"{name}: {key}")
        np.testing.assert_allclose(out["means_pixels"], (reference["means"] + 1.0) * 16.0, atol=16 * 1e-5)
    assert signatures["serving_default"].structured_outputs.keys() == signatures["landmarks"].structured_outputs.keys()


def test_keypoints_signature_applies_the_regressor(exported):
    images = exported["images"]
    out = exported["loaded"].signatures["keypoints"](images=tf.constant(images))
    expected = apply_regressor(exported["regressor"], out["means_pixels"].numpy())
    assert out["keypoints"].shape == (len(images), 3, 2)
    np.testing.assert_allclose(out["keypoints"].numpy(), expected, atol=1e-3)


def test_reconstruct_and_render_match_keras(exported):
    model, images = exported["model"], exported["images"]
    signatures = exported["loaded"].signatures
    pose, appearance = images[:3], images[3:6]
    out = signatures["reconstruct"](pose=tf.constant(pose), appearance=tf.constant(appearance))
    assert set(out) == {"reconstruction", "foreground", "background", "mask"}  # the "full" variant
    # The same graph before export: saving and loading must change nothing.
    before = InferenceModule(model).reconstruct(tf.constant(pose), tf.constant(appearance))
    for key in out:
        np.testing.assert_allclose(out[key].numpy(), before[key].numpy(), atol=1e-5, err_msg=key)
    # Eager Keras: the 2-step model's instance norms over 2x2 and 1x1 bottleneck maps amplify
    # the last-bit differences between eager and graph kernels (measured up to 4e-3), so this
    # comparison checks the ranges and wiring ([-1, 1] -> [0, 1], which output is which).
    keras_out = model({"pose": to_model_range(pose), "appearance": to_model_range(appearance)})
    for key in ("reconstruction", "foreground", "background"):
        np.testing.assert_allclose(out[key].numpy(), from_model_range(keras_out[key]).numpy(), atol=2e-2)
    np.testing.assert_allclose(out["mask"].numpy(), keras_out["mask"].numpy(), atol=2e-2)
    # Rendering the pose image's own Gaussians with the appearance image is the reconstruction.
    found = signatures["landmarks"](images=tf.constant(pose))
    rendered = signatures["render"](means=found["means"], covariances=found["covariances"],
                                    appearance=tf.constant(appearance))
    np.testing.assert_allclose(rendered["image"].numpy(), out["reconstruction"].numpy(), atol=1e-5)


@pytest.mark.parametrize(
    "images, message",
    [
        (np.zeros([1, 16, 16, 3], np.uint8), r"images must be a batch of shape \[B, 32, 32, 3\], got"),
        (np.zeros([32, 32, 3], np.uint8), r"images must be a batch of shape \[B, 32, 32, 3\], got"),
        (np.zeros([1, 32, 32, 3], np.float32), "expected to be a uint8 tensor"),
        (np.zeros([0, 32, 32, 3], np.uint8), "images: an empty batch"),
    ],
)
def test_landmarks_signature_refuses_wrong_inputs(exported, images, message):
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        exported["loaded"].signatures["landmarks"](images=tf.constant(images))


@pytest.mark.parametrize(
    "means, covariances, message",
    [
        (np.full([1, 4, 2], np.nan), np.tile(0.01 * np.eye(2), [1, 4, 1, 1]), "means must be finite"),
        (np.zeros([1, 4, 2]), np.tile(-0.01 * np.eye(2), [1, 4, 1, 1]), "must be positive semidefinite"),
        (np.zeros([1, 4, 2]), np.tile([[0.01, 0.02], [0.02, 0.01]], [1, 4, 1, 1]), "must be positive semidefinite"),
        (np.zeros([1, 4, 2]), np.tile([[0.01, 0.005], [0.0, 0.01]], [1, 4, 1, 1]), "must be symmetric"),
    ],
)
def test_render_refuses_gaussians_it_cannot_draw(exported, means, covariances, message):
    appearance = tf.constant(exported["images"][:1])
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        exported["loaded"].signatures["render"](means=tf.constant(means, tf.float32),
                                                covariances=tf.constant(covariances, tf.float32), appearance=appearance)


def test_render_draws_the_singular_covariances_of_sharp_part_maps(exported):
    # A part map on one pixel fits a zero covariance, on a line a singular one: the model's own outputs render.
    covariances = np.zeros([1, 4, 2, 2], np.float32)
    covariances[0, 1] = [[0.01, 0.0], [0.0, 0.0]]
    covariances[0, 2] = [[0.01, 0.01], [0.01, 0.01]]
    out = exported["loaded"].signatures["render"](means=tf.zeros([1, 4, 2]), covariances=tf.constant(covariances),
                                                  appearance=tf.constant(exported["images"][:1]))
    assert np.all(np.isfinite(out["image"].numpy()))


def test_a_detector_that_moves_landmarks_over_a_pixel_is_reported_with_a_warning(caplog):
    reference = {"means": np.zeros([2, 4, 2]), "covariances": np.zeros([2, 4, 2, 2])}
    close = {"means": reference["means"] + 0.5 / 16, "covariances": reference["covariances"]}  # 0.5 px at 32 px
    far = {"means": reference["means"] + 2.0 / 16, "covariances": reference["covariances"]}  # 2 px
    assert "warning" not in deviation_from_keras(close, reference, 32, "landmarks_float16.tflite")
    with caplog.at_level("WARNING", logger="fgbg_tf.export"):
        entry = deviation_from_keras(far, reference, 32, "landmarks_int8.tflite")
    assert entry["max_mean_deviation_pixels"] == pytest.approx(2.0)
    assert "landmarks_int8.tflite: a landmark moves up to 2.00 px" in entry["warning"] in caplog.text
    report = {"artefacts": {"landmarks_int8": {"bytes": 1e6, "ms_per_image": 1.0, **entry}}}
    assert format_report(report).splitlines()[-1] == f"warning: {entry['warning']}"


def test_landmarks_float_refuses_values_outside_unit_range(exported):
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"must be in \[0, 1\]"):
        exported["loaded"].signatures["landmarks_float"](images=tf.fill([1, 32, 32, 3], 255.0))


def test_tflite_variants_and_report(exported):
    out, report, images = exported["out"], exported["report"], exported["images"]
    artefacts = report["artefacts"]
    assert set(artefacts) == {"saved_model", "landmarks_saved_model", "onnx", "landmarks_float32", "landmarks_float16",
                              "landmarks_int8"}
    assert artefacts["saved_model"]["max_mean_deviation"] <= 1e-5
    assert artefacts["landmarks_float32"]["max_mean_deviation"] <= 1e-4
    for entry in artefacts.values():
        assert entry["ms_per_image"] > 0 and np.isfinite(entry["max_mean_deviation"])
    sizes = [artefacts[f"landmarks_{v}"]["bytes"] for v in ("int8", "float16", "float32")]
    assert sizes == sorted(sizes) and sizes[0] < sizes[2] / 2, sizes
    # Independently of the report: float32 TFLite on images it was not measured on.
    tflite, _ = run_tflite((out / tflite_name("none")).read_bytes(), images[2:])
    reference = keras_landmarks(exported["model"], images[2:])
    np.testing.assert_allclose(tflite["means"], reference["means"], atol=1e-4)
    np.testing.assert_allclose(tflite["means_pixels"], (reference["means"] + 1) * 16, atol=2e-3)


def test_onnx_detector_matches_keras_on_unseen_images(exported):
    # Run here with ONNX Runtime on images the export did not measure it on, batch 4 and batch 1 alike.
    from fgbg_tf.serving.onnx import run_onnx

    images = exported["images"][2:]
    content = (exported["out"] / "landmarks.onnx").read_bytes()
    reference = keras_landmarks(exported["model"], images)
    outputs, ms = run_onnx(content, images)
    assert set(outputs) == {"means", "means_pixels", "covariances", "part_maps"} and ms > 0
    for key in ("means", "covariances", "part_maps"):
        np.testing.assert_allclose(outputs[key], reference[key], atol=1e-5, err_msg=key)
    np.testing.assert_allclose(outputs["means_pixels"], (reference["means"] + 1) * 16, atol=16e-5)
    import onnxruntime

    session = onnxruntime.InferenceSession(content, providers=["CPUExecutionProvider"])
    batched = session.run(["means"], {"images": images})[0]
    np.testing.assert_allclose(batched, reference["means"], atol=1e-5)
    assert exported["report"]["artefacts"]["onnx"]["max_mean_deviation"] <= 1e-5


def test_landmarks_saved_model_serves_the_detector_without_the_decoder(exported):
    out, images = exported["out"], exported["images"]
    loaded = tf.saved_model.load(str(out / "landmarks_saved_model"))
    assert set(loaded.signatures) == {"serving_default", "landmarks", "landmarks_float", "keypoints"}
    reference = keras_landmarks(exported["model"], images)
    means = loaded.signatures["landmarks"](images=tf.constant(images))["means"].numpy()
    np.testing.assert_allclose(means, reference["means"], atol=1e-5)
    full = exported["report"]["artefacts"]["saved_model"]["bytes"]
    alone = exported["report"]["artefacts"]["landmarks_saved_model"]["bytes"]
    assert alone < full / 2, (alone, full)  # the decoder, MaskNet and BGNet weights are left out


def test_onnx_without_its_packages_is_refused_before_any_work(monkeypatch, tmp_path, capsys):
    import builtins

    from fgbg_tf.export import main

    real_import = builtins.__import__
    monkeypatch.setattr(builtins, "__import__", lambda name, *a, **k: (
        (_ for _ in ()).throw(ImportError(name)) if name == "tf2onnx" else real_import(name, *a, **k)))
    code = main(["--checkpoint", str(tmp_path / "no_run"), "--output", str(tmp_path / "out"), "--formats", "onnx"])
    assert code == 2 and 'needs tf2onnx: pip install -e ".[onnx]"' in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_cli_rejects_unknown_quantization():
    with pytest.raises(SystemExit):
        parse_args(["--checkpoint", "x", "--output", "y", "--quantize", "none,int4"])


def test_saved_model_has_only_ops_the_web_and_mobile_converters_take(exported):
    # TF.js' converter cannot parse EnsureShape (tfjs#7690) and its WASM backend has no Einsum: the shape checks are
    # Asserts (which the converters strip) and the interpolations and poolings are matmuls.
    for name, function in exported["loaded"].signatures.items():
        graph = function.graph.as_graph_def()
        ops = {node.op for node in graph.node} | {n.op for f in graph.library.function for n in f.node_def}
        assert not ops & {"Einsum", "EnsureShape"}, (name, ops & {"Einsum", "EnsureShape"})
        assert "BatchMatMulV2" in ops and "Assert" in ops, name  # so the test sees the graph's body


def test_render_refuses_means_of_the_wrong_shape(exported):
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"means must be a batch of shape \[B, 4, 2\], got"):
        exported["loaded"].signatures["render"](means=tf.zeros([1, 3, 2]), covariances=tf.zeros([1, 4, 2, 2]),
                                                appearance=tf.constant(exported["images"][:1]))


def test_the_runs_source_sizes_go_into_the_export_report(tiny_run, tmp_path, monkeypatch):
    import shutil

    import fgbg_tf.serving.export as export
    from fgbg_tf.data.media import write_image
    from fgbg_tf.export import main

    # The tiny run with the sources.json a run on the user's videos writes; the export itself is not what is tested.
    run = shutil.copytree(tiny_run, tmp_path / "run")
    (run / "sources.json").write_text(json.dumps({"dataset": "videos", "framing": "centre_crop",
                                                  "source_sizes": [[48, 40, 2], [64, 48, 1]]}))
    write_image(tmp_path / "calibration" / "a.png", np.zeros((32, 32, 3), np.uint8))
    command = ["--checkpoint", str(run), "--output", str(tmp_path / "out"), "--calibration-dir",
               str(tmp_path / "calibration")]
    recorded = {}
    monkeypatch.setattr(export, "export_model", lambda *args, metadata, **kwargs: recorded.update(metadata) or
                        {"artefacts": {}})
    assert main(command) == 0
    assert recorded["source_sizes"] == [[48, 40, 2], [64, 48, 1]] and recorded["dataset"] == "synthetic"
    (run / "sources.json").unlink()  # a run without them (any other dataset) exports as before
    recorded.clear()
    assert main(command) == 0
    assert recorded["dataset"] == "synthetic" and "source_sizes" not in recorded
