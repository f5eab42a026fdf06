"""A user's own annotations for `evaluate`: a keypoints CSV and a folder of foreground masks.

The keypoints CSV (`data.options.keypoints`) has a header row and one row per annotated frame:

    file,frame,nose_x,nose_y,tail_x,tail_y          (or x1,y1,x2,y2,...: the points are then named 1, 2, ...)
    cage1.mp4,0,310.5,220,402,260
    cage1.mp4,25,315,224,,                          (an empty or NaN pair: that point is missing in that frame)
    day2/frames,120,...                             (a folder of numbered frames: the number in the file name)

`file` is the video's path relative to `data_dir` as the `videos` reader names it; `frame` is the 0-based frame
index of a video file, or the number in the frame file's name for a folder of numbered frames. Coordinates are in
pixels of the original frame (x to the right, y down, pixel i at i), before any framing: the reader maps them
through the framing's box into the model's S x S input, and `predict` maps landmarks back the same way.

The masks folder (`data.options.masks`) holds one image per annotated frame, `<file>/<frame>.png` (any image
format `read_image` decodes, same size as the frame; PNG keeps labels exact, JPEG does not): a non-zero first channel
(0/1 or 0/255 labels alike) is foreground.

Example:
    names, points = read_keypoints_csv("my_videos/keypoints.csv")   # points[("cage1.mp4", 0)] -> [J, 2]
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

from fgbg_tf.data.base import DatasetError
from fgbg_tf.data.media import IMAGE_SUFFIXES, read_image


def read_keypoints_csv(path: str | Path) -> tuple[tuple[str, ...], dict[tuple[str, int], np.ndarray]]:
    """(keypoint names, {(file, frame): float64 [J, 2] with NaN for a missing point}) of a keypoints CSV.

    Raises DatasetError naming the file, the line and what was expected for a malformed header or row, a frame
    annotated twice, or a file without any annotated point.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"data.options.keypoints: {path} does not exist; expected a CSV with a header "
                           "'file,frame,x1,y1,...' (see fgbg_tf/data/annotations.py)")
    with open(path, newline="", encoding="utf-8-sig") as handle:
        rows = list(csv.reader(handle))
    if not rows:
        raise DatasetError(f"{path}: empty; expected a header 'file,frame,x1,y1,...' and one row per frame")
    names = _point_names(path, [cell.strip() for cell in rows[0]])
    points = {}
    for line, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != 2 + 2 * len(names):
            raise DatasetError(f"{path} line {line}: {len(row)} columns, the header has {2 + 2 * len(names)}")
        file = row[0].strip()
        try:
            frame = int(row[1])
            values = [float(cell) if cell.strip() else math.nan for cell in row[2:]]
        except ValueError:
            raise DatasetError(f"{path} line {line}: expected an integer frame and numbers (or empty cells), got "
                               f"{row[1:]}") from None
        if not file or frame < 0:
            raise DatasetError(f"{path} line {line}: expected a file name and a frame >= 0, got {row[:2]}")
        if (file, frame) in points:
            raise DatasetError(f"{path} line {line}: {file} frame {frame} is annotated twice")
        points[(file, frame)] = np.array(values, np.float64).reshape(len(names), 2)
    if not points:
        raise DatasetError(f"{path}: a header but no annotated frame")
    return names, points


def _point_names(path: Path, header: list[str]) -> tuple[str, ...]:
    expected = "expected 'file,frame' then an x and a y column per point ('x1,y1,...' or 'nose_x,nose_y,...')"
    if len(header) < 4 or len(header) % 2 or [h.lower() for h in header[:2]] != ["file", "frame"]:
        raise DatasetError(f"{path}: header {header}: {expected}")
    names = []
    for x, y in zip(header[2::2], header[3::2]):
        if x.lower().endswith("_x") and y.lower() == x[:-2].lower() + "_y":
            names.append(x[:-2])
        elif x.lower().startswith("x") and y.lower() == "y" + x[1:].lower():
            names.append(x[1:])
        else:
            raise DatasetError(f"{path}: header columns {x!r}, {y!r}: {expected}")
    if len(set(names)) != len(names) or not all(names):
        raise DatasetError(f"{path}: header point names {names} must be distinct and not empty")
    return tuple(names)


def to_input_pixels(points: np.ndarray, size: int, box: tuple[int, int, int, int]) -> np.ndarray:
    """Maps (x, y) pixels [..., 2] of an original frame into the S x S input cut from it by `box` (the inverse of
    `media.to_original_pixels`)."""
    x, y, width, height = box
    scale = np.array([width / size, height / size], np.float64)
    return (np.asarray(points, np.float64) - np.array([x, y], np.float64) + 0.5) / scale - 0.5


def find_mask(root: Path, file: str, frame: int) -> Path:
    """The mask image of `file`'s frame `frame` under `root` (`<file>/<frame>.<image suffix>`)."""
    folder = root / file
    for suffix in IMAGE_SUFFIXES:
        candidate = folder / f"{frame}{suffix}"
        if candidate.is_file():
            return candidate
    raise DatasetError(f"data.options.masks: no mask for {file} frame {frame}: expected {folder / f'{frame}.png'}")


def read_mask(path: Path, height: int, width: int) -> np.ndarray:
    """A mask file as uint8 [H, W, 3] with 255 where its first channel is non-zero (checked against the frame's
    size); 255, not 1, so that the framing's antialiased resize can be thresholded at half."""
    image = read_image(path)
    if image.shape[:2] != (height, width):
        raise DatasetError(f"{path}: mask is {image.shape[1]}x{image.shape[0]}, its frame {width}x{height}")
    foreground = image[..., :1] > 0
    return np.repeat(foreground, 3, axis=-1).astype(np.uint8) * 255
