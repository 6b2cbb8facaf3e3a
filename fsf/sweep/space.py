"""Search spaces: YAML -> a typed, validated `SweepSpec` -> an Optuna define-by-run function.

A space file has a `base` run config (any `fsf-train` config) and a `search` section:

    name: policies
    base: {model: {name: synthetic}, optim: {max_steps: 300}, ...}
    search:
      parameters:
        policy.name: {type: categorical, values: [df, fs, ff, fsf]}
        policy.c1: {type: float, low: 0.001, high: 0.5, log: true,
                    when: {policy.name: [fs, fsf]}}
      objective: [{metric: dev_target_mean, mode: max}]
      searcher: tpe
      scheduler: {type: asha, grace_period: 100, reduction_factor: 2}
      num_trials: 16
      max_concurrent: 2
      resources: {cpus: 1, gpus: 0, workers: 1}
      seeds: [0]
    storage: {path: fsf-runs}

Parameters are sampled in the order they are written; a `when` condition may only name a
parameter written before it, so the define-by-run function can decide as it goes.
`validate_space` reports every problem of a file at once, each with its path in the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from fsf.analysis.probe_spec import ProbeSpec
from fsf.config import (
    FolderName,
    RunConfig,
    apply_overrides,
    load_yaml,
    read_yaml,
    validate_run_config,
)
from fsf.errors import ConfigError, Problem, problems_from_pydantic, short_repr

if TYPE_CHECKING:
    import optuna

__all__ = [
    "CHECKPOINT_RULES",
    "MAX_GRID_POINTS",
    "ConfirmSpec",
    "Objective",
    "Parameter",
    "SchedulerSpec",
    "SearchSpec",
    "SweepSpec",
    "check_resources",
    "define_by_run",
    "grid_points",
    "grid_size",
    "load_space",
    "missing_logger_packages",
    "reported_metrics",
    "trial_run_config",
    "trial_workers",
    "validate_space",
    "with_overrides",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Parameter(_Strict):
    """One searched config key. `when` maps earlier parameters to the values under which this
    one is sampled (all must hold); otherwise the base config's value stays."""

    type: Literal["categorical", "int", "float"]
    values: list[Any] | None = Field(None, description="categorical: the choices")
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = Field(None, gt=0, description="int/float: quantisation step")
    grid: list[Any] | None = Field(None, description="the values the grid searcher tries")
    when: dict[str, list[Any]] = Field(default_factory=dict)
    apply: bool = Field(
        True, description="false: sampled only to steer other parameters' `when`, never set"
    )


class Objective(_Strict):
    metric: str = "dev_target_mean"
    mode: Literal["max", "min"] = "max"


class SchedulerSpec(_Strict):
    """ASHA early stopping on the (single) objective; times are optimizer steps."""

    type: Literal["asha", "none"] = "none"
    grace_period: int = Field(1, ge=1, description="steps before a trial can be stopped")
    max_t: int | None = Field(None, ge=1, description="default: max_steps x number of seeds")
    reduction_factor: float = Field(2.0, gt=1)


_RAY_BUILTIN = ("CPU", "GPU", "memory", "object_store_memory")


class Resources(_Strict):
    """What a trial asks Ray for. A trial with one worker trains in its own process, which
    asks for `cpus`, `gpus` and `custom`; a trial with more is a driver process, asking for
    `driver_resources`, that starts `workers` Ray Train workers, each asking for `cpus`,
    `gpus` and `custom`."""

    cpus: float = Field(1.0, gt=0, description="CPUs per trial (per worker when workers > 1)")
    gpus: float = Field(0.0, ge=0, description="GPUs per trial (per worker when workers > 1)")
    workers: int = Field(1, ge=1, description="DeepSpeed ranks per trial (Ray Train workers)")
    custom: dict[str, float] = Field(
        default_factory=dict,
        description="custom Ray resources per trial (per worker when workers > 1), "
        "e.g. {'accelerator_type:A100': 0.001}",
    )
    driver_resources: dict[str, float] = Field(
        default_factory=dict,
        description="what the driver of a multi-worker trial asks Ray for, instead of "
        "{CPU: 0.01}; e.g. {fsf_driver: 1} keeps drivers on the non-preemptible nodes that "
        "cluster/ray-cluster.yaml marks with the custom resource fsf_driver",
    )

    @field_validator("custom", "driver_resources")
    @classmethod
    def _resource_names(cls, value: dict[str, float], info: Any) -> dict[str, float]:
        for name, amount in value.items():
            if not name.strip():
                raise ValueError("a resource name must not be empty")
            if info.field_name == "custom" and name in _RAY_BUILTIN:
                raise ValueError(f"{name!r}: set `cpus`/`gpus` instead of a custom {name}")
            if info.field_name == "driver_resources" and name == "GPU":
                raise ValueError("a trial driver does not train: give it no GPU")
            if not amount > 0:
                raise ValueError(f"{name!r}: the amount must be > 0, got {amount}")
        return value


