"""Landmarks for the user's images, folders and videos; shape/appearance transfer (`fgbg_tf/serving/predictor.py`).

    python -m fgbg_tf.predict --model PATH --input FILE_OR_DIR [--output DIR] [--framing F] [--regressor FILE]
    python -m fgbg_tf.predict --model PATH --transfer --pose A --appearance B [--output DIR] [--framing F]

PATH is a SavedModel written by `fgbg_tf.export` (its folder or the export's
output folder), or a training output folder / checkpoint prefix. Keypoints are
predicted when the SavedModel has the `keypoints` signature, or for a checkpoint
when --regressor is given.

Output folder (default `predictions/`):
    landmarks.csv, landmarks.json   one row / item per image or video frame; JSON also
                                    lists the skipped files and why, and per video the frames
                                    decoded against those its container declares
    overlays/NAME.png               landmarks (and keypoints as white rings) on each image
    masks/NAME.png, backgrounds/NAME.png
                                    the foreground mask and background of the image's
                                    self-reconstruction, where the model variant has them
                                    (at the model's S x S resolution)
    NAME_overlay.mp4 (_mask, _background)   the same for a video, frame by frame
NAME is the input's stem (face.jpg -> face), or stem_ext where two inputs share a stem (clip_avi, clip_mp4).

Image size policy: the model takes S x S images. A model trained on the `images` or `videos`
dataset frames new images as its training images were (its data.options.framing, which export
records), and compares each input with the original sizes of its training sources (recorded
by the run and export): with a box, an input of another size is refused (the box would show
another part of the scene; --framing overrides), with another framing an aspect ratio unlike
every training source's is warned about once per file. Otherwise another size is an error
naming the file (the file is skipped and reported) unless --framing names how to make it square:
"resize" (squash; --resize is short for it), "centre_crop" (the centred square),
"pad" (black borders to a square) or X,Y,SIDE,SIDE (that square of every image, e.g. a
static camera's region; use the framing the model was trained with). The square is
resized to S x S (antialiased bilinear, as the training crops), a notice is logged, and
coordinates are mapped back through it to the original image's pixels,
x_original = box_x + (x + 0.5) * box_w / S - 0.5; landmarks.json gives each item's box.
Coordinates are always (x, y) in pixels of the original image, pixel i at i.
Unreadable files are skipped and reported, never fatal.

Transfer renders the pose of A (its landmark Gaussians) with the appearance and the
background of B and writes transfer.png (S x S) and transfer_panel.png (A with its
landmarks | B | the result).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fgbg_tf.cli import import_tensorflow, run_command


def parse_framing(text: str):
    """--framing: a name, or X,Y,SIDE,SIDE in pixels (checked against each image when it is read)."""
    if "," not in text:
        return text
    try:
        return [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"a framing box is four whole numbers X,Y,SIDE,SIDE, got {text!r}") from None

def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m fgbg_tf.predict", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="exported SavedModel (or export folder) or training checkpoint")
    parser.add_argument("--input", help="an image, a video, or a folder of images and videos")
    parser.add_argument("--output", default="predictions", help="output folder (default: predictions)")
    parser.add_argument("--framing", type=parse_framing,
                        help="how images of another size become S x S: resize, centre_crop, pad or X,Y,SIDE,SIDE "
                             "(default: the model's training framing; without one they are refused)")
    parser.add_argument("--resize", action="store_const", const="resize", dest="framing",
                        help="the same as --framing resize")
    parser.add_argument("--regressor", help="keypoint regressor for a checkpoint model (.json/.npz)")
    parser.add_argument("--transfer", action="store_true", help="render --pose with the appearance of --appearance")
    parser.add_argument("--pose", help="with --transfer: the image whose pose is rendered")
    parser.add_argument("--appearance", help="with --transfer: the image whose appearance and background are used")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    if args.transfer and not (args.pose and args.appearance):
        parser.error("--transfer needs --pose and --appearance")
    if not args.transfer and not args.input:
        parser.error("--input is required (or --transfer with --pose and --appearance)")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    import_tensorflow()
    from fgbg_tf.serving.predictor import predict, transfer
    from fgbg_tf.training.checkpoints import CheckpointError

    def body():
        if args.transfer:
            transfer(args.model, args.pose, args.appearance, args.output, args.framing)
            print(f"wrote {Path(args.output) / 'transfer.png'}")
            return 0
        summary = predict(args.model, args.input, args.output, args.framing, args.regressor, not args.no_progress)
        short = sum(v["frames_read"] < v["frames_declared"] for v in summary["videos"])
        shortfall = f", {short} video(s) shorter than declared" if short else ""
        print(f"{len(summary['items'])} frame(s) -> {args.output}/landmarks.csv, landmarks.json; "
              f"{len(summary['skipped'])} file(s) skipped{shortfall}")
        return 0 if summary["items"] else 1

    return run_command(body, {(FileNotFoundError, ValueError, CheckpointError): 2})


if __name__ == "__main__":
    sys.exit(main())
