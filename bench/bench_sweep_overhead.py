"""Sweep overhead: wall time of an fsf sweep vs the ideal and vs a minimal Ray Tune loop.

The same N trials (a grid over the policy on the base config of `sweeps/policies-full.yaml`: the
embedded benchmark, 300 steps, evaluation every 50 steps; one seed; no early stopping; 1 CPU
and 1 torch thread per trial; 2 at a time) run three ways in one Ray instance:

* **fsf**: `fsf.sweep.tune.run_sweep` - OptunaSearch (grid points), Tune, the fsf worker with
  DeepSpeed in each trial, Parquet fragments, the Optuna study in SQLite, Tune's state saved
  every second for `--resume`;
* **minimal Tune loop**: a hand-written `tune.Tuner` over `tune.grid_search` whose function
  trainable calls the same training function (`fsf.train.train`) and reports each evaluation
  with `tune.report`;
* **ideal**: the sum of the trials' own compute divided by the concurrency. A trial's own
  compute is measured inside the trial by the worker's clock (`elapsed_s` of its final
  evaluation: from the start of the training function, through tokenizer, data, model and
  DeepSpeed engine set-up, every step and evaluation, to the end of the last evaluation).
  It leaves out what happens before the training function runs: Ray starting the trial's
  process and the imports in it.

* **fsf, Tune loggers off**: the same fsf sweep with `TUNE_DISABLE_AUTO_CALLBACK_LOGGERS=1`,
  as fsf ran before its trials kept Tune's JSON / CSV / TensorBoard logs: the cost of those
  logs is the difference between the two fsf lines.

Ray start-up (`ray.init`) is timed on its own line and is in none of the sweep times. The
sweeps alternate `--repeat` times.

    python bench/bench_sweep_overhead.py [--policies df fs ff fsf] [--repeat 2] [--smoke]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import _runs
from _runs import md_table

from fsf.config import apply_overrides
from fsf.sweep.space import load_space, validate_space
from fsf.sweep.spec import SweepSpec

ROOT = Path(__file__).resolve().parents[1]


def sweep_spec(policies: list[str], concurrency: int, smoke_root: Path | None) -> SweepSpec:
    data = load_space(ROOT / "sweeps" / "policies-full.yaml").model_dump(mode="json")
    if smoke_root is not None:
        data["base"] = apply_overrides(
            data["base"],
            [
                *_runs.smoke_assets(smoke_root).items(),
                ("optim.max_steps", 6),
                ("optim.batch_size", 8),
                ("eval.every_steps", 3),
            ],
        )
    data["name"] = "overhead"
    data["confirm"] = None  # the search's trials only: confirmation runs are not in the ideal
    data["search"] = {
        "parameters": {"policy.name": {"type": "categorical", "values": policies}},
        "searcher": "grid",
        "scheduler": {"type": "none"},
        "max_concurrent": concurrency,
        "resources": {"cpus": 1, "gpus": 0, "workers": 1},
        "seeds": [0],
        "objective": {"metric": "dev_target_mean", "mode": "max"},
    }
    return validate_space(data)


def run_fsf(spec: SweepSpec, storage: Path, name: str) -> tuple[float, list[float]]:
    """Wall seconds of `run_sweep`, and each trial's own compute from its fragments."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from fsf.sweep.tune import run_sweep

    t0 = time.perf_counter()
    out = run_sweep(spec, name=name, storage_path=str(storage), progress=False)
    wall = time.perf_counter() - t0
    if out.statuses.get("failed"):
        raise SystemExit(f"fsf sweep had failed trials: {out.errors}")
    compute = [
        pc.max(pq.read_table(f, columns=["elapsed_s"])["elapsed_s"]).as_py()
        for f in sorted(out.results_dir.glob("trial=*/seed-*.parquet"))
    ]
    trained = sum(out.statuses.values())
    if len(compute) != trained:
        raise SystemExit(f"the ideal covers {len(compute)} runs but the sweep trained {trained}")
    return wall, compute


def run_fsf_without_loggers(spec: SweepSpec, storage: Path, name: str) -> tuple[float, list[float]]:
    """`run_fsf` with Tune's automatic logger callbacks (JSON, CSV, TensorBoard) turned off."""
    key = "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"
    old = os.environ.get(key)
    os.environ[key] = "1"
    try:
        return run_fsf(spec, storage, name)
    finally:
        if old is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = old


def _minimal_trainable(config: dict[str, Any], base: dict[str, Any]) -> None:
    """What a user would write: one fsf training run per trial, evaluations to Tune."""
    import torch
    from ray import tune

    from fsf.config import validate_run_config
    from fsf.train import train

    torch.set_num_threads(1)
    run = validate_run_config({**base, "policy": {**base.get("policy", {}), **config}})

    class _Report:
        def report(self, ev: Any) -> None:
            tune.report({**ev.scalars(), "elapsed_s": ev.elapsed_s})

    train(run, _Report())


