"""The video-prediction commands (`python -m fgbg_tf.video_prediction`): train, evaluate, predict and export on a run
folder.

A run folder ties one frozen landmark checkpoint to one LSTM: `video_prediction.yaml` records the checkpoint, the
dataset and the `dynamics` settings, so that `evaluate` and `predict` rebuild exactly what `train` trained on, and
`train` run again on the folder resumes only when those agree.

Example:
    train("runs/synthetic", "runs/synthetic_dynamics")
    report = evaluate("runs/synthetic_dynamics")
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
import yaml

from fgbg_tf.config import ConfigError, config_from_dict, dataset_config_path, load_config
from fgbg_tf.data import get_dataset
from fgbg_tf.data.media import VideoWriter
from fgbg_tf.dynamics.evaluation import METHODS, evaluate_rollouts, format_report, scored_windows
from fgbg_tf.dynamics.sequences import extract_states, video_clips
from fgbg_tf.dynamics.training import load_dynamics, train_dynamics
from fgbg_tf.evaluation.figures import label_rows, line_plot, save_png
from fgbg_tf.evaluation.lpips import load_lpips
from fgbg_tf.evaluation.runner import data_config
from fgbg_tf.serving.video_module import VideoPredictionModule, export_video_model, reference_rollout
from fgbg_tf.training.checkpoints import load_run_config, load_trained_model

logger = logging.getLogger("fgbg_tf.video_prediction")

SETTINGS_FILE = "video_prediction.yaml"
STATES_FILE = "train_states.npz"
# Columns of the pictures: at most this many predicted frames, evenly spaced.
_PICTURE_FRAMES = 10


def train(checkpoint, output, dataset=None, data_dir=None, overrides=(), seed: int = 0, progress: bool = True):
    """Fits the LSTM on the training clips' states of the landmark model at `checkpoint`; returns the run folder."""
    bad = [o for o in overrides if not o.strip().startswith("dynamics.")]
    if bad:
        raise ConfigError(f"video_prediction train sets only dynamics.* keys, got {bad}")
    run_config, _, prefix = load_run_config(checkpoint)
    name = dataset or run_config.data.name
    # The dataset's protocol (its config's dynamics section), then the user's overrides.
    dynamics = load_config(name if dataset_config_path(name).is_file() else None, overrides=overrides).dynamics
    data = data_config(run_config, dataset, data_dir, dynamics.data_options)
    model, _, step = load_trained_model(checkpoint)
    if Path(checkpoint).is_dir():
        prefix = str(Path(prefix).with_name(f"ckpt-{step}"))
    output = Path(output)
    settings = {"landmark_checkpoint": str(Path(prefix).resolve()), "landmark_step": step, "dataset": data.name,
                "data_dir": data.data_dir, "dynamics": dataclasses.asdict(dynamics)}
    _write_or_check_settings(output, settings)

    states = _cached_train_states(output, model, data)
    logger.info("training the dynamics of %s on %d clips (%d frames) for %d steps, output %s", data.name,
                len(states), sum(len(s) for s in states), dynamics.max_steps, output)
    writer = tf.summary.create_file_writer(str(output / "logs"))
    bar = keras.utils.Progbar(dynamics.max_steps, stateful_metrics=["loss"]) if progress and sys.stdout.isatty() else None
    started = time.perf_counter()

    def on_step(current, loss):
        if bar is not None:
            bar.update(current, [("loss", loss)])
        if current % dynamics.log_every == 0 or current == dynamics.max_steps:
            with writer.as_default(step=current):
                tf.summary.scalar("dynamics/loss", loss)
            if bar is None:
                logger.info("step %d/%d: loss %.4f (%.0f s)", current, dynamics.max_steps, loss,
                            time.perf_counter() - started)

    train_dynamics(states, dynamics, output, seed, on_step)
    writer.flush()
    return output


