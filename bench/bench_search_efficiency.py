"""Search efficiency: trial-steps TPE + ASHA needs to get within 0.5 points of the grid's best.

A tabulated benchmark, as syne-tune's simulator backend does it. A grid over policy x c1 x
c2 x r on the embedded benchmark (the base config of `sweeps/policies-full.yaml`) was run once for
real with the fsf worker; every configuration's learning curve (dev mean target accuracy,
the sweep's objective, at every evaluation step) is averaged over fine-tuning seeds and stored
in `bench/data/search_grid.csv`, with how it was made in `search_grid.meta.json`.
`--rebuild` runs the grid again and rewrites both (about 10-15 minutes on 2 cores).

The replay runs the same searcher and scheduler as `fsf-sweep`: Ray Tune with fsf's Optuna
searcher over fsf's define-by-run space (conditional parameters), fsf's TPE sampler settings,
and ASHA on `progress_step` with the space's grace period, reduction factor and max_t. Each
trial is a function trainable that reports the tabulated curve of its configuration, step by
step, so ASHA stops it where it would stop the real trial. Trials run one at a time, so the
replay is deterministic for a searcher seed. The searcher has "reached" the grid's best when
a trial that ran to max_t has a final objective within `--tolerance` of the best grid
configuration's; its cost is the trial-steps of every trial so far (a trial stopped by
ASHA at step 100 costs 100), compared with the full grid's (configurations x max_t). A search
that spends the grid's compute without reaching it is a miss. Random search + ASHA is
replayed the same way as a reference. fsf's searcher answers a configuration sampled again
from the study instead of running it (`search.skip_repeats`, on by default); both searchers
are replayed again with it off (plain Ray OptunaSearch behaviour), where in a discrete space
they run the same configuration again and again.

    python bench/bench_search_efficiency.py [--seeds 10] [--rebuild] [--smoke]
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import _runs
from _runs import md_table

from fsf.config import apply_overrides
from fsf.sweep.points import grid_points, trial_run_config
from fsf.sweep.space import load_space, validate_space
from fsf.sweep.spec import SweepSpec

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "bench" / "data"
TABLE = DATA / "search_grid.csv"
META = DATA / "search_grid.meta.json"
METRIC = "dev_target_mean"
GRID = {
    "policy.name": {"type": "categorical", "values": ["df", "noisytune", "fs", "ff", "fsf"]},
    "policy.c1": {
        "type": "categorical",
        "values": [0.5, 0.01, 0.0],
        "when": {"policy.name": ["fs", "fsf"]},
    },
    "policy.c2": {
        "type": "categorical",
        "values": [5.0, 10.0, 20.0, 100.0],
        "when": {"policy.name": ["ff", "fsf"]},
    },
    "policy.r": {
        "type": "categorical",
        "values": [1.0, 3.0],
        "when": {"policy.name": ["fs", "fsf"]},
    },
}


def grid_spec(smoke_root: Path | None = None) -> SweepSpec:
    """The grid as an fsf sweep space: the policies-full.yaml base (dev evaluation only), TPE + ASHA
    as in policies-full.yaml, and the grid's values as categorical parameters."""
    data = load_space(ROOT / "sweeps" / "policies-full.yaml").model_dump(mode="json")
    base = apply_overrides(data["base"], [("eval.splits", ["dev"]), ("eval.at_start", False)])
    grid = json.loads(json.dumps(GRID))
    if smoke_root is not None:
        base = apply_overrides(
            base,
            [
                *_runs.smoke_assets(smoke_root).items(),
                ("optim.max_steps", 8),
                ("optim.batch_size", 8),
                ("eval.every_steps", 2),
            ],
        )
        grid["policy.name"]["values"] = ["df", "fsf"]
        for k in ("policy.c1", "policy.c2", "policy.r"):
            grid[k]["when"] = {"policy.name": ["fsf"]}
        grid["policy.c1"]["values"] = [0.5]
        grid["policy.c2"]["values"] = [10.0]
        grid["policy.r"]["values"] = [3.0]
        data["search"]["scheduler"]["grace_period"] = 2
    data["base"] = base
    data["search"]["parameters"] = grid
    data["name"] = "search-efficiency"
    return validate_space(data)


