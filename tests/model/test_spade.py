import numpy as np
import pytest
import tensorflow as tf

from fgbg_tf.model.spade import SPADE, SPADEGenerator, SPADEResBlock


def test_spade_with_constant_modulation_is_scaled_instance_norm():
    layer = SPADE(3, hidden=4)
    x = tf.random.normal([2, 8, 8, 3]) * 3.0 + 1.0
    seg = tf.random.uniform([2, 16, 16, 5])
    layer(x, seg)
    for conv, bias in ((layer.gamma, 1.0), (layer.beta, 0.5)):
        conv.kernel.assign(tf.zeros_like(conv.kernel))
        conv.bias.assign(tf.fill(conv.bias.shape, bias))
    out = layer(x, seg).numpy()
    # IN(x) * (1 + 1) + 0.5: per sample and channel, mean 0.5 and std 2 (eps 1e-5 negligible here).
    np.testing.assert_allclose(out.mean(axis=(1, 2)), 0.5, atol=1e-4)
    np.testing.assert_allclose(out.std(axis=(1, 2)), 2.0, rtol=1e-3)


def test_spade_modulation_follows_the_segmentation_map():
    layer = SPADE(2, hidden=4)
    x = tf.random.normal([1, 8, 8, 2])
    seg_a = tf.zeros([1, 8, 8, 3])
    seg_b = tf.concat([tf.ones([1, 8, 4, 3]), tf.zeros([1, 8, 4, 3])], axis=2)
    out_a, out_b = layer(x, seg_a).numpy(), layer(x, seg_b).numpy()
    # Where the segmentation differs (left half, away from the conv's reach) the output differs.
    assert np.abs(out_a[0, :, :2] - out_b[0, :, :2]).max() > 1e-3
    np.testing.assert_allclose(out_a[0, :, 6:], out_b[0, :, 6:], atol=1e-6)


@pytest.mark.parametrize("spectral_norm", ["release", "keras"])
def test_resblock_shortcuts_and_spectral_norm(spectral_norm):
    same = SPADEResBlock(8, 8, hidden=4, spectral_norm=spectral_norm)
    changed = SPADEResBlock(8, 4, hidden=4, spectral_norm=spectral_norm)
    x, seg = tf.random.normal([2, 8, 8, 8]), tf.random.uniform([2, 8, 8, 3])
    assert same(x, seg).shape == (2, 8, 8, 8)
    assert changed(x, seg).shape == (2, 8, 8, 4)
    assert not same.learned_shortcut and changed.learned_shortcut
    for _ in range(30):
        changed(x, seg, training=True)
    if spectral_norm == "keras":  # the wrapper overwrites its kernel with kernel / sigma
        assert changed.conv_s.layer.bias is None
        kernel = changed.conv_0.layer.kernel.numpy()
    else:  # the free weight stays; every call uses kernel / sigma
        assert changed.conv_s.bias is None
        kernel = changed.conv_0.kernel.numpy() / float(changed.conv_0.sigma())
    sigma = np.linalg.svd(kernel.reshape(-1, kernel.shape[-1]), compute_uv=False)[0]
    assert sigma == pytest.approx(1.0, abs=0.05)
    assert SPADEResBlock.from_config(changed.get_config()).spectral_norm == spectral_norm


@pytest.mark.parametrize("size", [32, 64])
def test_generator_renders_full_resolution_rgb(size):
    gen = SPADEGenerator(16, (16, 8, 8), hidden=8)
    out = gen(tf.random.uniform([2, size, size, 4]), tf.random.normal([2, size, size, 6]))
    assert out.shape == (2, size, size, 3)
    clone = SPADEGenerator.from_config(gen.get_config())
    clone(tf.random.uniform([1, size, size, 4]), tf.random.normal([1, size, size, 6]))
    assert clone.count_params() == gen.count_params()


def test_keras_spectral_norm_trained_in_bfloat16_restores_into_float32(tmp_path):
    # evaluate and export build the model in float32 whatever precision trained it; every variable, the keras
    # wrapper's power-iteration vector included, must be float32 for the checkpoint to restore there.
    x, seg = tf.random.normal([2, 8, 8, 8]), tf.random.uniform([2, 8, 8, 3])
    mixed = SPADEResBlock(8, 4, hidden=4, spectral_norm="keras", dtype="mixed_bfloat16")
    mixed(x, seg, training=True)
    assert {v.dtype for v in mixed.variables} == {"float32"}
    path = tf.train.Checkpoint(block=mixed).write(str(tmp_path / "ckpt"))
    restored = SPADEResBlock(8, 4, hidden=4, spectral_norm="keras")
    restored(x, seg)
    tf.train.Checkpoint(block=restored).read(path).assert_consumed()
    np.testing.assert_array_equal(restored.conv_0.vector_u.numpy(), mixed.conv_0.vector_u.numpy())
