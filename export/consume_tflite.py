"""Landmarks of one image from an fgbg_tf TFLite model, with ai-edge-litert alone (no TensorFlow, no fgbg_tf).

    python consume_tflite.py EXPORT/landmarks_float32.tflite IMAGE [--resize]

Works with the float32, float16 and int8 files alike (all take uint8 images and
return float32). Prints one line per landmark, "landmark k: x=... y=..." in pixels
of the image (pixel i at i). Another image size than the model's S x S is refused
unless --resize is given.
"""

import argparse
import sys

import cv2
import numpy as np
from ai_edge_litert.interpreter import Interpreter


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="a landmarks_*.tflite file written by python -m fgbg_tf.export")
    parser.add_argument("image", help="an image file")
    parser.add_argument("--resize", action="store_true", help="resize an image of another size to S x S")
    args = parser.parse_args(argv)

    runner = Interpreter(model_path=args.model).get_signature_runner("landmarks")
    size = int(runner.get_input_details()["images"]["shape"][1])  # images: uint8 [1, S, S, 3]

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

    means = runner(images=image[None].astype(np.uint8))["means_pixels"][0]
    scale = np.array([width / size, height / size])
    for k, (x, y) in enumerate((means + 0.5) * scale - 0.5):
        print(f"landmark {k}: x={x:.4f} y={y:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
