"""Dumps what the release control trains on and is scored on, from fgbg_tf's own pipeline (fgbg_tf's virtualenv).

    python tools/release_control/dump.py --out /tmp/control/data.npz [--dataset synthetic] [--set key=value ...]

Writes one .npz with
  train_pose, train_appearance, train_target  float16 [steps, B, S, S, 3] in [-1, 1]: the training batches of an
                                              fgbg_tf run with the same config, step by step (float16 keeps the
                                              colour jitter to 1e-3; the frames themselves are uint8-exact)
  fit_image, fit_keypoints, fit_valid         the regression fit split (uint8 images, keypoints in pixels)
  report_image, report_keypoints, report_valid, report_mask
                                              the report split, with its figure masks for the containment
  fact_image, fact_partner, fact_mask, fact_background
                                              the report split's frames with temporal partners (fg/bg metrics)
  vgg_<layer>_weight, vgg_<layer>_bias        the Caffe VGG19 convolutions fgbg_tf's loss uses, in PyTorch layout
  settings                                    JSON: the model, loss and optimiser settings train_release.py needs
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from fgbg_tf.config import DATASET_NAMES, load_config
from fgbg_tf.data import get_dataset
from fgbg_tf.data.pipeline import training_batches
from fgbg_tf.loss.perceptual import LAYER_NAMES
from fgbg_tf.loss.vgg19 import CAFFE_BGR_MEAN, build_vgg19_features, fetch_vgg19_weights


def split_arrays(dataset, split: str, with_mask: bool) -> dict:
    """All frames of an evaluation split, in order: what fgbg_tf.evaluate runs its detector over."""
    parts = {"image": [], "keypoints": [], "valid": [], "mask": []}
    for batch in dataset.eval_split(split).batch(256):
        parts["image"].append(batch["image"].numpy())
        parts["keypoints"].append(batch["keypoints"].numpy())
        count = len(parts["image"][-1])
        parts["valid"].append(batch["valid"].numpy() if "valid" in batch else np.ones(count, bool))
        if with_mask:
            parts["mask"].append(batch["mask"].numpy())
    return {k: np.concatenate(v) for k, v in parts.items() if v}


def vgg_arrays(weights) -> dict:
    """The VGG19 convolutions up to block4_conv2 as PyTorch [out, in, 3, 3] kernels, in network order."""
    if weights is None:
        fetch_vgg19_weights()
    features = build_vgg19_features(weights)
    arrays = {}
    for layer in features.layers:
        if layer.__class__.__name__ == "Conv2D":
            kernel, bias = layer.get_weights()
            arrays[f"vgg_{layer.name}_weight"] = np.ascontiguousarray(kernel.transpose(3, 2, 0, 1))
            arrays[f"vgg_{layer.name}_bias"] = bias
    return arrays


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="the .npz to write")
    parser.add_argument("--dataset", default="synthetic", choices=DATASET_NAMES)
    parser.add_argument("--config", action="append", default=[], metavar="FILE")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides")
    parser.add_argument("--steps", type=int, help="training steps to dump (default: the config's train.max_steps)")
    args = parser.parse_args(argv)
    config = load_config(args.dataset, args.config, args.overrides)
    steps = args.steps or config.train.max_steps
    dataset = get_dataset(config.data)
    if not hasattr(dataset, "factorisation_split"):
        print(f"{config.data.name} has no ground-truth masks and backgrounds; the control needs them", file=sys.stderr)
        return 2

    size, batch = config.data.image_size, config.train.batch_size
    train = {k: np.empty((steps, batch, size, size, 3), np.float16) for k in ("pose", "appearance", "target")}
    for step, views in enumerate(training_batches(dataset, config, batch).take(steps)):
        for key, array in train.items():
            array[step] = views[key].numpy()
    fit_split, report_split = dataset.regression_splits
    arrays = {f"train_{k}": v for k, v in train.items()}
    arrays.update({f"fit_{k}": v for k, v in split_arrays(dataset, fit_split, False).items()})
    arrays.update({f"report_{k}": v for k, v in split_arrays(dataset, report_split, True).items()})
    arrays.update({f"fact_{k}": v for k, v in dataset.factorisation_split(report_split).items()})
    arrays.update(vgg_arrays(config.loss.vgg_weights))
    m, loss, t = config.model, config.loss, config.train
    settings = {
        "dataset": config.data.name, "split_names": [fit_split, report_split],
        "keypoint_names": list(dataset.keypoint_names), "image_size": size, "batch_size": batch, "steps": steps,
        "num_landmarks": m.num_landmarks, "variant": m.variant, "covariance": m.covariance,
        "fixed_covariance": m.fixed_covariance, "low_res_mask": m.low_res_mask,
        "layer_names": list(LAYER_NAMES), "layer_weights": list(loss.layer_weights), "pixel_weight": loss.pixel_weight,
        "loss_scale": loss.scale, "feature_scale": loss.feature_scale, "caffe_bgr_mean": list(CAFFE_BGR_MEAN),
        "learning_rate": t.learning_rate, "weight_decay": t.weight_decay, "adam_epsilon": t.adam_epsilon,
        "seed": t.seed,
    }
    arrays["settings"] = np.array(json.dumps(settings))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(out, **arrays)
    print(f"wrote {out}: {steps} steps of {batch} pairs at {size} px, "
          f"{len(arrays['fit_image'])} fit and {len(arrays['report_image'])} report frames")
    return 0


if __name__ == "__main__":
    sys.exit(main())
