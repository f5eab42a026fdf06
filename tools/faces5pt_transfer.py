"""Where a faces5pt run's test error comes from: the transfer from the training photographs to the AFLW faces.

The protocol fits the regressor on the training crops and scores it on AFLW's (docs/protocols.md); a run's
`evaluate` report gives the error and the test split's self-fitted reference, whose difference is the transfer.
This tool splits that difference up, for one checkpoint:

* per point, on both splits, and the mean offset (predicted - annotated) of each point in inter-ocular units;
* the slope of the regressed coordinates against the annotated ones (1 is unbiased; a fitted split sits just below
  1, the regression's own shrinkage): a lower slope on the test split means its predicted faces are too small;
* by how far the face is turned (the nose's horizontal offset from the eye-mouth midline over the inter-ocular
  distance) and by its roll (the eye line's angle), in bins of the test split, on both splits;
* the fit split's error re-weighted to the test split's mix of turns and rolls (each turn x roll cell's faces
  weighted by the test split's share of that cell over the fit split's): the part of the transfer that the test
  split's poses explain, on faces the regressor was fitted on;
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
ROLL_EDGES = np.array([0.0, 5.0, 10.0, 20.0, 180.0])


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


def roll(keypoints) -> np.ndarray:
    """|angle of the line from the left eye to the right eye| in degrees, per face: [N] (0 upright)."""
    eyes = keypoints[:, 1] - keypoints[:, 0]
    return np.abs(np.degrees(np.arctan2(eyes[:, 1], eyes[:, 0])))


def bins(values, edges) -> np.ndarray:
    """Each value's bin, [N] int in [0, len(edges) - 2]: edges[b] <= value < edges[b + 1], the outer bins open-ended."""
    return np.clip(np.digitize(values, edges[1:-1]), 0, len(edges) - 2)


def pose_cells(keypoints, turn_edges, roll_edges) -> np.ndarray:
    """Each face's cell of the turn x roll grid, [N] int; the edges' outer values are open-ended."""
    return bins(turn(keypoints), turn_edges) * (len(roll_edges) - 1) + bins(roll(keypoints), roll_edges)


def reweighted_error(errors, cells, target_cells) -> tuple[float, float]:
    """The mean of per-face `errors` with each cell weighted to its share among `target_cells`.

    Returns (re-weighted mean, share of the target's faces in cells that `cells` has): target faces in cells with no
    source face cannot be represented, so that share says how far to trust the mean.
    """
    labels, counts = np.unique(cells, return_counts=True)
    source_share = dict(zip(labels, counts / len(cells)))
    target_labels, target_counts = np.unique(target_cells, return_counts=True)
    target_share = dict(zip(target_labels, target_counts / len(target_cells)))
    weights = np.array([target_share.get(c, 0.0) / source_share[c] for c in cells])
    covered = sum(share for c, share in target_share.items() if c in source_share)
    return float((errors * weights).sum() / weights.sum()), float(covered)


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
    fit = run_split(detect, reader, fit_split)
    test = run_split(detect, reader, test_split)
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

    per_face = {name: e.mean(axis=1) for name, e in errors.items()}
    tested = per_face[test_split]
    turn_edges = np.quantile(turn(test.keypoints), [0.0, 0.25, 0.5, 0.75, 0.9, 1.0])
    for label, measure, edges in (("turn (nose offset / inter-ocular distance)", turn, turn_edges),
                                  ("|roll| (degrees)", roll, ROLL_EDGES)):
        print(f"by {label}, bins of the {test_split} split: faces and error")
        index = {name: bins(measure(part.keypoints), edges) for name, part in ((fit_split, fit), (test_split, test))}
        for b, (low, high) in enumerate(zip(edges[:-1], edges[1:])):
            row = []
            for name in (fit_split, test_split):
                inside = index[name] == b
                error = f"{100 * per_face[name][inside].mean():6.2f}" if inside.any() else "     -"
                row.append(f"{name} {inside.sum():5d} {error}")
            print(f"  [{low:6.2f}, {high:6.2f}]  " + "  ".join(row))
    fit_cells = pose_cells(fit.keypoints, turn_edges, ROLL_EDGES)
    reweighted, covered = reweighted_error(per_face[fit_split], fit_cells,
                                           pose_cells(test.keypoints, turn_edges, ROLL_EDGES))
    print(f"{fit_split} error re-weighted to the {test_split} split's turns x rolls: {100 * reweighted:.2f} "
          f"(unweighted {100 * errors[fit_split].mean():.2f}, {test_split} {100 * tested.mean():.2f}; "
          f"{100 * covered:.1f} % of the {test_split} faces in cells the {fit_split} split has)")

    images = np.concatenate([b["image"].numpy() for b in reader.eval_split(test_split).batch(256)])
    if len(images) != len(tested):
        print(f"({len(images) - len(tested)} test frames were dropped: the grey comparison is skipped)")
    else:
        gray = is_gray(images)
        grayed = run_split(detect, reader, test_split, transform=to_gray)
        grayed_errors = normalised_errors(apply_regressor(regressor, grayed.means_pixels), grayed.keypoints).mean(1)
        print(f"{test_split} grey crops {gray.sum()} of {len(gray)}: error {100 * tested[gray].mean():.2f}; "
              f"colour {100 * tested[~gray].mean():.2f}, the same converted to grey "
              f"{100 * grayed_errors[~gray].mean():.2f}")

    scored = []
    for zoom in (1.0,) + ZOOMS:
        transform = None if zoom == 1.0 else (lambda b, z=zoom: zoom_about_centre(b, z, data.image_size))
        part = run_split(detect, reader, fit_split, 32, args.zoom_frames, transform=transform)
        predicted = apply_regressor(regressor, part.means_pixels)
        scored.append(f"x {zoom:.2f} {100 * normalised_errors(predicted, part.keypoints).mean():.2f}")
    print(f"{fit_split} crops zoomed (the first {args.zoom_frames}; the same regressor): " + ", ".join(scored))


if __name__ == "__main__":
    main()
