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
With `aspect` the zoom is split between the axes, zoom -> zoom diag(sqrt(a), 1 / sqrt(a)) applied before the rotation
(the transform is then affine): a < 1 narrows the object as turning it away from the camera does, a > 1 flattens it
as tilting it up or down does, with its area kept.

Example:
    moved = random_similarity(frame, seed, rotation=0.26, zoom=(1.0, 1.5), translation=0.1)
"""

from __future__ import annotations

import math

import tensorflow as tf

from fgbg_tf.seeds import check_seed


def similarity_warp(images: tf.Tensor, angle, zoom, shift, mirror=False, aspect=1.0) -> tf.Tensor:
    """Moves images by p = c + zoom R(angle) D M (q - c) + shift, D = diag(sqrt(aspect), 1 / sqrt(aspect)) (module
    docstring).

    Args:
        images: float [B, H, W, C] or [H, W, C].
        angle: radians, scalar or [B] (counter-clockwise on screen is negative: y points down).
        zoom: content scale factor > 0, scalar or [B].
        shift: (x, y) pixels, [2] or [B, 2].
        mirror: bool, scalar or [B]: M = diag(-1, 1) (mirrored left-right first) where true, else the identity.
        aspect: > 0, scalar or [B]: the width's scale over the height's (1: a similarity).

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
    root = tf.sqrt(tf.broadcast_to(tf.cast(aspect, tf.float32), [batch]))
    # The op samples output pixel p at input point A p + b: A = M D^-1 R(-angle) / zoom, b = c - A (c + shift); M and
    # D^-1 scale A's rows. (Ordered so that aspect 1 gives the similarity's matrix bit for bit.)
    cos, sin = tf.cos(angle) / zoom, tf.sin(angle) / zoom
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    px, py = cx + shift[:, 0], cy + shift[:, 1]
    zero = tf.zeros_like(cos)
    row_x = [sign * cos / root, sign * sin / root, cx - sign * (cos * px + sin * py) / root]
    row_y = [-sin * root, cos * root, cy + sin * root * px - cos * root * py]
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


def _log_uniform(draw, bounds):
    """Maps a U[-1, 1] draw to a log-uniform one over [bounds[0], bounds[1]] (as likely to halve as to double)."""
    low, high = bounds
    return tf.exp((math.log(low) + math.log(high)) / 2 + (math.log(high) - math.log(low)) / 2 * draw)


def random_similarity_params(seed, size: int, rotation: float, zoom, translation: float, flip: float = 0.0,
                             aspect=(1.0, 1.0)):
    """Draws (angle, zoom, shift, mirror, aspect) for one frame of side `size`: angle ~ U[-rotation, rotation], zoom
    and aspect log-uniform over their [low, high], shift ~ U[-translation, translation] x size per axis, mirror true
    with probability `flip`. A pure function of `seed` (int tensor [2])."""
    check_seed(seed)
    if (rotation < 0 or translation < 0 or not 0 < zoom[0] <= zoom[1] or not 0 <= flip <= 1
            or not 0 < aspect[0] <= aspect[1]):
        raise ValueError(
            "expected rotation >= 0, translation >= 0, 0 < zoom[0] <= zoom[1], 0 <= flip <= 1 and "
            f"0 < aspect[0] <= aspect[1], got {rotation}, {translation}, {zoom}, {flip}, {aspect}"
        )
    # Each later option's draw only extends the stream (Philox is counter-based: the first n numbers of a longer
    # draw are those of an [n] draw), so runs without it keep the transforms they had before it existed.
    draws = tf.random.stateless_uniform([6], seed, minval=-1.0, maxval=1.0)
    angle = rotation * draws[0]
    scale = _log_uniform(draws[1], zoom)
    shift = translation * size * draws[2:4]
    mirror = draws[4] < 2.0 * flip - 1.0
    return angle, scale, shift, mirror, _log_uniform(draws[5], aspect)


def random_similarity(images, seed, rotation: float = 0.0, zoom=(1.0, 1.0), translation: float = 0.0,
                      flip: float = 0.0, aspect=(1.0, 1.0)):
    """One random transform (see `random_similarity_params`) applied to every image of `images` ([H, W, C] or a
    stack [N, H, W, C] of frames that share a crop box, e.g. a frame and its temporal partner).

    Example:
        frame, partner = tf.unstack(random_similarity(tf.stack([frame, partner]), seed, 0.26, (1.0, 1.5), 0.1))
    """
    images = tf.convert_to_tensor(images, tf.float32)
    params = random_similarity_params(seed, images.shape[-2], rotation, zoom, translation, flip, aspect)
    return similarity_warp(images, *params)
