"""Run a sweep with Ray Tune: OptunaSearch over the space, ASHA, DeepSpeed-backed trials.

A trial is one sampled configuration trained with every seed of the space, one after the
other. With `resources.workers == 1` the fsf worker runs inside the trial's own process (a
one-rank DeepSpeed engine on a free port); with more, the trial is a driver that starts a Ray
Train `TorchTrainer` whose workers are the DeepSpeed ranks (rank 0 reports to Tune and
writes the rows). Each (trial, seed) writes one Parquet fragment under `<sweep>/results/`.

The sweep folder `<storage>/<name>/` holds `space.yaml`, `sweep.json`, `results/`,
`optuna.db` (the Optuna study, unless `storage.optuna` points elsewhere) and `tune/` (Ray
Tune's experiment state, used by `--resume`). `<storage>` is a folder or a URI (`s3://`,
`gs://`, `file://`, ...; see `fsf.results.storage`): on a multi-node cluster it must be storage
every node reaches, since trials write their fragments from whichever node runs them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import secrets
import socket
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from ray.tune import Callback
from ray.tune.result import TRAINING_ITERATION
from ray.tune.search.optuna import OptunaSearch

from fsf.errors import FsfError, UsageError, os_reason
from fsf.results import (
    ParquetReporter,
    TrialInfo,
    atomic_write_table,
    completed_evaluations,
    fragment_path,
    read_fragment,
)
from fsf.results.reader import COMPACTED_DIR, list_fragments
from fsf.results.storage import Location, location, write_bytes_atomic
from fsf.results.writer import check_writable
from fsf.sweep.space import (
    SweepSpec,
    define_by_run,
    grid_points,
    trial_run_config,
    trial_workers,
    with_overrides,
)
from fsf.sweep.study import (
    display_url,
    open_study_storage,
    require_study_storage,
    resolve_study_url,
)
from fsf.train.reporter import CompositeReporter, Evaluation, Reporter

__all__ = ["SweepOutcome", "check_trusted", "result_grid", "run_sweep", "sweep_dir_for"]

log = logging.getLogger("fsf.sweep")
TUNE_DIR = "tune"


@dataclass
class SweepOutcome:
    """Where a sweep's results are, and how its trials ended.

    `errors`: why each failed trial failed (the reason recorded in its results when there is
    one). `unrecorded`: failed trials whose failure is not in the results (the fragment could
    not be written: a read-only folder, a full disk), which `fsf-sweep show` cannot list.
    `notes`: what else the driver wants said (a restart, an unwritable status update)."""

    sweep_dir: Location
    results_dir: Location
    num_trials: int
    statuses: dict[str, int]
    errors: dict[str, str]
    unrecorded: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    confirm: Any = None  # the confirmation stage's ConfirmOutcome, when the space has one

    @property
    def all_failed(self) -> bool:
        return self.num_trials > 0 and not self.statuses.get("finished")


def sweep_dir_for(spec: SweepSpec, name: str | None, storage_path: str | None) -> Location:
    """The sweep's folder: `<storage path>/<name>`, a local path or a URI."""
    root = storage_path or spec.storage.path
    try:
        base = location(root)
    except ValueError as exc:  # a URI that cannot be opened (unreachable, no driver)
        raise FsfError(f"storage {root}: {exc}") from None
    if isinstance(base, Path):
        return (base / (name or spec.name)).resolve()
    return base / (name or spec.name)


# --------------------------------------------------------------------- inside a trial


def checkpoint_score(ev: Evaluation, checkpoint: str) -> float:
    """The dev score by which a run's checkpoint is chosen (`search.checkpoint`), as
    `fsf.results.selection` chooses it from the results."""
    if checkpoint == "all-dev":
        return ev.all_mean("dev")
    if checkpoint == "target-dev":
        return ev.target_mean("dev")
    return ev.source("dev")


