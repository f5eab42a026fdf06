"""A user's own annotations for `evaluate`: a keypoints CSV and a folder of foreground masks (`images`, `videos`).

The keypoints CSV (`data.options.keypoints`) has a header row and one row per annotated frame or image:

    file,frame,nose_x,nose_y,tail_x,tail_y          (or x1,y1,x2,y2,...: the points are then named 1, 2, ...)
    cage1.mp4,0,310.5,220,402,260
    cage1.mp4,25,315,224,,                          (an empty or NaN pair: that point is missing in that frame)
    day2/frames,120,...                             (a folder of numbered frames: the number in the file name)

`file` is the video's or image's path relative to `data_dir` as the reader names it; `frame` is the 0-based frame
index of a video file, the number in the frame file's name for a folder of numbered frames, and 0 or empty for a
still image (`images`: `cats/tom.jpg,,12,40,...`). Coordinates are in pixels of the original frame or image (x to
the right, y down, pixel i at i), before any framing: the reader maps them through the framing's box into the
model's S x S input (a point the box leaves out keeps its coordinates outside the input), and `predict` maps
landmarks back the same way.

The masks folder (`data.options.masks`) holds one image per annotated frame, `<file>/<frame>.png` for a video, and
`<file without its suffix>.png` for a still image (`cats/tom.png` for `cats/tom.jpg`); any image format `read_image`
decodes, same size as the frame, but PNG keeps labels exact and JPEG does not: a non-zero first channel (0/1 or
0/255 labels alike) is foreground.

`read_annotations` checks all of it when a reader starts, so that a bad file stops a run before any work, and
`AnnotatedFrames` builds the reader's `eval_split` from it.

Example:
    names, points = read_keypoints_csv("my_videos/keypoints.csv")   # points[("cage1.mp4", 0)] -> [J, 2]
"""

from __future__ import annotations

import csv
import dataclasses
import math
from pathlib import Path

import numpy as np
import tensorflow as tf

from fgbg_tf.data.base import DatasetError
from fgbg_tf.data.media import IMAGE_SUFFIXES, frame_image, read_image


