"""Policy overhead: training step time with FSF vs DF in the same DeepSpeed engine.

Same model, data, batch and seed; the only difference is the policy (FSF tracks the loss
trend and rewrites every param group's lr at each step). Each run evaluates a handful of
dev examples every `--block` steps, so the worker's own clock (`elapsed_s` of successive
evaluations) splits the run into blocks of `--block` steps; the first block (warm-up) is
dropped. Runs alternate DF, FSF, FSF, DF, ... in one process (warm caches, same threads), so
slow drift of the machine hits both alike. Three estimates of FSF / DF step time:

* paired: for each pair of neighbouring runs, median block time of FSF / of DF; the median
  (and spread) of these ratios;
* median: median block time over all blocks of all runs, per policy;
* min-of-k: for every block position, the fastest of the `--repeat` runs, summed.

With `--cka`, the two sides are FSF with Policy IV on and FSF with `policy_iv: cka` (the
V_II layers' CKA measured on a 64-example source probe batch every `--cka-every` steps):
the cost of measuring CKA online.

    python bench/bench_policy_overhead.py [--steps 300] [--block 25] [--repeat 6] [--smoke]
    python bench/bench_policy_overhead.py --cka [--cka-every 20]
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from fsf.config import validate_run_config
from fsf.train import ListReporter, train

VARIANTS: dict[str, dict[str, Any]] = {
    "df": {"name": "df"},
    "fsf": {"name": "fsf"},
    "fsf-cka": {"name": "fsf", "policy_iv": "cka"},
}


def _config(
    policy: str, steps: int, block: int, zero: int, smoke_dir: Path | None, cka_every: int = 20
) -> Any:
    pol = {**VARIANTS[policy], "window": 20}
    if pol.get("policy_iv") == "cka":
        pol["cka"] = {"every_steps": cka_every}
    data: dict[str, Any] = {
        "policy": pol,
        "optim": {"max_steps": steps, "batch_size": 32},
        "eval": {"every_steps": block, "at_start": False, "splits": ["dev"]},
        "task": {
            "max_eval_examples": 8,
            "name": "classification",
            "dataset": "synthetic:topic",
            "text_fields": ["text"],
            "num_labels": 4,
        },
        "deepspeed": {"zero_stage": zero},
        "device": "cpu",
    }
    if smoke_dir is not None:
        data["model"] = {"name": str(smoke_dir / "model")}
        data["task"] = {"name": "pawsx", "dataset": str(smoke_dir / "data"), "max_eval_examples": 8}
        data["target_langs"] = ["de", "fr"]
        data["optim"]["batch_size"] = 8
    return validate_run_config(data)


def _blocks(policy: str, args: argparse.Namespace, smoke_dir: Path | None) -> list[float]:
    """Seconds per step of each block after the first."""
    rep = ListReporter()
    train(_config(policy, args.steps, args.block, args.zero, smoke_dir, args.cka_every), rep)
    t = [e.elapsed_s for e in rep.evaluations]
    return [(b - a) / args.block for a, b in itertools.pairwise(t)]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=300, help="steps per run")
    p.add_argument("--block", type=int, default=25, help="steps per timed block")
    p.add_argument("--repeat", type=int, default=6, help="runs per policy")
    p.add_argument("--threads", type=int, default=1, help="torch threads (a sweep trial: 1)")
    p.add_argument("--zero", type=int, default=0, choices=(0, 1, 2))
    p.add_argument("--cka", action="store_true", help="FSF vs FSF with policy_iv: cka")
    p.add_argument("--cka-every", type=int, default=20, help="with --cka: steps per measurement")
    p.add_argument("--smoke", action="store_true", help="tiny model and sizes; just completes")
    args = p.parse_args(argv)
    a, b = ("fsf", "fsf-cka") if args.cka else ("df", "fsf")
    import torch

    torch.set_num_threads(args.threads)
    smoke_dir = None
    if args.smoke:
        from fsf.testing import pair_dataset, tiny_model

        smoke_dir = Path(tempfile.mkdtemp())
        tiny_model(smoke_dir / "model")
        pair_dataset(smoke_dir / "data")
        args.steps, args.block, args.repeat = 6, 2, 2
    _blocks("df", argparse.Namespace(**{**vars(args), "steps": 2 * args.block}), smoke_dir)
    runs: dict[str, list[list[float]]] = {a: [], b: []}
    from tqdm.auto import tqdm

    order = [(a, b) if r % 2 == 0 else (b, a) for r in range(args.repeat)]
    with tqdm(total=2 * args.repeat, desc="runs", unit="run", file=sys.stderr) as bar:
        for pair in order:
            for policy in pair:
                runs[policy].append(_blocks(policy, args, smoke_dir))
                bar.update(1)
    paired = [
        statistics.median(f) / statistics.median(d) for f, d in zip(runs[b], runs[a], strict=True)
    ]
    med = {k: statistics.median(x for run in v for x in run) for k, v in runs.items()}
    mink = {k: sum(min(col) for col in zip(*v, strict=True)) for k, v in runs.items()}
    n_blocks = len(runs[a][0])
    what = f", CKA every {args.cka_every} steps" if args.cka else ""
    print(
        f"policy overhead, ZeRO-{args.zero}, {args.steps} steps per run in blocks of "
        f"{args.block} ({n_blocks} timed), {args.repeat} runs per policy alternating, "
        f"torch threads {args.threads}{what}"
    )
    print(f"{'estimate':10s} {a + ' ms/step':>14s} {b + ' ms/step':>16s} {b + ' / ' + a:>14s}")
    for name, est in (("median", med), ("min-of-k", mink)):
        scale = 1 if name == "median" else 1 / n_blocks
        d, f = est[a] * scale * 1e3, est[b] * scale * 1e3
        print(f"{name:10s} {d:14.2f} {f:16.2f} {f / d:14.3f}")
    q = statistics.quantiles(paired, n=4) if len(paired) > 1 else [paired[0]] * 3
    print(
        f"{'paired':10s} {'':14s} {'':16s} {statistics.median(paired):14.3f}"
        f"   (quartiles {q[0]:.3f}-{q[2]:.3f}, range {min(paired):.3f}-{max(paired):.3f})"
    )
    label = "FSF with policy_iv: cka / FSF" if args.cka else "FSF / DF"
    goal = "" if args.cka else " (goal <= 1.02)"
    print(f"{label} step time (paired median): {statistics.median(paired):.3f}{goal}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
