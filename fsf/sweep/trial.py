"""Inside a trial: what Ray Tune runs for one sampled configuration (every seed of the space,
one after the other), in the trial's own process or as the driver of a Ray Train `TorchTrainer`
whose workers are the DeepSpeed ranks. The objective Optuna receives is computed here
(`_ObjectiveTracker`), at the checkpoint fsf's selection rule picks."""

from __future__ import annotations

import contextlib
import logging
import math
import socket
from pathlib import Path
from typing import Any

from fsf.results import (
    ParquetReporter,
    TrialInfo,
    completed_evaluations,
)
from fsf.results.evaluation import Evaluation
from fsf.results.selection import CheckpointTracker
from fsf.results.storage import location
from fsf.sweep.points import trial_run_config, trial_workers
from fsf.sweep.spec import SweepSpec
from fsf.train.device import check_gpus_visible, run_provenance
from fsf.train.reporter import CompositeReporter, Reporter

__all__: list[str] = []

log = logging.getLogger("fsf.sweep")

#: Tune's result key its loggers use as the x axis (`ray.tune.result.TIMESTEPS_TOTAL`; a
#: string here so that the tracker, which `fsf.sweep.resume` replays without Ray, needs none)
TIMESTEPS_TOTAL = "timesteps_total"

TRIAL_KEY = "fsf_trial"
"""The key of a Tune trial's config that names the trial id of its result rows: the id of
the Tune trial its configuration was first handed to, and the same id when it runs again
after a resume (so a re-run continues the run's fragments; docs/architecture.md)."""


CANDIDATE = "candidate"
"""The key of a confirmation run's config: the index of its candidate. Such a config also
holds `seed` (the run's one seed), `params` (the candidate's parameters) and `TRIAL_KEY`;
a search trial's config holds its sampled parameters and `TRIAL_KEY` only."""


def is_confirm_run(config: dict[str, Any] | None) -> bool:
    """Whether a Tune trial's config is a confirmation run's (else a search trial's)."""
    return CANDIDATE in (config or {})


def record_id(trial: Any) -> str:
    """The trial id of a Tune trial's result rows (Tune's id for a trial without one)."""
    return str((getattr(trial, "config", None) or {}).get(TRIAL_KEY, trial.trial_id))


def split_config(config: dict[str, Any], tune_id: str) -> tuple[str, dict[str, Any]]:
    """(the trial id of the rows, the sampled parameters) of a Tune trial's config."""
    params = {k: v for k, v in config.items() if k != TRIAL_KEY}
    return str(config.get(TRIAL_KEY, tune_id)), params


class _ObjectiveTracker:
    """Turns evaluations into the scalars reported to Tune.

    The objective of a run is its objective metric at its checkpoint so far: the evaluation
    `checkpoint` selects (`fsf.results.selection.CheckpointTracker`), exactly as the
    queries choose it. The reported objective is the mean over the seeds run so far: the finished seeds'
    values plus the current seed's. So the last report of a trial, which Optuna and Tune
    keep, is the value `fsf-sweep best` ranks the configuration by. `{m}_seed` is the current
    seed's value, `{m}_last` the metric at this very step. `progress_step` counts optimizer
    steps over all seeds (ASHA's time attribute, and `timesteps_total`, the x axis of Tune's
    TensorBoard, CSV and JSON logs); `total_steps` is one seed's planned steps.

    Test-split scalars are never reported: what Tune, Optuna and their logs hold cannot
    choose on test data (a user's `ResultGrid.get_best_result` included), and Tune's state,
    saved every second with running statistics of each scalar, stays smaller. The results
    tables have every split."""

    def __init__(
        self,
        metrics: list[str],
        seed_index: int,
        finished: list[dict[str, float]],
        checkpoint: str = "source-dev",
    ):
        self.metrics = metrics
        self.seed_index = seed_index
        self.finished = finished
        self.checkpoint = CheckpointTracker(checkpoint)
        self.at_checkpoint: dict[str, float] = {}

    def scalars(self, ev: Evaluation) -> dict[str, float]:
        out = {k: v for k, v in ev.scalars().items() if not k.startswith("test_")}
        if self.checkpoint.offer(ev):
            self.at_checkpoint = {m: out.get(m, math.nan) for m in self.metrics}
        for m in self.metrics:
            current = self.at_checkpoint.get(m, math.nan)
            values = [f[m] for f in self.finished if m in f] + [current]
            out[f"{m}_last"] = out.get(m, math.nan)
            out[f"{m}_seed"] = current
            out[m] = sum(values) / len(values)
        best = self.checkpoint.best
        out["checkpoint_step"] = best.step if best is not None else -1
        out["progress_step"] = self.seed_index * ev.total_steps + ev.step
        out["total_steps"] = ev.total_steps
        # Tune's loggers take `timesteps_total` as the x axis (TensorBoard's global step)
        # instead of the count of reports: the optimizer step, over all seeds of the trial
        out[TIMESTEPS_TOTAL] = out["progress_step"]
        out["seed_index"] = self.seed_index
        out["is_final"] = ev.is_final
        return out


