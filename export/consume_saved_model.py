"""Landmarks of one image, or the future of a video, from an fgbg_tf SavedModel, with TensorFlow alone (no fgbg_tf).

    python consume_saved_model.py EXPORT/saved_model IMAGE [--resize]
    python consume_saved_model.py VIDEO_EXPORT/saved_model VIDEO_OR_FOLDER [--resize] [--output DIR]

A landmark model (python -m fgbg_tf.export): prints one line per landmark, "landmark k: x=... y=..." in pixels of
the image (pixel i at i), then the keypoints when the SavedModel has a `keypoints` signature.

A video predictor (python -m fgbg_tf.video_prediction export; its SavedModel has `predict_video`): reads the first
N frames of a video file, or of a folder of images in name order, as the seed frames, writes the H predicted
frames to DIR (default ./predicted) as predicted_000.png, predicted_001.png, ... at the model's S x S, and prints
"frame t landmark k: x=... y=..." in pixels of the input frames.

The model takes S x S RGB images; another size is refused unless --resize is given.
"""

import argparse
import os
import sys

import cv2
import numpy as np
import tensorflow as tf

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


class InputError(Exception):
    """An input the model cannot take: reported as one "error:" line and exit code 2."""


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("saved_model", help="the saved_model/ folder written by python -m fgbg_tf.export or "
                                            "python -m fgbg_tf.video_prediction export")
    parser.add_argument("input", help="an image file; for a video predictor, a video file or a folder of frames")
    parser.add_argument("--resize", action="store_true", help="resize an image of another size to S x S")
    parser.add_argument("--output", default="predicted", help="video predictor: the folder for the predicted frames")
    args = parser.parse_args(argv)

    model = tf.saved_model.load(args.saved_model)
    try:
        if "predict_video" in model.signatures:
            predict_video(model.signatures["predict_video"], args.input, args.resize, args.output)
        else:
            print_landmarks(model, args.input, args.resize)
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


def print_landmarks(model, path: str, resize: bool) -> None:
    landmarks = model.signatures["landmarks"]
    size = landmarks.structured_input_signature[1]["images"].shape[1]  # images: uint8 [batch, S, S, 3]
    image = read_image(path)
    height, width = image.shape[:2]
    batch = tf.constant(model_input(image, path, size, resize)[None])
    for k, (x, y) in enumerate(input_pixels(landmarks(images=batch)["means_pixels"].numpy()[0], width, height, size)):
        print(f"landmark {k}: x={x:.4f} y={y:.4f}")
    if "keypoints" in model.signatures:
        keypoints = model.signatures["keypoints"](images=batch)["keypoints"].numpy()[0]
        for j, (x, y) in enumerate(input_pixels(keypoints, width, height, size)):
            print(f"keypoint {j}: x={x:.4f} y={y:.4f}")


def predict_video(predict, source: str, resize: bool, output: str) -> None:
    # seed_frames: uint8 [batch, N, S, S, 3]; frames: uint8 [batch, H, S, S, 3].
    _, count, size = predict.structured_input_signature[1]["seed_frames"].shape[:3]
    horizon = predict.structured_outputs["frames"].shape[1]
    frames = read_frames(source, count)
    shapes = {frame.shape for frame in frames}
    if len(shapes) > 1:
        raise InputError(f"the seed frames of {source} differ in size: {sorted(shapes)}")
    height, width = frames[0].shape[:2]
    seeds = np.stack([model_input(frame, f"{source} frame {i}", size, resize) for i, frame in enumerate(frames)])
    outputs = predict(seed_frames=tf.constant(seeds[None]))
    os.makedirs(output, exist_ok=True)
    for t, frame in enumerate(outputs["frames"].numpy()[0]):
        cv2.imwrite(os.path.join(output, f"predicted_{t:03d}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    for t, means in enumerate(outputs["means_pixels"].numpy()[0]):
        for k, (x, y) in enumerate(input_pixels(means, width, height, size)):
            print(f"frame {t} landmark {k}: x={x:.4f} y={y:.4f}")
    print(f"wrote {horizon} predicted frames after {count} seed frames to {output}")


def read_image(path: str) -> np.ndarray:
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
        raise InputError(f"{path} is not a readable image")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_frames(source: str, count: int) -> list:
    """The first `count` RGB frames of a video file or of a folder of images (in name order)."""
    if not os.path.exists(source):
        raise InputError(f"{source}: no such file or folder")
    if os.path.isdir(source):
        names = sorted(name for name in os.listdir(source) if name.lower().endswith(IMAGE_SUFFIXES))
        frames = [read_image(os.path.join(source, name)) for name in names[:count]]
    else:
        capture, frames = cv2.VideoCapture(source), []
        while len(frames) < count:
            ok, frame = capture.read()
            if not ok:
                break
            frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
        capture.release()
    if len(frames) < count:
        raise InputError(f"{source} has {len(frames)} readable frames; the model needs {count} seed frames")
    return frames


def model_input(image: np.ndarray, name: str, size: int, resize: bool) -> np.ndarray:
    """An RGB image as the model's S x S input: resized when `resize`, else refused at another size."""
    height, width = image.shape[:2]
    if (height, width) == (size, size):
        return image
    if not resize:
        raise InputError(f"{name} is {width}x{height}; the model takes {size}x{size} (or pass --resize)")
    return cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)


def input_pixels(points: np.ndarray, width: int, height: int, size: int) -> np.ndarray:
    """Points [..., 2] in pixels of the S x S model input -> pixels of the width x height input, centres aligned."""
    return (points + 0.5) * np.array([width / size, height / size]) - 0.5


if __name__ == "__main__":
    sys.exit(main())
