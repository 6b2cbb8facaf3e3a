#!/usr/bin/env bash
# Stop the local cluster started by up.sh: kill its nodes' process groups and every process
# carrying its marker. Never `ray stop`, which would stop every Ray instance on the machine.
#   cluster/local/down.sh /tmp/fsfray-XXXXXXXX
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-.venv/bin/python}
exec "$PY" -m fsf.cluster down "$@"