class _ObjectiveTracker:
    """Turns evaluations into the scalars reported to Tune.

    The objective of a run is its objective metric at its checkpoint so far: the evaluation
    with the best `checkpoint` dev score (ties: the earlier), exactly as the queries choose
    it. The reported objective is the mean over the seeds run so far: the finished seeds'
    values plus the current seed's. So the last report of a trial, which Optuna and Tune
    keep, is the value `fsf-sweep best` ranks the configuration by. `{m}_seed` is the current
    seed's value, `{m}_last` the metric at this very step. `progress_step` counts optimizer
    steps over all seeds (ASHA's time attribute)."""

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
        self.checkpoint = checkpoint
        self.best: tuple[float, int, dict[str, float]] | None = None

    def scalars(self, ev: Evaluation) -> dict[str, float]:
        out = ev.scalars()
        key = checkpoint_score(ev, self.checkpoint)
        if not math.isnan(key) and (self.best is None or key > self.best[0]):
            self.best = (key, ev.step, {m: out.get(m, math.nan) for m in self.metrics})
        at_ckpt = self.best[2] if self.best is not None else {}
        for m in self.metrics:
            current = at_ckpt.get(m, math.nan)
            values = [f[m] for f in self.finished if m in f] + [current]
            out[f"{m}_last"] = out.get(m, math.nan)
            out[f"{m}_seed"] = current
            out[m] = sum(values) / len(values)
        out["checkpoint_step"] = self.best[1] if self.best is not None else -1
        out["progress_step"] = self.seed_index * ev.total_steps + ev.step
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
    from fsf.tasks import task_class

    return TrialInfo(
        config,
        sweep=spec.name,
        trial_id=trial_id,
        params=params,
        num_workers=trial_workers(spec, params),
        node=_node(),
        policy_iv=task_class(config.task.name).policy_iv_default,
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


def _trial(params: dict[str, Any], *, spec_data: dict[str, Any], sweep_dir: str) -> None:
    """A Tune trial: one configuration, every seed of the space."""
    from ray import tune

    from fsf.train.worker import train

    spec = SweepSpec.model_validate(spec_data)
    trial_id = tune.get_context().get_trial_id()
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
            config = trial_run_config(spec, params, seed, trial_id)
            info = _trial_info(spec, config, trial_id, params)
            tracker = _ObjectiveTracker(metrics, index, finished, spec.search.checkpoint)
            tune_reporter = _TuneReporter(tracker)
            local, target = _artifacts_dir(config, sweep_dir, trial_id)
            # Tune ends a trial from inside `tune.report` (ASHA, max_t) with SystemExit
            with ParquetReporter(results_dir, info, exit_is_stop=True) as writer:
                train(config, CompositeReporter(writer, tune_reporter), artifacts_dir=local)
                _upload_artifacts(local, target)
            last = tune_reporter.last
        finished.append({m: last.get(f"{m}_seed", math.nan) for m in metrics})


# --------------------------------------------------------------------- the driver


class _ResumableOptunaSearch(OptunaSearch):
    """OptunaSearch whose study (in the RDB) and Tune's saved state agree after a crash.

    Tune saves its state (trials and this searcher) every second; the Optuna study is written
    at once. A crash between the two leaves two kinds of disagreement, both handled here:

    - a trial Optuna already finished is rerun by Tune: reports to it are ignored (Optuna
      keeps its first result; the rerun rewrites the trial's fragment);
    - a trial Optuna handed out after the last save (unknown to Tune, whose fragments leave
      the results on resume) is an orphan: on restore, if it was an enqueued point (a grid
      point), its point is enqueued again, so no point is lost; if still RUNNING it is
      marked FAIL (user attr `fsf_orphaned`). One that already finished keeps its state
      (Optuna cannot change a finished trial): the study's user attr `fsf_orphans` lists
      every orphan's number.

    Each Optuna trial records its Tune trial id (user attr `tune_trial_id`), which is also
    the `trial_id` of its result rows.
    """

    #: with `skip_repeats`, how many repeats in a row a suggestion may draw before the space
    #: counts as exhausted (every configuration the sampler proposes was tried): then the
    #: searcher reports FINISHED and the sweep ends early instead of training repeats
    MAX_REDRAWS = 32

    def __init__(self, *args: Any, skip_repeats: bool = False, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.skip_repeats = skip_repeats
        self.exhausted = False
        # draws that repeat a configuration still training, by the twin's Optuna number;
        # they are told the twin's result when it finishes
        self._parked: dict[int, list[Any]] = {}
        self._waiting = False  # the last suggestion drew only repeats, some still training

    def _setup_study(self, mode: Any) -> None:
        super()._setup_study(mode)
        metrics = self._metric if isinstance(self._metric, list) else [self._metric]
        if metrics and None not in metrics and not self._ot_study.metric_names:
            import warnings

            import optuna

            with warnings.catch_warnings():  # experimental since optuna 3.2, stable in use
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                self._ot_study.set_metric_names(list(metrics))

    def suggest(self, trial_id: str) -> dict | str | None:
        from ray.tune.search import Searcher

        if self.exhausted:
            return Searcher.FINISHED
        if self._waiting:
            return None  # the last draws all repeated configurations in training: wait
        for _ in range(self.MAX_REDRAWS + 1 if self.skip_repeats else 1):
            params = super().suggest(trial_id)
            verdict = self._answer_repeat(trial_id) if self.skip_repeats else "new"
            if verdict == "new":
                break
            if verdict == "parked":
                self._waiting = True  # the twin is training: ask again once it has finished
                return None
        else:
            self.exhausted = True
            log.warning(
                "the searcher drew only configurations already trained (%d in a row): the "
                "space is exhausted, so the sweep stops here instead of training repeats",
                self.MAX_REDRAWS + 1,
            )
            return Searcher.FINISHED
        ot_trial = self._ot_trials[trial_id]
        if ot_trial.user_attrs.get("tune_trial_id") != trial_id:
            ot_trial.set_user_attr("tune_trial_id", trial_id)
        return params

    def _answer_repeat(self, trial_id: str) -> str:
        """`new` if the trial just sampled is a new configuration (or an enqueued point, which
        always runs); `answered` if it repeats a finished one, whose result it is told (user
        attr `fsf_repeat_of`); `parked` if it repeats one still training (user attr
        `fsf_waiting_for`; told that one's result when it finishes). Either way a repeat is
        never trained twice and its Tune trial gets another draw."""
        from optuna.trial import TrialState

        ot_trial = self._ot_trials[trial_id]
        if "fixed_params" in self._ot_study._storage.get_trial_system_attrs(ot_trial._trial_id):
            return "new"  # an enqueued point (grid, points_to_evaluate) is always run
        states = (TrialState.COMPLETE, TrialState.RUNNING)
        for other in self._ot_study.get_trials(deepcopy=False, states=states):
            if other.number == ot_trial.number or other.params != ot_trial.params:
                continue
            if other.state == TrialState.COMPLETE:
                ot_trial.set_user_attr("fsf_repeat_of", other.number)
                self._ot_study.tell(ot_trial, other.values)
                del self._ot_trials[trial_id]
                return "answered"
            if "tune_trial_id" in other.user_attrs:  # handed to Tune: training now
                ot_trial.set_user_attr("fsf_waiting_for", other.number)
                self._parked.setdefault(other.number, []).append(ot_trial)
                del self._ot_trials[trial_id]
                return "parked"
        return "new"

    def _release(self, trial_id: str) -> None:
        """Tell the draws parked on a finished trial its result (or FAIL if it has none)."""
        from optuna.trial import TrialState

        stored = self._stored(trial_id)
        if stored is None or stored.number not in self._parked:
            return
        self._waiting = False
        for parked in self._parked.pop(stored.number):
            if stored.state == TrialState.COMPLETE:
                parked.set_user_attr("fsf_repeat_of", stored.number)
                self._ot_study.tell(parked, stored.values)
            else:
                self._ot_study.tell(parked, state=TrialState.FAIL)

    def _stored(self, trial_id: str) -> Any:
        """The Optuna trial of `trial_id` as stored now (None if there is none)."""
        ot_trial = self._ot_trials.get(trial_id)
        return None if ot_trial is None else self._ot_study._storage.get_trial(ot_trial._trial_id)

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        stored = self._stored(trial_id)
        if stored is None or stored.state.is_finished():
            return
        if result.get(TRAINING_ITERATION) in stored.intermediate_values:
            return  # a retried trial reporting its steps again: Optuna keeps the first value
        super().on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: Any = None, error: bool = False) -> None:
        stored = self._stored(trial_id)
        if stored is not None and stored.state.is_finished():
            self._completed_trials.add(trial_id)
        else:
            super().on_trial_complete(trial_id, result, error)
        self._release(trial_id)

    def restore(self, checkpoint_path: str) -> None:
        super().restore(checkpoint_path)
        self.orphans = reconcile_orphans(self._ot_study, self._ot_trials.values())


ORPHANS_ATTR = "fsf_orphans"
"""Study user attr: numbers of the trials orphaned by interruptions (their rows were moved
to `results/.orphaned/`, their points run again)."""


def reconcile_orphans(study: Any, known: Any) -> list[int]:
    """Deal with the study's trials that Tune's saved state does not know (`known`: the
    Optuna trials of the restored searcher): handed out to Tune (or still RUNNING) after its
    last save. Their fixed points (grid points) are enqueued again, RUNNING ones are marked
    FAIL; each is handled once over any number of resumes (study user attr `fsf_orphans`).
    Returns the numbers of the new orphans."""
    from optuna.trial import TrialState

    known_ids = {t._trial_id for t in known}
    storage = study._storage
    handled = set(study.user_attrs.get(ORPHANS_ATTR, []))
    orphans = []
    for trial in study.get_trials(deepcopy=False):
        if trial._trial_id in known_ids or trial.number in handled:
            continue
        if trial.state == TrialState.RUNNING and "fsf_waiting_for" in trial.user_attrs:
            storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)  # a parked repeat
            continue
        if trial.state == TrialState.RUNNING:
            storage.set_trial_user_attr(
                trial._trial_id, "fsf_orphaned", "handed out just before the sweep was interrupted"
            )
            storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
        elif "tune_trial_id" not in trial.user_attrs:
            continue  # WAITING, or a repeat answered from the study
        fixed = trial.system_attrs.get("fixed_params")
        if fixed is not None:
            study.enqueue_trial(fixed)
        orphans.append(trial.number)
    if orphans:
        study.set_user_attr(ORPHANS_ATTR, sorted(handled | set(orphans)))
        log.warning("Optuna trials %s were orphaned by the interruption; rerunning", orphans)
    return orphans


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


