"""Reading the user's images, folders and videos for prediction, and writing overlays.

Every reader raises `MediaError` naming the file, so a caller can report a bad file
and go on with the next one. Images are RGB uint8 [H, W, 3]. A JPEG whose data is
corrupt decodes to garbage without an error; libjpeg only prints a warning on the
process's stderr, so `read_image` collects what is printed there while it decodes
and refuses the file when it is one of libjpeg's corrupt-data warnings.

Size policy (no silent resize): an image or frame whose size is not the model's
S x S is refused unless the caller names a framing (`frame_image(..., framing)`,
`--framing` in `fgbg_tf.predict`, `data.options.framing` of the `images` dataset):

* "resize": the whole image squashed to S x S (its aspect ratio changes);
* "centre_crop": the centred square of side min(H, W);
* "pad": the image centred on a black square of side max(H, W);
* [x, y, side, side]: that square of every image (a static camera's region of interest).

The square is then resized with the antialiased bilinear resize the datasets use for
training crops, and `to_original_pixels` maps coordinates back through the same box
with the pixel-centre convention: x_original = box_x + (x + 0.5) * box_w / S - 0.5.

Videos are written with OpenCV's "mp4v" codec (.mp4), which opencv-python-headless
can encode here (H.264 / "avc1" cannot: no encoder in its FFmpeg build), falling
back to Motion-JPEG in .avi.

Example:
    image, box = frame_image(read_image("street.jpg"), 64, "centre_crop", source="street.jpg")
    points = to_original_pixels(landmarks_pixels, 64, box)
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import threading
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np
import tensorflow as tf

from fgbg_tf.data.image_files import resize_image
from fgbg_tf.evaluation.summaries import draw_landmarks

logger = logging.getLogger("fgbg_tf.data.media")

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")
VIDEO_CODECS = (("mp4v", ".mp4"), ("MJPG", ".avi"))


class MediaError(ValueError):
    """A file cannot be read as an image or video, or does not fit the model."""


def is_video(path: str | Path) -> bool:
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def image_files(folder: str | Path) -> list[Path]:
    """The image files directly inside `folder`, sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise MediaError(f"{folder} is not a folder")
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def input_files(path: str | Path) -> list[Path]:
    """A file as given, or the images and videos directly inside a folder (sorted; other files are ignored)."""
    path = Path(path)
    if path.is_dir():
        suffixes = IMAGE_SUFFIXES + VIDEO_SUFFIXES
        return sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in suffixes)
    if not path.exists():
        raise MediaError(f"--input {path} does not exist")
    return [path]


# The starts of libjpeg's warnings for data that decoded wrongly (jerror.h: JWRN_EXTRANEOUS_DATA, JWRN_JPEG_EOF,
# JWRN_HIT_MARKER, JWRN_MUST_RESYNC, JWRN_NOT_SEQUENTIAL, JWRN_HUFF_BAD_CODE); other notices pass through.
CORRUPT_DATA_WARNINGS = ("Corrupt JPEG data", "Premature end of JPEG file", "Invalid SOS parameters")


# File descriptor 2 is the process's: one decode at a time may take it, whichever thread (tf.data's) asks.
_STDERR_LOCK = threading.Lock()


@contextlib.contextmanager
def _corrupt_data_warnings():
    """Yields a list that receives libjpeg's corrupt-data warnings printed on file descriptor 2 meanwhile.

    A file, not a pipe, takes the output, so a writer can never block on it; every other line printed in the window
    (by this call or another thread) is written back to the real stderr unchanged. Meant for short calls (one image
    decode); `decode_image` holds `_STDERR_LOCK` around it so that concurrent decodes are told apart.
    """
    warnings: list[str] = []
    with tempfile.TemporaryFile() as capture:
        saved = os.dup(2)
        try:
            os.dup2(capture.fileno(), 2)
            yield warnings
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            lines = capture.read().decode("utf-8", "replace").splitlines()
    passed = []
    for line in lines:
        (warnings if line.startswith(CORRUPT_DATA_WARNINGS) else passed).append(line)
    if passed:
        os.write(2, ("\n".join(passed) + "\n").encode())


