"""fgbg_tf.predict on folders, videos and bad files; shape/appearance transfer."""

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import tensorflow as tf

from fgbg_tf.data.media import MediaError, VideoWriter, read_image, to_original_pixels, write_image
from fgbg_tf.serving.module import SAVED_MODEL_DIR
from fgbg_tf.predict import main, parse_args
from fgbg_tf.serving.predictor import Predictor, output_names, predict, transfer

FACES = Path(__file__).resolve().parents[2] / "shared" / "data" / "faces5pt" / "AFLW"


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, tiny_export):
    """A folder with 32 px images, 80 px faces (if the shared data is here), a bad file and a 48x40 video."""
    folder = tmp_path_factory.mktemp("predict_inputs")
    rng = np.random.default_rng(2)
    for name in ("a.png", "b.png"):
        write_image(folder / name, rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
    faces = sorted(FACES.glob("*.jpg"))[:2] if FACES.is_dir() else []
    for face in faces:
        shutil.copy(face, folder / face.name)
    (folder / "broken.jpg").write_bytes(b"not a jpeg")
    with VideoWriter(folder / "clip", 10, (48, 40)) as video:
        for i in range(10):
            video.write(np.roll(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8), i, axis=1))
    return {"folder": folder, "faces": [f.name for f in faces], "model": tiny_export}


