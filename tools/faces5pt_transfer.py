"""Where a faces5pt run's test error comes from: the transfer from the training photographs to the AFLW faces.

The protocol fits the regressor on the training crops and scores it on AFLW's (docs/protocols.md); a run's
`evaluate` report gives the error and the test split's self-fitted reference, whose difference is the transfer.
This tool splits that difference up, for one checkpoint:

* per point, on both splits, and the mean offset (predicted - annotated) of each point in inter-ocular units;
* the slope of the regressed coordinates against the annotated ones (1 is unbiased; a fitted split sits just below
  1, the regression's own shrinkage): a lower slope on the test split means its predicted faces are too small;
* by how far the face is turned: the nose's horizontal offset from the eye-mouth midline over the inter-ocular
  distance, in quantile bins of the test split;
* grey crops (AFLW has more) against colour ones, and the colour crops scored again after conversion to grey;
* the training crops zoomed about their centre to the test faces' size (x 1.25, x 1.5), scored by the same
  regressor with their points moved alike: if the error stays, the faces' size is not what fails to transfer.

    python tools/faces5pt_transfer.py --checkpoint RUN/checkpoints/ckpt-3200 --data-dir ../shared/data/faces5pt

About a minute alone on 2 cores at 64 px (the splits, then 1,500 crops per zoom). Used in docs/training.md, run AV.
"""

from __future__ import annotations

import argparse

import numpy as np
import tensorflow as tf

from fgbg_tf.augment.color_jitter import rgb_to_grayscale
from fgbg_tf.data import get_dataset
from fgbg_tf.evaluation import metrics
from fgbg_tf.evaluation.regression import apply_regressor, fit_regressor
from fgbg_tf.evaluation.runner import data_config, make_detector, run_split
from fgbg_tf.training.checkpoints import load_run_config, load_trained_model

ZOOMS = (1.25, 1.5)


def normalised_errors(predicted, keypoints) -> np.ndarray:
    """[N, J] point errors over each face's inter-ocular distance."""
    return metrics.point_errors(predicted, keypoints) / metrics.interocular_distance(keypoints)[:, None]


def slopes(predicted, keypoints) -> np.ndarray:
    """Least-squares slope (with intercept) of predicted against annotated coordinates, per axis: [2]."""
    return np.array([np.polyfit(keypoints[..., c].ravel(), predicted[..., c].ravel(), 1)[0] for c in range(2)])


def turn(keypoints) -> np.ndarray:
    """|nose x - midpoint of the eyes' and mouth corners' centres x| / inter-ocular distance, per face: [N]."""
    middle = (keypoints[:, [0, 1, 3, 4], 0]).mean(axis=1)
    return np.abs(keypoints[:, 2, 0] - middle) / metrics.interocular_distance(keypoints)


def is_gray(images, tolerance: float = 8.0) -> np.ndarray:
    """Crops whose channels differ by at most `tolerance` (of 255) anywhere: [N] bool."""
    images = np.asarray(images, np.float32)
    scale = 255.0 if images.max() > 2.0 else 1.0
    return np.abs(images - images.mean(axis=-1, keepdims=True)).max(axis=(1, 2, 3)) <= tolerance / 255.0 * scale


def zoom_about_centre(batch: dict, zoom: float, size: int) -> dict:
    """The crop enlarged `zoom` times about its centre (bilinear), its keypoints moved alike."""
    image = batch["image"]
    half = 0.5 / zoom
    z = tf.image.crop_and_resize(tf.cast(image, tf.float32)[None], [[0.5 - half, 0.5 - half, 0.5 + half, 0.5 + half]],
                                 [0], (size, size))[0]
    centre = (size - 1) / 2.0  # crop_and_resize puts the box's corners on the first and last pixel centres
    return {**batch, "image": tf.cast(z, image.dtype),
            "keypoints": centre + (tf.cast(batch["keypoints"], tf.float32) - centre) * zoom}


def to_gray(batch: dict) -> dict:
    image = batch["image"]
    gray = rgb_to_grayscale(tf.cast(image, tf.float32))  # the colour jitter's luma
    gray = tf.round(gray) if image.dtype.is_integer else gray
    return {**batch, "image": tf.cast(tf.tile(gray, [1, 1, 3]), image.dtype)}


