"""What the sweep driver hands Ray Tune besides the trainable and the search: the logger
callbacks, each trial's resources and folder name, and the fit. The search (`fsf.sweep.tune`) and the
confirmation stage (`fsf.sweep.confirm`) both fit this way; a resumed sweep is a fresh fit
(`fsf.sweep.resume`), so Tune's pickled copies of these are never read back."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from fsf.errors import UsageError
from fsf.results.storage import Location
from fsf.sweep.points import trial_workers
from fsf.sweep.space import missing_logger_packages
from fsf.sweep.spec import SweepSpec
from fsf.sweep.trial import TRIAL_KEY, split_config

__all__: list[str] = []


class _TrialResources:
    """What a trial asks Ray for: its CPUs/GPUs when it trains in its own process; a sliver of
    a CPU when it only drives Ray Train workers, which ask for their own resources. With
    `candidates` (the confirmation stage), a trial's config is `{"candidate": i}`."""

    def __init__(self, spec: SweepSpec, candidates: list[dict[str, Any]] | None = None):
        self.spec = spec
        self.candidates = candidates

    def __call__(self, params: dict[str, Any]):
        from ray.tune import PlacementGroupFactory

        if self.candidates is not None:
            params = self.candidates[params["candidate"]]["params"]
        else:
            params = split_config(params, "")[1]
        res = self.spec.search.resources
        if trial_workers(self.spec, params) > 1:
            return PlacementGroupFactory([dict(res.driver_resources) or {"CPU": 0.01}])
        bundle = {"CPU": res.cpus, **res.custom}
        if res.gpus:
            bundle["GPU"] = res.gpus
        return PlacementGroupFactory([bundle])


class _TrialDirname:
    """Tune's trial folder names: the trial's id and its parameters at full precision (Tune's
    own names round floats to 4 decimals: a learning rate of 4.2e-05 read 0.0000). With
    `candidates`, a confirmation run: its candidate's parameters and seed."""

    MAX_CHARS = 120

    def __init__(self, candidates: list[dict[str, Any]] | None = None):
        self.candidates = candidates

    def __call__(self, trial: Any) -> str:
        config = dict(getattr(trial, "config", None) or {})
        head = f"{getattr(trial, 'trainable_name', 'trial')}_{trial.trial_id}"
        if self.candidates is not None and "candidate" in config:
            params = dict(self.candidates[config["candidate"]].get("params") or {})
            head += f"_seed={config.get('seed')}"
        else:
            params = {k: v for k, v in config.items() if k != TRIAL_KEY}
        text = ",".join(
            f"{k}={format(v, '.6g') if isinstance(v, float) else v}" for k, v in params.items()
        )
        name = f"{head}_{text}" if text else head
        return re.sub(r'[/\\()<>:"|?*\s]', "_", name)[: self.MAX_CHARS]


def _logger_callbacks(spec: SweepSpec, sweep_dir: Location) -> list[Any]:
    """The space's extra Tune loggers (`loggers:`): MLflow (default tracking URI: SQLite in
    `<sweep>/mlflow.db`, as MLflow 3 no longer takes a file store by default; experiment = the
    sweep's name) and W&B (project = the sweep's name); their options are passed through."""
    missing = missing_logger_packages(spec)
    if missing:
        raise UsageError("; ".join(missing))
    out: list[Any] = []
    for name, options in spec.loggers.items():
        if name == "mlflow":
            from ray.air.integrations.mlflow import MLflowLoggerCallback

            kwargs = {
                "tracking_uri": f"sqlite:///{(sweep_dir / 'mlflow.db').resolve()}"
                if isinstance(sweep_dir, Path)
                else None,
                "experiment_name": spec.name,
                **options,
            }
            out.append(MLflowLoggerCallback(**kwargs))
        elif name == "wandb":
            from ray.air.integrations.wandb import WandbLoggerCallback

            if options.get("mode") in ("offline", "disabled"):
                # Ray's callback asks for an API key unless the environment says offline
                os.environ.setdefault("WANDB_MODE", str(options["mode"]))
            out.append(WandbLoggerCallback(**{"project": spec.name, **options}))
    return out


def _fit(tuner: Any, progress: Any) -> Any:
    """`tuner.fit()`; afterwards the progress bar is closed."""
    try:
        return tuner.fit()
    finally:
        progress.close()


def _statuses(grid: Any) -> dict[str, int]:
    """How the trials of a fitted `ResultGrid` ended: {"finished": n, "failed": m}."""
    statuses: dict[str, int] = {}
    for result in grid:
        key = "failed" if result.error is not None else "finished"
        statuses[key] = statuses.get(key, 0) + 1
    return statuses
