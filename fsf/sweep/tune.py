"""Run a sweep with Ray Tune: OptunaSearch over the space, ASHA, DeepSpeed-backed trials.

A trial is one sampled configuration trained with every seed of the space, one after the
other. With `resources.workers == 1` the fsf worker runs inside the trial's own process (a
one-rank DeepSpeed engine on a free port); with more, the trial is a driver that starts a Ray
Train `TorchTrainer` whose workers are the DeepSpeed ranks (rank 0 reports to Tune and
writes the rows). Each (trial, seed) writes one Parquet fragment under `<sweep>/results/`.

The sweep folder `<storage>/<name>/` holds `space.yaml`, `sweep.json`, `results/`,
`optuna.db` (the Optuna study, unless `storage.optuna` points elsewhere) and `tune/` (Ray
Tune's logs and experiment state, never read back: `--resume` continues from the study and
the results, `fsf.sweep.resume`). `<storage>` is a folder or a URI (`s3://`,
`gs://`, `file://`, ...; see `fsf.results.storage`): on a multi-node cluster it must be storage
every node reaches, since trials write their fragments from whichever node runs them.

This module is the driver. The folder itself (finding it, `sweep.json`, whether a fresh run
may take it over) is `fsf.sweep.folder`; what a resume reads from the study and the results
is `fsf.sweep.resume`; the callbacks and trial resources handed to Tune are
`fsf.sweep._callbacks`; what runs inside a trial is `fsf.sweep.trial`.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from fsf.errors import FsfError, UsageError, os_reason
from fsf.results.fragments import finalise_statuses
from fsf.results.storage import Location, location
from fsf.results.study import (
    display_url,
    open_study_storage,
    require_study_storage,
    resolve_study_url,
)
from fsf.results.writer import check_writable
from fsf.sweep._callbacks import (
    _fit,
    _logger_callbacks,
    _statuses,
    _TrialDirname,
    _TrialResources,
)
from fsf.sweep._ray import _check_address, _init_ray
from fsf.sweep.folder import (
    TUNE_DIR,
    _restart_stillborn,
    _stillborn,
    _sweep_meta,
    _write_text,
    other_stack_note,
    sweep_dir_for,
)
from fsf.sweep.resume import SearchResume, handed_out, rebuild_rungs, resume_search
from fsf.sweep.searcher import _StudySearch, enqueue_points, open_study
from fsf.sweep.space import define_by_run, grid_points, missing_logger_packages, with_overrides
from fsf.sweep.spec import SweepSpec
from fsf.sweep.trial import _trial

__all__ = ["SweepOutcome", "result_grid", "run_sweep"]

log = logging.getLogger("fsf.sweep")


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


# --------------------------------------------------------------------- the driver


def _scheduler(spec: SweepSpec) -> Any:
    """ASHA (time: optimizer steps over all seeds, `progress_step`) or Tune's FIFO."""
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    search = spec.search
    if search.scheduler.type != "asha":
        return FIFOScheduler()
    base = spec.base_config()
    return ASHAScheduler(
        time_attr="progress_step",
        metric=search.objective[0].metric,
        mode=search.objective[0].mode,
        grace_period=search.scheduler.grace_period,
        max_t=search.scheduler.max_t or (base.optim.max_steps or 1) * len(search.seeds),
        reduction_factor=search.scheduler.reduction_factor,
    )


def _search_for(spec: SweepSpec, study: Any) -> Any:
    """What Tune is given as `search_alg`: the study's searcher, behind a concurrency limit
    (pass `max_concurrent_trials=None` to Tune)."""
    from ray.tune.search import ConcurrencyLimiter

    search = spec.search
    searcher: Any = _StudySearch(
        study,
        define_by_run(spec),
        [(o.metric, o.mode) for o in search.objective],
        # grid points always run: a grid draws nothing but its points
        skip_repeats=search.skip_repeats and search.searcher != "grid",
        num_seeds=len(search.seeds),
    )
    if search.max_concurrent:
        searcher = ConcurrencyLimiter(searcher, max_concurrent=search.max_concurrent)
    return searcher


def _check_folder(sweep_dir: Location, resume: bool) -> bool:
    """Check the folder for a fresh run (refused over a real sweep) or a resume (it must
    hold one). Returns whether a fresh run takes over what a driver killed in its first
    seconds left."""
    restart = False
    try:
        if resume:
            if not (sweep_dir / "space.yaml").is_file():
                raise UsageError(
                    f"nothing to resume: {sweep_dir} holds no sweep (run it without --resume)"
                )
        elif sweep_dir.exists() and any(sweep_dir.iterdir()):
            if not _stillborn(sweep_dir):
                raise UsageError(
                    f"{sweep_dir} already holds a sweep; pass --resume to continue it, or "
                    "--name NEW"
                )
            restart = True  # what a driver killed in its first seconds left: start over
    except OSError as exc:
        raise FsfError(f"cannot read the sweep folder {sweep_dir}: {os_reason(exc)}") from exc
    return restart


def _write_folder(spec: SweepSpec, sweep_dir: Location, study_url: str, resume: bool) -> None:
    """space.yaml (a fresh run) and sweep.json (a fresh run, or a resume that lacks it)."""
    try:
        sweep_dir.mkdir(parents=True, exist_ok=True)
        if not resume:
            data = spec.model_dump(mode="json")
            _write_text(sweep_dir / "space.yaml", yaml.safe_dump(data, sort_keys=False))
        if not resume or not (sweep_dir / "sweep.json").is_file():
            meta = {**_sweep_meta(spec), "optuna_storage": display_url(study_url)}
            _write_text(sweep_dir / "sweep.json", json.dumps(meta, indent=2))
    except OSError as exc:
        raise FsfError(f"cannot write the sweep folder {sweep_dir}: {os_reason(exc)}") from exc