def run_minimal(spec: SweepSpec, storage: Path, name: str) -> tuple[float, list[float]]:
    from ray import tune

    values = spec.search.parameters["policy.name"].values
    trainable = tune.with_resources(
        tune.with_parameters(_minimal_trainable, base=spec.base), {"cpu": 1}
    )
    t0 = time.perf_counter()
    grid = tune.Tuner(
        trainable,
        param_space={"name": tune.grid_search(values)},
        tune_config=tune.TuneConfig(max_concurrent_trials=spec.search.max_concurrent),
        run_config=tune.RunConfig(name=name, storage_path=str(storage), verbose=0),
    ).fit()
    wall = time.perf_counter() - t0
    errors = [r.error for r in grid if r.error is not None]
    if errors:
        raise SystemExit(f"minimal loop had failed trials: {errors[0]}")
    return wall, [r.metrics["elapsed_s"] for r in grid]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--policies", nargs="+", default=["df", "fs", "ff", "fsf"], help="the trials")
    p.add_argument("--concurrency", type=int, default=2)
    p.add_argument("--repeat", type=int, default=2, help="sweeps per side, alternating")
    p.add_argument("--smoke", action="store_true", help="tiny model and sizes; just completes")
    args = p.parse_args(argv)
    tmp = tempfile.TemporaryDirectory()
    smoke_root = None
    if args.smoke:
        smoke_root = Path(tmp.name) / "assets"
        args.policies, args.repeat = ["df", "fsf"], 1
    spec = sweep_spec(args.policies, args.concurrency, smoke_root)
    storage = Path(tmp.name) / "sweeps"
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")

    import ray

    from fsf.sweep._ray import _init_ray

    t0 = time.perf_counter()
    _init_ray(None, args.concurrency)
    ray_start = time.perf_counter() - t0
    sides = {"fsf": run_fsf, "fsf-nolog": run_fsf_without_loggers, "minimal": run_minimal}
    runs: dict[str, list[tuple[float, list[float]]]] = {side: [] for side in sides}
    from tqdm.auto import tqdm

    try:
        with tqdm(total=3 * args.repeat, desc="sweeps", unit="sweep", file=sys.stderr) as bar:
            for r in range(args.repeat):
                order = list(sides) if r % 2 == 0 else list(reversed(sides))
                for side in order:
                    runs[side].append(sides[side](spec, storage, f"{side}-{r}"))
                    bar.update(1)
    finally:
        ray.shutdown()

    n, c = len(args.policies), args.concurrency
    rows: list[list[Any]] = [["Ray start-up (ray.init, once)", f"{ray_start:.1f}", "", "", ""]]
    summary = {}
    for side, label in (
        ("fsf", "fsf run_sweep"),
        ("fsf-nolog", "fsf run_sweep, Tune loggers off"),
        ("minimal", "minimal Tune loop"),
    ):
        walls = [w for w, _ in runs[side]]
        ideals = [sum(comp) / c for _, comp in runs[side]]
        ratios = [w / i for w, i in zip(walls, ideals, strict=True)]
        per_trial = [(w - i) * c / n for w, i in zip(walls, ideals, strict=True)]
        summary[side] = statistics.median(walls)
        rows.append(
            [
                label,
                f"{statistics.median(walls):.1f} ({min(walls):.1f}-{max(walls):.1f})",
                f"{statistics.median(ideals):.1f}",
                f"{statistics.median(ratios):.3f} ({min(ratios):.3f}-{max(ratios):.3f})",
                f"{statistics.median(per_trial):.1f}",
            ]
        )
    print(
        md_table(
            ["", "wall s", "ideal s", "wall / ideal", "overhead s per trial"],
            rows,
            title=(
                f"{n} trials ({', '.join(args.policies)}), {c} at a time, 1 CPU each; median "
                f"(min-max) of {args.repeat} sweeps per side; ideal = sum of the trials' own "
                f"compute / {c}"
            ),
        )
    )
    fsf_ideal = statistics.median(sum(comp) / c for _, comp in runs["fsf"])
    print(f"fsf sweep / ideal: {summary['fsf'] / fsf_ideal:.3f} (goal <= 1.15)")
    print(f"fsf sweep / minimal Tune loop: {summary['fsf'] / summary['minimal']:.3f}")
    print(
        f"fsf sweep / fsf sweep with Tune loggers off: {summary['fsf'] / summary['fsf-nolog']:.3f}"
    )
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
