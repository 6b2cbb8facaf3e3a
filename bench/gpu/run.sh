#!/usr/bin/env bash
# The GPU check: fsf on one H200 (bf16, XLM-R-base shape, random weights, synthetic batches,
# no download, <= 8 minutes); figures as JSON in $OUT/gpu.json (or ./gpu-out/gpu.json).
#
#   bash bench/gpu/run.sh                  # on the GPU machine
#   bash bench/gpu/run.sh --cpu --smoke    # the CPU fallback (tests/bench/test_smoke.py)
#
# That machine has PyTorch 2.11 and transformers 5.17 but no DeepSpeed, Ray or Optuna, and
# reaches no registry: fsf runs its plain-PyTorch engine there (engine: torch), and is
# installed onto the machine's own torch and transformers without replacing them
# (bench/gpu/install.py: fsf's wheel and the pure-Python needs the machine lacks, carried in
# .whl/ and made where a registry is reachable with `bash bench/gpu/wheels.sh`, go with
# --no-index --no-deps into $FSF_SITE, first on PYTHONPATH; it checks that torch and
# transformers stayed the machine's and that fsf's ranges admit them, in $OUT/install.json).
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-python3}
OUT_DIR=${OUT:-$PWD/gpu-out}
WHEELS=${FSF_WHEELS:-.whl}
SITE=${FSF_SITE:-/tmp/fsf-site}
mkdir -p "$OUT_DIR"
"$PY" bench/gpu/install.py "$WHEELS" "$SITE" "$OUT_DIR/install.json"
export PYTHONPATH=$SITE${PYTHONPATH:+:$PYTHONPATH}
export PYTHONUNBUFFERED=1
# 8-minute budget: the script writes its JSON after each section, so a cut run keeps what ran
exec timeout 470 "$PY" bench/gpu/gpu_bench.py --out "$OUT_DIR/gpu.json" "$@"
