#!/usr/bin/env bash
# Create .venv and install fsf with the exact stack it is developed against (constraints.txt;
# CPU torch 2.13.0 first, so that no CUDA build is pulled in). Safe to run again: it only
# installs what is missing. A user's own environment needs none of this: pyproject.toml
# declares ranges, and `pip install fsf` keeps the Ray and torch it finds inside them.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip >/dev/null
python -m pip install -q "torch==2.13.0"
python -m pip install -q -c constraints.txt -e ".[dev,real]" "torch==2.13.0"
echo "fsf installed in .venv ($(python -c 'import fsf; print(fsf.__version__)'))"
