"""The fixed cost of a sweep call: how long `fsf sweep` takes to reach its first training
step, to go from the search to the confirmation, and to exit after its last row, against
the ideal of each.

One `fsf sweep` runs as a user runs it (a subprocess, a local Ray instance): a search of one
trial, then a confirmation of that configuration and DF on two fresh seeds (4 runs, 2 at a
time, as in the default space), each run a few steps of the tiny random encoder, so that
almost all of the call's time is its fixed cost. Each moment is read from fsf's own records: a run's rows carry
`timestamp` (when each row was written) and `elapsed_s` (seconds since the run's training
function started), and every run evaluates before its first update (`eval.at_start`), so a
run starts at `timestamp - elapsed_s` of its step-0 rows and takes its first step when they
are written.

* **start -> first step**: from the moment the CLI process is started to the first search
  run's first step. Ideal: what a bare `fsf train` of the same run needs from its process
  start to its first step (Python, imports, model, data, engine, the step-0 evaluation),
  measured the same way; the difference is the sweep's own (Ray, Tune, the trial process).
* **stage -> stage**: from the search's last row to the confirmation's first step (its
  first run's start, then its step-0 evaluation). Ideal: the confirmation run's own set-up
  (its step-0 rows' `elapsed_s`): the stages themselves would add nothing.
* **last row -> exit**: from the confirmation's last row to the CLI's exit (the answer's
  tables, Ray's shutdown). Ideal: 0.

Calls alternate `--repeat` times; the median is printed.

    python bench/bench_fixed_cost.py [--repeat 3] [--json FILE]
    python bench/bench_fixed_cost.py --smoke          # one call (tests/bench/test_smoke.py)
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

import _runs
import yaml
from _runs import md_table

ROOT = Path(__file__).resolve().parents[1]


def _space(assets: dict[str, Any], storage: Path, name: str) -> dict[str, Any]:
    base = {
        **assets,
        "optim": {"max_steps": 4, "batch_size": 8, "lr": 1e-3},
        "eval": {"every_steps": 2, "at_start": True},
        "deepspeed": {"zero_stage": 0},
        "policy": {"window": 2},
    }
    return {
        "name": name,
        "base": base,
        "search": {
            "parameters": {"policy.name": {"type": "categorical", "values": ["fs"]}},
            "searcher": "grid",
            "scheduler": {"type": "none"},
            "max_concurrent": 2,
            "resources": {"cpus": 1, "gpus": 0, "workers": 1},
            "seeds": [0],
        },
        "confirm": {"top_k": 1, "baseline": {"policy.name": "df"}, "seeds": [100, 101]},
        "storage": {"path": str(storage)},
    }


def _runs_of(results: Path) -> list[dict[str, float]]:
    """Each run of a stage's results: its start, first step and last row (epoch seconds),
    and its own set-up time (start to the step-0 rows)."""
    from fsf.results import read_results

    table = read_results(results).table.select(
        ["trial_id", "seed", "step", "elapsed_s", "timestamp"]
    )
    runs: dict[tuple[str, int], dict[str, float]] = {}
    for row in table.to_pylist():
        at = row["timestamp"].timestamp()
        run = runs.setdefault((row["trial_id"], row["seed"]), {"last": at})
        run["last"] = max(run["last"], at)
        if row["step"] == 0:
            start = at - row["elapsed_s"]
            first = max(run.get("first_step", at), at)
            run.update(start=min(run.get("start", start), start), first_step=first)
            run["setup"] = run["first_step"] - run["start"]
    return list(runs.values())


def _call(cmd: list[str]) -> None:
    out = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if out.returncode:
        raise SystemExit(f"{' '.join(cmd[2:])} failed ({out.returncode}): {out.stderr[-2000:]}")


def sweep_call(assets: dict[str, Any], work: Path, i: int) -> dict[str, float]:
    """One `fsf sweep` call, timed from its process start to its exit."""
    storage = work / "runs"
    name = f"fixed-cost-{i}"
    space = work / f"{name}.yaml"
    space.write_text(yaml.safe_dump(_space(assets, storage, name), sort_keys=False))
    cmd = [sys.executable, "-m", "fsf", "sweep", "--space", str(space), "--no-progress", "-q"]
    began = time.time()
    _call(cmd)
    ended = time.time()
    search = _runs_of(storage / name / "results")
    confirm = _runs_of(storage / name / "confirm" / "results")
    first = min(search, key=lambda r: r["start"])
    search_last = max(r["last"] for r in search)
    confirm_first = min(confirm, key=lambda r: r["first_step"])
    return {
        "start_to_first_step": first["first_step"] - began,
        "start_to_run_start": first["start"] - began,
        "stage_to_stage": confirm_first["first_step"] - search_last,
        "stage_run_setup": confirm_first["setup"],
        "last_row_to_exit": ended - max(r["last"] for r in confirm),
        "wall": ended - began,
    }


def train_call(assets: dict[str, Any], work: Path, i: int) -> dict[str, float]:
    """The ideal of start -> first step: a bare `fsf train` of the same run."""
    space = _space(assets, work, "x")
    config = {**space["base"], "name": f"train-{i}", "output_dir": str(work / f"train-{i}")}
    config["policy"] = {**config["policy"], "name": "fs"}
    path = work / f"train-{i}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    cmd = [sys.executable, "-m", "fsf", "train", "--config", str(path), "--no-progress", "-q"]
    began = time.time()
    _call(cmd)
    (run,) = _runs_of(work / f"train-{i}" / f"train-{i}" / "results")
    return {"start_to_first_step": run["first_step"] - began, "setup": run["setup"]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeat", type=int, default=3, help="alternating calls of each")
    p.add_argument("--json", type=Path, help="write every call's times here")
    p.add_argument("--smoke", action="store_true", help="one call of each")
    args = p.parse_args(argv)
    if args.smoke:
        args.repeat = 1
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        assets = _runs.smoke_assets(work / "assets")
        sweeps, trains = [], []
        for i in range(args.repeat):
            trains.append(train_call(assets, work, i))
            sweeps.append(sweep_call(assets, work, i))
    med = {k: statistics.median(s[k] for s in sweeps) for k in sweeps[0]}
    ideal = statistics.median(t["start_to_first_step"] for t in trains)
    rows = [
        ["start -> first step", med["start_to_first_step"], ideal,
         med["start_to_first_step"] / ideal],
        ["stage -> stage", med["stage_to_stage"], med["stage_run_setup"],
         med["stage_to_stage"] / med["stage_run_setup"]],
        ["last row -> exit", med["last_row_to_exit"], 0.0, None],
    ]  # fmt: skip
    print(
        md_table(
            ["moment", "fsf sweep s", "ideal s", "fsf / ideal"],
            rows,
            title=f"the fixed cost of a sweep call (median of {args.repeat}; "
            f"whole call {med['wall']:.1f} s, first run started "
            f"{med['start_to_run_start']:.1f} s after the CLI)",
        )
    )
    if args.json:
        args.json.write_text(json.dumps({"sweep": sweeps, "train": trains}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
