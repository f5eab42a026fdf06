"""Evaluation pictures drawn with OpenCV: Figure 2-style line plots and the Figure 3 layout.

* `line_plot`: curves with axes, ticks and a legend; a log-scale y axis for
  Figure 2b (foreground containment per landmark, sorted), linear for Figure 2a
  (metric vs number of landmarks).
* `figure3_grid`: one column per test image; rows, top to bottom, as in the
  paper's Figure 3: regressed keypoints on the image, the predicted foreground mask
  (only for variants that predict one), the landmark part maps overlaid; `label_rows`
  names the rows on a strip at its left.

All images are RGB uint8; `save_png` writes them.

Example:
    save_png("containment.png", line_plot({"full": (ranks, percents)}, title="Figure 2b",
                                          x_label="landmark (sorted)", y_label="% in foreground", log_y=True))
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import cv2
import numpy as np

from fgbg_tf.evaluation.summaries import draw_landmarks, landmark_colours

_FONT = cv2.FONT_HERSHEY_SIMPLEX
_MARGINS = (76, 24, 40, 52)  # left, right, top, bottom
_INK = (40, 40, 40)
_GRID = (225, 225, 225)
# Log axes need a positive floor for zero values (a landmark with no mass on the foreground).
_LOG_FLOOR = 1e-4


@dataclasses.dataclass(frozen=True)
class Axes:
    """Maps data coordinates to pixels of the plotting box.

    Attributes:
        x_range, y_range: data limits (y limits are powers of ten when `log_y`).
        log_y: whether y is logarithmic.
        box: (left, top, right, bottom) pixel bounds of the plotting area.
    """

    x_range: tuple[float, float]
    y_range: tuple[float, float]
    log_y: bool
    box: tuple[int, int, int, int]

    def map(self, x: float, y: float) -> tuple[float, float]:
        left, top, right, bottom = self.box
        y0, y1 = self.y_range
        if self.log_y:
            y, y0, y1 = math.log10(max(y, _LOG_FLOOR)), math.log10(y0), math.log10(y1)
        fx = (x - self.x_range[0]) / (self.x_range[1] - self.x_range[0])
        fy = (y - y0) / (y1 - y0)
        return left + fx * (right - left), bottom - fy * (bottom - top)


def plot_axes(series: dict, log_y: bool = False, size: tuple[int, int] = (640, 420)) -> Axes:
    """The axes `line_plot` draws `series` ({label: (xs, ys)}) on, for an image of `size` (width, height)."""
    if not series:
        raise ValueError("series must hold at least one curve")
    xs = np.concatenate([np.asarray(curve[0], np.float64).ravel() for curve in series.values()])
    # The y range holds the error bars too.
    ys = np.concatenate([np.asarray(curve[1], np.float64).ravel() + sign * _errors(curve)
                         for curve in series.values() for sign in (-1.0, 1.0)])
    if xs.size == 0 or not np.all(np.isfinite(xs)) or not np.all(np.isfinite(ys)):
        raise ValueError("series must hold finite, non-empty x and y values")
    x_range = (float(xs.min()), float(xs.max()))
    if x_range[0] == x_range[1]:
        x_range = (x_range[0] - 1.0, x_range[1] + 1.0)
    if log_y:
        positive = np.maximum(ys, _LOG_FLOOR)
        y_range = (10.0 ** math.floor(math.log10(positive.min())), 10.0 ** math.ceil(math.log10(positive.max())))
        if y_range[0] == y_range[1]:
            y_range = (y_range[0], y_range[1] * 10.0)
    else:
        low, high = float(ys.min()), float(ys.max())
        pad = 0.05 * (high - low) if high > low else max(abs(high), 1.0) * 0.1
        y_range = (low - pad, high + pad)
    width, height = size
    left, right, top, bottom = _MARGINS[0], width - _MARGINS[1], _MARGINS[2], height - _MARGINS[3]
    return Axes(x_range, y_range, log_y, (left, top, right, bottom))


def _errors(curve) -> np.ndarray:
    """A curve's error-bar half-lengths (zeros for a curve (xs, ys) without them)."""
    ys = np.asarray(curve[1], np.float64).ravel()
    return np.asarray(curve[2], np.float64).ravel() if len(curve) > 2 else np.zeros_like(ys)


def _ticks(axes: Axes) -> tuple[list[float], list[float]]:
    x0, x1 = axes.x_range
    if x1 - x0 <= 20 and float(x0).is_integer():
        x_ticks = list(np.arange(x0, x1 + 1, max(1, round((x1 - x0) / 10))))
    else:
        x_ticks = list(np.linspace(x0, x1, 6))
    if axes.log_y:
        first, last = round(math.log10(axes.y_range[0])), round(math.log10(axes.y_range[1]))
        y_ticks = [10.0**e for e in range(first, last + 1)]
    else:
        y_ticks = list(np.linspace(*axes.y_range, 6))
    return x_ticks, y_ticks


