"""What the sweep driver hands Ray Tune besides the trainable: the callbacks, each trial's
resources, and the fit that routes Tune's callback hooks to the running call.

Tune pickles its run config (callbacks included) and the trainable's resources with the
experiment, and `Tuner.restore` uses the unpickled copies; so the callbacks that hold state
(the progress bar, the resume check) are not handed to Tune but listed in `_LIVE_CALLBACKS`
for the duration of `_fit`, and Tune gets a stateless `_LiveCallbacks` proxy that forwards to
them. The search (`fsf.sweep.tune`) and the confirmation stage (`fsf.sweep.confirm`) both fit
this way.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from ray.tune import Callback

from fsf.errors import FsfError, UsageError
from fsf.results.fragments import ORPHANED_DIR, set_aside_orphans
from fsf.results.storage import Location
from fsf.sweep.searcher import _RESTORED, _Search
from fsf.sweep.space import missing_logger_packages, trial_workers
from fsf.sweep.spec import SweepSpec

__all__: list[str] = []

log = logging.getLogger("fsf.sweep")

_LIVE_CALLBACKS: list[Any] = []


class _LiveCallbacks(Callback):
    """Forwards Tune's callback hooks to the callbacks of the running `run_sweep` call.

    Tune pickles the run config (callbacks included) with the experiment and, on
    `Tuner.restore`, uses the unpickled copies. This proxy holds no state, so a resumed
    sweep reports to the live view and error log of the process that resumed it."""

    def on_step_begin(self, iteration: int, trials: list, **info: Any) -> None:
        for cb in _LIVE_CALLBACKS:
            cb.on_step_begin(iteration, trials, **info)

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        for cb in _LIVE_CALLBACKS:
            cb.on_trial_start(iteration, trials, trial, **info)

    def on_trial_result(
        self, iteration: int, trials: list, trial: Any, result: dict, **info: Any
    ) -> None:
        for cb in _LIVE_CALLBACKS:
            cb.on_trial_result(iteration, trials, trial, result, **info)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        for cb in _LIVE_CALLBACKS:
            cb.on_trial_complete(iteration, trials, trial, **info)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        for cb in _LIVE_CALLBACKS:
            cb.on_trial_error(iteration, trials, trial, **info)


class _ResumeCheck(Callback):
    """On resume, before any new trial starts (Tune's first step), makes what was saved agree
    with the trials Tune restored: the search state Tune restored (`fsf.sweep.searcher._Search`,
    whose files may come from another save than the trials') is reconciled with them, and the
    fragments of trials Tune does not know (they ran after its last save and will not be
    continued; their configurations run again as new trials, so their rows would be
    duplicates) are set aside (`fsf.results.fragments.set_aside_orphans`)."""

    def __init__(self, results_dir: Path):
        self.results_dir = results_dir
        self.done = False
        self.moved: list[str] = []
        self.summary: str | None = None  # what the resume restored, said when the sweep ends

    def on_step_begin(self, iteration: int, trials: list, **info: Any) -> None:
        if self.done:
            return
        self.done = True
        if not trials:  # Tune failed to restore its state and started afresh: stop here
            raise FsfError(
                "Ray Tune could not restore the sweep's saved state (its error is above), so "
                "the sweep was not resumed; nothing was changed. Its results can be queried "
                "as they are; to go on, start a new sweep (--name NEW)"
            )
        scored = None
        for search in _RESTORED:
            search.reconcile(trials)
            if isinstance(search, _Search):  # (not the bare searcher of an older sweep)
                scored = search.asha_scored()
        _RESTORED.clear()
        self.moved = set_aside_orphans(self.results_dir, {t.trial_id for t in trials})
        if self.moved:
            log.warning("moved fragments of orphaned trials to %s: %s", ORPHANED_DIR, self.moved)
        finished = sum(1 for t in trials if t.is_finished())
        parts = [
            f"resumed from Ray Tune's saved state: {len(trials)} trials ({finished} finished, "
            f"{len(trials) - finished} to run again)"
        ]
        if scored is not None:
            parts.append(f"ASHA's rungs restored with the scores of {scored} trials")
        if self.moved:
            parts.append(
                f"fragments of {len(self.moved)} trial(s) Tune had not saved moved to "
                f"results/{ORPHANED_DIR} (their configurations run again)"
            )
        self.summary = "; ".join(parts)


class _TrialResources:
    """What a trial asks Ray for: its CPUs/GPUs when it trains in its own process; a sliver of
    a CPU when it only drives Ray Train workers, which ask for their own resources. With
    `candidates` (the confirmation stage), a trial's config is `{"candidate": i}`."""

    def __init__(self, spec: SweepSpec, candidates: list[dict[str, Any]] | None = None):
        self.spec = spec
        self.candidates = candidates

    def __call__(self, params: dict[str, Any]):  # type: ignore[no-untyped-def]
        from ray.tune import PlacementGroupFactory

        if self.candidates is not None:
            params = self.candidates[params["candidate"]]["params"]
        res = self.spec.search.resources
        if trial_workers(self.spec, params) > 1:
            return PlacementGroupFactory([dict(res.driver_resources) or {"CPU": 0.01}])
        bundle = {"CPU": res.cpus, **res.custom}
        if res.gpus:
            bundle["GPU"] = res.gpus
        return PlacementGroupFactory([bundle])


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


def _restore(path: str, trainable: Any, **options: Any) -> Any:
    """`tune.Tuner.restore(path, trainable, **options)`; the search it unpickles is the one
    the next `_fit` reconciles (`_ResumeCheck`)."""
    from ray import tune

    _RESTORED.clear()
    return tune.Tuner.restore(path, trainable, **options)


def _fit(tuner: Any, live: list[Any], progress: Any) -> Any:
    """`tuner.fit()` with Tune's callback hooks forwarded to `live` (through `_LiveCallbacks`)
    while it runs; afterwards the progress bar is closed and nothing is forwarded any more."""
    _LIVE_CALLBACKS[:] = live
    try:
        return tuner.fit()
    finally:
        progress.close()
        _LIVE_CALLBACKS.clear()
        _RESTORED.clear()


def _statuses(grid: Any) -> dict[str, int]:
    """How the trials of a fitted `ResultGrid` ended: {"finished": n, "failed": m}."""
    statuses: dict[str, int] = {}
    for result in grid:
        key = "failed" if result.error is not None else "finished"
        statuses[key] = statuses.get(key, 0) + 1
    return statuses
