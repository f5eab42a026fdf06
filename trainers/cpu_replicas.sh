#!/usr/bin/env bash
# MirroredStrategy over N logical CPU devices (default 2): exercises the multi-replica path without GPUs.
set -euo pipefail
replicas="${REPLICAS:-2}"
exec python -m fgbg_tf.train --cpu-replicas "$replicas" "$@"
