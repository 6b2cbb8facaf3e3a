"""The typed sweep spec: the pydantic models a space file validates into.

`SweepSpec` is one space file: its `base` run config, the `search` section (parameters,
objective, searcher, scheduler, resources, seeds), `storage`, an optional layer `probe`, an
optional `confirm` stage and extra Tune `loggers`. Each model forbids unknown keys, so a typo
in a space file is a problem with its path, not a silently ignored key. Reading a file and
the checks across sections are `fsf.sweep.space` (`load_space`, `validate_space`).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from fsf.analysis.probe_spec import ProbeSpec
from fsf.config import CheckpointRule, FolderName, RunConfig, validate_run_config
from fsf.strict import Seed, StrictModel
from fsf.tasks.settings import EvalSplit

__all__ = [
    "LOGGERS",
    "MAX_CPUS",
    "MAX_GPUS",
    "MAX_SEEDS",
    "MAX_TRIALS",
    "MAX_WORKERS",
    "ConfirmSpec",
    "Objective",
    "Parameter",
    "RaceSpec",
    "Resources",
    "SchedulerSpec",
    "SearchSpec",
    "Storage",
    "SweepSpec",
    "confirm_seeds",
]


MAX_TRIALS = 100_000
"""The most trials (and concurrent trials) a space may ask for."""
MAX_SEEDS = 100
"""The most seeds a search or a confirmation runs each configuration on."""
DEFAULT_CONFIRM_SEEDS = (100, 101, 102)
"""The fixed confirmation's seeds when a space names none."""
MAX_CPUS = 100_000
"""The most CPUs a trial (or worker) may ask for."""
MAX_GPUS = 1024
"""The most GPUs a trial (or worker) may ask for."""
MAX_WORKERS = 1024
"""The most DeepSpeed ranks a trial may have."""


class _Strict(StrictModel):
    """Unknown keys refused; every number finite and in range (`fsf.strict`)."""


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

    cpus: float = Field(
        1.0, gt=0, le=MAX_CPUS, description="CPUs per trial (per worker when workers > 1)"
    )
    gpus: float = Field(
        0.0, ge=0, le=MAX_GPUS, description="GPUs per trial (per worker when workers > 1)"
    )
    workers: int = Field(
        1, ge=1, le=MAX_WORKERS, description="DeepSpeed ranks per trial (Ray Train workers)"
    )
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


class SearchSpec(_Strict):
    parameters: dict[str, Parameter] = Field(default_factory=dict)
    objective: list[Objective] = Field(default_factory=lambda: [Objective()])
    checkpoint: CheckpointRule = Field(
        "source-dev",
        description="which evaluation of each run the objective is read at (and the queries' "
        "default checkpoint): the step with the best source-language dev score, the best "
        "mean target dev score, or the best mean dev score over all languages",
    )
    splits: list[EvalSplit] | None = Field(
        None,
        min_length=1,
        description="the splits the search's runs evaluate (default: the base's "
        "eval.splits). [dev]: the search chooses on dev and skips test, which then only the "
        "confirmation stage evaluates (it always evaluates the base's splits); a sweep run "
        "with --no-confirm then has no test scores until `fsf confirm`",
    )
    searcher: Literal["tpe", "random", "grid", "cmaes", "nsga2"] = "tpe"
    searcher_seed: Seed = 0
    scheduler: SchedulerSpec = Field(default_factory=SchedulerSpec)
    num_trials: int = Field(
        16, ge=1, le=MAX_TRIALS, description="ignored by grid: one trial per grid point"
    )
    max_concurrent: int = Field(1, ge=1, le=MAX_TRIALS)
    resources: Resources = Field(default_factory=Resources)
    seeds: list[Seed] = Field(default_factory=lambda: [0], min_length=1, max_length=MAX_SEEDS)
    max_failures: int = Field(0, ge=0, le=100, description="retries of a failed trial")
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


