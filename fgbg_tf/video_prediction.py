"""Video prediction with landmarks (paper section 4.3): `python -m fgbg_tf.video_prediction {train,evaluate,predict,
export}`.

    python -m fgbg_tf.video_prediction train --checkpoint LANDMARK_RUN --output RUN [--set dynamics.KEY=VALUE ...]
    python -m fgbg_tf.video_prediction evaluate --run RUN [--lpips-weights FILE] [--output DIR]
    python -m fgbg_tf.video_prediction predict --run RUN [--num-clips N] [--output DIR]
    python -m fgbg_tf.video_prediction export --run RUN [--horizon H] [--output DIR]

A trained landmark model (`python -m fgbg_tf.train` on a video dataset) is frozen; `train` reads the landmark
states of every training clip through it (`fgbg_tf/dynamics/sequences.py`) and fits the LSTM that predicts how they
move (`fgbg_tf/dynamics/`). The `dynamics` section of the dataset's config (`configs/<dataset>.yaml`) sets the
protocol: KTH 10 seed -> 30 predicted frames, BAIR 2 -> 28, the embedded synthetic videos 10 -> 20.

`evaluate` rolls the LSTM out on the test clips, renders every predicted frame with the landmark model (the full
model: one background from a seed frame, a new foreground and mask per step) and scores landmarks and frames
against the truth, next to copying the last seed frame and rendering the true landmarks
(`fgbg_tf/dynamics/evaluation.py`). LPIPS needs AlexNet and LPIPS v0.1 weights that cannot be downloaded here:
pass them with --lpips-weights (`fgbg_tf/evaluation/lpips.py`, `tools/lpips_weights.py`), else the report says
"no weights".

RUN holds video_prediction.yaml (the landmark checkpoint and the dynamics settings), normaliser.json,
checkpoints/ (resumed when `train` runs again), logs/ (TensorBoard), and evaluate's eval/: report.json,
report.txt, figure5.png (metric curves per predicted frame), figure4.png (seed frames, truth over prediction);
predict writes PNG strips and one video per clip (truth | prediction side by side).

`export` writes DIR (default RUN/export)/saved_model, whose signature `predict_video` takes N seed frames and returns
H predicted frames and their landmarks (`fgbg_tf/serving/video_module.py`, export/README.md), and export_report.json;
it fails unless the SavedModel reproduces this package's rollout on the first test windows.
"""

from __future__ import annotations

import argparse
import sys

from fgbg_tf.cli import import_tensorflow, run_command
from fgbg_tf.config import DATASET_NAMES, ConfigError


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m fgbg_tf.video_prediction", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="fit the landmark LSTM on a frozen landmark model's training clips")
    train.add_argument("--checkpoint", required=True, help="the landmark run (folder) or checkpoint prefix")
    train.add_argument("--output", required=True, help="the video-prediction run folder (resumed if it exists)")
    train.add_argument("--dataset", choices=DATASET_NAMES, help="video dataset (default: the landmark run's)")
    train.add_argument("--data-dir", help="where the dataset lives (default: the landmark run's)")
    train.add_argument("--set", action="append", default=[], metavar="dynamics.KEY=VALUE", dest="overrides",
                       help="override a dynamics setting (repeatable)")
    train.add_argument("--seed", type=int, default=0, help="the LSTM's initial weights and training windows (default 0)")
    train.add_argument("--no-progress", action="store_true", help="log lines instead of a progress bar")
    for name, text in (("evaluate", "score rollouts on the test clips"),
                       ("predict", "write rollouts of test clips as pictures and videos"),
                       ("export", "write a SavedModel that predicts frames and landmarks from seed frames")):
        command = commands.add_parser(name, help=text)
        command.add_argument("--run", required=True, help="a folder written by `train`")
        command.add_argument("--output", help="output folder (default: RUN/eval, RUN/predictions or RUN/export)")
    evaluate = commands.choices["evaluate"]
    evaluate.add_argument("--lpips-weights", help="an .npz of AlexNet + LPIPS v0.1 weights (tools/lpips_weights.py)")
    evaluate.add_argument("--max-windows", type=int, help="score at most this many windows")
    commands.choices["predict"].add_argument("--num-clips", type=int, default=4, help="test windows to draw, in clip order (default 4)")
    commands.choices["export"].add_argument("--horizon", type=int,
                                            help="frames to predict (default: the run's dynamics.predicted_frames)")
    args = parser.parse_args(argv)
    for key in ("max_windows", "num_clips", "horizon"):
        if getattr(args, key, None) is not None and getattr(args, key) < 1:
            parser.error(f"--{key.replace('_', '-')} must be >= 1")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    import_tensorflow()
    from fgbg_tf.data import DatasetError
    from fgbg_tf.dynamics import pipeline
    from fgbg_tf.training.checkpoints import CheckpointError

    def body():
        if args.command == "train":
            pipeline.train(args.checkpoint, args.output, args.dataset, args.data_dir, args.overrides, args.seed,
                           progress=not args.no_progress)
        elif args.command == "evaluate":
            pipeline.evaluate(args.run, args.output, args.lpips_weights, args.max_windows)
        elif args.command == "predict":
            pipeline.predict(args.run, args.output, args.num_clips)
        else:
            pipeline.export(args.run, args.output, args.horizon)

    return run_command(body, {(ConfigError, DatasetError, FileNotFoundError, CheckpointError): 2})


if __name__ == "__main__":
    sys.exit(main())
