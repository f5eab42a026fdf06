#!/usr/bin/env bash
# One CPU host: bfloat16 on AMX CPUs (float32 elsewhere) and the small preset unless the arguments say otherwise.
set -euo pipefail
exec python -m fgbg_tf.train --strategy default --set train.precision=auto --set model.preset=small "$@"
