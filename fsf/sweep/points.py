"""The points of a space: what one configuration drawn from a `SweepSpec` is.

The define-by-run function the searcher samples with, the grid, the run config of a trial
and seed, a complete point from a few fixed values, and the metrics every trial reports.
Reading and validating a space file is `fsf.sweep.space`, whose checks
(`fsf.sweep._checks`) build points with these functions: both import this module, and it
imports neither.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fsf.config import RunConfig, apply_overrides, validate_run_config
from fsf.sweep.spec import Parameter, SweepSpec

if TYPE_CHECKING:
    import optuna

__all__ = [
    "MAX_GRID_POINTS",
    "RESOURCE_KEYS",
    "complete_point",
    "conditions_of",
    "define_by_run",
    "grid_points",
    "grid_size",
    "reported_metrics",
    "trial_run_config",
    "trial_workers",
]


def reported_metrics(config: RunConfig) -> list[str]:
    """The scalars every trial reports to Tune, hence the valid objective metrics (never a
    test-split one: trials do not report them to Tune)."""
    names = ["train_loss"]
    for split in (s for s in config.eval.splits if s != "test"):
        names += [f"{split}_{k}" for k in ("source", "target_mean", "all_mean", "gap")]
    return names


def _condition_holds(when: dict[str, list[Any]], chosen: dict[str, Any]) -> bool:
    return all(key in chosen and chosen[key] in values for key, values in when.items())


class _DefineByRun:
    """A picklable define-by-run function (Tune checkpoints the searcher with pickle)."""

    def __init__(self, parameters: dict[str, Parameter]):
        self.parameters = parameters

    def __call__(self, trial: optuna.Trial) -> None:
        chosen: dict[str, Any] = {}
        for key, p in self.parameters.items():
            if not _condition_holds(p.when, chosen):
                continue
            if p.type == "categorical":
                chosen[key] = trial.suggest_categorical(key, p.values)
            elif p.type == "int":
                assert p.low is not None and p.high is not None  # the spec requires both
                chosen[key] = trial.suggest_int(
                    key,
                    int(p.low),
                    int(p.high),
                    step=int(p.step or 1),
                    log=p.log,
                )
            else:
                chosen[key] = trial.suggest_float(
                    key,
                    p.low,
                    p.high,
                    step=p.step,
                    log=p.log,
                )


def define_by_run(spec: SweepSpec) -> _DefineByRun:
    """The Optuna define-by-run function of the space: conditional parameters are only
    suggested when their condition holds."""
    return _DefineByRun(spec.search.parameters)


MAX_GRID_POINTS = 10_000
"""The most points a grid may have (each is a trial)."""


class _GridTooLarge(Exception):
    pass


def _distinct(values: list[Any]) -> list[Any]:
    """`values` without repeats (by repr, as YAML values compare), first occurrence kept."""
    seen: set[str] = set()
    out = []
    for v in values:
        key = repr(v)
        if key not in seen:
            seen.add(key)
            out.append(v)
    return out


def _grid(spec: SweepSpec, limit: int | None) -> list[dict[str, Any]]:
    points: list[dict[str, Any]] = [{}]
    for key, p in spec.search.parameters.items():
        values = p.values if p.type == "categorical" else p.grid
        assert values is not None
        values = _distinct(values)
        nxt = []
        for point in points:
            if _condition_holds(p.when, point):
                nxt += [{**point, key: v} for v in values]
            else:
                nxt.append(point)
            # with distinct values no two points are equal and the count only grows, so
            # the grid is known to be too large before it is built whole
            if limit is not None and len(nxt) > limit:
                raise _GridTooLarge
        points = nxt
    return points


def grid_points(spec: SweepSpec) -> list[dict[str, Any]]:
    """Every grid point, honouring conditions (a conditional parameter multiplies only the
    points where its condition holds); a value listed twice counts once."""
    return _grid(spec, None)


def grid_size(spec: SweepSpec, limit: int = MAX_GRID_POINTS) -> int | None:
    """The number of grid points, or None when it exceeds `limit` (counted without building
    more than `limit` + 1 points)."""
    try:
        return len(_grid(spec, limit))
    except _GridTooLarge:
        return None


RESOURCE_KEYS = ("resources.workers",)
"""Searchable keys that are not run-config keys: how a trial is run, not what it trains."""


def trial_workers(spec: SweepSpec, params: dict[str, Any]) -> int:
    """DeepSpeed ranks of a trial: the searched `resources.workers`, else the space's."""
    return int(params.get("resources.workers", spec.search.resources.workers))


def trial_run_config(spec: SweepSpec, params: dict[str, Any], seed: int, name: str) -> RunConfig:
    """The run config of one trial and seed: the base with the sampled values set, and the
    sweep's checkpoint rule (`search.checkpoint`), so that the evaluation a run keeps as its
    checkpoint and prediction files is the one its objective and the queries read, and the
    search's own splits (`search.splits`) where it sets them."""
    searched = spec.search.parameters
    overrides = [
        (k, v)
        for k, v in params.items()
        if k not in RESOURCE_KEYS and (k not in searched or searched[k].apply)
    ]
    fixed: list[tuple[str, Any]] = [
        ("checkpoint.select", spec.search.checkpoint),
        ("seed", seed),
        ("name", name),
    ]
    if spec.search.splits is not None:  # the search stage's own splits (e.g. dev alone)
        fixed.append(("eval.splits", list(spec.search.splits)))
    data = apply_overrides(spec.base, [*overrides, *fixed])
    return validate_run_config(data, prefix="base")


def _first(p: Parameter) -> Any:
    if p.type == "categorical":
        return (p.values or [None])[0]
    return p.low


def conditions_of(
    params: dict[str, Parameter], key: str, _seen: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """Values of earlier parameters that make `key`'s condition (and theirs) hold. A cycle
    of conditions (`a` when `b`, `b` when `a`: refused by `check_conditions`) is followed
    once around, never forever."""
    out: dict[str, Any] = {}
    seen = _seen | {key}
    for cond_key, values in params[key].when.items():
        if cond_key in params and values and cond_key not in seen:
            out.update(conditions_of(params, cond_key, seen))
            out[cond_key] = values[0]
    return out


def complete_point(params: dict[str, Parameter], fixed: dict[str, Any]) -> dict[str, Any]:
    """A complete sample: `fixed` values where given, each other parameter's first value,
    conditional parameters only where their condition holds."""
    point: dict[str, Any] = {}
    for key, p in params.items():
        if _condition_holds(p.when, point):
            point[key] = fixed[key] if key in fixed else _first(p)
    return point
