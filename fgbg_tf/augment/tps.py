"""Thin-plate-spline warp T_tps (paper Sec. 3 training procedure and Appendix A; reference doc 7.2) in pure TensorFlow.

The release warps with OpenCV's ``ThinPlateSplineShapeTransformer`` (not in the headless OpenCV build, and
not usable inside ``tf.data``). This module reproduces it with TensorFlow ops:

* ``T`` is the thin-plate spline with kernel U(r) = r^2 log(r^2) (U(0) = 0) and no regularisation that
  interpolates ``T(source_i) = target_i``; its (n+3)x(n+3) system is solved with ``tf.linalg.solve``.
* The warp samples backwards, ``output(p) = input(T(p))``, bilinearly, with a replicate (edge-clamped) border
  and pixel ``i`` at coordinate ``i`` (OpenCV ``remap`` convention). Clamping the sample coordinate to
  [0, size - 1] equals bilinear sampling of the replicate-padded image. OpenCV's ``remap`` rounds sample
  positions to 1/32 px; this module does not. Against the contrib build's
  ``estimateTransformation(source, target)`` + ``warpImage(..., BORDER_REPLICATE)`` (the release's call,
  grid -> target), the sample map agrees to 3e-3 px and a smooth 128-px image to 3e-4.
* Points are (x, y) = (column, row) pixel coordinates.

``random_tps_targets`` draws the release's perturbation, written for a square image of side S with every pixel
quantity a fraction of S relative to the 128-px reference: a ``grid_size`` x ``grid_size`` grid
linspace(m, S - m) with m = 10/128 S; rotation r ~ U[-pi/8, pi/8]; scales sx, sy ~ U[1.05, 1.15]; t ~
U[-10/128 S, 10/128 S]^2; M = [[sx cos r, -sin r], [sin r, sy cos r]] (row vectors; scale multiplies only the
cosine terms, as released); target = (grid - c) M + jitter + c with jitter ~ U[-2/128 S, 2/128 S] per point
and c = ((S - m) / 2 + t_x, (S - m) / 2 + t_y) (59 at 128 px, not the image centre, as released; t only moves
the centre, so the net shift is t (I - M), a few pixels). Scale > 1 therefore shrinks the content. Randomness is
stateless: a pure function of ``seed`` (int tensor [2]).

Just over 300 lines: the spline's fit, its evaluation, the sampling and the release's random draw are one warp,
and most of the length is the argument checks that name a bad value.
"""

import math
import numbers

import tensorflow as tf

from fgbg_tf.seeds import check_seed

def _as_batched_points(name, points, batched):
    """Validate (x, y) points; returns float32 [1, n, 2] for shared [n, 2] input, else [B, n, 2]."""
    points = tf.convert_to_tensor(points)
    if not (points.dtype.is_floating or points.dtype.is_integer):
        raise ValueError(f"{name}: expected a numeric tensor of (x, y) points, got dtype {points.dtype.name}")
    ranks = (2, 3) if batched else (2,)
    if points.shape.rank not in ranks or points.shape[-1] != 2:
        expected = "[n, 2] or [B, n, 2]" if batched else "[n, 2]"
        raise ValueError(f"{name}: expected shape {expected} of (x, y) points, got {points.shape}")
    points = tf.cast(points, tf.float32)
    return points[None] if points.shape.rank == 2 else points


def _check_same_count(source, target):
    n_source, n_target = source.shape[-2], target.shape[-2]
    if n_source is not None and n_target is not None and n_source != n_target:
        raise ValueError(f"target_points: expected as many points as source_points ({n_source}), got {n_target}")
    if n_source is not None and n_source < 3:
        raise ValueError(f"source_points: expected at least 3 control points, got {n_source}")


def _tps_kernel(squared_distance):
    """U(r) = r^2 log(r^2) from r^2; xlogy returns the limit 0 at r = 0."""
    return tf.math.xlogy(squared_distance, squared_distance)


def _squared_distances(points, centres):
    """[B, m, 2] x [B, n, 2] -> [B, m, n]; per-axis differences avoid the cancellation of |p|^2 - 2pq + |q|^2."""
    dx = points[:, :, None, 0] - centres[:, None, :, 0]
    dy = points[:, :, None, 1] - centres[:, None, :, 1]
    return dx * dx + dy * dy