class _TuneReporter:
    def __init__(self, tracker: _ObjectiveTracker):
        self.tracker = tracker
        self.last: dict[str, float] = {}

    def report(self, evaluation: Evaluation) -> None:
        from ray import tune

        self.last = self.tracker.scalars(evaluation)
        tune.report(self.last)


class _TrainReporter:
    """Reports from every Ray Train worker (Train V2 reports are collective)."""

    def __init__(self, tracker: _ObjectiveTracker):
        self.tracker = tracker

    def report(self, evaluation: Evaluation) -> None:
        import ray.train

        ray.train.report(self.tracker.scalars(evaluation))


def _set_threads(cpus: float) -> None:
    import torch

    torch.set_num_threads(max(1, int(cpus)))


def _node() -> str:
    try:
        import ray

        return f"{socket.gethostname()}/{ray.get_runtime_context().get_node_id()}"
    except Exception:
        return socket.gethostname()


def _trial_info(spec: SweepSpec, config: Any, trial_id: str, params: dict[str, Any]) -> TrialInfo:
    return TrialInfo(
        config,
        sweep=spec.name,
        trial_id=trial_id,
        params=params,
        num_workers=trial_workers(spec, params),
        node=_node(),
        provenance=run_provenance(config),
    )


def _worker_loop(loop_config: dict[str, Any]) -> None:
    """One Ray Train worker = one DeepSpeed rank of a multi-worker trial."""
    import ray.train

    from fsf.train.worker import train

    spec = SweepSpec.model_validate(loop_config["spec"])
    _set_threads(spec.search.resources.cpus)
    config = trial_run_config(
        spec, loop_config["params"], loop_config["seed"], loop_config["trial_id"]
    )
    tracker = _ObjectiveTracker(
        loop_config["metrics"],
        loop_config["seed_index"],
        loop_config["finished"],
        spec.search.checkpoint,
    )
    reporters: list[Reporter] = [_TrainReporter(tracker)]
    writer: ParquetReporter | contextlib.nullcontext[None] = contextlib.nullcontext()
    if ray.train.get_context().get_world_rank() == 0:
        info = _trial_info(spec, config, loop_config["trial_id"], loop_config["params"])
        writer = ParquetReporter(loop_config["results_dir"], info, exit_is_stop=True)
        reporters.insert(0, writer)
    local, target = _artifacts_dir(config, loop_config["sweep_dir"], loop_config["trial_id"])
    with writer:  # rank 0 finishes the trial's rows: completed, stopped by Tune, or failed
        check_gpus_visible(spec.search.resources.gpus)
        train(config, CompositeReporter(*reporters), all_ranks_report=True, artifacts_dir=local)
        _upload_artifacts(local, target)


def _artifacts_dir(config: Any, sweep_dir: str, trial_id: str) -> tuple[Path | None, Any]:
    """Where a trial's prediction files and checkpoint go (`eval.predictions`,
    `checkpoint.save`; none by default): `<sweep>/runs/<trial>/seed-<seed>/`. For a sweep on
    a URI the worker writes to a local temporary folder first (returned with the target)."""
    if not config.keeps_artifacts:
        return None, None
    target = location(sweep_dir) / "runs" / trial_id / f"seed-{config.seed}"
    if isinstance(target, Path):
        return target, None
    import tempfile

    return Path(tempfile.mkdtemp(prefix=f"fsf-{trial_id}-")), target


def _upload_artifacts(local: Path | None, target: Any) -> None:
    """Copy a trial's artifacts written locally to the sweep's storage (a URI), then drop
    the local copy."""
    if local is None or target is None or not local.exists():
        return
    import shutil

    import pyarrow.fs as pafs

    pafs.copy_files(
        str(local),
        target.path,
        source_filesystem=pafs.LocalFileSystem(),
        destination_filesystem=target.fs,
    )
    shutil.rmtree(local, ignore_errors=True)


