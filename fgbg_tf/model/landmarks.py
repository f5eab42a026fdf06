"""Part maps to landmarks: spatial softmax, Gaussian fit and heatmap rendering.

Coordinates follow the released code (reference doc section 2) so that learned
landmarks are comparable with it: x is the column, y the row, both in [-1, 1)
with the left-edge convention -1 + 2j/S for pixel j of an S-pixel image. Part
maps live at half resolution, where pixel j has coordinate -1 + 4j/S.

Everything here runs in float32, whatever the model's compute dtype: the softmax
and the 2x2 inverse are where low precision would hurt.

Example:
    probs = spatial_softmax(logits)                      # [B, S/2, S/2, K]
    mean, cov = fit_gaussians(probs)                     # [B, K, 2], [B, K, 2, 2]
    heat = render_heatmaps(mean, cov, image_size=S)      # [B, S, S, K]
"""

from __future__ import annotations

import tensorflow as tf

from fgbg_tf.model.presets import COVARIANCES

# Below this determinant a covariance is degenerate (a one-pixel map); clamping it
# keeps the inverse finite and changes nothing for any non-degenerate map.
_MIN_DETERMINANT = 1e-12


def coordinate_grid(size: int) -> tf.Tensor:
    """The 1-D coordinates of a `size`-pixel axis of a map covering the image, whatever its resolution.

    Pixel j maps to -1 + 2j / size, the release's left-edge convention (not symmetric
    about 0, not linspace(-1, 1)).
    """
    step = 2.0 / size
    return -1.0 + step * tf.range(size, dtype=tf.float32)


def spatial_softmax(logits: tf.Tensor) -> tf.Tensor:
    """Normalises each of the K maps of `logits` [B, H, W, K] to sum to 1 over H x W."""
    logits = tf.cast(logits, tf.float32)
    shape = tf.shape(logits)
    flat = tf.reshape(logits, [shape[0], shape[1] * shape[2], shape[3]])
    return tf.reshape(tf.nn.softmax(flat, axis=1), shape)


def fit_gaussians(probs: tf.Tensor, covariance: str = "fitted", fixed_covariance: float = 0.08):
    """Fits a 2-D Gaussian to each part map (paper section 3.1, after eq. 1).

    Args:
        probs: [B, H, W, K] softmax-normalised part maps.
        covariance: "fitted" estimates E[(c - mu)(c - mu)^T] from each map (the release's E[c c^T] - mu mu^T
            in exact arithmetic, without its float32 cancellation);
            "fixed" uses `fixed_covariance` * I (paper Appendix A: 0.08 for
            Human3.6M and CelebA).
        fixed_covariance: the diagonal of the fixed covariance.

    Returns:
        mean [B, K, 2] as (x, y) and covariance [B, K, 2, 2].
    """
    height, width = probs.shape[1], probs.shape[2]
    ys = coordinate_grid(height)
    xs = coordinate_grid(width)
    p_y = tf.reduce_sum(probs, axis=2)  # [B, H, K] marginal over columns
    p_x = tf.reduce_sum(probs, axis=1)  # [B, W, K]
    # Products and sums rather than tf.einsum: the exported detector then has no Einsum op, which TF.js' WASM
    # backend lacks.
    mean_x = tf.reduce_sum(p_x * xs[None, :, None], axis=1)
    mean_y = tf.reduce_sum(p_y * ys[None, :, None], axis=1)
    mean = tf.stack([mean_x, mean_y], axis=-1)
    if covariance == "fixed":
        eye = tf.eye(2, batch_shape=tf.shape(mean)[:2])
        return mean, fixed_covariance * eye
    if covariance != "fitted":
        raise ValueError(f"covariance must be one of {COVARIANCES}, got {covariance!r}")
    # Centred moments, E[(c - mu)^2], not the release's E[c^2] - mu^2: the same covariance, but for a peaked map the
    # difference form cancels to float32 rounding, so the tiny covariance and the precision 1 / det that eq. 2 divides
    # by become noise, and so do their gradients (1 replica and 2 disagreed by several percent in the pose encoder's
    # gradient on AVX2 CPUs).
    dx = xs[None, :, None] - mean_x[:, None, :]  # [B, W, K]
    dy = ys[None, :, None] - mean_y[:, None, :]  # [B, H, K]
    xx = tf.reduce_sum(p_x * dx * dx, axis=1)
    yy = tf.reduce_sum(p_y * dy * dy, axis=1)
    xy = tf.reduce_sum(probs * dy[:, :, None, :] * dx[:, None, :, :], axis=[1, 2])
    cov = tf.stack([tf.stack([xx, xy], -1), tf.stack([xy, yy], -1)], -2)
    return mean, cov


def precision_matrix(cov: tf.Tensor) -> tf.Tensor:
    """Closed-form inverse of [..., 2, 2] covariances (numerically safer than a general solve)."""
    a, b = cov[..., 0, 0], cov[..., 0, 1]
    c, d = cov[..., 1, 0], cov[..., 1, 1]
    det = tf.maximum(a * d - b * c, _MIN_DETERMINANT)
    inverse = tf.stack([tf.stack([d, -b], -1), tf.stack([-c, a], -1)], -2)
    return inverse / det[..., None, None]


def render_heatmaps(mean: tf.Tensor, cov: tf.Tensor, image_size: int) -> tf.Tensor:
    """Renders s(k, l) = 1 / (1 + (l - mu_k)^T Sigma_k^-1 (l - mu_k)) (eq. 2).

    Args:
        mean: [B, K, 2] (x, y) landmark means.
        cov: [B, K, 2, 2] covariances.
        image_size: S; the heatmaps cover the S x S image grid.

    Returns:
        [B, S, S, K] heatmaps, 1 at each mean.
    """
    mean = tf.cast(mean, tf.float32)
    precision = precision_matrix(tf.cast(cov, tf.float32))
    grid = coordinate_grid(image_size)
    dx = grid[None, None, :] - mean[..., 0:1]  # [B, K, W]
    dy = grid[None, None, :] - mean[..., 1:2]  # [B, K, H]
    p_xx = precision[..., 0, 0][..., None, None]
    p_xy = precision[..., 0, 1][..., None, None] + precision[..., 1, 0][..., None, None]
    p_yy = precision[..., 1, 1][..., None, None]
    dx, dy = dx[:, :, None, :], dy[:, :, :, None]  # [B, K, 1, W], [B, K, H, 1]
    distance = p_xx * dx * dx + p_xy * dx * dy + p_yy * dy * dy  # [B, K, H, W]
    # A quadratic form of a covariance is >= 0; for a (near-)singular one, whose clamped determinant makes the
    # precision huge, float32 cancellation can take it to -1 and the heatmap to inf. Only that rounding is removed.
    distance = tf.maximum(distance, 0.0)
    return tf.transpose(1.0 / (1.0 + distance), [0, 2, 3, 1])


def to_pixels(mean: tf.Tensor, image_size: int) -> tf.Tensor:
    """Maps landmark coordinates in [-1, 1) to pixel coordinates of an S-pixel image (pixel j at j)."""
    return (mean + 1.0) * (image_size / 2.0)
