"""Per-part appearance: pooling features under each part map, projecting them onto heatmaps.

Both are batched matmuls over flattened pixels rather than tf.einsum, which TF.js' WASM backend lacks.

Example:
    parts = pool_part_appearance(probs, features)      # [B, K, C]  (eq. 1)
    appearance_map = project_appearance(parts, heat)   # [B, S, S, C]
"""

from __future__ import annotations

import tensorflow as tf


def pool_part_appearance(probs: tf.Tensor, features: tf.Tensor) -> tf.Tensor:
    """Appearance vector of each part: the part map's weighted pool of the features (eq. 1).

    The release divides the sum of eq. 1 by the number of grid cells (a spatial
    mean of p_k * F); we follow it so trained weights and scales stay comparable.

    Args:
        probs: [B, H, W, K] softmax-normalised part maps.
        features: [B, H, W, C] appearance feature map at the same resolution.

    Returns:
        [B, K, C] float32 part appearance vectors.
    """
    features = tf.cast(features, tf.float32)
    cells = probs.shape[1] * probs.shape[2]
    flat = lambda x: tf.reshape(x, [tf.shape(x)[0], cells, x.shape[-1]])
    return tf.matmul(flat(probs), flat(features), transpose_a=True) / float(cells)


def project_appearance(parts: tf.Tensor, heatmaps: tf.Tensor) -> tf.Tensor:
    """Spreads each part's vector over its heatmap: A(v) = sum_k a_k G_k(v) / (1 + sum_k G_k(v)).

    Lorenz et al. section 3.4, with the "1 +" normaliser both predecessors use.

    Args:
        parts: [B, K, C] part appearance vectors.
        heatmaps: [B, S, S, K] rendered heatmaps of the pose image (eq. 2).

    Returns:
        [B, S, S, C] localised appearance map.
    """
    heatmaps = tf.cast(heatmaps, tf.float32)
    batch, height, width, k = tf.shape(heatmaps)[0], heatmaps.shape[1], heatmaps.shape[2], heatmaps.shape[3]
    weighted = tf.matmul(tf.reshape(heatmaps, [batch, height * width, k]), parts)
    weighted = tf.reshape(weighted, [batch, height, width, parts.shape[-1]])
    return weighted / (1.0 + tf.reduce_sum(heatmaps, axis=-1, keepdims=True))
