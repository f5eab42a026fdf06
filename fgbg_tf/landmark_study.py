"""Landmark-count study (paper Figure 2a): train and evaluate every (variant, K), plot the metric against K.

    python -m fgbg_tf.landmark_study --dataset synthetic --landmarks 4 8 12 \\
        --variants full baseline --max-steps 600 --output runs/study [--set key=value ...]

Each combination trains into `<output>/<variant>-K<K>` (a folder that already
holds a run resumes it, so an interrupted study picks up where it stopped) and is
then evaluated with `fgbg_tf.evaluate` on the dataset's protocol. Written to
--output: study.json (one row per run: variant, K, steps, training seconds, the
dataset's headline metric and every origin's metrics) and study.png (the headline
metric at the paper's origin against K, one curve per variant).
"""

from __future__ import annotations

import argparse
import sys

from fgbg_tf.cli import import_tensorflow, run_command
from fgbg_tf.config import KEYPOINT_DATASETS, ConfigError
from fgbg_tf.model.presets import VARIANTS


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m fgbg_tf.landmark_study", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="synthetic", choices=KEYPOINT_DATASETS)
    parser.add_argument("--landmarks", type=int, nargs="+", required=True, help="numbers of landmarks K to train")
    parser.add_argument("--variants", nargs="+", default=["full", "baseline"], choices=VARIANTS)
    parser.add_argument("--max-steps", type=int, required=True, help="training steps per run")
    parser.add_argument("--output", required=True, help="study folder (one sub-folder per run)")
    parser.add_argument("--data-dir", help="where the dataset lives (sets data.data_dir)")
    parser.add_argument("--config", action="append", default=[], metavar="FILE", help="YAML applied after the dataset's")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                        help="override one setting for every run (repeatable)")
    parser.add_argument("--max-frames", type=int, help="evaluate at most this many frames per split")
    args = parser.parse_args(argv)
    if args.max_steps < 1 or min(args.landmarks) < 1:
        parser.error("--max-steps and every --landmarks value must be >= 1")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    overrides = list(args.overrides) + ([f"data.data_dir={args.data_dir}"] if args.data_dir else [])
    import_tensorflow()
    from fgbg_tf.data import DatasetError
    from fgbg_tf.evaluation.study import run_study

    def body():
        run_study(args.dataset, args.landmarks, args.variants, args.max_steps, args.output, overrides, args.config,
                  args.max_frames)

    return run_command(body, {(ConfigError, DatasetError, FileNotFoundError): 2})


if __name__ == "__main__":
    sys.exit(main())
