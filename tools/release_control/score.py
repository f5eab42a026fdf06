"""Scores the release control's predictions with fgbg_tf's own protocol (fgbg_tf's virtualenv).

    python tools/release_control/score.py --data /tmp/control/data.npz --run /tmp/control/release

The same regression, metrics and report as `python -m fgbg_tf.evaluate` on a run trained with the dumped config:
the same frames, the same regressor fit, the same containment and fg/bg numbers (fgbg_tf/evaluation/protocols.py,
`landmark_report` and `factorisation_scores`). Writes report.json, report.txt and figure6.png into --run.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from fgbg_tf.evaluation import metrics
from fgbg_tf.evaluation.figures import save_png
from fgbg_tf.evaluation.protocols import SplitLandmarks, factorisation_scores, format_table, landmark_report
from fgbg_tf.evaluation.summaries import figure6_grid


def split_landmarks(data, predictions, split: str) -> SplitLandmarks:
    """The frames fgbg_tf.evaluate keeps (valid, finite keypoints) with the control's landmarks."""
    keypoints = data[f"{split}_keypoints"]
    keep = data[f"{split}_valid"] & np.all(np.isfinite(keypoints), axis=(1, 2))
    containment = fraction = None
    if split == "report":
        masks = (data["report_mask"][keep] > 0).astype(np.float32)
        containment = metrics.foreground_containment(predictions["report_part_maps"][keep].astype(np.float32), masks)
        fraction = float(masks.mean())
    dropped = [(f"{split}/{i}", "invalid") for i in np.flatnonzero(~keep)]
    return SplitLandmarks(predictions[f"{split}_means_pixels"][keep], keypoints[keep], None, containment, fraction,
                          dropped, {})


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="the .npz dump.py wrote")
    parser.add_argument("--run", required=True, type=Path, help="the --out folder of train_release.py")
    args = parser.parse_args(argv)
    data = np.load(args.data)
    predictions = np.load(args.run / "predictions.npz")
    settings, run = json.loads(str(data["settings"])), json.loads(str(predictions["run"]))
    size = settings["image_size"]
    fit, test = split_landmarks(data, predictions, "fit"), split_landmarks(data, predictions, "report")
    report, _ = landmark_report(settings["dataset"], tuple(settings["split_names"]), fit, test, size,
                                settings["keypoint_names"])
    report.update({"checkpoint": f"release control {args.run}", "step": run["steps"], "variant": settings["variant"],
                   "num_landmarks": settings["num_landmarks"], "control": run})
    if "fact_mask" in predictions:
        fact = {k: data[f"fact_{k}"] for k in ("image", "partner", "mask", "background")}
        report["factorisation"] = factorisation_scores(predictions["fact_mask"].astype(np.float32),
                                                       predictions["fact_background"].astype(np.float32), fact)
    table = format_table(report)
    (args.run / "report.txt").write_text(table + "\n")
    (args.run / "report.json").write_text(json.dumps(report, indent=1))
    last = run["steps"] - 1
    batch = {k: data[f"train_{k}"][last][:8].astype(np.float32) for k in ("pose", "appearance", "target")}
    outputs = {k[len("figure_"):]: predictions[k] for k in predictions.files if k.startswith("figure_")}
    outputs.setdefault("foreground", outputs["reconstruction"])
    save_png(args.run / "figure6.png", figure6_grid(batch, outputs, rows=8))
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
