"""Video-prediction metrics: PSNR, SSIM, their aggregation, and LPIPS on synthetic weights (no real ones here)."""

import json

import numpy as np
import pytest
import tensorflow as tf

from fgbg_tf.evaluation import lpips, video_metrics
from tools import lpips_weights


def _frames(seed, shape=(2, 3, 16, 16, 3)):
    return np.random.default_rng(seed).uniform(0.0, 1.0, shape).astype(np.float32)


def test_psnr_of_frames_a_tenth_apart_is_20_db_per_frame():
    shape = (2, 3, 8, 8, 1)
    scores = video_metrics.frame_psnr(np.full(shape, 0.5), np.full(shape, 0.6))
    assert scores.shape == (2, 3)
    np.testing.assert_allclose(scores, 20.0, atol=1e-4)
    # uint8 is read as value / 255: 0 against 51 is an error of 0.2 -> 10 log10(1 / 0.04) dB.
    uint8 = video_metrics.frame_psnr(np.zeros(shape, np.uint8), np.full(shape, 51, np.uint8))
    np.testing.assert_allclose(uint8, 10 * np.log10(25.0), atol=1e-4)


def test_psnr_agrees_with_tf_image_psnr_frame_by_frame():
    predicted, truth = _frames(0), _frames(1)
    scores = video_metrics.frame_psnr(predicted, truth)
    expected = tf.image.psnr(predicted, truth, max_val=1.0).numpy()
    assert expected.shape == (2, 3)
    np.testing.assert_allclose(scores, expected, atol=1e-3)


def test_ssim_is_one_for_identical_frames_and_tf_image_ssim_per_frame():
    predicted, truth = _frames(2), _frames(3)
    np.testing.assert_allclose(video_metrics.frame_ssim(truth, truth), 1.0, atol=1e-6)
    scores = video_metrics.frame_ssim(predicted, truth)
    assert scores.shape == (2, 3)
    for n in range(2):
        for t in range(3):
            single = tf.image.ssim(predicted[n, t], truth[n, t], max_val=1.0).numpy()
            assert scores[n, t] == pytest.approx(single, abs=1e-6)
    assert np.all(scores < 0.5)  # independent noise is far from identical
    grey = video_metrics.frame_ssim(predicted[..., :1], truth[..., :1])
    assert grey.shape == (2, 3)


def test_frames_out_of_range_or_of_other_shapes_are_refused():
    frames = _frames(4)
    with pytest.raises(ValueError, match=r"\(x \+ 1\) / 2"):
        video_metrics.frame_psnr(frames * 2.0 - 1.0, frames)
    with pytest.raises(ValueError, match="same shape"):
        video_metrics.frame_ssim(frames[:, :2], frames)
    with pytest.raises(ValueError, match="videos, frames"):
        video_metrics.frame_psnr(frames[0], frames[0])


def test_summary_curves_errors_and_ci_by_hand():
    # 2 videos x 2 frames. Frame 0: 1, 3 -> mean 2, std 1; frame 1: 2, 6 -> mean 4, std 2.
    # Per-video means 1.5 and 4.5 -> std 1.5; mean over all 3.
    lpips_scores = np.array([[0.1, 0.2], [0.3, 0.4]])
    report = video_metrics.summarise({"psnr": np.array([[1.0, 2.0], [3.0, 6.0]]), "lpips": lpips_scores,
                                      "ssim": None})
    psnr = report["psnr"]
    np.testing.assert_allclose(psnr["curve"], [2.0, 4.0])
    np.testing.assert_allclose(psnr["curve_stderr"], [1.0 / np.sqrt(2), 2.0 / np.sqrt(2)])
    assert psnr["mean"] == pytest.approx(3.0)
    assert psnr["ci95"] == pytest.approx(1.96 * 1.5 / np.sqrt(2))
    assert (psnr["videos"], psnr["frames"]) == (2, 2)
    # 1 - LPIPS as the paper plots it: curve and mean flipped, error bars unchanged.
    flipped, original = report["one_minus_lpips"], report["lpips"]
    np.testing.assert_allclose(flipped["curve"], [0.8, 0.7])
    assert flipped["mean"] == pytest.approx(0.75)
    np.testing.assert_allclose(flipped["curve_stderr"], original["curve_stderr"])
    np.testing.assert_allclose(original["curve_stderr"], [0.1 / np.sqrt(2)] * 2)
    assert flipped["ci95"] == pytest.approx(original["ci95"]) and original["ci95"] == pytest.approx(1.96 * 0.1 / 2 ** 0.5)
    assert report["ssim"] is None
    assert json.loads(json.dumps(report)) == report  # plain lists and floats


