"""Policy overhead: training step time with FSF vs DF in the same DeepSpeed engine.

Same model, data, batch and seed; the only difference is the policy (FSF tracks the loss
trend and rewrites every param group's lr at each step). Step time is isolated from setup
and evaluation by differencing: t(2N steps) - t(N steps) = the time of N steps. Policies
alternate within each repeat so machine noise hits both alike.

    python bench/bench_policy_overhead.py [--steps 150] [--repeat 3] [--zero 0] [--smoke]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from fsf.config import validate_run_config
from fsf.train import train


def _config(policy: str, steps: int, zero: int, smoke_dir: Path | None) -> object:
    data = {
        "policy": {"name": policy, "window": 20},
        "optim": {"max_steps": steps, "batch_size": 32},
        "eval": {"every_steps": 10**9, "at_start": False},
        "task": {
            "max_eval_examples": 8,
            "name": "classification",
            "dataset": "synthetic:topic",
            "text_fields": ["text"],
            "num_labels": 4,
        },
        "deepspeed": {"zero_stage": zero},
    }
    if smoke_dir is not None:
        data["model"] = {"name": str(smoke_dir / "model")}
        data["task"] = {"name": "pawsx", "dataset": str(smoke_dir / "data"), "max_eval_examples": 8}
        data["target_langs"] = ["de", "fr"]
        data["optim"]["batch_size"] = 8
    return validate_run_config(data)


def _seconds(policy: str, steps: int, zero: int, smoke_dir: Path | None) -> float:
    start = time.perf_counter()
    train(_config(policy, steps, zero, smoke_dir))
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=150, help="N: steps measured per run")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--zero", type=int, default=0, choices=(0, 1, 2))
    p.add_argument("--smoke", action="store_true", help="tiny model and sizes; just completes")
    args = p.parse_args(argv)
    smoke_dir = None
    if args.smoke:
        from fsf.testing import pair_dataset, tiny_model

        smoke_dir = Path(tempfile.mkdtemp())
        tiny_model(smoke_dir / "model")
        pair_dataset(smoke_dir / "data")
        args.steps, args.repeat = 4, 1
    n = args.steps
    _seconds("df", 2, args.zero, smoke_dir)  # warm-up: imports, op builds, caches
    per_step: dict[str, list[float]] = {"df": [], "fsf": []}
    for r in range(args.repeat):
        for policy in ("df", "fsf") if r % 2 == 0 else ("fsf", "df"):
            short = _seconds(policy, n, args.zero, smoke_dir)
            long = _seconds(policy, 2 * n, args.zero, smoke_dir)
            per_step[policy].append((long - short) / n)
    print(f"policy overhead, ZeRO-{args.zero}, {n} steps x {args.repeat} repeats")
    print(f"{'policy':8s} {'min ms/step':>12s} {'median':>8s} {'min ratio':>10s}")
    best = {k: min(v) for k, v in per_step.items()}
    for k in ("df", "fsf"):
        med = statistics.median(per_step[k])
        print(f"{k:8s} {best[k] * 1e3:12.2f} {med * 1e3:8.2f} {best[k] / best['df']:10.3f}")
    print(f"FSF / DF step time (min over repeats): {best['fsf'] / best['df']:.3f} (goal <= 1.02)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
