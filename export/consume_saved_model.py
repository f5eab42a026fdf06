"""Landmarks of one image from an fgbg_tf SavedModel, with TensorFlow alone (no fgbg_tf).

    python consume_saved_model.py EXPORT/saved_model IMAGE [--resize]

Prints one line per landmark, "landmark k: x=... y=..." in pixels of the image (pixel
i at i), then the keypoints when the SavedModel has a `keypoints` signature. The
model takes S x S RGB images; another size is refused unless --resize is given.
"""

import argparse
import sys

import cv2
import numpy as np
import tensorflow as tf


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("saved_model", help="the saved_model/ folder written by python -m fgbg_tf.export")
    parser.add_argument("image", help="an image file")
    parser.add_argument("--resize", action="store_true", help="resize an image of another size to S x S")
    args = parser.parse_args(argv)

    model = tf.saved_model.load(args.saved_model)
    landmarks = model.signatures["landmarks"]
    size = landmarks.structured_input_signature[1]["images"].shape[1]  # images: uint8 [batch, S, S, 3]

    image = cv2.imread(args.image, cv2.IMREAD_COLOR)
    if image is None:
        print(f"error: {args.image} is not a readable image", file=sys.stderr)
        return 2
    image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    height, width = image.shape[:2]
    if (height, width) != (size, size):
        if not args.resize:
            print(f"error: {args.image} is {width}x{height}; the model takes {size}x{size} (or pass --resize)",
                  file=sys.stderr)
            return 2
        image = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)

    batch = tf.constant(image[None])
    means = landmarks(images=batch)["means_pixels"].numpy()[0]
    # Back to the original image's pixels, pixel centres aligned.
    scale = np.array([width / size, height / size])
    for k, (x, y) in enumerate((means + 0.5) * scale - 0.5):
        print(f"landmark {k}: x={x:.4f} y={y:.4f}")
    if "keypoints" in model.signatures:
        keypoints = model.signatures["keypoints"](images=batch)["keypoints"].numpy()[0]
        for j, (x, y) in enumerate((keypoints + 0.5) * scale - 0.5):
            print(f"keypoint {j}: x={x:.4f} y={y:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