def read_keypoints_csv(path: str | Path, files: list[str] | None = None,
                       still_images: bool = False) -> tuple[tuple[str, ...], dict[tuple[str, int], np.ndarray]]:
    """(keypoint names, {(file, frame): float64 [J, 2] with NaN for a missing point}) of a keypoints CSV.

    `files`: the names the 'file' column may hold (the reader's files), or None to take any. `still_images`: the
    files are images, whose frame is 0 or an empty cell (read as 0).

    Raises DatasetError naming the file, the line and what was expected for a malformed header or row, an unknown
    file, a frame annotated twice, or a CSV without any annotated frame.
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
    kind = "an image" if still_images else "a video"
    known = None if files is None else set(files)
    points = {}
    for line, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != 2 + 2 * len(names):
            raise DatasetError(f"{path} line {line}: {len(row)} columns, the header has {2 + 2 * len(names)}")
        file = row[0].strip()
        try:
            frame = 0 if still_images and not row[1].strip() else int(row[1])
            values = [float(cell) if cell.strip() else math.nan for cell in row[2:]]
        except ValueError:
            frame_text = "a frame 0 or empty" if still_images else "an integer frame"
            raise DatasetError(f"{path} line {line}: expected {frame_text} and numbers (or empty cells), got "
                               f"{row[1:]}") from None
        if not file or frame < 0:
            raise DatasetError(f"{path} line {line}: expected a file name and a frame >= 0, got {row[:2]}")
        if known is not None and file not in known:
            raise DatasetError(f"{path} line {line}: {file!r} is not {kind} under data_dir; the 'file' column names "
                               f"{kind} by its path relative to data_dir, e.g. {sorted(known)[:3]}")
        if still_images and frame != 0:
            raise DatasetError(f"{path} line {line}: {file} is an image, a single frame: expected the frame 0 or an "
                               f"empty cell, got {row[1]!r}")
        if (file, frame) in points:
            raise DatasetError(f"{path} line {line}: {file} frame {frame} is annotated twice")
        points[(file, frame)] = np.array(values, np.float64).reshape(len(names), 2)
    if not points:
        raise DatasetError(f"{path}: a header but no annotated frame")
    return names, points


@dataclasses.dataclass(frozen=True)
class UserAnnotations:
    """What `read_annotations` found: the CSV's point names and points, the indices of the `normalise_by` pair
    (None without one), the masks folder (None without one), and whether the files are still images."""

    keypoint_names: tuple[str, ...]
    points: dict[tuple[str, int], np.ndarray]
    normalise_pair: tuple[int, int] | None
    masks_root: Path | None
    still_images: bool


def read_annotations(root: Path, options: dict, splits: dict[str, list[str]],
                     still_images: bool) -> UserAnnotations | None:
    """Reads and checks a reader's data.options keypoints, masks and normalise_by (None without keypoints).

    `splits`: {"train", "test"} -> the file names of each split; the regression protocol needs annotated files in
    both. Every mask is looked for now, so that a missing one stops the reader before any work.
    """
    keypoints, masks, pair = (options[k] for k in ("keypoints", "masks", "normalise_by"))
    kind = "image" if still_images else "video"
    if keypoints is None:
        if masks is not None or pair is not None:
            raise DatasetError(f"data.options.masks and data.options.normalise_by need data.options.keypoints "
                               f"(the {kind}s they apply to)")
        return None
    path = root / Path(keypoints).expanduser()  # relative to data_dir; an absolute path stays as it is
    names, points = read_keypoints_csv(path, [name for split in splits.values() for name in split], still_images)
    annotated_files = {file for file, _ in points}
    annotated = {split: [name for name in split_names if name in annotated_files]
                 for split, split_names in splits.items()}
    if not annotated["train"] or not annotated["test"]:
        held = splits["test"]
        raise DatasetError(
            f"{path}: the regression protocol fits on annotated {kind}s of the training split and reports on the "
            f"held-out ones; annotated now: {len(annotated['train'])} training and {len(annotated['test'])} held-out "
            f"{kind}(s) (data.options.test_{kind}s chooses the held-out ones: {held[:10]}"
            f"{' ...' if len(held) > 10 else ''})")
    normalise_pair = None
    if pair is not None:
        if not (isinstance(pair, list) and len(pair) == 2 and set(pair) <= set(names) and pair[0] != pair[1]):
            raise DatasetError(f"data.options.normalise_by must name two of the CSV's points {list(names)}, "
                               f"got {pair!r}")
        normalise_pair = (names.index(pair[0]), names.index(pair[1]))
    masks_root = None if masks is None else root / Path(masks).expanduser()
    if masks_root is not None:
        _check_masks(masks_root, points, still_images)
    return UserAnnotations(names, points, normalise_pair, masks_root, still_images)


def adopt_annotations(reader) -> None:
    """Gives a reader whose `annotations` were read (not None) the attributes `evaluate` reads of every reader
    (`LandmarkDataset`: keypoint_names, normalise_pair, has_masks, regression_splits); without them the reader keeps
    its class's (no regression)."""
    found = reader.annotations
    if found is not None:
        reader.keypoint_names, reader.normalise_pair = found.keypoint_names, found.normalise_pair
        reader.has_masks, reader.regression_splits = found.masks_root is not None, ("train", "test")


def _check_masks(root: Path, points: dict, still_images: bool) -> None:
    layout = "<file without its suffix>.png" if still_images else "<file>/<frame>.png"
    if not root.is_dir():
        raise DatasetError(f"data.options.masks: {root} is not a folder; expected {layout} for every annotated "
                           f"{'image' if still_images else 'frame'}")
    if still_images:  # an image's mask is named by its path without the suffix: a.jpg and a.png would share one
        by_stem = {}
        for file, _ in points:
            by_stem.setdefault(Path(file).with_suffix("").as_posix(), []).append(file)
        shared = [files for files in by_stem.values() if len(files) > 1]
        if shared:
            raise DatasetError(f"data.options.masks: the annotated images {sorted(shared[0])} would share one mask "
                               f"({layout}); rename one of them")
    for file, frame in points:  # every mask found before any work, the first missing one named
        find_mask(root, file, None if still_images else frame)


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