def _open_search(
    spec: SweepSpec, sweep_dir: Location, study_url: str, resume: bool, restart: bool
) -> tuple[Any, SearchResume | None, list[str]]:
    """The study the fit asks, with the grid's points enqueued for a fresh sweep, or made
    ready to continue a resumed one (`resume_search`); and notes for the user. A resume of
    a study that handed out no trial (killed in its first seconds) starts afresh."""
    import optuna

    notes: list[str] = []
    storage = open_study_storage(study_url)
    if resume and not restart:
        try:
            existing = optuna.load_study(study_name=spec.name, storage=storage)
        except KeyError:
            existing = None
        restart = existing is None or not handed_out(existing)
        if not restart:
            assert existing is not None
            study = open_study(spec, storage, seed_offset=len(existing.trials))
            if note := other_stack_note(sweep_dir):
                notes.append(note)
            return study, resume_search(study, sweep_dir / "results"), notes
    if restart:
        notes += _restart_stillborn(spec, sweep_dir, study_url)
    study = open_study(spec, storage)
    if spec.search.searcher == "grid":
        enqueue_points(study, grid_points(spec))
    return study, None, notes


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
) -> SweepOutcome:
    """Run (or resume) the sweep, then its confirmation stage when the space has one (and
    `confirm`); returns where its results are.

    `name`, `storage_path`, `num_trials` and `max_concurrent` are validated like the same
    keys of a space file (a ConfigError naming the flag). A resume continues from the
    sweep's Optuna study and result fragments (`fsf.sweep.resume`); nothing of Ray Tune's
    saved state is read."""
    from ray import tune

    from fsf.sweep.progress import ProgressCallback

    _check_address(address, num_cpus)
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
    restart = _check_folder(sweep_dir, resume)
    study_url = resolve_study_url(spec.storage.optuna, sweep_dir)  # fails before any write
    if not resume and missing_logger_packages(spec):
        raise UsageError("; ".join(missing_logger_packages(spec)))
    results_dir = sweep_dir / "results"
    _write_folder(spec, sweep_dir, study_url, resume)
    check_writable(results_dir)  # a read-only or full disk fails now, not in every trial
    study, resumed, notes = _open_search(spec, sweep_dir, study_url, resume, restart)

    n = len(grid_points(spec)) if search.searcher == "grid" else search.num_trials
    ended = resumed.ended if resumed is not None else {}
    scheduler = _scheduler(spec)
    if resumed is not None and search.scheduler.type == "asha":
        resumed.scored = rebuild_rungs(scheduler, spec, results_dir, sorted(ended))
    if resumed is not None:
        notes.insert(0, resumed.note())
    failed_before = sum(1 for s in ended.values() if s == "failed")
    callback = ProgressCallback(
        total=n,
        objective=search.objective[0],
        enabled=progress,
        done=len(ended),
        failed=failed_before,
        seeds=len(search.seeds),
    )
    statuses = {"finished": len(ended) - failed_before, "failed": failed_before}
    num_run = 0
    if n > len(ended):
        log.info("sweep folder %s; starting Ray (%s)", sweep_dir, address or "a local instance")
        _init_ray(address, num_cpus)
        trainable = tune.with_resources(
            tune.with_parameters(
                _trial, spec_data=spec.model_dump(mode="json"), sweep_dir=str(sweep_dir)
            ),
            _TrialResources(spec),
        )
        tuner = tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(
                search_alg=_search_for(spec, study),
                scheduler=scheduler,
                num_samples=n - len(ended),
                reuse_actors=True,  # saves the ~3 s a fresh trial process spends importing
                trial_dirname_creator=_TrialDirname(),
            ),
            run_config=tune.RunConfig(
                name=TUNE_DIR,
                storage_path=str(sweep_dir),
                verbose=0,
                failure_config=tune.FailureConfig(max_failures=search.max_failures),
                callbacks=[callback, *_logger_callbacks(spec, sweep_dir)],
            ),
        )
        grid = _fit(tuner, callback)
        num_run = len(grid)
        for key, count in _statuses(grid).items():
            statuses[key] = statuses.get(key, 0) + count
    else:
        callback.close()
    statuses = {k: v for k, v in statuses.items() if v}
    recorded: dict[str, str] = {}
    if results_dir.exists():
        recorded, more = finalise_statuses(results_dir, callback.errors)
        notes += more
    errors = {t: recorded.get(t, reason) for t, reason in callback.errors.items()}
    notes += [
        f"trial {t} was run again after: {'; '.join(why)}" for t, why in callback.retried.items()
    ]
    unrecorded = sorted(t for t in callback.errors if t not in recorded)
    outcome = SweepOutcome(
        sweep_dir, results_dir, len(ended) + num_run, statuses, errors, unrecorded, notes
    )
    if confirm and spec.confirm is not None and spec.probe is None and statuses.get("finished"):
        from fsf.sweep.confirm import run_confirm

        outcome.confirm = run_confirm(
            spec, sweep_dir, address=address, progress=progress, num_cpus=num_cpus
        )
    return outcome


def result_grid(sweep_dir: str | Path) -> Any:
    """Ray Tune's `ResultGrid` of a sweep, read from `<sweep>/tune` (the state and logs Tune
    kept): `result_grid(DIR).get_dataframe()` has one row per trial with the scalars it last
    reported. `Tuner.restore` wants the trainable the sweep ran, which is fsf's `_trial`."""
    from ray import tune

    path = location(str(sweep_dir)) / TUNE_DIR
    if not path.exists():
        raise UsageError(f"{sweep_dir} holds no Ray Tune state ({path} does not exist)")
    return tune.Tuner.restore(str(path), trainable=_trial).get_results()