def _fit_tps(source, target):
    """TPS coefficients [B, n+3, 2] with T(source_i) = target_i.

    source: [1 or B, n, 2], target: [1 or B, n, 2], both float64. A source shared by the batch (leading dim 1)
    gives one system solved for every target set at once.
    """
    n = tf.shape(source)[1]
    kernel = _tps_kernel(_squared_distances(source, source))
    affine = tf.concat([tf.ones_like(source[..., :1]), source], axis=-1)
    top = tf.concat([kernel, affine], axis=-1)
    bottom = tf.concat([tf.transpose(affine, [0, 2, 1]), tf.zeros_like(kernel[:, :3, :3])], axis=-1)
    system = tf.concat([top, bottom], axis=1)
    rhs = tf.concat([target, tf.zeros_like(target[:, :3])], axis=1)
    if source.shape[0] == 1:
        # One shared system: solve all target sets as extra right-hand-side columns.
        num_targets = tf.shape(rhs)[0]
        stacked = tf.reshape(tf.transpose(rhs, [1, 0, 2]), [1, n + 3, num_targets * 2])
        solution = tf.reshape(tf.linalg.solve(system, stacked), [n + 3, num_targets, 2])
        return tf.transpose(solution, [1, 0, 2])
    return tf.linalg.solve(system, tf.broadcast_to(rhs, [tf.shape(source)[0], n + 3, 2]))


def _evaluate_tps(points, source, coefficients):
    """T(points): points [1 or B, m, 2], source [1 or B, n, 2], coefficients [B, n+3, 2] -> [B, m, 2]."""
    distances = _squared_distances(points, source)
    ones = tf.ones_like(distances[..., :1])
    points = tf.broadcast_to(points, tf.concat([tf.shape(distances)[:2], [2]], axis=0))
    basis = tf.concat([_tps_kernel(distances), ones, points], axis=-1)
    return tf.linalg.matmul(basis, coefficients)


def _tps_map_batched(points, source, target):
    """T(points) for float32 pixel arguments [1 or B, *, 2]; a leading 1 is shared by the batch."""
    # TPS interpolation is invariant to a similarity transform of the domain, so the domain is normalised to
    # unit extent for conditioning. The (n+3)^2 solve is cheap in float64: 1e-4 px from an exact float64 TPS
    # at 128 px, against 4e-4 px for a float32 solve (and 3e-3 px for OpenCV's float32 implementation).
    centre = tf.reduce_mean(source, axis=1, keepdims=True)
    extent = tf.reduce_max(tf.reduce_max(source, axis=1) - tf.reduce_min(source, axis=1), axis=-1)
    extent = tf.maximum(extent, 1e-6)[:, None, None]
    source_n = (source - centre) / extent
    points_n = (points - centre) / extent
    coefficients = _fit_tps(tf.cast(source_n, tf.float64), tf.cast(target, tf.float64))
    return _evaluate_tps(points_n, source_n, tf.cast(coefficients, tf.float32))


def tps_map(points, source_points, target_points):
    """Evaluate the thin-plate spline T with T(source_i) = target_i at arbitrary points.

    ``tps_warp`` samples the input image at T(p) for every output pixel p, so ``tps_map`` maps output-image
    coordinates to input-image coordinates. Each argument is either unbatched ([*, 2], shared) or batched
    ([B, *, 2]); the result is batched if any argument is.

    Args:
        points: float [m, 2] or [B, m, 2] (x, y) pixel coordinates.
        source_points: float [n, 2] or [B, n, 2], n >= 3 control points, not all collinear.
        target_points: float [n, 2] or [B, n, 2], where each control point maps to.

    Returns:
        float32 [m, 2], or [B, m, 2] if any argument is batched.

    Example:
        mapped = tps_map(tf.constant([[32.0, 32.0]]), source, target)
    """
    args = [tf.convert_to_tensor(x) for x in (points, source_points, target_points)]
    batched = any(x.shape.rank == 3 for x in args)
    points = _as_batched_points("points", args[0], batched=True)
    source = _as_batched_points("source_points", args[1], batched=True)
    target = _as_batched_points("target_points", args[2], batched=True)
    _check_same_count(source, target)
    mapped = _tps_map_batched(points, source, target)
    return mapped if batched else mapped[0]


