"""The checks of a space that need the whole `SweepSpec` (what pydantic cannot see field by
field), one named function each, run in order by `check_semantics` (torchtune's
`config/_validate.py` shape). Every checker returns its problems; none stops at the first, so
`fsf-sweep validate` lists them all at once."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fsf.config import RunConfig, apply_overrides, validate_run_config
from fsf.errors import ConfigError, Problem, short_repr
from fsf.strict import MAX_SEED
from fsf.sweep.points import (
    MAX_GRID_POINTS,
    RESOURCE_KEYS,
    complete_point,
    conditions_of,
    grid_size,
    reported_metrics,
    trial_run_config,
)
from fsf.sweep.spec import ConfirmSpec, Parameter, SweepSpec

__all__ = ["CHECKS", "check_semantics"]

Checker = Callable[[SweepSpec, RunConfig], list[Problem]]


def check_semantics(spec: SweepSpec) -> list[Problem]:
    """Problems that need the whole spec: conditions, objectives, values vs. the run config.
    The base run config is validated first: when it is invalid, its problems are the answer
    (every later check reads it)."""
    try:
        base = spec.base_config()
    except ConfigError as exc:
        return exc.problems
    problems: list[Problem] = []
    for check in CHECKS:
        problems += check(spec, base)
    if spec.search.searcher == "grid" and not problems:
        problems += check_grid_size(spec, base)
    return problems


# -- parameters -------------------------------------------------------------------------------


def check_probe_parameters(spec: SweepSpec, base: RunConfig) -> list[Problem]:
    """A probe space takes its parameters from its `probe` section alone."""
    own = [k for k in spec.search.parameters if not k.startswith("probe.")]
    if spec.probe is None or not own:
        return []
    return [
        Problem(
            "search.parameters",
            "a space with a `probe` section gets its parameters from it (probe.action, "
            f"probe.layer, probe.part); remove {own}",
        )
    ]


def _parameter_shape(path: str, p: Parameter, searcher: str) -> list[Problem]:
    problems = []
    if p.type == "categorical":
        if not p.values:
            problems.append(
                Problem(f"{path}.values", "categorical needs a non-empty list", p.values, True)
            )
        for field in ("low", "high"):
            if getattr(p, field) is not None:
                problems.append(
                    Problem(
                        f"{path}.{field}",
                        "categorical takes `values`, not a range",
                        getattr(p, field),
                        True,
                    )
                )
        return problems
    if p.low is None or p.high is None:
        problems.append(Problem(path, f"{p.type} needs `low` and `high`"))
    elif p.low > p.high:
        problems.append(Problem(f"{path}", f"empty range: low > high (low={p.low}, high={p.high})"))
    elif p.log and p.low <= 0:
        problems.append(Problem(f"{path}.low", "a log-scale range needs low > 0", p.low, True))
    if p.type == "int" and any(
        v is not None and float(v) != int(v) for v in (p.low, p.high, p.step)
    ):
        problems.append(Problem(path, "int parameters need integer low/high/step"))
    if p.values is not None:
        problems.append(
            Problem(f"{path}.values", f"{p.type} takes low/high, not values", p.values, True)
        )
    if searcher == "grid" and not p.grid:
        problems.append(
            Problem(
                f"{path}.grid",
                "the grid searcher needs a `grid` list of values for int/float parameters",
            )
        )
    return problems


def check_parameter_shapes(spec: SweepSpec, base: RunConfig) -> list[Problem]:
    """Each parameter has the fields its type takes: `values` for categorical, a non-empty
    `low`..`high` range (positive on a log scale, integers for int) otherwise, and a `grid`
    list for int/float under the grid searcher."""
    problems = []
    for key, p in spec.search.parameters.items():
        problems += _parameter_shape(f"search.parameters.{key}", p, spec.search.searcher)
    return problems


def check_conditions(spec: SweepSpec, base: RunConfig) -> list[Problem]:
    """A `when` condition names a parameter written before it, with values it can take."""
    params = spec.search.parameters
    order = list(params)
    problems = []
    for i, (key, p) in enumerate(params.items()):
        path = f"search.parameters.{key}"
        for cond_key, cond_values in p.when.items():
            if cond_key not in params:
                problems.append(
                    Problem(
                        f"{path}.when.{cond_key}",
                        f"condition names an unknown parameter; known: {order}",
                    )
                )
                continue
            if order.index(cond_key) >= i:
                problems.append(
                    Problem(
                        f"{path}.when.{cond_key}",
                        "a condition may only name a parameter written before this one",
                    )
                )
            cond = params[cond_key]
            if cond.type == "categorical" and cond.values:
                unknown = [v for v in cond_values if v not in cond.values]
                if unknown:
                    problems.append(
                        Problem(
                            f"{path}.when.{cond_key}",
                            f"values {short_repr(unknown)} are not among {cond_key}'s values "
                            f"{short_repr(cond.values)}",
                        )
                    )
    return problems


def check_values_against_base(spec: SweepSpec, base: RunConfig) -> list[Problem]:
    """Every value a parameter can take (its categories, or both ends of its range) gives a
    valid run config, together with the values its conditions need and the first value of
    every other parameter; worker counts are integers >= 1."""
    params = spec.search.parameters
    problems = []
    for key, p in params.items():
        path = f"search.parameters.{key}"
        if not p.apply:
            continue
        if key in RESOURCE_KEYS:
            values = p.values if p.type == "categorical" else [p.low, p.high]
            bad = [v for v in values or [] if not isinstance(v, int) or v < 1]
            if bad:
                problems.append(Problem(path, "worker counts must be integers >= 1", bad, True))
            continue
        samples = p.values if p.type == "categorical" else [p.low, p.high]
        for value in samples or []:
            if value is None:
                continue
            point = complete_point(params, {**conditions_of(params, key), key: value})
            try:
                trial_run_config(spec, point, 0, "check")
            except ConfigError as exc:
                for prob in exc.problems:
                    problems.append(
                        Problem(
                            path,
                            f"value {short_repr(value)} gives an invalid run config (at "
                            f"{short_repr(point)}): {prob}",
                        )
                    )
                break
    return problems


# -- objective, searcher, scheduler -----------------------------------------------------------


def check_objectives(spec: SweepSpec, base: RunConfig) -> list[Problem]:
    """Each objective is a metric trials report, and never a test metric (the objective
    chooses configurations: choosing on test is selection on test)."""
    if spec.search.splits is not None:  # what the search's runs evaluate
        base = base.model_copy(
            update={"eval": base.eval.model_copy(update={"splits": list(spec.search.splits)})}
        )
    valid_metrics = reported_metrics(base)
    problems = []
    for j, obj in enumerate(spec.search.objective):
        if obj.metric.startswith("test_"):
            problems.append(
                Problem(
                    f"search.objective[{j}].metric",
                    "the objective chooses configurations, and choosing on test data is "
                    f"selection on test; use {obj.metric.replace('test_', 'dev_', 1)}",
                    obj.metric,
                    True,
                )
            )
        elif obj.metric not in valid_metrics:
            problems.append(
                Problem(
                    f"search.objective[{j}].metric",
                    f"no trial reports this metric; choose one of {valid_metrics}",
                    obj.metric,
                    True,
                )
            )
    return problems


def check_searcher_and_scheduler(spec: SweepSpec, base: RunConfig) -> list[Problem]:
    """The searcher and scheduler suit the number of objectives; ASHA knows its budget."""
    search = spec.search
    multi = len(search.objective) > 1
    problems = []
    if multi and search.scheduler.type == "asha":
        problems.append(
            Problem(
                "search.scheduler.type",
                "asha stops trials on a single objective; use `none` for multi-objective search",
                "asha",
                True,
            )
        )
    if multi and search.searcher == "cmaes":
        problems.append(
            Problem("search.searcher", "cmaes is single-objective; use nsga2 or tpe", "cmaes", True)
        )
    if not multi and search.searcher == "nsga2":
        problems.append(
            Problem(
                "search.searcher", "nsga2 is for several objectives; use tpe for one", "nsga2", True
            )
        )
    if (
        search.scheduler.type == "asha"
        and search.scheduler.max_t is None
        and base.optim.max_steps is None
    ):
        problems.append(
            Problem(
                "search.scheduler.max_t", "set max_t (in optimizer steps) or base.optim.max_steps"
            )
        )
    return problems


# -- seeds and resources ----------------------------------------------------------------------


def check_seeds_and_workers(spec: SweepSpec, base: RunConfig) -> list[Problem]:
    """Seeds are distinct; the batch splits evenly over every worker count the space uses."""
    search = spec.search
    problems = []
    if len(set(search.seeds)) != len(search.seeds):
        problems.append(Problem("search.seeds", "seeds must be distinct", search.seeds, True))
    worker_counts: set[Any] = {search.resources.workers}
    if "resources.workers" in search.parameters:
        p = search.parameters["resources.workers"]
        worker_counts = set(p.values or []) if p.type == "categorical" else {p.low, p.high}
    for w in sorted(v for v in worker_counts if isinstance(v, (int, float)) and v >= 1):
        if base.optim.batch_size % (int(w) * base.optim.grad_accum):
            problems.append(
                Problem(
                    "search.resources.workers",
                    f"base.optim.batch_size={base.optim.batch_size} must be a multiple of "
                    "workers x grad_accum",
                    int(w),
                    True,
                )
            )
    return problems


# -- the confirmation stage -------------------------------------------------------------------


def check_confirm(spec: SweepSpec, base: RunConfig) -> list[Problem]:
    """The confirmation stage uses fresh, distinct seeds and a baseline that is a valid run."""
    confirm = spec.confirm
    if confirm is None:
        return []
    problems = []
    if spec.probe is not None:
        problems.append(Problem("confirm", "a probe sweep has no confirmation stage; remove it"))
    if confirm.seeds is not None and len(set(confirm.seeds)) != len(confirm.seeds):
        problems.append(Problem("confirm.seeds", "seeds must be distinct", confirm.seeds, True))
    if confirm.race is not None:
        problems += _check_race(confirm)
        field, seeds = "confirm.race.first_seed", confirm.race.seed_pool()
    else:
        field, seeds = "confirm.seeds", list(confirm.seeds or [])
    reused = sorted(set(seeds) & set(spec.search.seeds))
    if reused:
        problems.append(
            Problem(
                field,
                f"seeds {reused} were used by the search; confirmation needs fresh seeds",
                confirm.race.first_seed if confirm.race is not None else confirm.seeds,
                True,
            )
        )
    if not confirm.baseline:
        problems.append(Problem("confirm.baseline", "name the baseline, e.g. {policy.name: df}"))
    try:
        data = apply_overrides(spec.base, list(confirm.baseline.items()))
        validate_run_config(data, prefix="base")
    except ConfigError as exc:
        problems += [
            Problem("confirm.baseline", f"does not give a valid run config: {p}")
            for p in exc.problems
        ]
    return problems


def check_search_splits(spec: SweepSpec, base: RunConfig) -> list[Problem]:
    """A search that skips test (`search.splits`) needs the confirmation stage that reports
    it, and evaluates only splits its runs have."""
    splits = spec.search.splits
    if splits is None:
        return []
    problems = []
    extra = sorted(set(splits) - set(base.eval.splits))
    if extra:
        problems.append(
            Problem(
                "search.splits",
                f"the base evaluates only {base.eval.splits} (eval.splits); the search can "
                "evaluate fewer splits, not more",
                splits,
                True,
            )
        )
    if "test" in base.eval.splits and "test" not in splits and spec.confirm is None:
        problems.append(
            Problem(
                "search.splits",
                "a search without test scores and no confirm stage answers nothing on test; "
                "add a confirm section, or drop search.splits",
                splits,
                True,
            )
        )
    return problems


def _check_race(confirm: ConfirmSpec) -> list[Problem]:
    """A race's settings that only make sense together: seeds given one way, a budget that
    holds the first round and the rounds it must run, seeds within range."""
    race = confirm.race
    assert race is not None
    problems = []
    if confirm.seeds is not None:
        problems.append(
            Problem(
                "confirm.seeds",
                "a race draws its own seeds (race.first_seed, +1, ...): give either "
                "confirm.seeds (the fixed scheme) or confirm.race, not both",
                confirm.seeds,
                True,
            )
        )
    if race.max_seeds < race.first_round:
        problems.append(
            Problem(
                "confirm.race.max_seeds",
                f"must be >= race.first_round ({race.first_round}): the first round alone "
                "would pass it",
                race.max_seeds,
                True,
            )
        )
    elif race.min_rounds > race.rounds_possible():
        problems.append(
            Problem(
                "confirm.race.min_rounds",
                f"the seed budget allows at most {race.rounds_possible()} round(s) "
                f"(first_round={race.first_round}, per_round={race.per_round}, "
                f"max_seeds={race.max_seeds}); lower min_rounds or raise max_seeds",
                race.min_rounds,
                True,
            )
        )
    if race.first_seed + race.max_seeds - 1 > MAX_SEED:
        problems.append(
            Problem(
                "confirm.race.first_seed",
                f"first_seed + max_seeds - 1 must be <= {MAX_SEED}",
                race.first_seed,
                True,
            )
        )
    return problems


def check_grid_size(spec: SweepSpec, base: RunConfig) -> list[Problem]:
    """A grid is counted before it is built: at most MAX_GRID_POINTS points (run only when
    every other check passed, since counting needs valid parameters)."""
    if grid_size(spec) is not None:
        return []
    return [
        Problem(
            "search.parameters",
            f"the grid has more than {MAX_GRID_POINTS:,} points (one trial each); "
            "search fewer values, or use searcher: tpe with num_trials",
        )
    ]


#: Run in this order by `check_semantics` (`check_grid_size` after them, when all passed).
CHECKS: tuple[Checker, ...] = (
    check_probe_parameters,
    check_parameter_shapes,
    check_conditions,
    check_values_against_base,
    check_objectives,
    check_searcher_and_scheduler,
    check_seeds_and_workers,
    check_confirm,
    check_search_splits,
)
