"""`fsf-sweep run --dry-run`: what a sweep would run, without running (or writing) anything.

`sample_configurations(spec, n)` draws the first `n` configurations the way the sweep's
searcher does (the space's sampler with its `searcher_seed`, the same define-by-run
function, before any result is known; grid points in order for `grid`), and builds each
one's run config, so an invalid combination shows now rather than in a failed trial.
`resource_plan(spec)` says what the sweep asks Ray for at once, `confirm_plan(spec)` what
its confirmation stage runs and costs. None starts Ray or touches the sweep folder.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from fsf.errors import ConfigError, UsageError
from fsf.sweep.points import define_by_run, grid_points, trial_run_config, trial_workers
from fsf.sweep.space import with_overrides
from fsf.sweep.spec import SweepSpec
from fsf.text import printable

__all__ = [
    "MAX_DRY_RUN",
    "ResourcePlan",
    "confirm_plan",
    "print_plan",
    "resource_plan",
    "sample_configurations",
]

MAX_DRY_RUN = 1_000
"""The most configurations `--dry-run N` draws (each is sampled and validated)."""


def sample_configurations(spec: SweepSpec, n: int) -> list[dict[str, Any]]:
    """The first `n` sampled configurations (parameter -> value)."""
    if spec.search.searcher == "grid":
        return grid_points(spec)[:n]
    import optuna
    from optuna.trial import TrialState

    from fsf.sweep.searcher import _sampler

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    directions = ["maximize" if o.mode == "max" else "minimize" for o in spec.search.objective]
    study = optuna.create_study(sampler=_sampler(spec), directions=directions)
    space = define_by_run(spec)
    out = []
    for _ in range(n):
        trial = study.ask()
        space(trial)
        out.append(dict(trial.params))
        study.tell(trial, state=TrialState.FAIL)  # no result: the next draw knows nothing more
    return out


@dataclass(frozen=True)
class ResourcePlan:
    """What the sweep asks Ray for when `concurrent` trials run at once."""

    concurrent: int
    workers: tuple[int, ...]  # the DeepSpeed ranks a trial can have (searched or fixed)
    cpus: float  # per worker
    gpus: float  # per worker
    custom: dict[str, float]

    def lines(self) -> list[str]:
        out = []
        for w in self.workers:
            what = f"{self.concurrent} concurrent x {w} worker{'s' if w != 1 else ''}"
            gpus = self.concurrent * w * self.gpus
            cpus = self.concurrent * w * self.cpus
            line = f"{what} x {_num(self.cpus)} CPU = {_num(cpus)} CPUs"
            if self.gpus:
                line += f"; x {_num(self.gpus)} GPU = {_num(gpus)} GPUs"
            for name, amount in self.custom.items():
                line += f"; x {_num(amount)} {name} = {_num(self.concurrent * w * amount)}"
            if w > 1:
                line += f" (+ {self.concurrent} trial drivers)"
            out.append(line)
        return out


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def resource_plan(spec: SweepSpec) -> ResourcePlan:
    res = spec.search.resources
    searched = spec.search.parameters.get("resources.workers")
    if searched is not None:
        values = searched.values or list(range(int(searched.low or 1), int(searched.high or 1) + 1))
        workers = tuple(sorted({int(v) for v in values}))
    else:
        workers = (res.workers,)
    return ResourcePlan(spec.search.max_concurrent, workers, res.cpus, res.gpus, dict(res.custom))


def print_plan(
    spec: SweepSpec,
    n: int,
    *,
    name: str | None = None,
    storage_path: str | None = None,
    num_trials: int | None = None,
    max_concurrent: int | None = None,
    resume: bool = False,
) -> int:
    """Print the dry run of `spec` (with the command line's overrides); returns 0, or raises
    the `ConfigError` of the first configuration whose run config is invalid."""
    from fsf.sweep.folder import sweep_dir_for

    if not 1 <= n <= MAX_DRY_RUN:
        raise UsageError(f"--dry-run N must be in 1..{MAX_DRY_RUN:,}, got {n}")
    # the flags validated as the same keys of a space file (--num-trials 10**12 is refused)
    spec = with_overrides(spec, name=name, num_trials=num_trials, max_concurrent=max_concurrent)
    search = spec.search
    if spec.probe is not None:
        from fsf.sweep.probe import probe_space

        spec = probe_space(spec)
        search = spec.search
    from fsf.sweep.space import missing_logger_packages

    missing = missing_logger_packages(spec)
    if missing:
        raise UsageError("; ".join(missing))
    grid = search.searcher == "grid"
    trials = len(grid_points(spec)) if grid else search.num_trials
    configs = sample_configurations(spec, min(n, trials))
    lines = []
    for i, params in enumerate(configs):
        try:
            config = trial_run_config(spec, params, search.seeds[0], f"dry-run-{i}")
        except ConfigError as exc:
            raise ConfigError(
                exc.problems, f"configuration {i + 1} of the dry run {params}"
            ) from None
        workers = trial_workers(spec, params)
        shown = printable(" ".join(f"{k}={_short(v)}" for k, v in params.items()))
        shown = shown or "(the base config)"
        steps = (
            f"{config.optim.max_steps} steps"
            if config.optim.max_steps
            else f"{_num(config.optim.epochs)} epochs"
        )
        lines.append(
            f"  {i + 1:>3}. {shown}  ({workers} worker{'s' if workers != 1 else ''}, {steps})"
        )
    how = (
        "grid points in order"
        if grid
        else f"drawn by {search.searcher} with searcher_seed={search.searcher_seed}, before any "
        "result is known"
    )
    print(f"dry run of sweep {spec.name!r}: the first {len(lines)} configurations ({how}):")
    print("\n".join(lines))
    seeds = len(search.seeds)
    print(
        f"trials: {trials}{' (one per grid point)' if grid else ''} x {seeds} "
        f"seed{'s' if seeds != 1 else ''} = {trials * seeds} training "
        f"run{'s' if trials * seeds != 1 else ''}"
        + ("; ASHA may stop some early" if search.scheduler.type == "asha" else "")
    )
    plan = resource_plan(spec)
    print("resources at once: " + "\n                   ".join(plan.lines()))
    waves = math.ceil(trials / max(1, plan.concurrent))
    print(
        f"concurrency: {plan.concurrent} trials at a time "
        f"({waves} round{'s' if waves != 1 else ''} of trials)"
    )
    for line in confirm_plan(spec, steps=_steps_of(spec)):
        print(line)
    sweep_dir = sweep_dir_for(spec, spec.name, storage_path)
    state = ""
    if sweep_dir.exists() and any(sweep_dir.iterdir()):
        state = (
            " (it already holds a sweep: run with --resume, or --name NEW)" if not resume else ""
        )
    print(f"sweep folder: {sweep_dir}{state}")
    print("dry run: nothing was started and nothing was written")
    return 0


def _steps_of(spec: SweepSpec) -> str:
    base = spec.base_config()
    if base.optim.max_steps:
        return f"{base.optim.max_steps} steps"
    return f"{_num(base.optim.epochs)} epochs"


def confirm_plan(spec: SweepSpec, steps: str = "full budget") -> list[str]:
    """What the confirmation stage will run after the search (none: no lines): its
    configurations, its runs (one trial each) and their cost, fixed or raced."""
    confirm = spec.confirm
    if confirm is None or spec.probe is not None:
        return []
    configs = confirm.top_k + 1  # the top_k and the baseline (fewer when they coincide)
    slots = max(1, spec.search.max_concurrent)
    base = ", ".join(f"{k}={v}" for k, v in confirm.baseline.items())
    head = (
        f"confirmation: the {confirm.top_k} best configuration(s) and the baseline ({base}), "
        f"each run ({steps}, no early stopping) its own trial, {slots} at a time"
    )
    if confirm.race is None:
        seeds = list(confirm.seeds or [])
        runs = configs * len(seeds)
        return [
            head,
            f"  fixed: {configs} configurations x {len(seeds)} fresh seeds {seeds} = {runs} "
            f"runs ({math.ceil(runs / slots)} run-lengths at {slots} at a time)",
        ]
    race = confirm.race
    first = configs * race.first_round
    most = configs * race.max_seeds
    return [
        head,
        f"  race: round 1 = {configs} configurations x {race.first_round} fresh seeds "
        f"(from {race.first_seed}) = {first} runs ({math.ceil(first / slots)} run-lengths); "
        f"each later round adds {race.per_round} seed(s) to every configuration still in it "
        f"and the baseline; at most {race.max_seeds} seeds each = {most} runs "
        f"({race.rounds_possible()} rounds); it stops once the best's difference to the "
        f"baseline is decided (95% interval excludes 0, or inside +-{_num(race.margin)} "
        f"points) after at least {race.min_rounds} round(s)",
    ]


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)