def decode_image(data: np.ndarray, source: str | Path) -> np.ndarray:
    """RGB uint8 [H, W, 3] of an encoded image's bytes (uint8 [N]); safe to call from several threads at once.

    Raises `MediaError` naming `source` for undecodable data and for a JPEG whose decoder warned of corrupt data.
    """
    with _STDERR_LOCK, _corrupt_data_warnings() as corrupt:
        image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise MediaError(f"{source}: not a readable image")
    if corrupt:
        raise MediaError(f"{source}: corrupt image data ({corrupt[0].strip()}); it decodes to wrong pixels")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_image(path: str | Path) -> np.ndarray:
    """RGB uint8 [H, W, 3] of an image file (grayscale expanded, alpha dropped).

    Raises `MediaError` for a missing or undecodable file and for a JPEG whose decoder warned of corrupt data.
    """
    if not Path(path).is_file():
        raise MediaError(f"{path}: no such file")
    try:
        data = np.fromfile(str(path), np.uint8)
    except OSError as error:  # unreadable (permissions, I/O error): one bad file, not the end of the run
        raise MediaError(f"{path}: cannot be read ({error.strerror or error})") from None
    return decode_image(data, path)


def video_length(path: str | Path) -> int:
    """The frame count the container declares (0 when unknown), for progress bars."""
    capture = cv2.VideoCapture(str(path))
    try:
        return max(int(capture.get(cv2.CAP_PROP_FRAME_COUNT)), 0)
    finally:
        capture.release()


def video_frames(path: str | Path) -> Iterator[np.ndarray]:
    """RGB uint8 frames of a video; raises `MediaError` if it cannot be opened or has no frame."""
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise MediaError(f"{path}: not a readable video")
    try:
        count = 0
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            count += 1
            yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        if count == 0:
            raise MediaError(f"{path}: not a readable video (no frame decoded)")
    finally:
        capture.release()


def video_fps(path: str | Path, default: float = 25.0) -> float:
    capture = cv2.VideoCapture(str(path))
    try:
        fps = capture.get(cv2.CAP_PROP_FPS)
    finally:
        capture.release()
    return fps if fps and np.isfinite(fps) and fps > 0 else default


FRAMINGS = ("resize", "centre_crop", "pad")


def check_framing(framing, key: str = "framing") -> None:
    """Raises MediaError unless `framing` is one of FRAMINGS or a square box [x, y, side, side] (side >= 1)."""
    if framing in FRAMINGS:
        return
    box = framing if isinstance(framing, (list, tuple)) else None
    if not (box and len(box) == 4 and all(isinstance(v, int) and not isinstance(v, bool) for v in box)
            and box[2] == box[3] >= 1):
        raise MediaError(f"{key} must be one of {list(FRAMINGS)} or a square box [x, y, side, side] of whole pixels, "
                         f"got {framing!r}")


