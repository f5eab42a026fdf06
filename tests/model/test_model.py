import numpy as np
import pytest
import tensorflow as tf

from fgbg_tf.model.factorized import FactorizedLandmarkModel
from fgbg_tf.model.landmarks import render_heatmaps


def images(batch=2, size=32, seed=0):
    return tf.random.stateless_uniform([batch, size, size, 3], [seed, 1], -1.0, 1.0)


@pytest.mark.parametrize("variant", ["full", "nomask", "baseline"])
def test_variant_outputs_and_composition(variant):
    model = FactorizedLandmarkModel(4, 32, preset="small", variant=variant)
    out = {k: v.numpy() for k, v in model({"pose": images(), "appearance": images(seed=1)}).items()}
    assert out["reconstruction"].shape == out["foreground"].shape == (2, 32, 32, 3)
    assert out["mean"].shape == (2, 4, 2) and out["covariance"].shape == (2, 4, 2, 2)
    assert out["heatmaps"].shape == (2, 32, 32, 4)
    if variant == "full":
        assert out["mask"].shape == (2, 32, 32, 1) and out["background"].shape == (2, 32, 32, 3)
        assert 0 < out["mask"].min() and out["mask"].max() < 1
        expected = out["mask"] * out["foreground"] + (1 - out["mask"]) * out["background"]  # eq. 7
    elif variant == "nomask":
        assert "mask" not in out
        expected = out["foreground"] + out["background"]
    else:
        assert "mask" not in out and "background" not in out
        expected = out["foreground"]
    np.testing.assert_allclose(out["reconstruction"], expected, atol=1e-6)


def test_background_sees_only_the_appearance_image():
    model = FactorizedLandmarkModel(4, 32, preset="small", variant="nomask")
    q = images(seed=1)
    a = model({"pose": images(seed=2), "appearance": q})["background"]
    b = model({"pose": images(seed=3), "appearance": q})["background"]
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_pose_comes_from_the_pose_image():
    model = FactorizedLandmarkModel(4, 32, preset="small")
    p = images(seed=2)
    a = model({"pose": p, "appearance": images(seed=4)})["mean"]
    np.testing.assert_allclose(a, model.detect(p)["mean"], atol=1e-6)


def test_release_preset_matches_the_released_parameter_count():
    # Reference doc / environment doc: the official release has 31.6 M parameters (K = 30, 128 px, fg/bg on);
    # PyTorch counts parameters, not the spectral norm's u and v buffers, so the trainable weights are compared.
    model = FactorizedLandmarkModel(30, 128, preset="release").build_all()
    trainable = sum(int(np.prod(v.shape)) for v in model.trainable_variables)
    assert round(trainable / 1e5) == 316


def test_wrong_input_shape_is_a_clear_error():
    model = FactorizedLandmarkModel(4, 32, preset="small")
    with pytest.raises(ValueError, match=r"images must have shape \[batch, 32, 32, 3\]"):
        model.detect(tf.zeros([1, 64, 64, 3]))


def test_config_round_trip_rebuilds_the_same_model():
    model = FactorizedLandmarkModel(4, 32, preset="small", variant="nomask", covariance="fixed").build_all()
    clone = FactorizedLandmarkModel.from_config(model.get_config()).build_all()
    assert clone.get_config() == model.get_config()
    assert clone.count_params() == model.count_params()
    clone.set_weights(model.get_weights())
    x = images()
    np.testing.assert_allclose(clone.detect(x)["mean"], model.detect(x)["mean"], atol=1e-6)


def test_zero_heads_start_with_a_constant_mask_and_background():
    # The release's start (Glorot heads) answers the input; zero heads give sigmoid(0.1) and the 0.1 bias everywhere.
    model = FactorizedLandmarkModel(4, 32, preset="small", zero_heads=True, mask_bias=-1.0)
    out = model({"pose": images(seed=5), "appearance": images(seed=6)})
    np.testing.assert_allclose(out["mask"], 1 / (1 + np.exp(1.0)), atol=1e-6)
    np.testing.assert_allclose(out["background"], 0.1, atol=1e-6)
    release = FactorizedLandmarkModel(4, 32, preset="small")({"pose": images(seed=5), "appearance": images(seed=6)})
    assert np.std(release["mask"]) > 1e-3 and np.std(release["background"]) > 1e-3
    clone = FactorizedLandmarkModel.from_config(model.get_config())
    assert clone.zero_heads and clone.mask_bias == -1.0


def test_mask_temperature_scales_the_logit_of_the_same_weights():
    # sigmoid(T x logit): with the same weights, the mask of T = 4 is the T = 1 mask's logit times 4.
    pose, appearance = images(seed=5), images(seed=6)
    cold = FactorizedLandmarkModel(4, 32, preset="small", zero_heads=False).build_all()
    warm = FactorizedLandmarkModel.from_config({**cold.get_config(), "mask_temperature": 4.0}).build_all()
    warm.set_weights(cold.get_weights())
    one = cold({"pose": pose, "appearance": appearance})["mask"].numpy()
    four = warm({"pose": pose, "appearance": appearance})["mask"].numpy()
    logit = np.log(one / (1 - one))
    np.testing.assert_allclose(four, 1 / (1 + np.exp(-4 * logit)), atol=1e-5)
    assert np.std(one) > 1e-3  # a mask that answers the input, so the comparison can fail