class RaceSpec(_Strict):
    """A racing confirmation (F-Race; `fsf.results.race`): the candidates and the baseline run
    on `first_round` fresh seeds, then on `per_round` more per round; after each round a
    candidate a one-sided paired test (Holm's correction at `alpha`) finds worse than the
    best is dropped, and the race stops once the best's paired 95% interval against the
    baseline excludes 0 or lies inside +-`margin` points (after at least `min_rounds`
    rounds), or when a candidate would pass `max_seeds`. Seeds are `first_seed`,
    `first_seed + 1`, ... Decisions read the sweep's objective (dev data), never test."""

    first_round: int = Field(
        3, ge=2, le=MAX_SEEDS, description="seeds of the first round (>= 2: a paired test)"
    )
    per_round: int = Field(1, ge=1, le=MAX_SEEDS, description="seeds added by each later round")
    max_seeds: int = Field(
        6, ge=2, le=MAX_SEEDS, description="the most seeds a candidate gets (the race's budget)"
    )
    min_rounds: int = Field(
        1, ge=1, le=MAX_SEEDS, description="rounds run before a decision may stop the race"
    )
    alpha: float = Field(
        0.05, gt=0, lt=1, description="familywise level of each round's drops (Holm)"
    )
    margin: float = Field(
        0.5,
        ge=0,
        le=100,
        description="equivalence margin in points (the objective x 100, as the tables show "
        "it): a best-vs-baseline interval inside +-margin decides 'equivalent'",
    )
    first_seed: Seed = Field(100, description="the race's seeds are first_seed, first_seed+1, ...")

    def seed_pool(self) -> list[int]:
        """Every seed the race may use, in the order it uses them."""
        return [self.first_seed + i for i in range(self.max_seeds)]

    def rounds_possible(self) -> int:
        """How many rounds the seed budget allows."""
        more = max(0, self.max_seeds - self.first_round)
        return 1 + -(-more // self.per_round)


class ConfirmSpec(_Strict):
    """The confirmation stage: after the search, the `top_k` best configurations under the
    sweep's objective, plus the best `baseline` configuration, are trained again at full
    budget (no early stopping) on fresh seeds, each (configuration, seed) one run; the
    sweep's answer comes from these runs. Fixed (`seeds`: every configuration on each) or a
    race (`race`: seeds in rounds, configurations dropped as the evidence comes in)."""

    top_k: int = Field(2, ge=1, le=50, description="configurations confirmed, best first")
    seeds: list[Seed] | None = Field(
        None,
        min_length=2,
        max_length=MAX_SEEDS,
        description="fresh seeds (none of search.seeds); >= 2 for a paired interval; the "
        "fixed scheme, every configuration on each (default [100, 101, 102]; leave it out "
        "with `race`)",
    )
    race: RaceSpec | None = Field(
        None, description="race the candidates on seeds added in rounds instead of fixed seeds"
    )
    _validated_elsewhere = frozenset({"baseline"})  # run-config keys: fsf.sweep._checks

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

    @model_validator(mode="after")
    def _fixed_by_default(self) -> ConfirmSpec:
        if self.seeds is None and self.race is None:
            self.seeds = list(DEFAULT_CONFIRM_SEEDS)
        return self

    retries: int = Field(
        2,
        ge=0,
        le=10,
        description="times a failed confirmation run (one configuration on one seed) is run "
        "again (a dead worker is usually transient); without its baseline the answer has no "
        "comparison",
    )


def confirm_seeds(confirm: ConfirmSpec) -> list[int]:
    """Every seed a confirmation may train on: the fixed seeds, or the race's pool."""
    if confirm.race is not None:
        return confirm.race.seed_pool()
    return list(confirm.seeds or DEFAULT_CONFIRM_SEEDS)


class SweepSpec(_Strict):
    _validated_elsewhere = frozenset({"base"})  # a run config: fsf.sweep._checks
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


LOGGERS = {"mlflow": "mlflow", "wandb": "wandb"}
"""Optional Ray Tune logger callbacks (`loggers:` in a space) -> the package each needs."""