def _label(value: float, log: bool) -> str:
    if log:
        return f"1e{round(math.log10(value))}"
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.3g}"


def line_plot(
    series: dict,
    title: str,
    x_label: str,
    y_label: str,
    log_y: bool = False,
    size: tuple[int, int] = (640, 420),
) -> np.ndarray:
    """Draws curves with markers, axes, ticks and a legend.

    Args:
        series: {label: (xs, ys)} or {label: (xs, ys, errors)}, errors the half-length of a vertical bar at each
            point (e.g. a standard error); every curve is drawn in its own colour.
        title, x_label, y_label: text of the plot.
        log_y: logarithmic y axis (values <= 0 are drawn at 1e-4).
        size: (width, height) in pixels.

    Returns:
        uint8 RGB [height, width, 3].
    """
    axes = plot_axes(series, log_y, size)
    width, height = size
    image = np.full((height, width, 3), 255, np.uint8)
    left, top, right, bottom = axes.box
    x_ticks, y_ticks = _ticks(axes)
    for x in x_ticks:
        px = int(round(axes.map(x, axes.y_range[0])[0]))
        cv2.line(image, (px, top), (px, bottom), _GRID, 1)
        text = _label(x, False)
        cv2.putText(image, text, (px - 4 * len(text), bottom + 16), _FONT, 0.4, _INK, 1, cv2.LINE_AA)
    for y in y_ticks:
        py = int(round(axes.map(axes.x_range[0], y)[1]))
        cv2.line(image, (left, py), (right, py), _GRID, 1)
        text = _label(y, log_y)
        cv2.putText(image, text, (left - 8 - 7 * len(text), py + 4), _FONT, 0.4, _INK, 1, cv2.LINE_AA)
    cv2.rectangle(image, (left, top), (right, bottom), _INK, 1)
    colours = landmark_colours(len(series)) if len(series) > 1 else np.array([[31, 119, 180]], np.uint8)
    for curve, colour in zip(series.values(), colours):
        colour = tuple(int(c * 0.8) for c in colour)
        xs, ys = np.ravel(curve[0]), np.ravel(curve[1])
        points = [tuple(int(round(v)) for v in axes.map(x, y)) for x, y in zip(xs, ys)]
        for a, b in zip(points, points[1:]):
            cv2.line(image, a, b, colour, 2, cv2.LINE_AA)
        for point, x, y, error in zip(points, xs, ys, _errors(curve)):
            cv2.circle(image, point, 3, colour, -1, cv2.LINE_AA)
            if error > 0:
                low, high = (int(round(axes.map(x, y + sign * error)[1])) for sign in (-1.0, 1.0))
                cv2.line(image, (point[0], low), (point[0], high), colour, 1, cv2.LINE_AA)
                for end in (low, high):
                    cv2.line(image, (point[0] - 3, end), (point[0] + 3, end), colour, 1, cv2.LINE_AA)
    for row, (label, colour) in enumerate(zip(series, colours)):
        colour = tuple(int(c * 0.8) for c in colour)
        y = top + 16 + 16 * row
        cv2.line(image, (left + 10, y - 4), (left + 30, y - 4), colour, 2, cv2.LINE_AA)
        cv2.putText(image, str(label), (left + 36, y), _FONT, 0.42, _INK, 1, cv2.LINE_AA)
    (text_width, _), _ = cv2.getTextSize(title, _FONT, 0.55, 1)
    cv2.putText(image, title, ((width - text_width) // 2, 24), _FONT, 0.55, _INK, 1, cv2.LINE_AA)
    (text_width, _), _ = cv2.getTextSize(x_label, _FONT, 0.45, 1)
    cv2.putText(image, x_label, ((left + right - text_width) // 2, height - 12), _FONT, 0.45, _INK, 1, cv2.LINE_AA)
    (text_width, text_height), _ = cv2.getTextSize(y_label, _FONT, 0.45, 1)
    label = np.full((text_height + 8, text_width + 4, 3), 255, np.uint8)
    cv2.putText(label, y_label, (2, text_height + 2), _FONT, 0.45, _INK, 1, cv2.LINE_AA)
    label = cv2.rotate(label, cv2.ROTATE_90_COUNTERCLOCKWISE)
    y0 = max(0, (top + bottom - label.shape[0]) // 2)
    rows = min(label.shape[0], height - y0)
    image[y0 : y0 + rows, 4 : 4 + label.shape[1]] = label[:rows]
    return image


def part_map_overlay(image: np.ndarray, part_maps: np.ndarray) -> np.ndarray:
    """Overlays K part maps [h, w, K] on a uint8 image [S, S, 3], one colour per landmark.

    Each map is scaled to peak 1 so weak and strong landmarks are equally visible.
    """
    size = image.shape[0]
    maps = np.asarray(part_maps, np.float32)
    maps = maps / np.maximum(maps.max(axis=(0, 1), keepdims=True), 1e-12)
    maps = cv2.resize(maps, (size, size), interpolation=cv2.INTER_LINEAR).reshape(size, size, -1)
    colours = landmark_colours(maps.shape[-1]).astype(np.float32)
    heat = np.clip(np.einsum("hwk,kc->hwc", maps, colours), 0, 255)
    alpha = np.clip(maps.max(axis=-1, keepdims=True), 0, 1)
    blended = image.astype(np.float32) * (1.0 - 0.8 * alpha) + 0.8 * alpha * heat
    return np.clip(blended + 0.5, 0, 255).astype(np.uint8)


def figure3_grid(images, keypoints, part_maps, masks=None, tile_size: int = 128) -> np.ndarray:
    """The paper's Figure 3 for N images: one column each, rows keypoints / mask / part maps.

    Args:
        images: uint8 [N, S, S, 3].
        keypoints: [N, J, 2] regressed keypoints in pixels of the S x S image (x, y).
        part_maps: [N, S/2, S/2, K] softmax part maps.
        masks: [N, S, S] or [N, S, S, 1] predicted foreground masks in [0, 1], or
            None for variants without a mask (the row is left out).
        tile_size: side of each drawn tile; small crops are enlarged (bilinear) so
            that the keypoint dots stay legible.

    Returns:
        uint8 RGB [rows * T, N * T, 3] with T = max(S, tile_size).
    """
    images = np.asarray(images)
    if images.ndim != 4 or images.dtype != np.uint8:
        raise ValueError(f"images must be uint8 [N, S, S, 3], got {images.dtype} {images.shape}")
    size = images.shape[1]
    tile = max(size, tile_size)
    scale = tile / size
    enlarge = lambda a: cv2.resize(a, (tile, tile), interpolation=cv2.INTER_LINEAR)
    tiles = [enlarge(image) for image in images]
    # Pixel i's centre lands at scale * (i + 0.5) - 0.5 in the enlarged tile.
    points = (np.asarray(keypoints, np.float64) + 0.5) * scale - 0.5
    rows = [[draw_landmarks(t, p, radius=max(2, round(tile / 48))) for t, p in zip(tiles, points)]]
    if masks is not None:
        masks = np.asarray(masks, np.float32).reshape(images.shape[:3])
        grey = [np.clip(enlarge(m) * 255.0 + 0.5, 0, 255).astype(np.uint8) for m in masks]
        rows.append([np.repeat(g[..., None], 3, axis=-1) for g in grey])
    rows.append([part_map_overlay(t, m) for t, m in zip(tiles, np.asarray(part_maps))])
    return np.concatenate([np.concatenate(row, axis=1) for row in rows], axis=0)


def label_rows(grid: np.ndarray, labels, width: int = 112) -> np.ndarray:
    """`grid` with a white strip on its left naming each of its equally tall rows (top to bottom).

    Example: `label_rows(figure3_grid(...), ["regressed keypoints", "predicted mask", "part maps"])`.
    """
    height = grid.shape[0] // len(labels)
    strip = np.full((grid.shape[0], width, 3), 255, np.uint8)
    for row, label in enumerate(labels):
        for line, words in enumerate(_wrap(str(label), width - 8)):
            origin = (4, row * height + height // 2 - 6 + 16 * line)
            cv2.putText(strip, words, origin, _FONT, 0.42, _INK, 1, cv2.LINE_AA)
    return np.concatenate([strip, grid], axis=1)


def _wrap(text: str, width: int) -> list[str]:
    """Words of `text` in lines that fit `width` pixels at the row labels' font size."""
    lines = [""]
    for word in text.split():
        candidate = f"{lines[-1]} {word}".strip()
        if lines[-1] and cv2.getTextSize(candidate, _FONT, 0.42, 1)[0][0] > width:
            lines.append(word)
        else:
            lines[-1] = candidate
    return lines


def save_png(path: str | Path, image: np.ndarray) -> Path:
    """Writes an RGB uint8 image as PNG."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2BGR)):
        raise OSError(f"could not write {path}")
    return path
