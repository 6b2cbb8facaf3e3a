#!/usr/bin/env bash
# Start a Ray cluster of several nodes on this machine: a head (0 CPUs, fsf_driver) and worker
# nodes, each a separate `ray start` process on 127.0.0.2 with fresh ports and its own temp
# folder, so it never touches another Ray instance on the machine.
#   cluster/local/up.sh                       # node_a:1 node_b:1 (1 CPU each)
#   cluster/local/up.sh --node node_a:2 --node node_b:2 --node node_c:2 --dashboard
# It prints `export RAY_ADDRESS=...` and the cluster folder; stop it with down.sh FOLDER.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-.venv/bin/python}
exec "$PY" -m fsf.cluster up "$@"
