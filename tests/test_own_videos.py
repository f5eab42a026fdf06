"""A user's own videos from the command line, end to end: train, resume from the cache, evaluate with a keypoints
CSV (and without one), predict with the training framing, landmarks mapped back to the source pixels."""

import json

import numpy as np
import pytest

from fgbg_tf import evaluate, predict, train
from fgbg_tf.data.media import frame_image, to_original_pixels, video_frames
from tests.data.fixtures_video import write_avi

# 48 x 40 frames (centre-cropped to the 40 px square at x = 4, then 32 px): a bright square moving over a textured
# background, its centre the one annotated point ("blob").
WIDTH, HEIGHT, FRAMES = 48, 40, 10


def blob_centre(video: int, frame: int) -> tuple[float, float]:
    return 12.0 + 2.0 * frame + 3.0 * video, 14.0 + 1.5 * frame


def frame_of(video: int, frame: int) -> np.ndarray:
    rng = np.random.default_rng(100 * video + frame)
    image = rng.integers(40, 90, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    x, y = (int(round(c)) for c in blob_centre(video, frame))
    image[y - 4:y + 5, x - 4:x + 5] = (250, 220, 40)
    return image


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    root = tmp_path_factory.mktemp("own_videos")
    data = root / "videos"
    rows = ["file,frame,blob_x,blob_y"]
    for video in range(3):
        write_avi(data / f"clip{video}.avi", [frame_of(video, t) for t in range(FRAMES)])
        rows += [f"clip{video}.avi,{t},{blob_centre(video, t)[0]},{blob_centre(video, t)[1]}" for t in range(FRAMES)]
    (root / "keypoints.csv").write_text("\n".join(rows) + "\n")
    return root


def settings(clips, *extra):
    # The baseline variant: what is tested is the data path, and its graph traces in half the time of the full one.
    overrides = [
        "model.preset=small", "model.num_landmarks=4", "data.image_size=32", "data.temporal_offset=[1, 3]",
        "loss.layer_weights=[0, 0, 0, 0]", "train.precision=float32", "model.zero_heads=false",
        "train.background_warmup_steps=0", "train.batch_size=2", "model.variant=baseline", "train.image_every=1000", "train.checkpoint_every=5",
        f"data.options.cache_dir={clips / 'cache'}", "data.options.test_videos=[clip2.avi]", *extra,
    ]
    return [item for override in overrides for item in ("--set", override)]


def test_train_resume_evaluate_and_predict_own_videos(clips, monkeypatch):
    run = clips / "run"
    command = ["--dataset", "videos", "--data-dir", str(clips / "videos"), "--output", str(run), "--no-progress"]
    assert train.main([*command, "--max-steps", "6", *settings(clips)]) == 0
    assert len(list((clips / "cache").glob("*.npz"))) == 2  # the training videos, decoded once
    # For export and predict: the training sources' pixel size (the held-out clip2 is not counted).
    assert json.loads((run / "sources.json").read_text())["source_sizes"] == [[WIDTH, HEIGHT, 2]]

    import fgbg_tf.data.video_folder as reader

    def no_decoding(*args):
        raise AssertionError("a cached video was decoded again")

    with monkeypatch.context() as patch:  # the restart reads the cache
        patch.setattr(reader, "video_frames", no_decoding)
        assert train.main([*command, "--max-steps", "8", *settings(clips)]) == 0
    assert (run / "checkpoints" / "ckpt-8.index").exists()

    # Without annotations: reconstruction and stability on the held-out video.
    assert evaluate.main(["--checkpoint", str(run), "--output", str(clips / "plain")]) == 0
    plain = json.loads((clips / "plain" / "report.json").read_text())
    assert plain["videos"] == ["clip2.avi"] and plain["frames"] == FRAMES
    assert np.isfinite(plain["reconstruction_psnr_db"]) and plain["landmark_step_px"] >= 0

    # With the CSV: fit on the training videos' annotated frames, report on the held-out one.
    assert evaluate.main(["--checkpoint", str(run), "--output", str(clips / "eval"),
                          "--keypoints", str(clips / "keypoints.csv")]) == 0
    report = json.loads((clips / "eval" / "report.json").read_text())
    assert report["splits"]["fit"]["frames"] == 2 * FRAMES and report["splits"]["report"]["frames"] == FRAMES
    assert report["keypoint_names"] == ["blob"] and np.isfinite(report["headline"]["value"])

    # predict on the held-out video with the run's framing (centre_crop, recorded in its config): landmarks in the
    # video's own pixels are the model's on the framed frame, mapped through the 40 px centre square at x = 4.
    assert predict.main(["--model", str(run), "--input", str(clips / "videos" / "clip2.avi"),
                         "--output", str(clips / "predicted"), "--no-progress"]) == 0
    items = json.loads((clips / "predicted" / "landmarks.json").read_text())["items"]
    assert len(items) == FRAMES and items[3]["box"] == [4, 0, 40, 40]
    from fgbg_tf.serving.predictor import Predictor

    detector = Predictor(str(run))
    decoded = list(video_frames(clips / "videos" / "clip2.avi"))
    square, box = frame_image(decoded[3], 32, "centre_crop", "clip2.avi")
    means = detector.landmarks(square[None])["means_pixels"][0]
    np.testing.assert_allclose(items[3]["landmarks"], to_original_pixels(means, 32, box), atol=2e-3)