def _bilinear_sample(image, coords):
    """Sample image [B, H, W, C] at coords [B, P, 2] (x, y) with an edge-clamped border -> [B, P, C]."""
    shape = tf.shape(image)
    batch, height, width = shape[0], shape[1], shape[2]
    x = tf.clip_by_value(coords[..., 0], 0.0, tf.cast(width - 1, tf.float32))
    y = tf.clip_by_value(coords[..., 1], 0.0, tf.cast(height - 1, tf.float32))
    x0f, y0f = tf.floor(x), tf.floor(y)
    wx, wy = x - x0f, y - y0f
    x0, y0 = tf.cast(x0f, tf.int32), tf.cast(y0f, tf.int32)
    x1, y1 = tf.minimum(x0 + 1, width - 1), tf.minimum(y0 + 1, height - 1)
    base = (tf.range(batch) * height * width)[:, None, None]
    rows = tf.stack([y0, y0, y1, y1], axis=-1) * width
    cols = tf.stack([x0, x1, x0, x1], axis=-1)
    flat = tf.reshape(image, [-1, shape[3]])
    corners = tf.gather(flat, base + rows + cols)
    weights = tf.stack([(1 - wx) * (1 - wy), wx * (1 - wy), (1 - wx) * wy, wx * wy], axis=-1)
    return tf.reduce_sum(corners * tf.cast(weights, image.dtype)[..., None], axis=-2)


def tps_warp(image, source_points, target_points):
    """Warp ``image`` by the thin-plate spline T with T(source_i) = target_i: output(p) = image(T(p)).

    Args:
        image: float tensor [H, W, C], or a batch [B, H, W, C].
        source_points: float [n, 2] (x, y) pixel control points, n >= 3, not all collinear; for a batched
            image also [B, n, 2] (per image), while [n, 2] is shared by the batch (one TPS system, faster).
        target_points: float [n, 2], or [B, n, 2] for a batched image: the (x, y) pixel positions in ``image``
            that the output pixels at ``source_points`` show.

    Returns:
        Tensor of the shape and dtype of ``image``.

    Example:
        warped = tps_warp(img, *random_tps_targets(tf.constant([0, 1]), 128))
    """
    image = tf.convert_to_tensor(image)
    if not image.dtype.is_floating:
        raise ValueError(f"image: expected a floating-point tensor, got dtype {image.dtype.name}")
    rank = image.shape.rank
    if rank not in (3, 4):
        raise ValueError(f"image: expected shape [H, W, C] or [B, H, W, C], got {image.shape}")
    source = _as_batched_points("source_points", source_points, batched=rank == 4)
    target = _as_batched_points("target_points", target_points, batched=rank == 4)
    _check_same_count(source, target)
    batched = image if rank == 4 else image[None]
    shape = tf.shape(batched)
    height, width = shape[1], shape[2]
    xs, ys = tf.meshgrid(tf.range(width, dtype=tf.float32), tf.range(height, dtype=tf.float32))
    pixels = tf.stack([tf.reshape(xs, [-1]), tf.reshape(ys, [-1])], axis=-1)[None]
    coords = tf.broadcast_to(_tps_map_batched(pixels, source, target), [shape[0], height * width, 2])
    warped = tf.reshape(_bilinear_sample(batched, coords), shape)
    return warped if rank == 4 else warped[0]


def _check_fraction(name, value, low=0.0, high=None):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name}: expected a number, got {value!r}")
    if value < low or (high is not None and value >= high):
        bound = f"[{low}, {high})" if high is not None else f">= {low}"
        raise ValueError(f"{name}: expected a value {bound}, got {value}")
    return float(value)


def _check_tps_args(grid_size, rotation, scale, translation, point_jitter, margin):
    if isinstance(grid_size, bool) or not isinstance(grid_size, numbers.Integral) or grid_size < 2:
        raise ValueError(f"grid_size: expected an int >= 2, got {grid_size!r}")
    rotation = _check_fraction("rotation", rotation)
    if not isinstance(scale, (tuple, list)) or len(scale) != 2:
        raise ValueError(f"scale: expected a (low, high) pair, got {scale!r}")
    scale_low, scale_high = (_check_fraction("scale", s) for s in scale)
    if not 0 < scale_low <= scale_high:
        raise ValueError(f"scale: expected 0 < low <= high, got {scale!r}")
    translation = _check_fraction("translation", translation)
    point_jitter = _check_fraction("point_jitter", point_jitter)
    margin = _check_fraction("margin", margin, high=0.5)
    return int(grid_size), rotation, (scale_low, scale_high), translation, point_jitter, margin