CHECKPOINT_RULES = ("source-dev", "target-dev", "all-dev")
"""How a run's checkpoint (its evaluation step that counts) is chosen: the best source-
language dev score (zero-shot honest), the best mean target dev score, or the best mean dev
score over all languages (fsf.results.selection)."""


class SearchSpec(_Strict):
    parameters: dict[str, Parameter] = Field(default_factory=dict)
    objective: list[Objective] = Field(default_factory=lambda: [Objective()])
    checkpoint: Literal["source-dev", "target-dev", "all-dev"] = Field(
        "source-dev",
        description="which evaluation of each run the objective is read at (and the queries' "
        "default checkpoint): the step with the best source-language dev score, the best "
        "mean target dev score, or the best mean dev score over all languages",
    )
    searcher: Literal["tpe", "random", "grid", "cmaes", "nsga2"] = "tpe"
    searcher_seed: int = 0
    scheduler: SchedulerSpec = Field(default_factory=SchedulerSpec)
    num_trials: int = Field(16, ge=1, description="ignored by grid: one trial per grid point")
    max_concurrent: int = Field(1, ge=1)
    resources: Resources = Field(default_factory=Resources)
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    max_failures: int = Field(0, ge=0, description="retries of a failed trial")
    skip_repeats: bool = Field(
        True,
        description="a configuration sampled again is answered from the study (same "
        "configuration, same seeds: same result) instead of trained again",
    )

    @field_validator("objective", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, dict) else value


_URI_SCHEMES = ("s3", "gs", "gcs", "hdfs", "viewfs", "file", "abfs", "abfss")


class Storage(_Strict):
    """Where sweeps are kept: `path` is a folder or a URI read through pyarrow.fs (s3://,
    gs://, hdfs://, file://; on a cluster every node must reach it). `optuna` is the Optuna
    study storage (see fsf.results.study): a SQLAlchemy URL or journal:PATH; by default
    SQLite in the sweep folder, which must then be on a local or mounted disk."""

    path: str = Field("fsf-runs", description="folder (or URI) holding one folder per sweep")
    optuna: str | None = Field(
        None, description="SQLAlchemy URL or journal:PATH; default: SQLite in the sweep folder"
    )

    @field_validator("path")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        if "://" in value:
            scheme = value.split("://", 1)[0].lower()
            if scheme not in _URI_SCHEMES:
                raise ValueError(
                    f"unknown storage URI scheme {scheme!r}; use a folder or one of "
                    f"{', '.join(s + '://' for s in _URI_SCHEMES)}"
                )
        return value

    @field_validator("optuna")
    @classmethod
    def _study_url(cls, value: str | None) -> str | None:
        from fsf.results.study import check_study_url

        problem = check_study_url(value) if value is not None else None
        if problem:
            raise ValueError(problem)
        return value


class ConfirmSpec(_Strict):
    """The confirmation stage: after the search, the `top_k` best configurations under the
    sweep's objective, plus the best `baseline` configuration, are trained again at full
    budget (no early stopping) on fresh `seeds`; the sweep's answer comes from these runs."""

    top_k: int = Field(2, ge=1, le=50, description="configurations confirmed, best first")
    seeds: list[int] = Field(
        default_factory=lambda: [100, 101, 102],
        min_length=2,
        description="fresh seeds (none of search.seeds); >= 2 for a paired interval",
    )
    baseline: dict[str, Any] = Field(
        default_factory=lambda: {"policy.name": "df"},
        description="run-config keys and values that identify the baseline (plain DF)",
    )
    predictions: bool = Field(
        True, description="confirmed runs write XTREME prediction files (eval.predictions)"
    )
    checkpoints: Literal["winner", "all", "none"] = Field(
        "winner",
        description="confirmed runs save their selected checkpoint; `winner` keeps only the "
        "winning configuration's (one per seed) once the confirmation has finished",
    )