def framing_box(height: int, width: int, framing, source) -> tuple[int, int, int, int]:
    """The region (x, y, w, h) of an H x W image that becomes the model's input; it may reach outside the image
    (padding). A box framing must lie inside the image."""
    check_framing(framing)
    if framing == "resize":
        return 0, 0, width, height
    if framing == "centre_crop":
        side = min(height, width)
        return (width - side) // 2, (height - side) // 2, side, side
    if framing == "pad":
        side = max(height, width)
        return -((side - width) // 2), -((side - height) // 2), side, side
    x, y, w, h = framing
    if x < 0 or y < 0 or x + w > width or y + h > height:
        raise MediaError(f"{source}: the framing box {list(framing)} does not fit in the {width}x{height} image")
    return x, y, w, h


def frame_image(image: np.ndarray, size: int, framing, source) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """Returns (the S x S model input, the box of the image it shows); framing None refuses another size."""
    height, width = image.shape[:2]
    if framing is None:
        if (height, width) == (size, size):
            return image, (0, 0, size, size)
        raise MediaError(f"{source}: image is {width}x{height}, the model takes {size}x{size}; "
                         f"name a framing (--framing {' / '.join(FRAMINGS)} / x,y,side,side)")
    box = x, y, w, h = framing_box(height, width, framing, source)
    if box == (0, 0, size, size) and (height, width) == (size, size):
        return image, box
    # Pad (black) where the box reaches outside the image, then cut the box out.
    left, top = max(0, -x), max(0, -y)
    right, bottom = max(0, x + w - width), max(0, y + h - height)
    padded = cv2.copyMakeBorder(image, top, bottom, left, right, cv2.BORDER_CONSTANT, value=(0, 0, 0))
    region = np.ascontiguousarray(padded[y + top:y + top + h, x + left:x + left + w])
    return resize_image(tf.constant(region), size).numpy(), box


def to_original_pixels(points: np.ndarray, size: int, box: tuple[int, int, int, int]) -> np.ndarray:
    """Maps (x, y) pixel points [..., 2] of the S x S input to the image through the framing's box (pixel centres
    aligned; `frame_image` returns the box)."""
    x, y, width, height = box
    scale = np.array([width / size, height / size], np.float64)
    return np.array([x, y], np.float64) + (np.asarray(points, np.float64) + 0.5) * scale - 0.5


def overlay(image: np.ndarray, points: np.ndarray, keypoints: np.ndarray | None = None) -> np.ndarray:
    """Draws landmark dots (and keypoints as larger white-rimmed rings) on an RGB image."""
    radius = max(2, round(max(image.shape[:2]) / 100))
    drawn = draw_landmarks(image, points, radius=radius)
    for x, y in ([] if keypoints is None else keypoints):
        cv2.circle(drawn, (int(round(float(x))), int(round(float(y)))), radius + 2, (255, 255, 255), 1, cv2.LINE_AA)
    return drawn


def write_image(path: str | Path, image: np.ndarray) -> Path:
    """Writes an RGB uint8 [H, W, 3] or grayscale [H, W] / [H, W, 1] image (format from the suffix)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[-1] == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    if not cv2.imwrite(str(path), image):
        raise MediaError(f"{path}: could not be written")
    return path


class VideoWriter:
    """Writes RGB uint8 frames to `stem` + the first codec's suffix that works (see module docstring).

    Args:
        stem: the output path without suffix.
        fps: frames per second.
        size: (width, height) of every frame.

    Example: `with VideoWriter(out / "overlay", 25, (w, h)) as video: video.write(frame)`.
    """

    def __init__(self, stem: str | Path, fps: float, size: tuple[int, int]):
        self.size = tuple(size)
        Path(stem).parent.mkdir(parents=True, exist_ok=True)
        for codec, suffix in VIDEO_CODECS:
            self.path = Path(f"{stem}{suffix}")
            self._writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*codec), fps, self.size)
            if self._writer.isOpened():
                return
            self._writer.release()
        raise MediaError(f"{stem}: OpenCV can encode none of the codecs {[c for c, _ in VIDEO_CODECS]}")

    def write(self, frame: np.ndarray) -> None:
        frame = np.asarray(frame)
        if frame.ndim == 2 or frame.shape[-1] == 1:
            frame = np.repeat(frame.reshape(frame.shape[:2] + (1,)), 3, axis=-1)
        if (frame.shape[1], frame.shape[0]) != self.size:
            raise MediaError(f"{self.path}: frame is {frame.shape[1]}x{frame.shape[0]}, the video is "
                             f"{self.size[0]}x{self.size[1]}")
        self._writer.write(cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2BGR))

    def close(self) -> None:
        self._writer.release()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
