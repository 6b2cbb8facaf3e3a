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

This module is the driver. The folder itself (finding it, `sweep.json`, whether it may be
resumed or restarted) is `fsf.sweep.folder`; the callbacks and trial resources handed to Tune
are `fsf.sweep._callbacks`; what runs inside a trial is `fsf.sweep.trial`.
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

# _LiveCallbacks and _TrialResources are also named here by Tune's pickled state of sweeps
# started before they moved to fsf.sweep._callbacks (resume unpickles them from this module).
from fsf.sweep._callbacks import (
    _fit,
    _LiveCallbacks,
    _logger_callbacks,
    _restore,
    _ResumeCheck,
    _statuses,
    _TrialResources,
)
from fsf.sweep._ray import _check_address, _init_ray
from fsf.sweep.folder import (
    TUNE_DIR,
    _restart_stillborn,
    _stillborn,
    _sweep_meta,
    _tune_state_saved,
    _write_text,
    check_trusted,
    check_tune_state,
    sweep_dir_for,
)
from fsf.sweep.searcher import _ResumableOptunaSearch, _sampler, search_algorithm
from fsf.sweep.space import define_by_run, grid_points, missing_logger_packages, with_overrides
from fsf.sweep.spec import SweepSpec
from fsf.sweep.trial import _trial

__all__ = ["SweepOutcome", "check_trusted", "result_grid", "run_sweep", "sweep_dir_for"]

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


def _optuna_storage(spec: SweepSpec, sweep_dir: Location):  # type: ignore[no-untyped-def]
    return open_study_storage(resolve_study_url(spec.storage.optuna, sweep_dir))


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
        search_alg=search_algorithm(searcher, search.max_concurrent, scheduler),
        scheduler=scheduler,
        num_samples=n,
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
    if resume and not restart:
        check_tune_state(tune_path)  # one Tune could not restore: refused, nothing changed
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
    if restoring:
        # Tune restores its own pickled searcher, scheduler and callbacks; building new ones
        # here would touch the study (OptunaSearch enqueues its points when constructed)
        tuner = _restore(
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
    check = _ResumeCheck(results_dir)
    live = [check, callback] if restoring else [callback]
    grid = _fit(tuner, live, callback)
    if check.summary:
        notes.insert(0, check.summary)
    recorded: dict[str, str] = {}
    if results_dir.exists():
        recorded, more = finalise_statuses(results_dir, callback.errors)
        notes += more
    statuses = _statuses(grid)
    errors = {t: recorded.get(t, reason) for t, reason in callback.errors.items()}
    notes += [
        f"trial {t} was run again after: {'; '.join(why)}" for t, why in callback.retried.items()
    ]
    unrecorded = sorted(t for t in callback.errors if t not in recorded)
    outcome = SweepOutcome(sweep_dir, results_dir, len(grid), statuses, errors, unrecorded, notes)
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
