#!/usr/bin/env bash
# All GPUs of one host with MirroredStrategy. The paper trains on 8 GPUs with 16 images each (global batch 128):
# train.batch_size stays 16 per replica.
set -euo pipefail
exec python -m fgbg_tf.train --strategy mirrored --set train.batch_size=16 "$@"
