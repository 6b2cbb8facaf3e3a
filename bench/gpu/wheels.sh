#!/usr/bin/env bash
# The wheels the GPU check carries to a machine that reaches no registry (bench/gpu/run.sh):
# fsf's own, built from this checkout, and the pure-Python needs that machine lacks (it has
# PyTorch 2.11 and transformers 5.17, but not pydantic or datasets). Run where a registry is
# reachable, from the repository root:
#   bash bench/gpu/wheels.sh [DIR] [PYTHON_VERSION]     # default .whl and 3.12 (the GPU image)
# tests/bench/test_smoke.py makes them for this machine's Python and installs them the same way.
set -euo pipefail
cd "$(dirname "$0")/../.."
DIR=${1:-.whl}
PYV=${2:-3.12}
PY=${PYTHON:-python3}
mkdir -p "$DIR"
rm -f "$DIR"/fsf-*.whl
"$PY" -m pip wheel -q --no-deps --no-build-isolation -w "$DIR" .
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version "$PYV" \
  --implementation cp --platform manylinux2014_x86_64 -d "$DIR" \
  pydantic==2.14.4 pydantic_core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5 \
  datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19
du -sh "$DIR"