def test_summary_without_lpips_weights_says_so():
    video = _frames(5, (1, 2, 16, 16, 1))
    assert lpips.load_lpips(None) is None
    per_frame = video_metrics.frame_metrics(video, video, lpips.load_lpips(None))
    report = video_metrics.summarise(per_frame)
    assert report["lpips"] is None and report["one_minus_lpips"] is None
    assert report["psnr"]["curve"] == [pytest.approx(120.0)] * 2  # identical frames: the MSE floor, not infinity


# --- LPIPS on random weights in torch's layouts, converted as tools/lpips_weights.py converts the real ones.


@pytest.fixture(scope="module")
def torch_state():
    rng = np.random.default_rng(0)
    alexnet, lin, channels = {}, {}, 3
    for i, (index, (out, side, _, _)) in enumerate(zip(lpips_weights.ALEXNET_CONV_INDICES, lpips.ALEXNET_CONVS)):
        fan_in = channels * side * side
        alexnet[f"features.{index}.weight"] = rng.normal(0, np.sqrt(2 / fan_in), (out, channels, side, side))
        alexnet[f"features.{index}.bias"] = rng.normal(0.05, 0.05, out)
        lin[f"lin{i}.model.1.weight"] = rng.uniform(0, 1, (1, out, 1, 1))
        channels = out
    return alexnet, lin


@pytest.fixture(scope="module")
def metric(torch_state):
    return lpips.LPIPS(lpips_weights.convert(*torch_state))


def _images(seed, batch=2, size=64, channels=3):
    return _frames(seed, (batch, size, size, channels))


def test_conv1_pads_two_pixels_on_every_side_like_torch(torch_state, metric):
    image = _images(6, batch=1)
    tap = metric.features(image)[0].numpy()[0]
    kernel, bias = torch_state[0]["features.0.weight"], torch_state[0]["features.0.bias"]  # OIHW
    scaled = (image[0] * 2 - 1 - np.array([-0.030, -0.088, -0.188])) / np.array([0.458, 0.448, 0.450])
    padded = np.pad(scaled, ((2, 2), (2, 2), (0, 0)))
    for i, j in [(0, 0), (14, 14), (3, 11)]:
        patch = padded[4 * i:4 * i + 11, 4 * j:4 * j + 11]  # [11, 11, 3]
        expected = np.maximum(np.einsum("hwc,ochw->o", patch, kernel) + bias, 0)
        np.testing.assert_allclose(tap[i, j], expected, rtol=1e-4, atol=1e-4)


def test_feature_maps_at_64_px(metric):
    taps = metric.features(_images(7, batch=1))
    assert [tuple(t.shape[1:]) for t in taps] == [(15, 15, 64), (7, 7, 192), (3, 3, 384), (3, 3, 256), (3, 3, 256)]


