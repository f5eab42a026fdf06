#!/usr/bin/env bash
# Several hosts with MultiWorkerMirroredStrategy. Run on every worker with TF_CONFIG describing the cluster, e.g.
#   TF_CONFIG='{"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}}'
# All workers must see the same --output folder (shared storage); the chief (index 0) writes checkpoints and logs.
set -euo pipefail
if [ -z "${TF_CONFIG:-}" ]; then
  echo "cluster.sh: set TF_CONFIG (see the comment at the top of this script)" >&2
  exit 2
fi
exec python -m fgbg_tf.train --strategy multiworker "$@"
