"""A user's own photos from the command line, end to end: train with images held out, evaluate without annotations
(what it can report) and with a keypoints CSV (the regression protocol), and a bad CSV named with its line."""

import json

import numpy as np
import pytest

from fgbg_tf import evaluate, train
from fgbg_tf.data.media import write_image

# 48 x 40 photos (centre-cropped to the 40 px square at x = 4, then 32 px): a yellow and a blue square on a textured
# background, their centres the two annotated points. Photos 4 and 5 are held out.
WIDTH, HEIGHT, PHOTOS = 48, 40, 6
HELD_OUT = ["photo4.png", "photo5.png"]


def centres(photo: int) -> list[tuple[float, float]]:
    return [(12.0 + 3.0 * photo, 12.0 + 2.0 * photo), (36.0 - 2.0 * photo, 28.0 - photo)]


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    root = tmp_path_factory.mktemp("own_images")
    rows = ["file,frame,head_x,head_y,tail_x,tail_y"]
    for photo in range(PHOTOS):
        image = np.random.default_rng(photo).integers(40, 90, (HEIGHT, WIDTH, 3), dtype=np.uint8)
        for (x, y), colour in zip(centres(photo), [(250, 220, 40), (40, 60, 250)]):
            image[int(y) - 4:int(y) + 5, int(x) - 4:int(x) + 5] = colour
        write_image(root / "photos" / f"photo{photo}.png", image)
        (head_x, head_y), (tail_x, tail_y) = centres(photo)
        rows.append(f"photo{photo}.png,,{head_x},{head_y},{tail_x},{tail_y}")  # an image's frame: empty (or 0)
    (root / "keypoints.csv").write_text("\n".join(rows) + "\n")
    return root


def settings(*extra):
    # The baseline variant without VGG: what is tested is the data path and the reports, not what the model learns.
    overrides = [
        "model.preset=small", "model.num_landmarks=4", "data.image_size=32", "loss.layer_weights=[0, 0, 0, 0]",
        "train.precision=float32", "model.zero_heads=false", "train.background_warmup_steps=0", "train.batch_size=2",
        "model.variant=baseline", "train.image_every=1000", "train.checkpoint_every=1000",
        f"data.options.test_images=[{', '.join(HELD_OUT)}]", *extra,
    ]
    return [item for override in overrides for item in ("--set", override)]


def test_train_and_evaluate_own_images_with_and_without_keypoints(photos, capsys):
    run = photos / "run"
    assert train.main(["--dataset", "images", "--data-dir", str(photos / "photos"), "--output", str(run),
                       "--no-progress", "--max-steps", "6", *settings()]) == 0
    # The held-out photos are not training sources.
    assert json.loads((run / "sources.json").read_text())["source_sizes"] == [[WIDTH, HEIGHT, PHOTOS - 2]]

    # Without annotations: reconstruction and landmark stability on the held-out photos.
    assert evaluate.main(["--checkpoint", str(run), "--output", str(photos / "plain")]) == 0
    plain = json.loads((photos / "plain" / "report.json").read_text())
    assert plain["images"] == HELD_OUT and np.isfinite(plain["reconstruction_psnr_db"])
    assert plain["landmark_jitter_shift_px"] >= 0 and plain["tps_displacement_px"] > 0
    assert np.isfinite(plain["landmark_tps_error_px"])
    text = (photos / "plain" / "report.txt").read_text()
    assert "held-out images: 2 (photo4.png, photo5.png)" in text and "landmark error under the TPS warp" in text
    assert "no keypoints given (data.options.keypoints), so no regression error" in text

    # With the CSV: fit on the four training photos, report on the two held-out ones, by the side and by head-tail.
    assert evaluate.main(["--checkpoint", str(run), "--output", str(photos / "eval"), "--keypoints",
                          str(photos / "keypoints.csv"), "--normalise-by", "head,tail"]) == 0
    report = json.loads((photos / "eval" / "report.json").read_text())
    assert report["splits"]["fit"]["frames"] == PHOTOS - 2 and report["splits"]["report"]["frames"] == 2
    assert report["keypoint_names"] == ["head", "tail"] and report["normalised_by"] == ["head", "tail"]
    assert report["headline"]["metric"] == "error_by_pair_pct" and np.isfinite(report["headline"]["value"])
    assert np.isfinite(report["results"]["centre"]["error_by_image_size_pct"])
    assert "error_by_image_size_pct" in (photos / "eval" / "report.txt").read_text()

    # A CSV naming a photo that is not in the folder stops evaluate before any work, naming the file and the line.
    bad = photos / "bad.csv"
    bad.write_text("file,frame,head_x,head_y,tail_x,tail_y\nphoto0.png,0,1,2,3,4\nphoto9.png,0,1,2,3,4\n")
    capsys.readouterr()
    assert evaluate.main(["--checkpoint", str(run), "--output", str(photos / "bad"), "--keypoints", str(bad)]) == 2
    assert f"error: {bad} line 3: 'photo9.png' is not an image under data_dir" in capsys.readouterr().err
    assert not (photos / "bad").exists()