ORPHANED_DIR = ".orphaned"
"""Folder (under `results/`, hidden from readers) for fragments of orphaned trials."""


class _OrphanFragments(Callback):
    """On resume, moves the fragments of trials Tune's saved state does not know (they ran
    after its last save and will not be continued) to `results/.orphaned/`, before any new
    trial starts: their configurations run again as new trials, so their rows would be
    duplicates."""

    def __init__(self, results_dir: Path):
        self.results_dir = results_dir
        self.done = False
        self.moved: list[str] = []

    def on_step_begin(self, iteration: int, trials: list, **info: Any) -> None:
        if self.done:
            return
        self.done = True
        known = {fragment_path(self.results_dir, t.trial_id, 0).parent.name for t in trials}
        for folder in sorted(self.results_dir.glob("trial=*")):
            if folder.name in known or folder.name == COMPACTED_DIR:
                continue
            target = self.results_dir / ORPHANED_DIR / folder.name
            target.parent.mkdir(parents=True, exist_ok=True)
            folder.replace(target)
            self.moved.append(folder.name)
        if self.moved:
            log.warning("moved fragments of orphaned trials to %s: %s", ORPHANED_DIR, self.moved)


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


def _sampler(spec: SweepSpec):  # type: ignore[no-untyped-def]
    import optuna

    s = spec.search
    seed = s.searcher_seed
    if s.searcher == "tpe":
        return optuna.samplers.TPESampler(
            seed=seed, n_startup_trials=min(8, max(2, s.num_trials // 4))
        )
    if s.searcher in ("random", "grid"):
        return optuna.samplers.RandomSampler(seed=seed)
    if s.searcher == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    return optuna.samplers.NSGAIISampler(seed=seed)


def _optuna_storage(spec: SweepSpec, sweep_dir: Location):  # type: ignore[no-untyped-def]
    return open_study_storage(resolve_study_url(spec.storage.optuna, sweep_dir))


def _check_address(address: str | None) -> None:
    if address and address.startswith("ray://"):
        raise UsageError(
            f"--address {address}: Ray Client is not supported for sweeps (Tune's driver and "
            "fsf's callbacks must run in this process, on the cluster); run fsf-sweep on a "
            "cluster node with --address auto (or HEAD:6379), or submit it as a job: "
            "ray job submit --address http://HEAD:8265 -- fsf-sweep ... (cluster/README.md)"
        )


LOOPBACK = "127.0.0.1"
"""Where the private local Ray instance listens: Ray binds its GCS, raylet, object manager
and workers to loopback only when the node's address is literally 127.0.0.1."""


@contextlib.contextmanager
def _loopback_node() -> Iterator[None]:
    """Let `ray.init(_node_ip_address="127.0.0.1")` keep that address. Ray replaces a
    loopback node address by the machine's outward one (for clusters), and then listens on
    every interface; a private instance must not (tests/sweep/test_ray_security.py checks
    the listening sockets of a real instance)."""
    from ray._private import services

    resolve = services.resolve_ip_for_localhost
    services.resolve_ip_for_localhost = lambda host: host  # type: ignore[assignment]
    try:
        yield
    finally:
        services.resolve_ip_for_localhost = resolve  # type: ignore[assignment]


def _private_token() -> None:
    """Keep Ray's token authentication on for the private instance without writing a token
    file: unless the user chose an auth mode or a token, a fresh random token goes into this
    process's environment (readable by this user only), which Ray's processes inherit."""
    if "RAY_AUTH_MODE" in os.environ:
        return
    if not (os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH")):
        os.environ["RAY_AUTH_TOKEN"] = secrets.token_hex(32)
    # Ray turns token mode on by default when RAY_AUTH_MODE is unset, and says so once
    logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(
        logging.ERROR
    )


def _init_ray(address: str | None, num_cpus: int | None) -> None:
    import optuna
    import ray

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    _check_address(address)
    private = address is None and not os.environ.get("RAY_ADDRESS")
    if private:
        _private_token()
    os.environ.setdefault("RAY_TRAIN_V2_ENABLED", "1")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    # Tune's own loggers stay on: each trial folder under <sweep>/tune/ gets result.json,
    # progress.csv and TensorBoard events (tensorboardX), for ExperimentAnalysis, Tuner.restore
    # (...).get_results() and `tensorboard --logdir <sweep>/tune` (docs/results.md)
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "1")  # finished trials survive a crash
    if ray.is_initialized():
        return
    kwargs: dict[str, Any] = dict(
        include_dashboard=False,
        logging_level=logging.ERROR,
        log_to_driver=False,
        configure_logging=True,
    )
    if address:
        ray.init(address=address, **kwargs)
    elif private:
        with _loopback_node():
            ray.init(num_cpus=num_cpus, _node_ip_address=LOOPBACK, **kwargs)
    else:  # RAY_ADDRESS names a running cluster: join it
        ray.init(num_cpus=num_cpus, **kwargs)


def _logger_callbacks(spec: SweepSpec, sweep_dir: Location) -> list[Any]:
    """The space's extra Tune loggers (`loggers:`): MLflow (default tracking URI: SQLite in
    `<sweep>/mlflow.db`, as MLflow 3 no longer takes a file store by default; experiment = the
    sweep's name) and W&B (project = the sweep's name); their options are passed through."""
    from fsf.sweep.space import missing_logger_packages

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

            out.append(WandbLoggerCallback(**{"project": spec.name, **options}))
    return out


def _finalise_statuses(
    results_dir: Location, errors: dict[str, str]
) -> tuple[dict[str, str], list[str]]:
    """Fragments still marked `running` belong to trials that were stopped (ASHA) or died
    without cleaning up (a killed worker): mark them stopped, or failed with the reason.

    Returns the failure reason recorded in the results for each trial that has a failed
    fragment, and notes on fragments whose status could not be updated."""
    import pyarrow as pa

    recorded: dict[str, str] = {}
    notes: list[str] = []
    for path in sorted(results_dir.glob("trial=*/seed-*.parquet")):
        try:
            table = read_fragment(path)
        except Exception:  # an unreadable fragment is reported by the readers
            continue
        if table.num_rows == 0:
            continue
        trial_id = table.column("trial_id")[0].as_py()
        statuses = set(table.column("status").to_pylist())
        if "failed" in statuses:
            reasons = [r for r in table.column("failure_reason").to_pylist() if r]
            recorded.setdefault(trial_id, reasons[0] if reasons else "failed")
            continue
        if statuses != {"running"}:
            continue
        status, reason = ("failed", errors[trial_id]) if trial_id in errors else ("stopped", None)
        n = table.num_rows
        for column, value in (("status", status), ("failure_reason", reason)):
            i = table.schema.get_field_index(column)
            table = table.set_column(i, table.schema.field(i), pa.array([value] * n, pa.string()))
        try:
            atomic_write_table(table, path)
        except OSError as exc:
            notes.append(f"could not mark {path} as {status}: {os_reason(exc)}")
            continue
        if status == "failed" and reason is not None:
            recorded[trial_id] = reason
    return recorded, notes


def _tune_config(
    spec: SweepSpec, sweep_dir: Location, points: list[dict[str, Any]] | None, n: int
) -> Any:
    """The searcher (Optuna, its study in the RDB) and scheduler of a new sweep."""
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    search = spec.search
    metrics = [o.metric for o in search.objective]
    modes = [o.mode for o in search.objective]
    single = len(metrics) == 1
    searcher = _ResumableOptunaSearch(
        space=define_by_run(spec),
        metric=metrics[0] if single else metrics,
        mode=modes[0] if single else modes,
        sampler=_sampler(spec),
        storage=_optuna_storage(spec, sweep_dir),
        study_name=spec.name,
        points_to_evaluate=points,
        skip_repeats=search.skip_repeats,
    )
    scheduler: Any = FIFOScheduler()
    if search.scheduler.type == "asha":
        base = spec.base_config()
        scheduler = ASHAScheduler(
            time_attr="progress_step",
            metric=metrics[0],
            mode=modes[0],
            grace_period=search.scheduler.grace_period,
            max_t=search.scheduler.max_t or (base.optim.max_steps or 1) * len(search.seeds),
            reduction_factor=search.scheduler.reduction_factor,
        )
    return tune.TuneConfig(
        search_alg=searcher,
        scheduler=scheduler,
        num_samples=n,
        max_concurrent_trials=search.max_concurrent,
        reuse_actors=True,  # saves the ~3 s a fresh trial process spends importing the stack
    )


def run_sweep(
    spec: SweepSpec,
    *,
    name: str | None = None,
    storage_path: str | None = None,
    address: str | None = None,
    num_trials: int | None = None,
    max_concurrent: int | None = None,
    resume: bool = False,
    progress: bool = True,
    num_cpus: int | None = None,
    confirm: bool = True,
    trust: bool = False,
) -> SweepOutcome:
    """Run (or resume) the sweep, then its confirmation stage when the space has one (and
    `confirm`); returns where its results are.

    `name`, `storage_path`, `num_trials` and `max_concurrent` are validated like the same
    keys of a space file (a ConfigError naming the flag). Resuming loads Ray Tune's pickled
    state from the folder: a local folder must be owned by this user and not writable by
    others (`trust=True` skips that check; see `check_trusted`)."""
    from ray import tune

    from fsf.sweep.progress import ProgressCallback

    _check_address(address)
    root = storage_path or spec.storage.path
    checked = with_overrides(
        spec,
        name=name,
        storage_path=storage_path,
        num_trials=num_trials,
        max_concurrent=max_concurrent,
    )
    spec = checked.model_copy(update={"storage": spec.storage})  # space.yaml keeps its own
    search = spec.search
    require_study_storage(spec.storage.optuna, root)  # before the store is contacted
    sweep_dir = sweep_dir_for(spec, spec.name, root)
    tune_path = sweep_dir / TUNE_DIR
    notes: list[str] = []
    restart = False
    try:
        if resume:
            if not (sweep_dir / "space.yaml").is_file():
                raise UsageError(
                    f"nothing to resume: {sweep_dir} holds no sweep (run it without --resume)"
                )
            restart = not _tune_state_saved(tune_path)
            if not restart and not trust:  # restoring unpickles tune/: check who wrote it
                check_trusted(sweep_dir)
        elif sweep_dir.exists() and any(sweep_dir.iterdir()):
            if not _stillborn(sweep_dir):
                raise UsageError(
                    f"{sweep_dir} already holds a sweep; pass --resume to continue it, or "
                    "--name NEW"
                )
            restart = True  # what a driver killed in its first seconds left: start over
    except OSError as exc:
        raise FsfError(f"cannot read the sweep folder {sweep_dir}: {os_reason(exc)}") from exc
    study_url = resolve_study_url(spec.storage.optuna, sweep_dir)  # fails before any write
    from fsf.sweep.space import missing_logger_packages

    if not resume and missing_logger_packages(spec):
        raise UsageError("; ".join(missing_logger_packages(spec)))
    results_dir = sweep_dir / "results"
    spec_data = spec.model_dump(mode="json")
    try:
        sweep_dir.mkdir(parents=True, exist_ok=True)
        meta = {**_sweep_meta(spec), "optuna_storage": display_url(study_url)}
        if not resume:
            _write_text(sweep_dir / "space.yaml", yaml.safe_dump(spec_data, sort_keys=False))
        if not resume or (restart and not (sweep_dir / "sweep.json").is_file()):
            _write_text(sweep_dir / "sweep.json", json.dumps(meta, indent=2))
    except OSError as exc:
        raise FsfError(f"cannot write the sweep folder {sweep_dir}: {os_reason(exc)}") from exc
    check_writable(results_dir)  # a read-only or full disk fails now, not in every trial
    if restart:
        notes += _restart_stillborn(spec, sweep_dir, study_url)

    log.info("sweep folder %s; starting Ray (%s)", sweep_dir, address or "a local instance")
    _init_ray(address, num_cpus)
    points = grid_points(spec) if search.searcher == "grid" else None
    n = len(points) if points is not None else search.num_trials
    trainable = tune.with_resources(
        tune.with_parameters(_trial, spec_data=spec_data, sweep_dir=str(sweep_dir)),
        _TrialResources(spec),
    )
    callback = ProgressCallback(total=n, objective=search.objective[0], enabled=progress)
    restoring = resume and not restart
    _LIVE_CALLBACKS[:] = [_OrphanFragments(results_dir), callback] if restoring else [callback]
    if restoring:
        # Tune restores its own pickled searcher, scheduler and callbacks; building new ones
        # here would touch the study (OptunaSearch enqueues its points when constructed)
        tuner = tune.Tuner.restore(
            str(tune_path),
            trainable,
            resume_unfinished=True,
            resume_errored=False,
            restart_errored=False,
        )
    else:
        tuner = tune.Tuner(
            trainable,
            tune_config=_tune_config(spec, sweep_dir, points, n),
            run_config=tune.RunConfig(
                name=TUNE_DIR,
                storage_path=str(sweep_dir),
                verbose=0,
                failure_config=tune.FailureConfig(max_failures=search.max_failures),
                callbacks=[_LiveCallbacks(), *_logger_callbacks(spec, sweep_dir)],
            ),
        )
    try:
        grid = tuner.fit()
    finally:
        callback.close()
        _LIVE_CALLBACKS.clear()
    recorded: dict[str, str] = {}
    if results_dir.exists():
        recorded, more = _finalise_statuses(results_dir, callback.errors)
        notes += more
    statuses: dict[str, int] = {}
    for result in grid:
        key = "failed" if result.error is not None else "finished"
        statuses[key] = statuses.get(key, 0) + 1
    errors = {t: recorded.get(t, reason) for t, reason in callback.errors.items()}
    unrecorded = sorted(t for t in callback.errors if t not in recorded)
    outcome = SweepOutcome(sweep_dir, results_dir, len(grid), statuses, errors, unrecorded, notes)
    if confirm and spec.confirm is not None and spec.probe is None and statuses.get("finished"):
        from fsf.sweep.confirm import run_confirm

        outcome.confirm = run_confirm(
            spec, sweep_dir, address=address, progress=progress, num_cpus=num_cpus
        )
    return outcome


def _tune_state_saved(tune_path: Location) -> bool:
    """Whether Ray Tune saved its experiment state (what `Tuner.restore` continues from):
    `tuner.pkl` and at least one `experiment_state-*.json`. A driver killed in its first
    seconds leaves neither, or `tuner.pkl` alone."""
    saved = tune_path.glob("experiment_state-*.json")
    return (tune_path / "tuner.pkl").is_file() and any(True for _ in saved)


_SKELETON = ("space.yaml", "sweep.json", TUNE_DIR, "results", "optuna.db")


def _stillborn(sweep_dir: Location) -> bool:
    """Whether `sweep_dir` holds only what a driver killed before Ray Tune saved any state
    leaves (space.yaml, sweep.json, a study, Tune's unsaved folder), and no result fragment:
    a fresh run may then take the folder over."""
    if _tune_state_saved(sweep_dir / TUNE_DIR):
        return False
    for entry in sweep_dir.iterdir():
        if not (entry.name.startswith(_SKELETON) or entry.name.startswith(".")):
            return False
    results = sweep_dir / "results"
    return not results.exists() or not list_fragments(results)


def _restart_stillborn(spec: SweepSpec, sweep_dir: Location, study_url: str) -> list[str]:
    """Make a sweep whose driver died before Ray Tune saved any state startable afresh, in
    place: its Optuna study (trials handed out, points enqueued, none finished) is deleted,
    fragments of trials that had begun move to `results/.orphaned/`, Tune's partial folder
    goes. Refused when the study holds a finished trial (then Tune's state was lost, not
    never written)."""
    import shutil

    import optuna
    from optuna.trial import TrialState

    storage = open_study_storage(study_url)
    try:
        study = optuna.load_study(study_name=spec.name, storage=storage)
    except KeyError:
        study = None
    if study is not None:
        done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
        if done:
            raise FsfError(
                f"{sweep_dir}: Ray Tune's saved state is missing, but the Optuna study has "
                f"{len(done)} finished trial(s): the folder was damaged, so it cannot be "
                "resumed; start a new sweep (--name NEW) and query this one as it is"
            )
        optuna.delete_study(study_name=spec.name, storage=storage)
    moved = _OrphanFragments(sweep_dir / "results")
    moved.on_step_begin(0, [])
    tune_path = sweep_dir / TUNE_DIR
    if isinstance(tune_path, Path):
        shutil.rmtree(tune_path, ignore_errors=True)
    else:
        for _, file in tune_path.files():
            file.unlink(missing_ok=True)
    note = (
        f"{sweep_dir} was interrupted before Ray Tune saved any state (in its first seconds): "
        "starting it afresh"
    )
    if moved.moved:
        note += f"; fragments of trials that had begun moved to results/{ORPHANED_DIR}/"
    log.warning(note)
    return [note]


def check_trusted(sweep_dir: Location) -> None:
    """Refuse to resume a local sweep folder that another user could have written.

    Resuming unpickles Ray Tune's state from `<sweep>/tune/` (its searcher, scheduler and
    trials; `<sweep>/confirm/tune/` for the confirmation stage), and unpickling runs code: a folder someone else can write is code someone else
    can run as you. So the sweep folder and everything under `tune/` must be owned by this
    user, be no symlinks, and not be writable by others (nor by a group other than this
    user's own). A sweep on an object store (`s3://...`) cannot be checked: whoever may
    write its prefix may run code on the driver that resumes it. Raises `UsageError`."""
    if not isinstance(sweep_dir, Path):
        return
    uid, gid = os.getuid(), os.getgid()
    paths = [sweep_dir, sweep_dir / "sweep.json", sweep_dir / "space.yaml"]
    # Tune's state of the search, and of the confirmation stage (`confirm/tune/`)
    for tune_path in (sweep_dir / TUNE_DIR, sweep_dir / "confirm" / TUNE_DIR):
        if tune_path.exists() or tune_path.is_symlink():
            paths += [tune_path.parent, tune_path]
            if tune_path.is_dir() and not tune_path.is_symlink():
                paths += sorted(tune_path.rglob("*"))
    for path in paths:
        try:
            st = path.lstat()
        except FileNotFoundError:
            continue
        why = None
        if stat.S_ISLNK(st.st_mode):
            why = "is a symbolic link"
        elif st.st_uid != uid:
            why = f"is owned by uid {st.st_uid}, not by you (uid {uid})"
        elif st.st_mode & stat.S_IWOTH:
            why = "is writable by every user"
        elif st.st_mode & stat.S_IWGRP and st.st_gid != gid:
            why = f"is writable by group {st.st_gid}"
        if why:
            raise UsageError(
                f"refusing to resume {sweep_dir}: {path} {why}. Resuming loads Ray Tune's "
                "pickled state from the folder, which runs code: resume only folders you "
                "wrote (or pass --trust if you know who wrote this one)"
            )
    meta = sweep_dir / "sweep.json"
    try:
        ok = isinstance(json.loads(meta.read_text()), dict)
    except (OSError, ValueError):
        ok = False
    if not ok:
        raise UsageError(f"{sweep_dir} is not a sweep folder written by fsf (no valid sweep.json)")


def _sweep_meta(spec: SweepSpec) -> dict[str, Any]:
    return {
        "name": spec.name,
        "stage": "search",
        "objective": [o.model_dump() for o in spec.search.objective],
        "checkpoint": spec.search.checkpoint,
        "baseline": spec.confirm.baseline if spec.confirm else {"policy.name": "df"},
        "confirm": spec.confirm.model_dump() if spec.confirm else None,
        "searcher": spec.search.searcher,
        "scheduler": spec.search.scheduler.type,
        "seeds": spec.search.seeds,
        "parameters": list(spec.search.parameters),
        "study_name": spec.name,
    }


def _write_text(path: Location, text: str) -> None:
    write_bytes_atomic(path, text.encode())


def result_grid(sweep_dir: str | Path) -> Any:
    """Ray Tune's `ResultGrid` of a sweep, read from `<sweep>/tune` (the state and logs Tune
    kept): `result_grid(DIR).get_dataframe()` has one row per trial with the scalars it last
    reported. `Tuner.restore` wants the trainable the sweep ran, which is fsf's `_trial`."""
    from ray import tune

    path = location(str(sweep_dir)) / TUNE_DIR
    if not path.exists():
        raise UsageError(f"{sweep_dir} holds no Ray Tune state ({path} does not exist)")
    return tune.Tuner.restore(str(path), trainable=_trial).get_results()