def landmarks_with(reader, detect, split: str, transform=None, max_frames: int | None = None):
    """run_split over `split` with `transform` mapped over its frames."""
    if transform is None:
        return run_split(detect, reader, split, 32, max_frames)
    original = reader.eval_split
    reader.eval_split = lambda name: original(name).map(transform)
    try:
        return run_split(detect, reader, split, 32, max_frames)
    finally:
        reader.eval_split = original


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="a faces5pt run's checkpoint (RUN/checkpoints/ckpt-N)")
    parser.add_argument("--data-dir", required=True, help="the faces5pt folder")
    parser.add_argument("--zoom-frames", type=int, default=1500, help="training crops scored per zoom")
    args = parser.parse_args(argv)

    run_config, _, _ = load_run_config(args.checkpoint)
    data = data_config(run_config, None, args.data_dir, None)
    if data.name != "faces5pt":
        raise SystemExit(f"{args.checkpoint}: a {data.name} run; this tool reads faces5pt runs")
    reader = get_dataset(data)
    model, _, step = load_trained_model(args.checkpoint)
    model.trainable = False
    detect = make_detector(model, data.image_size)
    fit_split, test_split = reader.regression_splits
    fit = landmarks_with(reader, detect, fit_split)
    test = landmarks_with(reader, detect, test_split)
    regressor = fit_regressor(fit.means_pixels, fit.keypoints, "top_left", data.image_size)
    print(f"{args.checkpoint} (step {step}), top-left origin, errors in % of the inter-ocular distance")

    errors = {}
    for name, part in ((fit_split, fit), (test_split, test)):
        predicted = apply_regressor(regressor, part.means_pixels)
        errors[name] = normalised_errors(predicted, part.keypoints)
        offset = 100 * ((predicted - part.keypoints)
                        / metrics.interocular_distance(part.keypoints)[:, None, None]).mean(axis=0)
        print(f"{name:6s} error {100 * errors[name].mean():6.2f}  per point "
              f"{np.round(100 * errors[name].mean(axis=0), 1).tolist()}  slope x, y "
              f"{np.round(slopes(predicted, part.keypoints), 3).tolist()}")
        print(f"{'':6s} mean offset (x, y) per point {np.round(offset, 1).tolist()}")

    per_face = errors[test_split].mean(axis=1)
    turned = turn(test.keypoints)
    edges = np.quantile(turned, [0.0, 0.25, 0.5, 0.75, 0.9, 1.0])
    print(f"{test_split} by turn (nose offset / inter-ocular distance):")
    for low, high in zip(edges[:-1], edges[1:]):
        inside = (turned >= low) & ((turned < high) | (high == edges[-1]))
        print(f"  [{low:.2f}, {high:.2f}]  {inside.sum():5d} faces  error {100 * per_face[inside].mean():6.2f}")

    images = np.concatenate([b["image"].numpy() for b in reader.eval_split(test_split).batch(256)])
    if len(images) != len(per_face):
        print(f"({len(images) - len(per_face)} test frames were dropped: the grey comparison is skipped)")
    else:
        gray = is_gray(images)
        grayed = landmarks_with(reader, detect, test_split, to_gray)
        grayed_errors = normalised_errors(apply_regressor(regressor, grayed.means_pixels), grayed.keypoints).mean(1)
        print(f"{test_split} grey crops {gray.sum()} of {len(gray)}: error {100 * per_face[gray].mean():.2f}; "
              f"colour {100 * per_face[~gray].mean():.2f}, the same converted to grey "
              f"{100 * grayed_errors[~gray].mean():.2f}")

    scored = []
    for zoom in (1.0,) + ZOOMS:
        transform = None if zoom == 1.0 else (lambda b, z=zoom: zoom_about_centre(b, z, data.image_size))
        part = landmarks_with(reader, detect, fit_split, transform, args.zoom_frames)
        predicted = apply_regressor(regressor, part.means_pixels)
        scored.append(f"x {zoom:.2f} {100 * normalised_errors(predicted, part.keypoints).mean():.2f}")
    print(f"{fit_split} crops zoomed (the first {args.zoom_frames}; the same regressor): " + ", ".join(scored))


if __name__ == "__main__":
    main()
