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
from fsf.sweep.trial import TRIAL_KEY, is_confirm_run, split_config

__all__: list[str] = []


class _TrialResources:
    """What a trial asks Ray for: its CPUs/GPUs when it trains in its own process; a sliver of
    a CPU when it only drives Ray Train workers, which ask for their own resources. A
    confirmation run (`is_confirm_run`) asks for its candidate's (`params` of its config)."""

    def __init__(self, spec: SweepSpec):
        self.spec = spec

    def __call__(self, config: dict[str, Any]):
        from ray.tune import PlacementGroupFactory

        params = dict(config["params"]) if is_confirm_run(config) else split_config(config, "")[1]
        res = self.spec.search.resources
        if trial_workers(self.spec, params) > 1:
            return PlacementGroupFactory([dict(res.driver_resources) or {"CPU": 0.01}])
        bundle = {"CPU": res.cpus, **res.custom}
        if res.gpus:
            bundle["GPU"] = res.gpus
        return PlacementGroupFactory([bundle])


class _TrialDirname:
    """Tune's trial folder names: the trial's id and its parameters at full precision (Tune's
    own names round floats to 4 decimals: a learning rate of 4.2e-05 read 0.0000); a
    confirmation run's, `confirm` and its seed, then its candidate's parameters."""

    MAX_CHARS = 120

    def __call__(self, trial: Any) -> str:
        config = dict(getattr(trial, "config", None) or {})
        head = f"{getattr(trial, 'trainable_name', 'trial')}_{trial.trial_id}"
        if is_confirm_run(config):
            params = dict(config.get("params") or {})
            head += f"_confirm_seed={config.get('seed')}"
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
