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
import json
import logging
import sys
import time
from pathlib import Path

from fgbg_tf.cli import run_command
from fgbg_tf.config import ConfigError, load_config
from fgbg_tf.data import DatasetError
from fgbg_tf.evaluate import evaluate_checkpoint
from fgbg_tf.evaluation.protocols import PROTOCOLS
from fgbg_tf.evaluation.figures import line_plot, save_png
from fgbg_tf.model.presets import VARIANTS
from fgbg_tf.train import train

logger = logging.getLogger("fgbg_tf.landmark_study")


def run_study(
    dataset: str,
    landmarks: list[int],
    variants: list[str],
    max_steps: int,
    output: str | Path,
    overrides: list[str] = (),
    config_files: list[str] = (),
    max_frames: int | None = None,
) -> list[dict]:
    """Trains and evaluates every (variant, K); returns the rows of study.json."""
    if dataset not in PROTOCOLS:
        raise DatasetError(f"{dataset} has no keypoints to regress; the study needs one of {sorted(PROTOCOLS)}")
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    rows = []
    for variant in variants:
        for count in landmarks:
            run_dir = output / f"{variant}-K{count}"
            config = load_config(dataset, config_files, [
                *overrides, f"model.variant={variant}", f"model.num_landmarks={count}", f"train.max_steps={max_steps}",
            ])  # fmt: skip
            logger.info("training %s (%d steps)", run_dir, max_steps)
            started = time.perf_counter()
            train(config, run_dir, progress=False)
            seconds = time.perf_counter() - started
            report = evaluate_checkpoint(run_dir, output=run_dir / "eval", max_frames=max_frames, num_images=4)
            rows.append({
                "variant": variant,
                "num_landmarks": count,
                "steps": report["step"],
                "train_seconds_this_call": round(seconds, 1),
                "metric": report["headline"]["metric"],
                "value": report["headline"]["value"],
                "origin": report["origin"],
                "results": report["results"],
                "containment_min_percent": report["containment"]["min_percent"] if report["containment"] else None,
                "run": str(run_dir),
            })  # fmt: skip
            (output / "study.json").write_text(json.dumps(rows, indent=1))
    plot = study_plot(rows, dataset)
    save_png(output / "study.png", plot)
    print(format_study(rows))
    return rows


def study_plot(rows: list[dict], dataset: str):
    """Figure 2a: the headline metric against the number of landmarks, one curve per variant."""
    series = {}
    for row in rows:
        xs, ys = series.setdefault(row["variant"], ([], []))
        xs.append(row["num_landmarks"])
        ys.append(row["value"])
    metric = rows[0]["metric"]
    return line_plot(series, title=f"{dataset}: {metric} vs number of landmarks",
                     x_label="number of learned landmarks", y_label=metric)


def format_study(rows: list[dict]) -> str:
    lines = [f"{'variant':<10} {'K':>4} {'steps':>6} {rows[0]['metric']:>24} {'min containment %':>18}"]
    for row in rows:
        containment = "-" if row["containment_min_percent"] is None else f"{row['containment_min_percent']:.3f}"
        lines.append(f"{row['variant']:<10} {row['num_landmarks']:>4} {row['steps']:>6} {row['value']:>24.3f} "
                     f"{containment:>18}")
    return "\n".join(lines)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m fgbg_tf.landmark_study", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="synthetic", choices=sorted(PROTOCOLS))
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

    def body():
        run_study(args.dataset, args.landmarks, args.variants, args.max_steps, args.output, overrides, args.config,
                  args.max_frames)

    return run_command(body, {(ConfigError, DatasetError, FileNotFoundError): 2})


if __name__ == "__main__":
    sys.exit(main())
