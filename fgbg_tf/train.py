"""Training: `python -m fgbg_tf.train [--dataset NAME] [--config FILE] [--set key=value ...]`.

The output folder holds `config.yaml` (the resolved configuration), `checkpoints/`
(tf.train.CheckpointManager; a run restarted on the same folder resumes exactly
where its last checkpoint left it) and `logs/` (TensorBoard scalars and the
paper's Figure 6 image grid). The loop is `fgbg_tf/training/loop.py`.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys

import numpy as np

from fgbg_tf.cli import import_tensorflow, run_command
from fgbg_tf.config import DATASET_NAMES, STRATEGIES, ConfigError, load_config


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m fgbg_tf.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="synthetic", choices=DATASET_NAMES, help="dataset (default: synthetic)")
    parser.add_argument("--data-dir", help="where the dataset lives (sets data.data_dir)")
    parser.add_argument("--config", action="append", default=[], metavar="FILE",
                        help="YAML applied after the dataset's config (repeatable, e.g. configs/variants/nomask.yaml)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                        help="override one setting, e.g. --set model.num_landmarks=16 (repeatable)")
    parser.add_argument("--output", default=None, help="output folder (default: runs/<dataset>)")
    parser.add_argument("--max-steps", type=int, help="stop after this many steps in total (sets train.max_steps)")
    parser.add_argument("--strategy", default="auto", choices=STRATEGIES,
                        help="auto: MirroredStrategy over several GPUs, else one device")
    parser.add_argument("--cpu-replicas", type=int, default=0,
                        help="split the CPU into N logical devices and mirror over them (tests multi-replica code)")
    parser.add_argument("--collective-timeout", type=float, default=300.0, metavar="SECONDS",
                        help="multiworker: a collective that waits longer for a peer fails the run (default 300)")
    parser.add_argument("--no-progress", action="store_true",
                        help="plain log lines every train.log_every steps instead of the progress bar")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    overrides = list(args.overrides)
    if args.data_dir:
        overrides.append(f"data.data_dir={args.data_dir}")
    if args.max_steps is not None:
        overrides.append(f"train.max_steps={args.max_steps}")
    # SIGTERM (timeout, Docker, Kubernetes, Slurm) stops the run like Ctrl-C: the finally block saves a checkpoint.
    # SIGINT too, explicitly: a shell starts background jobs with SIGINT ignored, and Python keeps it so.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    import_tensorflow()
    from fgbg_tf.data import DatasetError
    from fgbg_tf.training.checkpoints import CheckpointError
    from fgbg_tf.training.distribute import make_strategy
    from fgbg_tf.training.loop import ClusterError, is_chief, train

    def body():
        config = load_config(args.dataset, args.config, overrides)
        strategy = make_strategy(args.strategy, args.cpu_replicas, args.collective_timeout)
        output = args.output or os.path.join("runs", args.dataset)
        try:
            history = train(config, output, strategy=strategy, progress=not args.no_progress)
        except KeyboardInterrupt:  # the loop has saved what it had done: say so instead of a traceback
            print(f"interrupted: the same command resumes from the newest checkpoint in {output}", file=sys.stderr)
            return 130
        if history and is_chief(strategy):
            # Like with like: the mean of the first and of the last few logged steps.
            count = min(10, max(1, len(history) // 2))
            first = np.mean([h["loss"] for h in history[:count]])
            last = np.mean([h["loss"] for h in history[-count:]])
            print(f"trained {len(history)} steps: loss {first:.4f} -> {last:.4f} (means of the first and last "
                  f"{count}); output in {output}")

    return run_command(body, {(ConfigError, DatasetError): 2, (ClusterError, FloatingPointError, CheckpointError): 3})


if __name__ == "__main__":
    sys.exit(main())