class SweepSpec(_Strict):
    name: FolderName = Field("sweep", description="the sweep's folder under storage.path")
    description: str = ""
    base: dict[str, Any] = Field(default_factory=dict)
    search: SearchSpec = Field(default_factory=SearchSpec)
    storage: Storage = Field(default_factory=Storage)
    probe: ProbeSpec | None = Field(
        None, description="a layer-probe sweep; `fsf-sweep probe` generates its grid"
    )
    confirm: ConfirmSpec | None = Field(
        None, description="re-run the best configurations and the baseline on fresh seeds"
    )
    loggers: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="extra Ray Tune logger callbacks besides Tune's own (JSON, CSV, "
        "TensorBoard): [mlflow, wandb], or {mlflow: {tracking_uri: ...}, wandb: {project: ..., "
        "mode: offline}}; extras: pip install 'fsf[mlflow]' / 'fsf[wandb]'",
    )

    @field_validator("loggers", mode="before")
    @classmethod
    def _logger_names(cls, value: Any) -> Any:
        if value is None:
            return {}
        if isinstance(value, list):
            if not all(isinstance(v, str) for v in value):
                raise ValueError("give logger names, e.g. [mlflow, wandb]")
            value = {v: {} for v in value}
        if isinstance(value, dict):
            unknown = sorted(set(value) - set(LOGGERS))
            if unknown:
                raise ValueError(f"unknown logger {unknown}; choose from: {', '.join(LOGGERS)}")
            value = {k: ({} if v is None else v) for k, v in value.items()}
        return value

    def base_config(self) -> RunConfig:
        return validate_run_config(self.base, prefix="base")

    @property
    def multi_objective(self) -> bool:
        return len(self.search.objective) > 1


def missing_logger_packages(spec: SweepSpec) -> list[str]:
    """One line per logger of the space whose package is not installed (checked when a
    sweep starts, not when a space is read: reading a sweep's results needs none)."""
    import importlib.util

    return [
        f"loggers: {name!r} needs the {LOGGERS[name]} package: pip install 'fsf[{name}]'"
        for name in spec.loggers
        if importlib.util.find_spec(LOGGERS[name]) is None
    ]


