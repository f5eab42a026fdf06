"""Tests for fgbg_tf.loss.torch_legacy: the legacy torch.save reader parses tensors and executes nothing."""

import collections
import io
import pickle

import numpy as np
import pytest

from fgbg_tf.loss import torch_legacy
from tests.loss.weights_files import _FakeStorage, _FakeTensor, _legacy_torch_bytes


def test_restricted_unpickler_refuses_non_whitelisted_globals(tmp_path):
    marker = tmp_path / "executed"
    attack = f"cos\nsystem\n(S'touch {marker}'\ntR.".encode()
    with pytest.raises(pickle.UnpicklingError, match="os.system"):
        torch_legacy._RestrictedUnpickler(io.BytesIO(attack)).load()
    # The same payload in the object slot of an otherwise valid file.
    header = b"".join(pickle.dumps(v, protocol=2) for v in
                      (torch_legacy._TORCH_LEGACY_MAGIC, torch_legacy._TORCH_LEGACY_PROTOCOL, {"little_endian": True}))
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        torch_legacy.load_legacy_torch_save(header + attack)
    eval_attack = b"cbuiltins\neval\n(S'1+1'\ntR."
    with pytest.raises(pickle.UnpicklingError, match="builtins.eval"):
        torch_legacy._RestrictedUnpickler(io.BytesIO(eval_attack)).load()
    assert not marker.exists()


def test_crafted_legacy_torch_file_parses_to_expected_arrays(monkeypatch):
    floats = _FakeStorage("140001", np.arange(10, dtype=np.float32) * 0.5)
    bytes_ = _FakeStorage("139999", np.array([3, 1, 4, 1, 5, 9], np.uint8))
    state = collections.OrderedDict([
        ("matrix_T", _FakeTensor(floats, 1, (3, 2), (1, 3))),  # transposed view of elements 1..6
        ("vector", _FakeTensor(floats, 7, (3,), (1,))),  # shares the storage, offset 7
        ("codes", _FakeTensor(bytes_, 0, (2, 3), (3, 1))),
    ])
    data = _legacy_torch_bytes(state, [floats, bytes_], monkeypatch)
    parsed = torch_legacy.load_legacy_torch_save(data)
    assert list(parsed) == ["matrix_T", "vector", "codes"]
    np.testing.assert_array_equal(parsed["matrix_T"], [[0.5, 2.0], [1.0, 2.5], [1.5, 3.0]])
    np.testing.assert_array_equal(parsed["vector"], [3.5, 4.0, 4.5])
    assert parsed["codes"].dtype == np.uint8
    np.testing.assert_array_equal(parsed["codes"], [[3, 1, 4], [1, 5, 9]])
    with pytest.raises(ValueError, match="truncated"):
        torch_legacy.load_legacy_torch_save(data[:-3])
    with pytest.raises(ValueError, match="magic"):
        torch_legacy.load_legacy_torch_save(pickle.dumps(12345, protocol=2) + data[20:])


def test_files_that_expand_their_data_are_refused(monkeypatch):
    floats = _FakeStorage("1", np.arange(4, dtype=np.float32))
    # Stride 0: four stored floats viewed as a million.
    broadcast = collections.OrderedDict([("w", _FakeTensor(floats, 0, (1000, 1000), (0, 0)))])
    with pytest.raises(ValueError, match="more elements than its storage"):
        torch_legacy.load_legacy_torch_save(_legacy_torch_bytes(broadcast, [floats], monkeypatch))
    # One small list referenced again and again: pickle's memo shares it, materialising would copy it each time.
    shared = [_FakeTensor(floats, 0, (4,), (1,))] * 8
    for _ in range(12):
        shared = [shared, shared]
    with pytest.raises(ValueError, match="more than twice its stored data"):
        torch_legacy.load_legacy_torch_save(_legacy_torch_bytes({"nested": shared}, [floats], monkeypatch))
    # Within the bound, a tensor shared twice is fine.
    twice = {"a": _FakeTensor(floats, 0, (4,), (1,)), "b": _FakeTensor(floats, 0, (2, 2), (2, 1))}
    parsed = torch_legacy.load_legacy_torch_save(_legacy_torch_bytes(twice, [floats], monkeypatch))
    np.testing.assert_array_equal(parsed["b"], [[0, 1], [2, 3]])