def _run_distributed(
    spec: SweepSpec, loop_config: dict[str, Any], sweep_dir: str
) -> dict[str, float]:
    import ray.train
    from ray.train.torch import TorchConfig, TorchTrainer
    from ray.tune.integration.ray_train import TuneReportCallback

    res = spec.search.resources
    per_worker = {"CPU": res.cpus, **res.custom}
    if res.gpus:
        per_worker["GPU"] = res.gpus
    trainer = TorchTrainer(
        _worker_loop,
        train_loop_config=loop_config,
        scaling_config=ray.train.ScalingConfig(
            num_workers=trial_workers(spec, loop_config["params"]),
            use_gpu=res.gpus > 0,
            resources_per_worker=per_worker,
        ),
        torch_config=TorchConfig(backend="nccl" if res.gpus else "gloo"),
        run_config=ray.train.RunConfig(
            name=f"{loop_config['trial_id']}-seed{loop_config['seed']}",
            storage_path=str(location(sweep_dir) / "train"),
            callbacks=[TuneReportCallback()],
        ),
    )
    result = trainer.fit()
    return dict(result.metrics or {})


def _trial(
    config: dict[str, Any],
    *,
    spec_data: dict[str, Any],
    sweep_dir: str,
    confirm_data: dict[str, Any] | None = None,
    confirm_dir: str | None = None,
) -> None:
    """A Tune trial: one configuration, every seed of the space, its rows under the trial id
    its config names (`TRIAL_KEY`). A confirmation run's config (`is_confirm_run`) is its
    candidate's parameters on its one seed, trained under the confirmation stage's spec
    (`confirm_data`) into its folder (`confirm_dir`)."""
    if is_confirm_run(config):
        if confirm_data is None or confirm_dir is None:
            raise ValueError("a confirmation run needs the confirmation stage's spec and folder")
        params = {**config["params"], TRIAL_KEY: config[TRIAL_KEY]}
        search = {**confirm_data["search"], "seeds": [config["seed"]]}
        _trial(params, spec_data={**confirm_data, "search": search}, sweep_dir=confirm_dir)
        return
    from ray import tune

    from fsf.train.worker import train

    spec = SweepSpec.model_validate(spec_data)
    trial_id, params = split_config(config, tune.get_context().get_trial_id())
    results_dir = str(location(sweep_dir) / "results")
    metrics = [o.metric for o in spec.search.objective]
    finished: list[dict[str, float]] = []
    for index, seed in enumerate(spec.search.seeds):
        done = completed_evaluations(results_dir, trial_id, seed)
        if done is not None:  # finished before an interruption: never trained (overwritten) again
            tracker = _ObjectiveTracker(metrics, index, finished, spec.search.checkpoint)
            tune_reporter = _TuneReporter(tracker)
            for ev in done:  # what it reported then, in order: the same objective
                tune_reporter.report(ev)
            last = tune_reporter.last
        elif trial_workers(spec, params) > 1:
            loop_config = {
                "spec": spec_data,
                "params": params,
                "seed": seed,
                "seed_index": index,
                "trial_id": trial_id,
                "metrics": metrics,
                "finished": finished,
                "results_dir": results_dir,
                "sweep_dir": sweep_dir,
            }
            last = _run_distributed(spec, loop_config, sweep_dir)
        else:
            _set_threads(spec.search.resources.cpus)
            run_config = trial_run_config(spec, params, seed, trial_id)
            info = _trial_info(spec, run_config, trial_id, params)
            tracker = _ObjectiveTracker(metrics, index, finished, spec.search.checkpoint)
            tune_reporter = _TuneReporter(tracker)
            local, target = _artifacts_dir(run_config, sweep_dir, trial_id)
            # Tune ends a trial from inside `tune.report` (ASHA, max_t) with SystemExit
            with ParquetReporter(results_dir, info, exit_is_stop=True) as writer:
                check_gpus_visible(spec.search.resources.gpus)
                train(run_config, CompositeReporter(writer, tune_reporter), artifacts_dir=local)
                _upload_artifacts(local, target)
            last = tune_reporter.last
        finished.append({m: last.get(f"{m}_seed", math.nan) for m in metrics})
