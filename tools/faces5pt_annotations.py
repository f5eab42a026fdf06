"""Checks that the faces5pt annotations sit on the faces their crops show (docs/protocols.md, "faces5pt").

A ridge regressor from pooled VGG19 relu4_2 features (the loss's Caffe weights) to the five points is fitted on the
training crops outside `fgbg_tf.data.faces5pt.MISALIGNED`, then predicts every crop; per group of crops it prints
the mean offset (predicted - annotated) of the points and the share of crops whose mean vertical offset exceeds
`--threshold` pixels. Held-out crops of the fitted group are predicted by 4-fold cross-fitting, so every number is out
of sample. A group whose points sit off its faces shows a large, consistent offset; the other groups stay within the
regressor's own noise (about 2 px).

    python tools/faces5pt_annotations.py --data-dir ../shared/data/faces5pt

Takes about 7 minutes alone on 2 cores (VGG19 on 12,995 crops at 80 px, then five ridge fits).
"""

from __future__ import annotations

import argparse
import fnmatch
from pathlib import Path

import numpy as np

from fgbg_tf.config import DataConfig
from fgbg_tf.data.faces5pt import CROP_SIZE, MISALIGNED, Faces5ptDataset


def pooled_features(images: np.ndarray, batch: int = 250) -> np.ndarray:
    """relu4_2 of VGG19 (10 x 10 at 80 px), averaged over 2 x 2 cells: [N, 5 * 5 * 512]."""
    from fgbg_tf.loss.vgg19 import build_vgg19_features, to_caffe_input

    vgg = build_vgg19_features()
    out = []
    for start in range(0, len(images), batch):
        chunk = images[start : start + batch].astype(np.float32) / 127.5 - 1.0
        relu4_2 = vgg(to_caffe_input(chunk), training=False)[3].numpy()
        n, h, w, c = relu4_2.shape
        out.append(relu4_2.reshape(n, h // 2, 2, w // 2, 2, c).mean(axis=(2, 4)).reshape(n, -1))
    return np.concatenate(out)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", required=True, help="the faces5pt folder (../shared/data/faces5pt)")
    parser.add_argument("--threshold", type=float, default=10.0, help="pixels of mean vertical offset (default 10)")
    args = parser.parse_args(argv)
    from sklearn.linear_model import Ridge
    from sklearn.model_selection import cross_val_predict

    faces = Faces5ptDataset(DataConfig(name="faces5pt", data_dir=args.data_dir, image_size=CROP_SIZE,
                                       options={"misaligned_annotations": "keep"}))
    root = Path(args.data_dir)
    groups = {}
    for split in ("train", "test"):
        sources, keypoints = faces.index[split]
        images = faces._images(split)[0].numpy()
        names = [Path(s).relative_to(root).as_posix() for s in sources]
        misaligned = np.array([fnmatch.fnmatchcase(n, MISALIGNED) for n in names])
        if split == "train":
            groups["train, other crops"] = (images[~misaligned], keypoints[~misaligned], True)
            groups[f"train, {MISALIGNED}"] = (images[misaligned], keypoints[misaligned], False)
        else:
            groups["test"] = (images, keypoints, False)
    features = {name: pooled_features(images) for name, (images, _, _) in groups.items()}
    fit_name = "train, other crops"
    fit_points = groups[fit_name][1].reshape(len(groups[fit_name][1]), -1)
    ridge = Ridge(alpha=1e4, solver="lsqr")
    fitted_ridge = Ridge(alpha=1e4, solver="lsqr").fit(features[fit_name], fit_points)
    print(f"{'group':<28} {'crops':>6}  mean offset (dx, dy) px  |dy| > {args.threshold:g} px")
    for name, (_, points, fitted) in groups.items():
        if fitted:
            predicted = cross_val_predict(ridge, features[name], fit_points, cv=4)
        else:
            predicted = fitted_ridge.predict(features[name])
        offset = predicted.reshape(points.shape) - points
        dy = offset[..., 1].mean(axis=1)
        print(f"{name:<28} {len(points):>6}  ({offset[..., 0].mean():+6.1f}, {offset[..., 1].mean():+6.1f})"
              f"             {int((np.abs(dy) > args.threshold).sum()):>5}  (median dy {np.median(dy):+.1f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