def evaluate(run, output=None, lpips_weights=None, max_windows: int | None = None) -> dict:
    """Scores the run's rollouts on the test clips; writes report.json, report.txt, figure4.png and figure5.png."""
    run = Path(run)
    settings, model, dynamics, normaliser, clips, states = _load_run(run)
    try:
        lpips = load_lpips(lpips_weights)
    except (ValueError, OSError) as error:
        raise ConfigError(f"--lpips-weights: {error}") from None
    report, strips = evaluate_rollouts(model, dynamics, normaliser, clips, states, settings["config"], lpips,
                                       max_windows)
    report = {"landmark_checkpoint": settings["landmark_checkpoint"], "dataset": settings["dataset"],
              "variant": model.variant, "image_size": model.image_size, **report}
    output = Path(output) if output is not None else run / "eval"
    output.mkdir(parents=True, exist_ok=True)
    pictures = {"figure4": _strip_figure(strips, model.variant), "figure5": _curves_figure(report)}
    for name, picture in pictures.items():
        save_png(output / f"{name}.png", picture)
    (output / "report.json").write_text(json.dumps(report, indent=1))
    table = format_report(report)
    (output / "report.txt").write_text(table + "\n")
    writer = tf.summary.create_file_writer(str(run / "logs"))
    with writer.as_default(step=settings["config"].max_steps):
        for method, scores in report["frames"].items():
            for metric, value in scores.items():
                if value is not None:
                    tf.summary.scalar(f"eval/{method}/{metric}", value["mean"])
        for name in ("predicted", "hold_last"):
            tf.summary.scalar(f"eval/landmarks/{name}_px", report["landmarks"][name]["mean"])
        for name, picture in pictures.items():
            tf.summary.image(f"eval/{name}", picture[None], max_outputs=1)
    writer.flush()
    print(table)
    return report


def predict(run, output=None, num_clips: int = 4) -> Path:
    """Rolls out the first `num_clips` test windows (in clip order, `scored_windows`): a PNG strip and a video of
    each."""
    run = Path(run)
    settings, model, dynamics, normaliser, clips, states = _load_run(run)
    config = settings["config"]
    output = Path(output) if output is not None else run / "predictions"
    _, strips = evaluate_rollouts(model, dynamics, normaliser, clips, states, config, None, strip_count=num_clips,
                                  max_windows=num_clips)
    size = model.image_size
    for strip in strips:
        stem = output / strip["name"].replace("/", "_").replace("@", "_from_")
        save_png(f"{stem}.png", _strip_figure([strip], model.variant))
        with VideoWriter(stem, 5.0, (3 * size, size)) as video:
            for frame in strip["seed"]:
                video.write(np.concatenate([frame, frame, frame], axis=1))
            for row in zip(*(strip[key] for key in ("truth", "predicted", "true_landmarks"))):
                video.write(np.concatenate(row, axis=1))
    logger.info("wrote %d rollouts to %s (videos: truth | prediction | true landmarks rendered)", len(strips), output)
    return output


def _write_or_check_settings(output: Path, settings: dict) -> None:
    path = output / SETTINGS_FILE
    if path.is_file():
        saved = yaml.safe_load(path.read_text())
        differ = sorted(k for k in settings if saved.get(k) != settings[k])
        if differ:
            raise ConfigError(f"{output} holds a video-prediction run with other settings ({', '.join(differ)} "
                              f"differ; see {path}): use a new --output folder, or that run's settings to resume")
        return
    output.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(settings, sort_keys=False))


def _cached_train_states(output: Path, model, data) -> list[np.ndarray]:
    """The training clips' states, extracted once per run folder (a resumed run reads them back)."""
    path = output / STATES_FILE
    if path.is_file():
        with np.load(path) as stored:
            return [stored[f"clip_{i}"] for i in range(len(stored.files))]
    clips = video_clips(get_dataset(data), "train")
    started = time.perf_counter()
    states = extract_states(model, [frames for _, frames in clips])
    logger.info("landmark states of %d training clips in %.0f s", len(clips), time.perf_counter() - started)
    np.savez(path, **{f"clip_{i}": s for i, s in enumerate(states)})
    return states


def _load_run(run: Path):
    """(settings, landmark model, LSTM, normaliser, test clips, their states) of a run folder."""
    path = run / SETTINGS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: {run} is not a run of `python -m fgbg_tf.video_prediction train`")
    settings = yaml.safe_load(path.read_text())
    try:
        dynamics_config = config_from_dict({"dynamics": settings["dynamics"]}).dynamics
    except (ConfigError, KeyError, TypeError) as error:
        raise ConfigError(f"{path}: not a readable video-prediction settings file ({error})") from None
    settings["config"] = dynamics_config
    model, run_config, _ = load_trained_model(settings["landmark_checkpoint"])
    data = data_config(run_config, settings["dataset"], settings["data_dir"], dynamics_config.data_options)
    dynamics, normaliser = load_dynamics(run, model.num_landmarks, dynamics_config)
    clips = video_clips(get_dataset(data), "test")
    scored_windows(clips, dynamics_config.seed_frames + dynamics_config.predicted_frames)  # fails early if none fits
    states = extract_states(model, [frames for _, frames in clips])
    return settings, model, dynamics, normaliser, clips, states


