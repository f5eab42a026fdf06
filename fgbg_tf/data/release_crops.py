"""The eval crops of the release protocol for BBC Pose: NVIDIA's `BBCPoseLandmarkEvalDataset`, re-implemented.

For a frame of W x H pixels whose joints g are the annotation file's MATLAB values, which the release uses as they
are, as 0-based pixel coordinates (docs/protocols.md, point 3):

    centre   c = (min g + max g) / 2, per axis
    box      (x0, y0, x1, y1) = (max(0, cx - s/2), max(0, cy - s/2), min(W, cx + s/2), min(H, cy + s/2)),  s = crop_size
    window   frame columns round(x0) .. round(x1) - 1 and rows round(y0) .. round(y1) - 1, rounded half to even as
             PIL's Image.crop rounds its box, resized to S x S whatever its aspect
    targets  (gx - x0 - w/2) / w and (gy - y0 - h/2) / h, with the unrounded box: w = x1 - x0, h = y1 - y0

So where the box reaches the frame border it is clipped, not padded: the crop is squashed and its targets are
measured in the clipped box (point 1). In pixels of the S x S crop a keypoint is (g - x0) S / w
(`crop_coordinates`), which is S / 2 where the release's target is 0, the release's regression origin
(`evaluation/regression.py`); `frame_coordinates` maps a predicted one back, x0 + p w / S, as the release's
map_to_supervised_landmarks_bbc.py does with its targets.

Example:
    crops = clipped_crops(joints_matlab, frame_sizes, crop_size=300, image_size=128, sources=paths)
"""

from __future__ import annotations

import numpy as np

from fgbg_tf.data.base import DatasetError
from fgbg_tf.data.video_frames import EvalCrops


def clipped_boxes(keypoints: np.ndarray, frame_sizes: np.ndarray, crop_size: int) -> np.ndarray:
    """The release's boxes, float64 [N, 4] (x0, y0, x1, y1), unrounded.

    Args:
        keypoints: [N, J, 2] (x, y) in the release's frame coordinates.
        frame_sizes: [N, 2] (width, height) of each frame.
        crop_size: s, the side of the box before clipping.
    """
    keypoints = np.asarray(keypoints, np.float64)
    centre = (keypoints.min(axis=1) + keypoints.max(axis=1)) / 2
    low = np.maximum(0.0, centre - crop_size / 2)
    high = np.minimum(np.asarray(frame_sizes, np.float64), centre + crop_size / 2)
    return np.concatenate([low, high], axis=1)


def crop_coordinates(keypoints, boxes, image_size: int) -> np.ndarray:
    """Frame coordinates [N, J, 2] -> pixels of the S x S crop, (g - x0) S / w, for boxes [N, 4] (x0, y0, w, h)."""
    boxes = np.asarray(boxes, np.float64)
    return (np.asarray(keypoints, np.float64) - boxes[:, None, :2]) * image_size / boxes[:, None, 2:]


def frame_coordinates(points, boxes, image_size: int) -> np.ndarray:
    """Inverse of `crop_coordinates`: crop pixels [N, J, 2] -> the release's frame coordinates, x0 + p w / S."""
    boxes = np.asarray(boxes, np.float64)
    return boxes[:, None, :2] + np.asarray(points, np.float64) * boxes[:, None, 2:] / image_size


def clipped_crops(keypoints, frame_sizes, crop_size: int, image_size: int, sources) -> EvalCrops:
    """The release's crops of N frames (the module docstring), as `EvalCrops` with boxes [x0, y0, w, h].

    Args:
        keypoints: [N, J, 2] in the release's frame coordinates (BBC: the MATLAB values as they are).
        frame_sizes: [N, 2] (width, height) of each frame.
        crop_size: s (300 for BBC).
        image_size: S.
        sources: [N] the frames' files, named when a box is empty.

    Raises DatasetError for a frame whose joints' centre lies so far outside the frame that its box is empty (the
    release cannot crop it either).
    """
    boxes = clipped_boxes(keypoints, frame_sizes, crop_size)
    window = np.rint(boxes).astype(np.int64)  # half to even, as Python's round() in PIL's Image.crop
    sizes = window[:, 2:] - window[:, :2]
    empty = np.flatnonzero((sizes <= 0).any(axis=1))
    if len(empty):
        raise DatasetError(f"the release protocol's box is empty for {len(empty)} frame(s), e.g. {sources[empty[0]]}: "
                           f"its joints' centre lies more than {crop_size / 2:g} px outside the frame")
    corner_size = np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1)
    return EvalCrops(
        corners=window[:, :2],
        sizes=sizes[:, ::-1].copy(),  # (height, width)
        keypoints=crop_coordinates(keypoints, corner_size, image_size).astype(np.float32),
        boxes=corner_size.astype(np.float32),
    )
