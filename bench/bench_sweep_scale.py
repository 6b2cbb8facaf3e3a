"""Sweep scale: hundreds of minimal trials through the real `fsf-sweep` command.

The space is `sweeps/policies.yaml` (TPE over the five policies and their c1, c2, r and
switch points, ASHA, the Optuna study in SQLite, Tune's state saved every second) with
minimal trials: 4 optimizer steps on 256 training examples, an evaluation of 32 dev and test
examples per language at steps 2 and 4, ASHA's grace period 2, one seed, no confirmation
stage; 1 CPU per trial, 2 at a time. Each size in `--trials` (default 20 and 200) is one
`fsf-sweep --space ... --num-trials N` process, timed from its start to its exit.

Reported per sweep: wall time; the trials' own compute (each trial's last evaluation's
`elapsed_s`: the worker's clock from the start of its training function) and the ideal
(compute / concurrency); driver overhead per trial = (wall - ideal) / trials, and the
marginal overhead of the trials beyond the smallest sweep (which leaves out the fixed costs:
Ray's start, imports, the first trials' processes); the overhead of the first and the last
quarter of the trials in finishing order (flat: no growth with the number of trials); the
sizes of the Optuna study (`optuna.db`) and of Tune's state (`tune/`); and the wall time of
`fsf-sweep best --per-language`, `show` and `report` over the sweep (each a fresh process,
start-up and imports included), plus `best_per_language` inside one process.

    python bench/bench_sweep_scale.py [--trials 20 200] [--smoke]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def space(storage: Path, smoke: bool) -> Path:
    data = yaml.safe_load((ROOT / "sweeps" / "policies.yaml").read_text())
    base = data["base"]
    base["task"].update(max_train_examples=256, max_eval_examples=32)
    base["optim"]["max_steps"] = 4
    base["eval"] = {"every_steps": 2, "batch_size": 256, "at_start": False}
    if smoke:
        base["task"].update(max_train_examples=32, max_eval_examples=8)
    data["search"]["scheduler"] = {"type": "asha", "grace_period": 2, "reduction_factor": 2}
    data["search"]["seeds"] = [0]
    data["search"]["max_concurrent"] = 2
    data.pop("confirm", None)
    data["search"].pop("splits", None)  # no confirmation: the search answers on test itself
    data["name"] = "scale"
    path = storage / "scale.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _du(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.exists() else 0


def _timed(cmd: list[str]) -> tuple[float, subprocess.CompletedProcess]:
    t0 = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True)
    return time.perf_counter() - t0, out


def trial_compute(results: Path) -> list[tuple[float, float]]:
    """(end timestamp, own compute seconds) of each trial, in finishing order."""
    import pyarrow.compute as pc

    from fsf.results import read_results

    table = read_results(results).table
    ends: dict[str, tuple[float, float]] = {}
    tid = table["trial_id"].to_pylist()
    ts = pc.cast(table["timestamp"], "int64").to_numpy() / 1e6
    el = table["elapsed_s"].to_numpy(zero_copy_only=False)
    for t, stamp, e in zip(tid, ts, el, strict=True):
        if e == e and (t not in ends or stamp > ends[t][0]):
            ends[t] = (float(stamp), float(e))
    return sorted(ends.values())


def one_sweep(n: int, args: argparse.Namespace, storage: Path) -> dict[str, Any]:
    spec = space(storage, args.smoke)
    name = f"scale{n}"
    cmd = [str(BIN / "fsf-sweep"), "--space", str(spec), "--name", name,
           "--storage-path", str(storage), "--num-trials", str(n)]  # fmt: skip
    wall, out = _timed(cmd)
    if out.returncode != 0:
        raise SystemExit(f"fsf-sweep failed ({out.returncode}):\n{out.stderr[-4000:]}")
    sweep = storage / name
    runs = trial_compute(sweep / "results")
    compute = [c for _, c in runs]
    conc = 2
    ideal = sum(compute) / conc
    q = max(2, len(runs) // 4)

    def window(part: list[tuple[float, float]]) -> float:
        """Overhead per trial inside a window of consecutive finishes: wall per trial
        (between the first and last finish) minus compute per trial / concurrency."""
        span = part[-1][0] - part[0][0]
        return span / (len(part) - 1) - statistics.mean(c for _, c in part[1:]) / conc

    res: dict[str, Any] = {
        "trials": n,
        "trained": len(runs),
        "wall_s": wall,
        "ideal_s": ideal,
        "overhead_per_trial_s": (wall - ideal) / n,
        "first_quarter_s": window(runs[:q]) if len(runs) >= 4 else float("nan"),
        "last_quarter_s": window(runs[-q:]) if len(runs) >= 4 else float("nan"),
        "optuna_db_kb": _du(sweep / "optuna.db") / 1024,
        "tune_state_kb": _du(sweep / "tune") / 1024,
        "results_kb": _du(sweep / "results") / 1024,
    }
    for label, sub in (("best", ["best", "--sweep", str(sweep), "--per-language"]),
                       ("show", ["show", str(sweep)]),
                       ("report", ["report", str(sweep), "--out", str(storage / f"rep{n}")])):  # fmt: skip
        t, o = _timed([str(BIN / "fsf-sweep"), *sub])
        if o.returncode != 0:
            raise SystemExit(f"fsf-sweep {label} failed:\n{o.stderr[-3000:]}")
        res[f"{label}_s"] = t
    from fsf.results import best_per_language, read_results

    t0 = time.perf_counter()
    best_per_language(read_results(sweep))
    res["best_in_process_s"] = time.perf_counter() - t0
    return res


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--trials", type=int, nargs="+", default=[20, 200])
    p.add_argument("--storage", type=Path, default=None, help="keep the sweeps here")
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--smoke", action="store_true")
    args = p.parse_args(argv)
    if args.smoke:
        args.trials = [2, 4]
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    tmp = tempfile.TemporaryDirectory()
    storage = args.storage or Path(tmp.name)
    storage.mkdir(parents=True, exist_ok=True)
    load = os.getloadavg()[0]
    rows = [one_sweep(n, args, storage) for n in sorted(args.trials)]
    small = rows[0]
    for r in rows[1:]:
        extra = r["trials"] - small["trials"]
        r["marginal_overhead_s"] = (
            r["wall_s"] - small["wall_s"] - (r["ideal_s"] - small["ideal_s"])
        ) / extra
    from fsf.cli._base import print_table

    keys = ["trials", "trained", "wall_s", "ideal_s", "overhead_per_trial_s", "marginal_overhead_s",
            "first_quarter_s", "last_quarter_s", "optuna_db_kb", "tune_state_kb", "results_kb",
            "best_s", "show_s", "report_s", "best_in_process_s"]  # fmt: skip
    print_table(["measure", *[f"{r['trials']} trials" for r in rows]],
                [[k, *[r.get(k) for r in rows]] for k in keys[1:]],
                title=f"fsf-sweep at scale (load average {load:.2f} at the start)")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