def _columns(count: int) -> np.ndarray:
    return np.unique(np.linspace(0, count - 1, min(_PICTURE_FRAMES, count)).round().astype(int))


def _strip_figure(strips, variant: str) -> np.ndarray:
    """Figure 4's layout per window: the last seed frame, then the truth over the prediction at spaced frames."""
    rows, labels = [], []
    for strip in strips:
        columns = _columns(len(strip["truth"]))
        seed = strip["seed"][-1]
        blank = np.full_like(seed, 255)
        for key, label in (("truth", "ground truth"), ("predicted", f"predicted ({variant})")):
            rows.append(np.concatenate([seed if key == "truth" else blank, *strip[key][columns]], axis=1))
            labels.append(f"{strip['name']}: {label}")
    return label_rows(np.concatenate(rows, axis=0), labels, width=220)


def _curves_figure(report: dict) -> np.ndarray:
    """Figure 5's layout: each metric per predicted frame, one curve per method, bars of one standard error."""
    first = report["seed_frames"] + 1
    plots = []
    for metric, title in (("psnr", "PSNR (dB)"), ("ssim", "SSIM"), ("one_minus_lpips", "1 - LPIPS")):
        series = {}
        for method in METHODS:
            scores = report["frames"][method].get(metric)
            if scores is not None:
                xs = np.arange(first, first + len(scores["curve"]))
                series[method] = (xs, np.asarray(scores["curve"]), np.asarray(scores["curve_stderr"]))
        if series:
            plots.append(line_plot(series, title=f"{title} per predicted frame ({report['dataset']})",
                                   x_label="frame number", y_label=title, size=(480, 360)))
    return np.concatenate(plots, axis=1)


# Test windows on which `export` checks the SavedModel against this pipeline.
_EXPORT_CHECK_WINDOWS = 4


def export(run, output=None, horizon: int | None = None) -> dict:
    """Writes the run's predictor as a SavedModel (`serving/video_module.py`), checked against the Python pipeline.

    Args:
        run: a folder written by `train`.
        output: the export folder (default RUN/export): saved_model/ and export_report.json.
        horizon: the frames the SavedModel predicts (default the run's dynamics.predicted_frames).

    Returns the report (also written as JSON). Raises RuntimeError when the SavedModel does not reproduce the
    pipeline's means and frames on the first test windows (`export_video_model`).
    """
    run = Path(run)
    settings, model, dynamics, normaliser, clips, states = _load_run(run)
    config = settings["config"]
    seeds = config.seed_frames
    appearance_index = seeds - 1 if config.appearance_frame == "last" else 0
    module = VideoPredictionModule(model, dynamics, normaliser, seeds, horizon or config.predicted_frames,
                                   appearance_index)
    windows = scored_windows(clips, seeds)[:_EXPORT_CHECK_WINDOWS]
    seed_frames = np.stack([clips[c][1][s:s + seeds] for c, s in windows])
    seed_states = np.stack([states[c][s:s + seeds] for c, s in windows])
    reference = reference_rollout(module, seed_states, seed_frames[:, appearance_index])
    metadata = {"run": str(run.resolve()), "landmark_checkpoint": settings["landmark_checkpoint"],
                "landmark_step": settings["landmark_step"], "dataset": settings["dataset"],
                "appearance_frame": config.appearance_frame}
    report = export_video_model(module, Path(output) if output is not None else run / "export", seed_frames,
                                reference, metadata)
    saved = report["saved_model"]
    logger.info("wrote %s: predict_video, %d seed -> %d frames; on %d test windows it is %.2g px and %d grey levels "
                "from the Python pipeline", saved["path"], seeds, module.horizon, saved["checked_windows"],
                saved["max_mean_deviation_pixels"], saved["max_frame_deviation"])
    return report
