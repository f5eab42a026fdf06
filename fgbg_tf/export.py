"""Export: a SavedModel with named signatures and TFLite landmark detectors.

`python -m fgbg_tf.export --checkpoint RUN --output DIR [--formats saved_model,tflite]
[--quantize none,float16,int8] [--regressor FILE] [--calibration-dir DIR]` writes, as --formats asks,

    DIR/saved_model/                 saved_model: the SavedModel (every signature)
    DIR/landmarks_saved_model/       landmarks_saved_model: its landmark signatures alone (no decoder weights)
    DIR/landmarks_<variant>.tflite   tflite: the landmark detector, float32 ("none"), float16, int8
    DIR/landmarks.onnx               onnx: the landmark detector for ONNX Runtime (needs pip install -e ".[onnx]")
    DIR/export_report.json           per artefact: size, ms/image here, largest deviation from Keras; for a run on
                                     the user's own images or videos, their framing and original sizes (for predict)

The SavedModel's signatures are listed in `fgbg_tf/serving/module.py`, the TFLite variants in
`fgbg_tf/serving/tflite.py`, the ONNX file in `fgbg_tf/serving/onnx.py`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fgbg_tf.cli import import_tensorflow, run_command
from fgbg_tf.serving import DEFAULT_FORMATS, FORMATS, QUANTIZATIONS


def _list(text: str, allowed: tuple, flag: str) -> tuple:
    items = tuple(t.strip() for t in text.split(",") if t.strip())
    bad = [t for t in items if t not in allowed]
    if bad or not items:
        raise argparse.ArgumentTypeError(f"{flag} takes a comma-separated subset of {','.join(allowed)}, got {text!r}")
    return items


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m fgbg_tf.export", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="training output folder or checkpoint prefix")
    parser.add_argument("--output", required=True, help="folder for the exported artefacts")
    parser.add_argument("--formats", default=",".join(DEFAULT_FORMATS), type=lambda t: _list(t, FORMATS, "--formats"),
                        help=f"a comma-separated subset of {','.join(FORMATS)} (default {','.join(DEFAULT_FORMATS)})")
    parser.add_argument("--quantize", default="none,float16,int8",
                        type=lambda t: _list(t, QUANTIZATIONS, "--quantize"), help="TFLite variants")
    parser.add_argument("--regressor", help="regressor .json/.npz (fgbg_tf.evaluation.regression) for the keypoints signature")
    parser.add_argument("--calibration-dir", help="images for int8 calibration (default: the run's dataset)")
    parser.add_argument("--num-calibration", type=int, default=100, help="calibration images (default 100)")
    parser.add_argument("--num-evaluation", type=int, default=16,
                        help="images on which deviations and speed are measured (default 16)")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    import_tensorflow()
    from fgbg_tf.data.sources import framing_record
    from fgbg_tf.evaluation.regression import load_regressor
    from fgbg_tf.serving.export import REPORT_FILE, dataset_images, export_model, folder_images, format_report
    from fgbg_tf.serving.onnx import require_onnx
    from fgbg_tf.training.checkpoints import load_trained_model, resolve_checkpoint

    def body():
        if "onnx" in args.formats:
            require_onnx()  # before the model loads
        model, config, step = load_trained_model(args.checkpoint)
        regressor = load_regressor(args.regressor) if args.regressor else None
        size = model.image_size
        # How the training images were made square, and from which sizes: predict frames new ones the same way.
        framing = framing_record(config.data, resolve_checkpoint(args.checkpoint)[0])
        if args.calibration_dir:
            calibration = folder_images(args.calibration_dir, size, args.num_calibration)
            evaluation = calibration[: args.num_evaluation]
        else:
            calibration = dataset_images(config, 0, args.num_calibration)
            evaluation = dataset_images(config, 1, args.num_evaluation)
        report = export_model(model, args.output, args.formats, args.quantize, regressor, calibration, evaluation,
                              metadata={"checkpoint": str(args.checkpoint), "checkpoint_step": step,
                                        "dataset": config.data.name, **framing})
        print(format_report(report))
        print(f"report: {Path(args.output) / REPORT_FILE}")

    return run_command(body, {(FileNotFoundError, ValueError, RuntimeError): 2})


if __name__ == "__main__":
    sys.exit(main())
