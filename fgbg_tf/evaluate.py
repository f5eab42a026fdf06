"""Landmark evaluation: `python -m fgbg_tf.evaluate --checkpoint RUN [--dataset NAME] [--output DIR]`.

The paper's protocol (section 4.2, reference doc section 8): run the trained pose
encoder over the dataset's regression splits, fit a linear regressor without
intercept from the landmark means (pixels) to the annotated keypoints on the
first split, predict the second and score it by the dataset's protocol
(`fgbg_tf/evaluation/protocols.py`).

The benchmark datasets (bbc, h36m, celeba) are scored by one of two protocols,
named in the report (docs/protocols.md): `--protocol release` (the default)
reproduces the released evaluation code, whose numbers the paper's tables hold:
NVIDIA's BBC scripts (border crops clipped and squashed, every test frame scored,
the release's origins and rounding), IMM's MAFL split (the regressor fitted on
the first 90 % of MAFL's training list) and, for Human3.6M, which has no released
code, our reading of the paper (every annotated frame scored); `--protocol ours`
is this implementation's (zero-padded crops that keep their scale, frames with a
joint outside the frame left out, the regressor fitted on all of MAFL's training
list). The other datasets have our protocol only.

Every dataset is scored with the protocol's coordinate origin and the paper's two
(Table 3); the protocol's origin (ours: the paper's, centre for the video
datasets, top-left for MAFL, appendix "Regression coordinates") is marked and its
regressor saved. For datasets with foreground masks (h36m, synthetic) the
per-landmark foreground containment of Figure 2b is reported too.

Outputs in --output (default `<run>/eval/<dataset>-<step>`): report.json,
report.txt (the table printed), regressor.json (see `regression.py`),
figure3.png, and containment.png where it applies; with --log-dir, the
scalars and pictures also go to TensorBoard. The model's weights are only read.

A user's own images and videos (`--dataset images`, `videos`) are scored by the same protocol when a keypoints
CSV is given (`--keypoints`, or data.options.keypoints at training time): fitted on the annotated training images or
frames, reported on the held-out ones. Without one, evaluate reports what it can on the held-out images or videos
(`fgbg_tf/evaluation/unannotated.py`): the reconstruction, and how steadily the landmarks move between a video's
frames, or under an image's colour jitter and TPS warp.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fgbg_tf.cli import import_tensorflow, run_command
from fgbg_tf.config import BENCHMARK_PROTOCOLS, DATASET_NAMES, ConfigError


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m fgbg_tf.evaluate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True,
                        help="training output folder, its checkpoints/ folder, or a prefix such as RUN/checkpoints/ckpt-600")
    parser.add_argument("--dataset", choices=DATASET_NAMES, help="dataset to evaluate on (default: the run's)")
    parser.add_argument("--data-dir", help="where the dataset lives (default: the run's data.data_dir)")
    parser.add_argument("--output", help="output folder (default: RUN/eval/<dataset>-<step>)")
    parser.add_argument("--keypoints", help="images, videos: a keypoints CSV (file,frame,x1,y1,...; "
                                            "fgbg_tf/data/annotations.py) for the regression protocol (default: the "
                                            "run's data.options.keypoints)")
    parser.add_argument("--masks", help="images, videos, with --keypoints: a folder of masks of the annotated images "
                                        "(<file without its suffix>.png) or frames (<file>/<frame>.png), for the "
                                        "foreground containment")
    parser.add_argument("--normalise-by", metavar="A,B", type=lambda text: text.split(","),
                        help="images, videos, with --keypoints: also report the error over the distance between "
                             "points A and B")
    parser.add_argument("--protocol", choices=BENCHMARK_PROTOCOLS,
                        help="bbc, h36m, celeba: 'release' reproduces the released evaluation code, 'ours' is this "
                             "implementation's (default: the run's data.options.protocol, else release)")
    parser.add_argument("--max-frames", type=int, help="use at most this many frames (images) of each split")
    parser.add_argument("--batch-size", type=int, default=32, help="frames per pose-encoder call (default 32)")
    parser.add_argument("--num-images", type=int, default=8, help="test images in figure3.png (default 8; 0: none)")
    parser.add_argument("--log-dir", help="also write the metrics and pictures to this TensorBoard folder")
    parser.add_argument("--untrained", action="store_true",
                        help="evaluate the run's model at its initial weights (step 0), the baseline for the trained one")
    args = parser.parse_args(argv)
    if args.max_frames is not None and args.max_frames < 1:
        parser.error(f"--max-frames must be >= 1, got {args.max_frames}")
    if args.batch_size < 1 or args.num_images < 0:
        parser.error("--batch-size must be >= 1 and --num-images >= 0")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    import_tensorflow()
    from fgbg_tf.data import DatasetError
    from fgbg_tf.evaluation.runner import evaluate_checkpoint
    from fgbg_tf.training.checkpoints import CheckpointError

    # Paths on the command line are the shell's (the current folder); in a config they are relative to data_dir.
    paths = {key: str(Path(value).expanduser().resolve()) for key, value in
             (("keypoints", args.keypoints), ("masks", args.masks)) if value is not None}
    annotations = {**paths, **({"normalise_by": args.normalise_by} if args.normalise_by is not None else {})}

    def body():
        evaluate_checkpoint(args.checkpoint, args.dataset, args.data_dir, args.output, args.max_frames,
                            args.batch_size, args.num_images, args.log_dir, args.untrained, annotations, args.protocol)

    return run_command(body, {(ConfigError, DatasetError, FileNotFoundError, CheckpointError): 2})


if __name__ == "__main__":
    sys.exit(main())
