import numpy as np
import tensorflow as tf

from fgbg_tf.model.appearance import pool_part_appearance, project_appearance


def test_pooling_is_the_release_mean_of_eq1():
    probs = np.zeros((1, 4, 4, 2), np.float32)
    probs[0, 1, 2, 0] = 1.0
    probs[0, 0, 0, 1] = probs[0, 3, 3, 1] = 0.5
    features = np.arange(1 * 4 * 4 * 3, dtype=np.float32).reshape(1, 4, 4, 3)
    parts = pool_part_appearance(tf.constant(probs), tf.constant(features)).numpy()
    # sum_ij p_kij F_cij (eq. 1), divided by the 16 grid cells as the release does.
    np.testing.assert_allclose(parts[0, 0], features[0, 1, 2] / 16)
    np.testing.assert_allclose(parts[0, 1], (features[0, 0, 0] + features[0, 3, 3]) / 2 / 16)


def test_projection_normalises_by_one_plus_total_heat():
    parts = tf.constant([[[2.0, 4.0], [10.0, 0.0]]])  # 2 parts, 2 channels
    heat = np.zeros((1, 2, 2, 2), np.float32)
    heat[0, 0, 0] = [1.0, 0.0]  # only part 0: 2 * 1 / (1 + 1) = 1
    heat[0, 0, 1] = [1.0, 1.0]  # both: (2 + 10) / 3, (4 + 0) / 3
    projected = project_appearance(parts, tf.constant(heat)).numpy()
    np.testing.assert_allclose(projected[0, 0, 0], [1.0, 2.0])
    np.testing.assert_allclose(projected[0, 0, 1], [4.0, 4 / 3], rtol=1e-6)
    np.testing.assert_allclose(projected[0, 1, 1], [0.0, 0.0])
