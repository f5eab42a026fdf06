"""The study behind `python -m fgbg_tf.landmark_study` (paper Figure 2a): train and evaluate every (variant, K).

Example:
    rows = run_study("synthetic", [4, 8], ["full", "baseline"], max_steps=600, output="runs/study")
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from fgbg_tf.config import load_config
from fgbg_tf.data import DatasetError
from fgbg_tf.evaluation.figures import line_plot, save_png
from fgbg_tf.evaluation.protocols import PROTOCOLS
from fgbg_tf.evaluation.runner import evaluate_checkpoint
from fgbg_tf.training.loop import train

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
    own_data = dataset in ("images", "videos")  # the user's own files: regressable only with their keypoints CSV
    if own_data and not load_config(dataset, config_files, overrides).data.options.get("keypoints"):
        raise DatasetError(f"a study on your {dataset} needs their keypoints to regress: --set "
                           "data.options.keypoints=CSV (fgbg_tf/data/annotations.py)")
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
                "protocol": report["protocol"],
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