def test_predict_folder_and_video_with_resize(inputs, tmp_path):
    summary = predict(inputs["model"], inputs["folder"], tmp_path, framing="resize", progress=False)
    folder, faces = inputs["folder"], inputs["faces"]
    assert [s["source"] for s in summary["skipped"]] == [str(folder / "broken.jpg")]
    stills = [i for i in summary["items"] if i["frame"] is None]
    frames = [i for i in summary["items"] if i["frame"] is not None]
    assert sorted(Path(i["source"]).name for i in stills) == sorted(["a.png", "b.png", *faces])
    assert [i["frame"] for i in frames] == list(range(10))
    assert all(len(i["landmarks"]) == 4 and len(i["keypoints"]) == 3 for i in summary["items"])
    # Unresized images: the coordinates are the SavedModel's pixels, unchanged.
    loaded = tf.saved_model.load(str(inputs["model"] / SAVED_MODEL_DIR))
    image = read_image(folder / "a.png")
    expected = loaded.signatures["landmarks"](images=tf.constant(image[None]))["means_pixels"].numpy()[0]
    item = next(i for i in stills if i["source"].endswith("a.png"))
    np.testing.assert_allclose(item["landmarks"], expected, atol=1e-3)
    assert not item["resized"] and all(i["resized"] for i in frames)
    # Resized frames come back in the 48 x 40 frame's pixels.
    assert all(np.all(np.array(i["landmarks"]) < [48, 40]) for i in frames)
    for name in ("a.png", "b.png", *faces):
        stem = Path(name).stem
        assert read_image(tmp_path / "overlays" / f"{stem}.png").shape == read_image(folder / name).shape
        assert (tmp_path / "masks" / f"{stem}.png").is_file() and (tmp_path / "backgrounds" / f"{stem}.png").is_file()
    for kind in ("overlay", "mask", "background"):
        capture = cv2.VideoCapture(str(tmp_path / f"clip_{kind}.mp4"))
        assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 10
        assert (capture.get(cv2.CAP_PROP_FRAME_WIDTH), capture.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (
            (48, 40) if kind == "overlay" else (32, 32))
    rows = (tmp_path / "landmarks.csv").read_text().strip().splitlines()
    assert len(rows) == 1 + len(summary["items"]) and rows[0].count(",") == 4 + 8 + 6


def test_other_sizes_are_refused_without_resize_and_reported(inputs, tmp_path):
    code = main(["--model", str(inputs["model"]), "--input", str(inputs["folder"]), "--output", str(tmp_path),
                 "--no-progress"])
    assert code == 0  # the 32 px images still went through
    summary = json.loads((tmp_path / "landmarks.json").read_text())
    refused = {Path(s["source"]).name: s["error"] for s in summary["skipped"]}
    assert set(refused) == {"broken.jpg", "clip.mp4", *inputs["faces"]}
    assert "--framing resize" in refused["clip.mp4"] and "48x40" in refused["clip.mp4"]
    assert sorted(Path(i["source"]).name for i in summary["items"]) == ["a.png", "b.png"]


def test_inputs_sharing_a_stem_get_distinct_outputs_and_a_file_as_output_is_refused(inputs, tmp_path):
    assert output_names([Path("d/clip.avi"), Path("d/clip.mp4"), Path("d/face.jpg")]) == {
        Path("d/clip.avi"): "clip_avi", Path("d/clip.mp4"): "clip_mp4", Path("d/face.jpg"): "face"}
    taken = tmp_path / "taken"
    taken.write_text("not a folder")
    with pytest.raises(MediaError, match="is a file"):
        predict(inputs["model"], inputs["folder"], taken, progress=False)


def test_original_pixel_mapping_aligns_pixel_centres():
    # The centre of a 32 px input (15.5) is the centre of an 80 px image (39.5); pixel 0's left edge stays.
    np.testing.assert_allclose(to_original_pixels(np.array([[15.5, 15.5], [-0.5, -0.5]]), 32, (0, 0, 80, 80)),
                               [[39.5, 39.5], [-0.5, -0.5]])


def test_checkpoint_predictor_matches_the_saved_model(inputs, tiny_run):
    image = read_image(inputs["folder"] / "a.png")[None]
    from_checkpoint = Predictor(tiny_run).landmarks(image)
    from_saved_model = Predictor(inputs["model"]).landmarks(image)
    np.testing.assert_allclose(from_checkpoint["means"], from_saved_model["means"], atol=1e-5)
    assert "keypoints" not in from_checkpoint and "keypoints" in from_saved_model


def test_transfer_renders_pose_of_a_with_appearance_of_b(inputs, tmp_path):
    pose, appearance = inputs["folder"] / "a.png", inputs["folder"] / "b.png"
    rendered = transfer(inputs["model"], pose, appearance, tmp_path)
    loaded = tf.saved_model.load(str(inputs["model"] / SAVED_MODEL_DIR))
    expected = loaded.signatures["reconstruct"](pose=tf.constant(read_image(pose)[None]),
                                                appearance=tf.constant(read_image(appearance)[None]))
    expected = np.round(expected["reconstruction"].numpy()[0] * 255)
    assert np.max(np.abs(rendered.astype(float) - expected)) <= 1
    np.testing.assert_array_equal(read_image(tmp_path / "transfer.png"), rendered)
    assert read_image(tmp_path / "transfer_panel.png").shape == (32, 96, 3)


def test_a_truncated_video_reports_frames_read_against_declared(inputs, tmp_path, capsys):
    from tests.data.fixtures_video import truncate, write_avi

    rng = np.random.default_rng(3)
    video = write_avi(tmp_path / "in" / "cut.avi", [rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for _ in range(40)])
    truncate(video)  # an interrupted copy: the container still declares 40 frames
    assert main(["--model", str(inputs["model"]), "--input", str(video), "--output", str(tmp_path / "out"),
                 "--no-progress"]) == 0
    summary = json.loads((tmp_path / "out" / "landmarks.json").read_text())
    (entry,) = summary["videos"]
    assert entry["frames_declared"] == 40 and 0 < entry["frames_read"] < 40
    assert len(summary["items"]) == entry["frames_read"]
    out = capsys.readouterr()
    assert f"cut.avi: {entry['frames_read']} of 40 declared frames decoded" in out.err
    assert "1 video(s) shorter than declared" in out.out


def test_framing_maps_landmarks_back_through_its_box(inputs, tmp_path):
    from fgbg_tf.data.media import frame_image

    image = np.random.default_rng(4).integers(0, 256, (40, 48, 3), dtype=np.uint8)
    write_image(tmp_path / "in" / "wide.png", image)
    assert main(["--model", str(inputs["model"]), "--input", str(tmp_path / "in"), "--output", str(tmp_path / "out"),
                 "--framing", "centre_crop", "--no-progress"]) == 0
    (item,) = json.loads((tmp_path / "out" / "landmarks.json").read_text())["items"]
    assert item["box"] == [4, 0, 40, 40] and (item["width"], item["height"]) == (48, 40) and item["resized"]
    loaded = tf.saved_model.load(str(inputs["model"] / SAVED_MODEL_DIR))
    square, box = frame_image(image, 32, "centre_crop", "wide.png")
    means = loaded.signatures["landmarks"](images=tf.constant(square[None]))["means_pixels"].numpy()[0]
    # The 40 px centre square starts at x = 4: x_original = 4 + (x + 0.5) * 40 / 32 - 0.5.
    np.testing.assert_allclose(item["landmarks"], np.array([4, 0]) + (means + 0.5) * 40 / 32 - 0.5, atol=2e-3)
    with pytest.raises(SystemExit):
        parse_args(["--model", "m", "--input", "x", "--framing", "1,2,three,4"])


def test_the_framing_the_model_was_trained_with_is_the_default(inputs, tmp_path, caplog):
    # An export of a run on the `images` dataset records its data.options.framing in the report beside the SavedModel.
    model = tmp_path / "export"
    shutil.copytree(inputs["model"], model)
    report = json.loads((model / "export_report.json").read_text())
    (model / "export_report.json").write_text(json.dumps({**report, "framing": "centre_crop"}))
    write_image(tmp_path / "in" / "wide.png", np.random.default_rng(5).integers(0, 256, (40, 48, 3), dtype=np.uint8))
    summary = predict(model, tmp_path / "in", tmp_path / "out", progress=False)
    assert summary["items"][0]["box"] == [4, 0, 40, 40] and not summary["skipped"]
    with caplog.at_level("WARNING", logger="fgbg_tf.predict"):
        summary = predict(model, tmp_path / "in", tmp_path / "out2", framing="pad", progress=False)
    assert summary["items"][0]["box"] == [0, -4, 48, 48]
    assert "differs from the framing the model was trained with (centre_crop)" in caplog.text
    # Without a recorded framing, a 48 x 40 image is still refused rather than silently framed.
    assert predict(inputs["model"], tmp_path / "in", tmp_path / "out3", progress=False)["skipped"]


def test_inputs_unlike_the_training_sources_are_refused_under_a_box_and_warned_of_otherwise(inputs, tmp_path, caplog):
    # An export of a run on 48 x 40 videos: its report records the framing and the training sources' sizes.
    model = tmp_path / "export"
    shutil.copytree(inputs["model"], model)
    report = json.loads((model / "export_report.json").read_text())

    def record(framing):
        (model / "export_report.json").write_text(json.dumps({**report, "framing": framing,
                                                              "source_sizes": [[48, 40, 3]]}))

    rng = np.random.default_rng(6)
    for name, (height, width) in {"same.png": (40, 48), "larger.png": (80, 96), "square.png": (48, 48)}.items():
        write_image(tmp_path / "in" / name, rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
    with VideoWriter(tmp_path / "in" / "square_clip", 10, (48, 48)) as video:
        for _ in range(3):
            video.write(rng.integers(0, 256, (48, 48, 3), dtype=np.uint8))

    def run(name, **options):
        caplog.clear()
        with caplog.at_level("WARNING", logger="fgbg_tf.predict"):
            summary = predict(model, tmp_path / "in", tmp_path / name, progress=False, **options)
        return summary, [r.getMessage() for r in caplog.records if "aspect ratio" in r.getMessage()]

    # A static camera's box frames another part of the scene in another size: refused, the training size passes.
    record([8, 4, 32, 32])
    summary, _ = run("box")
    assert [Path(i["source"]).name for i in summary["items"]] == ["same.png"]
    refused = {Path(s["source"]).name: s["error"] for s in summary["skipped"]}
    assert sorted(refused) == ["larger.png", "square.png", "square_clip.mp4"]
    assert refused["larger.png"].startswith(f"{tmp_path / 'in' / 'larger.png'}: 96x80, but the model's framing box "
                                            "[8, 4, 32, 32] was set on training sources of 48x40")
    assert "--framing X,Y,SIDE,SIDE" in refused["larger.png"] and "48x48" in refused["square_clip.mp4"]
    summary, _ = run("override", framing=[8, 4, 32, 32])  # --framing is the user's choice
    assert not summary["skipped"] and len(summary["items"]) == 3 + 3
    # Other framings: another aspect ratio (48 x 48) is warned of once per file, the same one (96 x 80) is not.
    record("centre_crop")
    summary, warned = run("crop")
    assert not summary["skipped"] and len(summary["items"]) == 3 + 3
    assert sorted(warned) == sorted(
        f"{tmp_path / 'in' / name}: 48x48 has another aspect ratio than the training sources (48x40): framed by "
        "centre_crop, its subject appears at another scale or squashed than in training"
        for name in ("square.png", "square_clip.mp4"))