def test_distance_is_the_lin_weighted_difference_of_unit_length_taps(torch_state, metric):
    first, second = _images(15, batch=1), _images(16, batch=1)
    expected = 0.0
    for i, (a, b) in enumerate(zip(metric.features(first), metric.features(second))):
        a, b = a.numpy()[0].astype(np.float64), b.numpy()[0].astype(np.float64)
        a = a / (np.linalg.norm(a, axis=-1, keepdims=True) + 1e-10)
        b = b / (np.linalg.norm(b, axis=-1, keepdims=True) + 1e-10)
        expected += np.mean(np.square(a - b) @ torch_state[1][f"lin{i}.model.1.weight"].reshape(-1))
    assert metric(first, second).numpy()[0] == pytest.approx(expected, rel=1e-5)


def test_lpips_is_a_distance_that_grows_with_noise(metric):
    first, second = _images(8), _images(9)
    np.testing.assert_allclose(metric(first, first).numpy(), 0.0, atol=1e-7)
    forward, backward = metric(first, second).numpy(), metric(second, first).numpy()
    assert forward.shape == (2,) and np.all(forward > 0)
    np.testing.assert_allclose(forward, backward, rtol=1e-6)
    base = 0.2 + 0.6 * first
    noise = np.random.default_rng(10).normal(size=base.shape).astype(np.float32)
    distances = [metric(base, np.clip(base + s * noise, 0, 1)).numpy() for s in (0.02, 0.1, 0.3)]
    assert np.all(np.diff(distances, axis=0) > 0), distances


def test_lpips_is_batch_independent_grey_tiled_and_runs_in_tf_function(metric):
    first, second = _images(11, batch=3), _images(12, batch=3)
    together = metric(first, second).numpy()
    alone = [metric(first[k:k + 1], second[k:k + 1]).numpy()[0] for k in range(3)]
    np.testing.assert_allclose(together, alone, rtol=1e-5)
    np.testing.assert_allclose(tf.function(metric)(first, second).numpy(), together, rtol=1e-5)
    grey_a, grey_b = first[..., :1], second[..., :1]
    np.testing.assert_allclose(metric(grey_a, grey_b).numpy(),
                               metric(np.repeat(grey_a, 3, -1), np.repeat(grey_b, 3, -1)).numpy(), rtol=1e-6)


def test_frame_lpips_scores_each_frame(metric):
    predicted, truth = _frames(13, (2, 3, 32, 32, 1)), _frames(14, (2, 3, 32, 32, 1))
    scores = video_metrics.frame_lpips(predicted, truth, metric)
    assert scores.shape == (2, 3)
    np.testing.assert_allclose(scores[1], metric(predicted[1], truth[1]).numpy(), rtol=1e-6)


def test_weights_file_round_trips_and_bad_files_name_the_key(tmp_path, torch_state):
    arrays = lpips_weights.convert(*torch_state)
    path = tmp_path / "lpips.npz"
    np.savez(path, **arrays)
    loaded = lpips.load_lpips_weights(path)
    assert set(loaded) == set(arrays)
    for key in arrays:
        np.testing.assert_array_equal(loaded[key], arrays[key])
    assert isinstance(lpips.load_lpips(str(path)), lpips.LPIPS)

    missing = {key: value for key, value in arrays.items() if key != "lin3"}
    np.savez(tmp_path / "missing.npz", **missing)
    with pytest.raises(ValueError, match=r"missing\.npz: missing key 'lin3' \(expected shape \(256,\)\)"):
        lpips.load_lpips_weights(tmp_path / "missing.npz")
    # A kernel left in torch's OIHW layout is caught by its shape.
    oihw = dict(arrays, conv1_kernel=torch_state[0]["features.0.weight"])
    np.savez(tmp_path / "oihw.npz", **oihw)
    with pytest.raises(ValueError, match=r"oihw\.npz: key 'conv1_kernel' has shape \(64, 3, 11, 11\), "
                                         r"expected \(11, 11, 3, 64\)"):
        lpips.load_lpips_weights(tmp_path / "oihw.npz")
    with pytest.raises(ValueError, match="'lin0' has negative weights"):
        lpips.LPIPS(dict(arrays, lin0=-arrays["lin0"]))