def reported_metrics(config: RunConfig) -> list[str]:
    """The scalars every trial reports to Tune, hence the valid objective metrics."""
    names = ["train_loss"]
    for split in config.eval.splits:
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
                chosen[key] = trial.suggest_categorical(key, p.values)  # type: ignore[arg-type]
            elif p.type == "int":
                chosen[key] = trial.suggest_int(
                    key,
                    int(p.low),
                    int(p.high),
                    step=int(p.step or 1),
                    log=p.log,  # type: ignore[arg-type]
                )
            else:
                chosen[key] = trial.suggest_float(
                    key,
                    p.low,
                    p.high,
                    step=p.step,
                    log=p.log,  # type: ignore[arg-type]
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


LOGGERS = {"mlflow": "mlflow", "wandb": "wandb"}
"""Optional Ray Tune logger callbacks (`loggers:` in a space) -> the package each needs."""

RESOURCE_KEYS = ("resources.workers",)
"""Searchable keys that are not run-config keys: how a trial is run, not what it trains."""


def trial_workers(spec: SweepSpec, params: dict[str, Any]) -> int:
    """DeepSpeed ranks of a trial: the searched `resources.workers`, else the space's."""
    return int(params.get("resources.workers", spec.search.resources.workers))


def trial_run_config(spec: SweepSpec, params: dict[str, Any], seed: int, name: str) -> RunConfig:
    """The run config of one trial and seed: the base with the sampled values set."""
    searched = spec.search.parameters
    overrides = [
        (k, v)
        for k, v in params.items()
        if k not in RESOURCE_KEYS and (k not in searched or searched[k].apply)
    ]
    data = apply_overrides(spec.base, [*overrides, ("seed", seed), ("name", name)])
    return validate_run_config(data, prefix="base")


def _first(p: Parameter) -> Any:
    if p.type == "categorical":
        return (p.values or [None])[0]
    return p.low


def _conditions_of(params: dict[str, Parameter], key: str) -> dict[str, Any]:
    """Values of earlier parameters that make `key`'s condition (and theirs) hold."""
    out: dict[str, Any] = {}
    for cond_key, values in params[key].when.items():
        if cond_key in params and values and cond_key != key:
            out.update(_conditions_of(params, cond_key))
            out[cond_key] = values[0]
    return out


def _walk(params: dict[str, Parameter], fixed: dict[str, Any]) -> dict[str, Any]:
    """A complete sample: `fixed` values where given, each other parameter's first value,
    conditional parameters only where their condition holds."""
    point: dict[str, Any] = {}
    for key, p in params.items():
        if _condition_holds(p.when, point):
            point[key] = fixed[key] if key in fixed else _first(p)
    return point


#: Search parameters whose values change what `check_resources` looks at.
_RESOURCE_PREFIXES = (
    "model.",
    "task.",
    "source_lang",
    "target_langs",
    "policy.sets",
    "probe.",
    "few_shot.",
    "eval.splits",
)


def check_resources(spec: SweepSpec, limit: int = 32) -> list[Problem]:
    """Problems of the model and data a sweep names, found without training
    (`fsf.train.check.check_run`): the base config, and the base with each value of the
    parameters that change the model, the task, the languages or the layer ranges (at most
    `limit` configs). A problem only some values have is reported under that parameter."""
    from fsf.train.check import check_run

    params = spec.search.parameters
    configs: list[tuple[str | None, Any, RunConfig]] = [(None, None, spec.base_config())]
    for key, p in params.items():
        if not p.apply or key in RESOURCE_KEYS or not key.startswith(_RESOURCE_PREFIXES):
            continue
        for value in (p.values if p.type == "categorical" else [p.low, p.high]) or []:
            point = _walk(params, {**_conditions_of(params, key), key: value})
            try:
                configs.append((key, value, trial_run_config(spec, point, 0, "check")))
            except ConfigError:
                continue  # reported by validate_space
    problems: list[Problem] = []
    seen: set[str] = set()
    base_problems: set[str] = set()
    for key, value, config in configs[:limit]:
        for prob in check_run(config, prefix="base"):
            if key is None:
                base_problems.add(str(prob))
            elif str(prob) in base_problems:
                continue
            else:
                prob = Problem(
                    f"search.parameters.{key}",
                    f"value {short_repr(value)}: {prob}",
                )
            if str(prob) not in seen:
                seen.add(str(prob))
                problems.append(prob)
    return problems


#: Command-line flags of `fsf-sweep` and the space keys they set.
FLAGS = {
    "name": "--name",
    "storage.path": "--storage-path",
    "search.num_trials": "--num-trials",
    "search.max_concurrent": "--max-concurrent",
}


def with_overrides(
    spec: SweepSpec,
    *,
    name: str | None = None,
    storage_path: str | None = None,
    num_trials: int | None = None,
    max_concurrent: int | None = None,
) -> SweepSpec:
    """`spec` with the command line's values set, each validated exactly as the same key in
    a space file; a bad one is a ConfigError naming its flag (`--name ../x` is refused like
    `name: ../x`)."""
    values = dict(zip(FLAGS, (name, storage_path, num_trials, max_concurrent), strict=True))
    values = {k: v for k, v in values.items() if v is not None}
    if not values:
        return spec
    data = apply_overrides(spec.model_dump(mode="json"), list(values.items()))
    try:
        return SweepSpec.model_validate(data)
    except ValidationError as exc:
        problems = []
        for prob in problems_from_pydantic(exc):
            flag = next((f for k, f in FLAGS.items() if prob.path == k), None)
            problems.append(Problem(flag or prob.path, prob.message, prob.value, prob.has_value))
        raise ConfigError(problems) from None


def validate_space(data: Any, source: str | None = None) -> SweepSpec:
    """Build a SweepSpec from parsed YAML, raising one ConfigError listing every problem."""
    if not isinstance(data, dict):
        raise ConfigError(
            [Problem("", "a space file is a mapping with base/search/storage", data, True)], source
        )
    try:
        spec = SweepSpec.model_validate(data)
    except ValidationError as exc:
        problems = problems_from_pydantic(exc)
        # still check the base run config, so its problems are listed too
        base = data.get("base", {})
        if isinstance(base, dict) and not any(p.path.startswith("base") for p in problems):
            try:
                validate_run_config(base, prefix="base")
            except ConfigError as inner:
                problems += inner.problems
        raise ConfigError(problems, source) from None
    from fsf.sweep._checks import check_semantics

    problems = check_semantics(spec)
    if problems:
        raise ConfigError(problems, source)
    return spec


def load_space(path: str | Path) -> SweepSpec:
    """Read and validate a space file (a local path, or a URI such as a sweep's
    s3://.../space.yaml)."""
    if isinstance(path, str) and "://" in path:
        from fsf.results.storage import location

        try:
            text = location(path).read_text()
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            raise ConfigError([Problem("", f"cannot read file: {exc}")], path) from None
        return validate_space(load_yaml(text, path), path)
    return validate_space(read_yaml(path), str(path))
