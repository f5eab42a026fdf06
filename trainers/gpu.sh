#!/usr/bin/env bash
# One GPU, float32 as the release trained.
set -euo pipefail
export CUDA_VISIBLE_DEVICES="${CUDA_VISIBLE_DEVICES:-0}"
exec python -m fgbg_tf.train --strategy default "$@"
