"""Speed measurements: `python -m fgbg_tf.benchmark {train,landmarks,pipeline} [options]`.

* `train`: images/s, ms/image and peak memory of the distributed train step on
  synthetic tensors (no input pipeline), after warm-up steps.
* `landmarks`: the pose encoder alone (landmark inference), ms/image.
* `pipeline`: images/s that a dataset's input pipeline delivers, with colour jitter
  and TPS / temporal partners, without the model.

Every run prints one JSON line; docs/benchmarks.md records the figures and commands. `train` also gives
`seconds_per_100_steps`; on the released code's own setting (`--set model.preset=release
data.image_size=128`, full variant, batch 16) `train` and `landmarks` add `speedup_vs_release`, the ratio to
its figures measured side by side (evaluation/speed.py, RELEASE_FIGURES; measured on an AMX machine, so the
ratio means most on one).

Example:
    python -m fgbg_tf.benchmark train --dataset synthetic --steps 20
"""

from __future__ import annotations

import argparse
import json
import sys

from fgbg_tf.cli import import_tensorflow, run_command
from fgbg_tf.config import DATASET_NAMES, ConfigError, load_config

BENCHMARKS = ("train", "landmarks", "pipeline")  # evaluation/speed.py's BENCHMARKS


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fgbg_tf.benchmark", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=BENCHMARKS)
    parser.add_argument("--dataset", default="synthetic", choices=DATASET_NAMES)
    parser.add_argument("--data-dir")
    parser.add_argument("--config", action="append", default=[], metavar="FILE")
    parser.add_argument("--set", action="append", default=[], dest="overrides", metavar="KEY=VALUE")
    parser.add_argument("--steps", type=int, default=20, help="timed steps (default 20)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (default 3)")
    args = parser.parse_args(argv)
    overrides = args.overrides + ([f"data.data_dir={args.data_dir}"] if args.data_dir else [])
    import_tensorflow()
    from fgbg_tf.data import DatasetError
    from fgbg_tf.evaluation.speed import run_benchmark

    def body():
        config = load_config(args.dataset, args.config, overrides)
        print(json.dumps(run_benchmark(args.what, config, args.steps, args.warmup)))

    return run_command(body, {(ConfigError, DatasetError): 2})


if __name__ == "__main__":
    sys.exit(main())