def find_mask(root: Path, file: str, frame: int | None = None) -> Path:
    """The mask under `root` of a video's frame `frame`, `<file>/<frame>.<image suffix>`, or with `frame` None of a
    still image, `<file without its suffix>.<image suffix>`."""
    base = root / file / str(frame) if frame is not None else (root / file).with_suffix("")
    for suffix in IMAGE_SUFFIXES:
        candidate = base.with_name(base.name + suffix)
        if candidate.is_file():
            return candidate
    what = file if frame is None else f"{file} frame {frame}"
    raise DatasetError(f"data.options.masks: no mask for {what}: expected {base.with_name(base.name + '.png')}")


def read_mask(path: Path, height: int, width: int) -> np.ndarray:
    """A mask file as uint8 [H, W, 3] with 255 where its first channel is non-zero (checked against the frame's
    size); 255, not 1, so that the framing's antialiased resize can be thresholded at half."""
    image = read_image(path)
    if image.shape[:2] != (height, width):
        raise DatasetError(f"{path}: mask is {image.shape[1]}x{image.shape[0]}, its frame {width}x{height}")
    foreground = image[..., :1] > 0
    return np.repeat(foreground, 3, axis=-1).astype(np.uint8) * 255


class AnnotatedFrames:
    """One split's annotated frames, collected by a reader's `eval_split`: {"image", "keypoints" (NaN where missing),
    "valid", "source" (and "mask")}, keypoints and masks framed as the images are.

    Args:
        reader: the `images` or `videos` reader (its name, annotations, image_size and framing).
        split: the split collected, one of `splits` (the reader's splits by name); DatasetError for another one, or
            for a reader without annotations.

    Example:
        frames = AnnotatedFrames(self, "test", self.names)
        frames.add("cats/tom.jpg", 0, "cats/tom.jpg", framed, box, image.shape[:2])
        split = frames.dataset("images split 'test': no annotated image")
    """

    def __init__(self, reader, split: str, splits: dict):
        if reader.annotations is None:
            raise DatasetError(f"the {reader.name} dataset has no annotations to evaluate on (data.options.keypoints "
                               "names a CSV; see fgbg_tf/data/annotations.py)")
        if split not in splits:
            raise DatasetError(f"{reader.name} has the splits {sorted(splits)}, not {split!r}")
        self.annotations, self.size, self.framing = reader.annotations, reader.image_size, reader.framing
        self.columns = {"image": [], "keypoints": [], "valid": [], "source": [],
                        **({"mask": []} if self.annotations.masks_root is not None else {})}

    def add(self, file: str, frame: int, source: str, framed: np.ndarray | None = None,
            box: tuple[int, int, int, int] | None = None, shape: tuple[int, int] | None = None) -> None:
        """Adds `file`'s annotated `frame`: `framed` (uint8 [S, S, 3]) cut by `box` from an original of `shape`
        (height, width). Without `framed`, a frame that did not decode: kept and marked invalid (it has no box to
        map its points through), so that evaluate leaves it out and names it."""
        points, size, columns = self.annotations.points[(file, frame)], self.size, self.columns
        valid = framed is not None
        columns["image"].append(framed if valid else np.zeros([size, size, 3], np.uint8))
        columns["valid"].append(valid)
        columns["source"].append(source)
        columns["keypoints"].append(to_input_pixels(points, size, box).astype(np.float32) if valid
                                    else np.full(points.shape, np.nan, np.float32))
        if "mask" in columns:
            columns["mask"].append(self._mask(file, frame, *shape) if valid else np.zeros([size, size], np.uint8))

    def _mask(self, file: str, frame: int, height: int, width: int) -> np.ndarray:
        path = find_mask(self.annotations.masks_root, file, None if self.annotations.still_images else frame)
        framed = frame_image(read_mask(path, height, width), self.size, self.framing, path)[0]
        return (framed[..., 0] > 127).astype(np.uint8)

    def dataset(self, empty: str) -> tf.data.Dataset:
        """The collected frames; DatasetError(`empty`) when there are none."""
        if not self.columns["image"]:
            raise DatasetError(empty)
        return tf.data.Dataset.from_tensor_slices({k: np.stack(v) for k, v in self.columns.items()})
