#!/usr/bin/env bash
# The GPU check: fsf on one H200 (bf16, XLM-R-base shape, random weights, synthetic batches,
# no download, <= 8 minutes); figures as JSON in $OUT/gpu.json (or ./gpu-out/gpu.json).
#
#   bash bench/gpu/run.sh                  # on the GPU machine
#   bash bench/gpu/run.sh --cpu --smoke    # the CPU fallback (tests/bench/test_gpu_script.py)
#
# That machine has PyTorch and transformers but no DeepSpeed, Ray or Optuna: fsf runs its
# plain-PyTorch engine there (engine: torch). fsf's own pure-Python needs that are missing
# there (pydantic, datasets and theirs) travel as wheels in .whl/, made here with
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#     --implementation cp --platform manylinux2014_x86_64 -d .whl \
#     pydantic==2.14.4 pydantic_core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5 \
#     datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19
# and are installed into /tmp/site when an import fails.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-python3}
OUT_DIR=${OUT:-$PWD/gpu-out}
mkdir -p "$OUT_DIR"
if ! "$PY" -c "import pydantic, datasets, yaml, pyarrow" 2>/dev/null; then
  if ! ls .whl/*.whl >/dev/null 2>&1; then
    echo "error: pydantic/datasets missing and no wheels in .whl/ (see the comment above)" >&2
    exit 2
  fi
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
export PYTHONUNBUFFERED=1
# 8-minute budget: the script writes its JSON after each section, so a cut run keeps what ran
exec timeout 470 "$PY" bench/gpu/gpu_bench.py --out "$OUT_DIR/gpu.json" "$@"
