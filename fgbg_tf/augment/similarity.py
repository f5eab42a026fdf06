"""A random similarity transform of the whole frame, applied before the views are made (a deviation; off by default).

The release derives the target, the pose view and the appearance view from one unmoved frame. On datasets of
aligned crops (faces5pt, CelebA) every target then shows the object in nearly the same place and size, so the
decoder can draw the mean object without reading the landmarks, and landmarks do not form within a CPU budget
(docs/training.md, runs H and J). Moving the frame first (rotation, zoom, shift) makes the target's pose vary, as
IMM (Jakab et al. 2018) does with its mild "future" warp: the landmarks must follow the object to reconstruct it.
The pose and appearance views are then made from the moved frame as before, and a temporal partner gets the same
transform (it shares the frame's crop box).

The transform maps an input point q (pixel coordinates, pixel i at coordinate i) to the output point

    p = c + zoom * R(angle) (q - c) + shift,        c = ((W - 1) / 2, (H - 1) / 2),

so zoom > 1 enlarges the content; pixels that come from outside the frame repeat its border (as the TPS warp does).
With `flip`, a share of the frames is first mirrored left-right about c (q - c -> M (q - c), M = diag(-1, 1)): the
object is seen facing both ways, and its views stay consistent since they are all made from the mirrored frame.

Example:
    moved = random_similarity(frame, seed, rotation=0.26, zoom=(1.0, 1.5), translation=0.1)
"""

from __future__ import annotations

import math

import tensorflow as tf

from fgbg_tf.seeds import check_seed


def similarity_warp(images: tf.Tensor, angle, zoom, shift, mirror=False) -> tf.Tensor:
    """Moves images by the similarity p = c + zoom R(angle) M (q - c) + shift (module docstring).

    Args:
        images: float [B, H, W, C] or [H, W, C].
        angle: radians, scalar or [B] (counter-clockwise on screen is negative: y points down).
        zoom: content scale factor > 0, scalar or [B].
        shift: (x, y) pixels, [2] or [B, 2].
        mirror: bool, scalar or [B]: M = diag(-1, 1) (mirrored left-right first) where true, else the identity.

    Returns:
        float32 images of the input's shape, bilinear, border pixels repeated.

    Example:
        doubled = similarity_warp(image, 0.0, 2.0, [0.0, 0.0])
    """
    images = tf.convert_to_tensor(images, tf.float32)
    single = images.shape.rank == 3
    if single:
        images = images[None]
    if images.shape.rank != 4:
        raise ValueError(f"images: expected [B, H, W, C] or [H, W, C], got shape {images.shape}")
    batch = tf.shape(images)[0]
    height, width = images.shape[1], images.shape[2]
    angle = tf.broadcast_to(tf.cast(angle, tf.float32), [batch])
    zoom = tf.broadcast_to(tf.cast(zoom, tf.float32), [batch])
    shift = tf.broadcast_to(tf.cast(shift, tf.float32), [batch, 2])
    sign = tf.where(tf.broadcast_to(tf.cast(mirror, tf.bool), [batch]), -1.0, 1.0)
    # The op samples output pixel p at input point A p + b: A = M R(-angle) / zoom, b = c - A (c + shift); M
    # negates A's first row.
    cos, sin = tf.cos(angle) / zoom, tf.sin(angle) / zoom
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    px, py = cx + shift[:, 0], cy + shift[:, 1]
    zero = tf.zeros_like(cos)
    row_x = [sign * cos, sign * sin, cx - sign * (cos * px + sin * py)]
    row_y = [-sin, cos, cy + sin * px - cos * py]
    transforms = tf.stack(row_x + row_y + [zero, zero], axis=1)
    moved = tf.raw_ops.ImageProjectiveTransformV3(
        images=images,
        transforms=transforms,
        output_shape=tf.constant([height, width], tf.int32),
        fill_value=0.0,
        interpolation="BILINEAR",
        fill_mode="NEAREST",
    )
    return moved[0] if single else moved


def random_similarity_params(seed, size: int, rotation: float, zoom, translation: float, flip: float = 0.0):
    """Draws (angle, zoom, shift, mirror) for one frame of side `size`: angle ~ U[-rotation, rotation], log zoom
    uniform over [log zoom[0], log zoom[1]] (as likely to halve as to double), shift ~ U[-translation, translation] x
    size per axis, mirror true with probability `flip`. A pure function of `seed` (int tensor [2])."""
    check_seed(seed)
    low, high = zoom
    if rotation < 0 or translation < 0 or not 0 < low <= high or not 0 <= flip <= 1:
        raise ValueError(
            "expected rotation >= 0, translation >= 0, 0 < zoom[0] <= zoom[1] and 0 <= flip <= 1, "
            f"got {rotation}, {translation}, {zoom}, {flip}"
        )
    # The fifth draw only extends the stream: the first four are those of a [4] draw, so runs without flips keep
    # the transforms they had before the option existed.
    draws = tf.random.stateless_uniform([5], seed, minval=-1.0, maxval=1.0)
    angle = rotation * draws[0]
    log_mid, log_half = (math.log(low) + math.log(high)) / 2, (math.log(high) - math.log(low)) / 2
    scale = tf.exp(log_mid + log_half * draws[1])
    shift = translation * size * draws[2:4]
    mirror = draws[4] < 2.0 * flip - 1.0
    return angle, scale, shift, mirror


def random_similarity(images, seed, rotation: float = 0.0, zoom=(1.0, 1.0), translation: float = 0.0,
                      flip: float = 0.0):
    """One random similarity (see `random_similarity_params`) applied to every image of `images` ([H, W, C] or a
    stack [N, H, W, C] of frames that share a crop box, e.g. a frame and its temporal partner).

    Example:
        frame, partner = tf.unstack(random_similarity(tf.stack([frame, partner]), seed, 0.26, (1.0, 1.5), 0.1))
    """
    images = tf.convert_to_tensor(images, tf.float32)
    angle, scale, shift, mirror = random_similarity_params(seed, images.shape[-2], rotation, zoom, translation, flip)
    return similarity_warp(images, angle, scale, shift, mirror)
