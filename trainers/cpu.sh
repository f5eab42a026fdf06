#!/usr/bin/env bash
# One CPU host: bfloat16 (AMX) and the small preset unless the arguments say otherwise.
set -euo pipefail
exec python -m fgbg_tf.train --strategy default --set train.precision=mixed_bfloat16 --set model.preset=small "$@"