def key(params: dict[str, Any]) -> str:
    """A configuration's identity in the table (numbers normalised; a trial config's
    trial id of its rows left out)."""
    parts = []
    for k in sorted(set(params) - {"fsf_trial"}):
        v = params[k]
        parts.append(f"{k}={v:g}" if isinstance(v, (int, float)) else f"{k}={v}")
    return ",".join(parts)


# ------------------------------------------------------------------ building the table


def rebuild(spec: SweepSpec, seeds: list[int], table: Path, meta: Path, workers: int) -> None:
    points = grid_points(spec)
    jobs = [
        (key(pt), trial_run_config(spec, pt, s, f"grid{i}-{s}"))
        for i, pt in enumerate(points)
        for s in seeds
    ]
    t0 = time.perf_counter()
    curves = _runs.run_many(jobs, workers=workers, desc="grid runs")
    wall = time.perf_counter() - t0
    table.parent.mkdir(parents=True, exist_ok=True)
    tmp = table.with_name(f".tmp-{table.name}")
    with tmp.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["config", "seed", "step", METRIC, "dev_source", "train_loss"])
        for c in curves:
            for step, sc in sorted(c.points.items()):
                w.writerow(
                    [c.label, c.seed, step, f"{sc[METRIC]:.6f}", f"{sc['dev_source']:.6f}",
                     f"{sc.get('train_loss', float('nan')):.6f}"]
                )  # fmt: skip
    os.replace(tmp, table)
    info = {
        "command": " ".join(["python", "bench/bench_search_efficiency.py", *sys.argv[1:]]),
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, torch CPU",
        "wall_s": round(wall, 1),
        "run_s": round(sum(c.seconds for c in curves), 1),
        "seeds": seeds,
        "grid": {k: prm.values for k, prm in spec.search.parameters.items()},
        "configurations": len(points),
        "base": spec.base,
    }
    meta.write_text(json.dumps(info, indent=1) + "\n")
    print(f"grid: {len(points)} configurations x {len(seeds)} seeds in {wall:.0f} s -> {table}")


def load_table(table: Path) -> dict[str, dict[int, float]]:
    """config -> step -> objective averaged over seeds."""
    acc: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    with table.open() as f:
        for row in csv.DictReader(f):
            acc[row["config"]][int(row["step"])].append(float(row[METRIC]))
    return {
        cfg: {step: statistics.mean(v) for step, v in sorted(steps.items())}
        for cfg, steps in acc.items()
    }


# ------------------------------------------------------------------ the replay


def _replay_trial(config: dict[str, Any], curves: dict[str, dict[int, float]]) -> None:
    from ray import tune

    for step, value in curves[key(config)].items():
        tune.report({METRIC: value, "progress_step": step})