def test_spectral_norm_vectors_start_as_unit_vectors():
    # PyTorch starts u and v as unit vectors. When Keras built the model by tracing call() symbolically first, the
    # normalising assign in SpectralConv2D.build ran in that throwaway graph and u, v kept their raw random draw.
    model = FactorizedLandmarkModel(num_landmarks=4, image_size=32, preset="small").build_all()
    vectors = [v for v in model.variables if v.path.endswith(("/u", "/v"))]
    assert len(vectors) >= 10
    np.testing.assert_allclose([np.linalg.norm(v.numpy()) for v in vectors], 1.0, rtol=1e-5)


def test_mask_prior_is_foreground_at_the_landmarks_and_background_away_from_them():
    # zero_heads and mask_bias 0 make MaskNet's logit 0, so the mask is the prior alone:
    # sigmoid(prior x (2 max_k s_k - 1)), with s_k = 1 / (1 + |l - mu_k|^2 / 0.02) for the fixed covariance.
    model = FactorizedLandmarkModel(2, 32, preset="small", covariance="fixed", fixed_covariance=0.02,
                                    zero_heads=True, mask_bias=0.0, mask_prior=3.0).build_all()
    grid = -1.0 + 2.0 * np.arange(32) / 32  # pixel centres' coordinates as `coordinate_grid` places them
    mean = tf.constant([[[grid[8], grid[8]], [grid[24], grid[16]]]], tf.float32)  # (x, y) on pixels (8, 8), (24, 16)
    heatmaps = render_heatmaps(mean, 0.02 * tf.eye(2, batch_shape=[1, 2]), 32)
    mask = model._mask(heatmaps).numpy()[0, ..., 0]
    sigmoid = lambda z: 1 / (1 + np.exp(-z))
    assert mask[8, 8] == pytest.approx(sigmoid(3.0), abs=1e-6) and mask[16, 24] == pytest.approx(sigmoid(3.0), abs=1e-6)
    # Pixel (row 30, column 2): nearest landmark (8, 8) at dx = -6, dy = 22 pixels of 2 / 32.
    nearest = 1 / (1 + ((6 * 2 / 32) ** 2 + (22 * 2 / 32) ** 2) / 0.02)
    assert mask[30, 2] == pytest.approx(sigmoid(3.0 * (2 * nearest - 1)), abs=1e-6) and mask[30, 2] < 0.06
    plain = FactorizedLandmarkModel.from_config({**model.get_config(), "mask_prior": 0.0}).build_all()
    np.testing.assert_allclose(plain._mask(heatmaps).numpy(), 0.5, atol=1e-6)  # the release: no prior
    assert FactorizedLandmarkModel.from_config(model.get_config()).mask_prior == 3.0


def test_landmarks_get_no_gradient_through_the_mask_prior():
    # With MaskNet's head at zero its logit passes no gradient to the heatmaps; only the prior could.
    model = FactorizedLandmarkModel(2, 32, preset="small", zero_heads=True, mask_bias=0.0, mask_prior=3.0).build_all()
    mean = tf.Variable([[[-0.3, -0.2], [0.4, 0.1]]])
    with tf.GradientTape() as tape:
        mask = model._mask(render_heatmaps(mean, 0.02 * tf.eye(2, batch_shape=[1, 2]), 32))
        share = tf.reduce_sum(mask * tf.linspace(0.0, 1.0, 32)[None, :, None, None])
    np.testing.assert_array_equal(tape.gradient(share, mean).numpy(), 0.0)


def test_background_downsample_hides_detail_finer_than_its_factor_from_bgnet():
    # Adding a checkerboard of 1-pixel squares leaves every 4 x 4 block's mean, and so the pooled BGNet's view,
    # unchanged; the release's BGNet (factor 1) sees it.
    image = images(1, 32, seed=3) * 0.5
    checker = 0.3 * (2.0 * ((np.arange(32)[:, None] + np.arange(32)[None, :]) % 2) - 1.0)
    detailed = image + tf.constant(checker[None, :, :, None], tf.float32)
    pooled = FactorizedLandmarkModel(4, 32, preset="small", variant="nomask", background_downsample=4).build_all()
    release = FactorizedLandmarkModel.from_config({**pooled.get_config(), "background_downsample": 1}).build_all()
    release.set_weights(pooled.get_weights())
    np.testing.assert_allclose(pooled._background(detailed).numpy(), pooled._background(image).numpy(), atol=1e-5)
    assert pooled._background(image).shape == (1, 32, 32, 3)
    assert np.abs(release._background(detailed).numpy() - release._background(image).numpy()).max() > 1e-2
    with pytest.raises(ValueError, match="background_downsample"):
        FactorizedLandmarkModel(4, 32, preset="small", background_downsample=8)  # 4 px: too small for 3 halvings