def random_tps_targets(
    seed,
    image_size,
    grid_size=10,
    rotation=math.pi / 8,
    scale=(1.05, 1.15),
    translation=10 / 128,
    point_jitter=2 / 128,
    margin=10 / 128,
):
    """Draw the release's TPS control points for a square image of side ``image_size``.

    Args:
        seed: int32/int64 tensor of shape [2]; the result is a pure function of it.
        image_size: side S of the square image in pixels (int or scalar int tensor).
        grid_size: control grid is grid_size x grid_size.
        rotation: r ~ U[-rotation, rotation] radians.
        scale: (low, high); sx, sy ~ U[low, high] independently (> 1 shrinks the content).
        translation: t_x, t_y ~ U[-translation S, translation S] (moves the rotation/scale centre).
        point_jitter: per-point offsets ~ U[-point_jitter S, point_jitter S].
        margin: grid = linspace(margin S, S - margin S), in [0, 0.5).

    Returns:
        ``(source_points, target_points)``, float32 [grid_size**2, 2] (x, y) pixels, for ``tps_warp``.

    Example:
        source, target = random_tps_targets(tf.constant([3, 4]), 128)
    """
    grid_size, rotation, scale, translation, point_jitter, margin = _check_tps_args(
        grid_size, rotation, scale, translation, point_jitter, margin
    )
    seed = check_seed(seed)
    if isinstance(image_size, numbers.Number) and (isinstance(image_size, bool) or image_size < 1):
        raise ValueError(f"image_size: expected a positive int, got {image_size!r}")
    size = tf.cast(image_size, tf.float32)
    low, high = margin * size, size - margin * size
    axis = tf.linspace(low, high, grid_size)
    xs, ys = tf.meshgrid(axis, axis)
    source = tf.stack([tf.reshape(xs, [-1]), tf.reshape(ys, [-1])], axis=-1)

    affine_seed, jitter_seed = tf.unstack(tf.random.experimental.stateless_split(seed, num=2))
    u = tf.random.stateless_uniform([5], seed=affine_seed)
    # Affine maps of unit uniforms so that a zero range gives exactly zero (identity tests rely on it).
    angle = rotation * (2.0 * u[0] - 1.0)
    scale_x = scale[0] + (scale[1] - scale[0]) * u[1]
    scale_y = scale[0] + (scale[1] - scale[0]) * u[2]
    shift = translation * size * (2.0 * tf.stack([u[3], u[4]]) - 1.0)
    cos, sin = tf.cos(angle), tf.sin(angle)
    matrix = tf.stack([tf.stack([scale_x * cos, -sin]), tf.stack([sin, scale_y * cos])])
    # Release quirk: the centre is half the largest grid coordinate (59 at 128 px), offset by the translation.
    centre = high / 2.0 + shift
    unit_jitter = 2.0 * tf.random.stateless_uniform([grid_size * grid_size, 2], seed=jitter_seed) - 1.0
    jitter = point_jitter * size * unit_jitter
    target = tf.linalg.matmul(source - centre, matrix) + jitter + centre
    return source, target


def random_tps_warp(image, seed, **params):
    """T_tps: warp a square image by a random thin-plate spline drawn with ``random_tps_targets``.

    Args:
        image: float tensor [S, S, C], or a batch [B, S, S, C] with a static B; batch element i is warped as
            ``random_tps_warp(image[i], stateless_split(int64(seed), B)[i])`` would warp it.
        seed: int32/int64 tensor of shape [2]; the output is a pure function of (image, seed).
        **params: any of ``random_tps_targets``' grid_size, rotation, scale, translation, point_jitter, margin
            (its defaults are the release's; ``dataclasses.asdict(config.data.tps)`` gives them all).

    Returns:
        Tensor of the shape and dtype of ``image``.

    Example:
        appearance_image = random_tps_warp(frame, tf.constant([5, 6], tf.int64))
    """
    image = tf.convert_to_tensor(image)
    rank = image.shape.rank
    if rank not in (3, 4):
        raise ValueError(f"image: expected shape [S, S, C] or [B, S, S, C], got {image.shape}")
    height, width = image.shape[rank - 3], image.shape[rank - 2]
    if height is not None and width is not None:
        if height != width:
            raise ValueError(f"image: expected a square image, got shape {image.shape}")
        size = height
    else:
        size = tf.shape(image)[rank - 3]
        tf.debugging.assert_equal(size, tf.shape(image)[rank - 2], message="image: expected a square image")
    if rank == 3:
        return tps_warp(image, *random_tps_targets(seed, size, **params))
    if image.shape[0] is None:
        raise ValueError(f"image: a batched random warp needs a static batch size, got shape {image.shape}")
    seeds = tf.random.experimental.stateless_split(check_seed(seed), num=image.shape[0])
    # The control grid depends only on the size, so the batch shares one source grid and one TPS system.
    source = random_tps_targets(seeds[0], size, **params)[0]
    targets = tf.map_fn(lambda s: random_tps_targets(s, size, **params)[1], seeds, fn_output_signature=tf.float32)
    return tps_warp(image, source, targets)