def replay(
    spec: SweepSpec,
    curves: dict[str, dict[int, float]],
    searcher: str,
    seed: int,
    trials: int,
    target: float,
    storage: Path,
    budget: int,
    skip_repeats: bool = True,
) -> dict[str, Any]:
    """One search over the table, until a trial reaches `target` or `budget` trial-steps
    are spent, with fsf's searcher (`skip_repeats` as given)."""
    import optuna
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    from fsf.sweep.points import define_by_run
    from fsf.sweep.searcher import _sampler, _StudySearch

    search = spec.search.model_copy(
        update={"searcher": searcher, "searcher_seed": seed, "num_trials": trials}
    )
    s = spec.model_copy(update={"search": search})
    max_t = max(next(iter(curves.values())))
    sched = s.search.scheduler
    last: dict[str, int] = {}  # trial -> steps it ran
    history: list[tuple[str, int]] = []
    state: dict[str, Any] = {"cost": 0, "reached_at": None, "trials_to_reach": None}

    class _Count(tune.Callback):
        def on_trial_result(self, iteration, trials, trial, result, **info):  # type: ignore[no-untyped-def]
            step = int(result["progress_step"])
            state["cost"] += step - last.get(trial.trial_id, 0)
            last[trial.trial_id] = step

        def on_trial_complete(self, iteration, trials, trial, **info):  # type: ignore[no-untyped-def]
            cfg = key(trial.config)
            history.append((cfg, last.get(trial.trial_id, 0)))
            full = last.get(trial.trial_id, 0) == max_t
            if full and state["reached_at"] is None and curves[cfg][max_t] >= target:
                state["reached_at"] = state["cost"]
                state["trials_to_reach"] = len(history)

    class _StopWhenDone(tune.Stopper):
        """Reached, or the grid's compute spent: later trials do not change the measure."""

        def __call__(self, trial_id: str, result: dict) -> bool:
            return False

        def stop_all(self) -> bool:
            return state["reached_at"] is not None or state["cost"] >= budget

    tuner = tune.Tuner(
        tune.with_parameters(_replay_trial, curves=curves),
        tune_config=tune.TuneConfig(
            search_alg=_StudySearch(
                optuna.create_study(sampler=_sampler(s), direction="maximize"),
                define_by_run(s),
                [(METRIC, "max")],
                skip_repeats=skip_repeats,
            ),
            scheduler=ASHAScheduler(
                time_attr="progress_step",
                metric=METRIC,
                mode="max",
                grace_period=sched.grace_period,
                max_t=max_t,
                reduction_factor=sched.reduction_factor,
            ),
            num_samples=trials,
            max_concurrent_trials=1,
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(
            name=f"{searcher}-{seed}",
            storage_path=str(storage),
            verbose=0,
            callbacks=[_Count()],
            stop=_StopWhenDone(),
        ),
    )
    tuner.fit()
    return {
        "searcher": searcher + ("" if skip_repeats else " (plain)"),
        "seed": seed,
        "reached_at": state["reached_at"],
        "trials_to_reach": state["trials_to_reach"],
        "found": history[state["trials_to_reach"] - 1][0] if state["trials_to_reach"] else None,
        "total_steps": state["cost"],
        "trials": len(history),
        "history": history,
    }


def _median_share(rs: list[dict[str, Any]], grid_steps: int) -> float:
    """Median cost / grid over searcher seeds; a miss counts as more than the grid."""
    return statistics.median(
        r["reached_at"] / grid_steps if r["reached_at"] is not None else math.inf for r in rs
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, default=10, help="searcher seeds per searcher")
    p.add_argument(
        "--trials", type=int, default=None, help="trial cap per search (default: 4 x grid)"
    )
    p.add_argument("--tolerance", type=float, default=0.005, help="0.005 = 0.5 points")
    p.add_argument("--searchers", nargs="+", default=["tpe", "random"], choices=["tpe", "random"])
    p.add_argument("--no-plain", action="store_true", help="skip the replays with skip_repeats off")
    p.add_argument("--rebuild", action="store_true", help="run the grid for real first")
    p.add_argument("--build-only", action="store_true", help="with --rebuild: no replay")
    p.add_argument("--grid-seeds", nargs="+", type=int, default=[0, 1])
    p.add_argument("--workers", type=int, default=2, help="parallel grid runs (--rebuild)")
    p.add_argument("--table", type=Path, default=TABLE)
    p.add_argument("--smoke", action="store_true", help="tiny grid, 2 searcher seeds")
    args = p.parse_args(argv)
    tmp = tempfile.TemporaryDirectory()
    smoke_root = None
    meta = args.table.with_name(args.table.stem + ".meta.json")
    if args.smoke:
        smoke_root = Path(tmp.name)
        args.table, meta = smoke_root / "grid.csv", smoke_root / "grid.meta.json"
        args.rebuild, args.grid_seeds, args.seeds, args.no_plain = True, [0], 1, True
        args.workers = 1
    spec = grid_spec(smoke_root)
    if args.rebuild:
        rebuild(spec, args.grid_seeds, args.table, meta, args.workers)
        if args.build_only:
            return 0
    if not args.table.exists():
        raise SystemExit(f"no table at {args.table}: run with --rebuild")
    curves = load_table(args.table)
    n = len(curves)
    max_t = max(next(iter(curves.values())))
    finals = sorted(((c[max_t], k) for k, c in curves.items()), reverse=True)
    best = finals[0][0]
    target = best - args.tolerance
    near = [k for v, k in finals if v >= target]
    grid_steps = n * max_t
    trials = args.trials or 4 * n

    import ray

    from fsf.sweep._ray import _init_ray

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    _init_ray(None, 2)
    from tqdm.auto import tqdm

    variants = [(s, True) for s in args.searchers]
    if not args.no_plain:
        variants += [(s, False) for s in args.searchers]
    jobs = [(s, skip, seed) for s, skip in variants for seed in range(args.seeds)]
    results = []
    try:
        for searcher, skip, seed in tqdm(jobs, desc="searches", unit="search", file=sys.stderr):
            results.append(
                replay(spec, curves, searcher, seed, trials, target, Path(tmp.name) / "tune",
                       budget=grid_steps, skip_repeats=skip)
            )  # fmt: skip
    finally:
        ray.shutdown()

    spread = [v for v, _ in finals]
    print(
        md_table(
            ["grid", "value"],
            [
                ["configurations", n],
                ["seeds averaged per curve", _seed_count(args.table)],
                ["best (dev mean target, %)", f"{best * 100:.2f}  ({finals[0][1]})"],
                ["median / worst (%)", f"{statistics.median(spread) * 100:.2f} / {spread[-1] * 100:.2f}"],
                [f"within {args.tolerance * 100:g} points of best", f"{len(near)} of {n}"],
                ["grid compute (trial-steps)", grid_steps],
            ],
            title=f"the tabulated grid ({args.table.name})",
        )
    )  # fmt: skip
    print()
    rows = []
    labels = {True: " + ASHA (fsf: skip_repeats)", False: " + ASHA, repeats rerun (plain)"}
    for searcher, skip in variants:
        name = searcher + ("" if skip else " (plain)")
        rs = [r for r in results if r["searcher"] == name]
        costs = [r["reached_at"] / grid_steps for r in rs if r["reached_at"] is not None]
        med = _median_share(rs, grid_steps)
        repeats = [
            1 - len({k for k, _ in r["history"]}) / len(r["history"]) for r in rs if r["history"]
        ]
        rows.append(
            [
                searcher + labels[skip],
                f"{len(costs)} of {len(rs)}",
                "> 100% (miss)" if math.isinf(med) else f"{med * 100:.1f}%",
                f"{min(costs) * 100:.1f}-{max(costs) * 100:.1f}%" if costs else "-",
                f"{statistics.median(repeats) * 100:.0f}%" if repeats else "-",
            ]
        )
    print(
        md_table(
            ["searcher", "reached", "median / grid", "range when reached", "repeated configs"],
            rows,
            title=(
                f"trial-steps until a trial run to max_t={max_t} is within "
                f"{args.tolerance * 100:g} points of the grid's best, as a share of the grid's "
                f"{grid_steps}; a search that spends the grid's compute first is a miss; "
                f"{args.seeds} searcher seeds, trials one at a time; goal: TPE + ASHA <= 25%"
            ),
        )
    )
    for searcher, skip in variants:
        name = searcher + ("" if skip else " (plain)")
        per_seed = [
            "miss"
            if r["reached_at"] is None
            else f"{r['reached_at']} ({r['trials_to_reach']} trials)"
            for r in results
            if r["searcher"] == name
        ]
        print(f"{name} per searcher seed: " + "; ".join(per_seed))
    if "tpe" in args.searchers:
        med = _median_share([r for r in results if r["searcher"] == "tpe"], grid_steps)
        print(f"TPE + ASHA / grid compute (median over searcher seeds, miss = inf): {med:.3f}")
    tmp.cleanup()
    return 0


def _seed_count(table: Path) -> int:
    with table.open() as f:
        return len({row["seed"] for row in csv.DictReader(f)})


if __name__ == "__main__":
    sys.exit(main())
