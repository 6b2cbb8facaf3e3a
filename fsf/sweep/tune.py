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

This module is the driver: `run_sweep` is a sequence of named steps (the command line's
values, the folder, the search, a resume's state, the trials, the outcome, the confirmation
stage). The folder itself (finding and checking it, `space.yaml` and `sweep.json`, whether a
fresh run may take it over) is `fsf.sweep.folder`; the search handed to Tune is
`fsf.sweep.searcher`; what a resume reads from the study and the results is
`fsf.sweep.resume`; the callbacks and trial resources handed to Tune are
`fsf.sweep._callbacks`; what runs inside a trial is `fsf.sweep.trial`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fsf.errors import UsageError
from fsf.results.fragments import finalise_statuses
from fsf.results.storage import Location, location
from fsf.results.study import (
    open_study_storage,
    require_study_storage,
    resolve_study_url,
)
from fsf.results.writer import check_writable
from fsf.sweep._callbacks import _logger_callbacks
from fsf.sweep.address import check_address
from fsf.sweep.folder import (
    TUNE_DIR,
    check_folder,
    other_stack_note,
    restart_stillborn,
    sweep_dir_for,
    write_folder,
)
from fsf.sweep.points import grid_points
from fsf.sweep.resume import SearchResume, handed_out, rebuild_rungs, resume_search
from fsf.sweep.searcher import enqueue_points, open_study, study_search
from fsf.sweep.space import missing_logger_packages, with_overrides
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
        notes += restart_stillborn(spec, sweep_dir, study_url)
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
    check_address(address, num_cpus)
    root = storage_path or spec.storage.path
    spec = _with_flags(spec, name, storage_path, num_trials, max_concurrent)
    sweep_dir, study_url, restart = _prepare_folder(spec, root, resume)
    study, resumed, notes = _open_search(spec, sweep_dir, study_url, resume, restart)
    scheduler = _scheduler(spec)
    ended = _resume_state(spec, resumed, scheduler, sweep_dir, notes)
    callback = _progress(spec, ended, progress)
    confirming = confirm and spec.confirm is not None and spec.probe is None
    statuses, num_run, staged = _run_trials(
        spec, sweep_dir, study, scheduler, callback, ended, address, num_cpus, confirming, progress
    )
    outcome = _outcome(sweep_dir, ended, num_run, statuses, callback, notes)
    if staged is not None:  # the confirmation ran in the search's fit
        outcome.confirm = staged.outcome()
    elif confirming and statuses.get("finished"):
        from fsf.sweep.confirm import run_confirm

        outcome.confirm = run_confirm(
            spec, sweep_dir, address=address, progress=progress, num_cpus=num_cpus
        )
    return outcome


def _with_flags(
    spec: SweepSpec,
    name: str | None,
    storage_path: str | None,
    num_trials: int | None,
    max_concurrent: int | None,
) -> SweepSpec:
    """The space with the command line's values, each validated as the same key of a space
    file; `storage` stays the space's own, so that space.yaml records what the file said
    and not where this run happened to write."""
    checked = with_overrides(
        spec,
        name=name,
        storage_path=storage_path,
        num_trials=num_trials,
        max_concurrent=max_concurrent,
    )
    return checked.model_copy(update={"storage": spec.storage})


def _prepare_folder(spec: SweepSpec, root: str, resume: bool) -> tuple[Location, str, bool]:
    """(sweep folder, study URL, whether a fresh run takes over a stillborn folder), after
    writing space.yaml and sweep.json. Everything that can be refused is refused before
    anything is written: the study storage, the folder (a real sweep without --resume,
    nothing to resume), the study URL and the loggers' packages; then a results folder that
    cannot be written fails now, not in every trial."""
    require_study_storage(spec.storage.optuna, root)  # before the store is contacted
    sweep_dir = sweep_dir_for(spec, spec.name, root)
    restart = check_folder(sweep_dir, resume)
    study_url = resolve_study_url(spec.storage.optuna, sweep_dir)  # fails before any write
    if not resume and missing_logger_packages(spec):
        raise UsageError("; ".join(missing_logger_packages(spec)))
    write_folder(spec, sweep_dir, study_url, resume)
    check_writable(sweep_dir / "results")
    return sweep_dir, study_url, restart


def _num_trials(spec: SweepSpec) -> int:
    """The trials the sweep runs in all: every grid point, else `search.num_trials`."""
    search = spec.search
    return len(grid_points(spec)) if search.searcher == "grid" else search.num_trials


def _resume_state(
    spec: SweepSpec,
    resumed: SearchResume | None,
    scheduler: Any,
    sweep_dir: Location,
    notes: list[str],
) -> dict[str, str]:
    """The trials a resumed sweep already ended (trial id -> status; none for a fresh one).
    ASHA's rungs are rebuilt from their fragments first, so that the trials still to run are
    judged against them, and the resume's summary leads the notes."""
    if resumed is None:
        return {}
    if spec.search.scheduler.type == "asha":
        resumed.scored = rebuild_rungs(
            scheduler, spec, sweep_dir / "results", sorted(resumed.ended)
        )
    notes.insert(0, resumed.note())
    return resumed.ended


def _progress(spec: SweepSpec, ended: dict[str, str], enabled: bool) -> Any:
    """The progress bar and the record of each trial's errors and retries, counting the
    trials a resume found ended as done already."""
    from fsf.sweep.progress import ProgressCallback

    failed = sum(1 for s in ended.values() if s == "failed")
    return ProgressCallback(
        total=_num_trials(spec),
        objective=spec.search.objective[0],
        enabled=enabled,
        done=len(ended),
        failed=failed,
        seeds=len(spec.search.seeds),
    )


def _run_trials(
    spec: SweepSpec,
    sweep_dir: Location,
    study: Any,
    scheduler: Any,
    callback: Any,
    ended: dict[str, str],
    address: str | None,
    num_cpus: int | None,
    confirming: bool,
    progress: bool,
) -> tuple[dict[str, int], int, Any]:
    """(trials by how they ended, trials run now, the confirmation when it ran in the same
    fit): the trials not yet ended run in one `Tuner.fit` (`fsf.sweep.stages`), counted
    with those a resume found ended; when `confirming`, the confirmation's runs follow in
    that fit once the search has ended with a finished trial. Ray starts only when a trial
    is left to run; otherwise the progress bar is closed and nothing starts."""
    failed = sum(1 for s in ended.values() if s == "failed")
    statuses = {"finished": len(ended) - failed, "failed": failed}
    n = _num_trials(spec)
    if n <= len(ended):
        callback.close()
        return {k: v for k, v in statuses.items() if v}, 0, None
    from fsf.sweep.confirm import Confirmation, _stage_spec, confirm_spec
    from fsf.sweep.stages import SearchRecord, fit_stages, search_statuses

    log.info("sweep folder %s; starting Ray (%s)", sweep_dir, address or "a local instance")
    confirm = confirm_spec(spec) if confirming else None
    staged: Confirmation | None = None

    def settle() -> None:
        """The search has ended: its bar closed, its fragments' statuses settled."""
        callback.close()
        if (sweep_dir / "results").exists():
            finalise_statuses(sweep_dir / "results", callback.errors)

    def confirmation(record: SearchRecord) -> Confirmation | None:
        """The confirmation, when the search has a finished trial (now or before)."""
        nonlocal staged
        if confirm is None or not (statuses["finished"] + record.finished):
            return None
        staged = Confirmation(spec, sweep_dir, confirm, progress=progress)
        return None if staged.finished else staged

    grid = fit_stages(
        spec,
        sweep_dir,
        sweep_dir,
        search=study_search(spec, study, limit=False),
        num_search=n - len(ended),
        scheduler=scheduler,
        search_callbacks=[callback, *_logger_callbacks(spec, sweep_dir)],
        make_confirmation=confirmation,
        confirm_spec=_stage_spec(spec, confirm) if confirm is not None else None,
        settle=settle,
        address=address,
        num_cpus=num_cpus,
    )
    num_run = 0
    for key, count in search_statuses(grid).items():
        statuses[key] = statuses.get(key, 0) + count
        num_run += count
    return {k: v for k, v in statuses.items() if v}, num_run, staged


def _outcome(
    sweep_dir: Location,
    ended: dict[str, str],
    num_run: int,
    statuses: dict[str, int],
    callback: Any,
    notes: list[str],
) -> SweepOutcome:
    """The sweep's outcome, after each failed trial's status is settled in its fragments
    (`finalise_statuses`): why each failed (the recorded reason where there is one), which
    failures no fragment records, and which trials were run again and why."""
    results_dir = sweep_dir / "results"
    recorded: dict[str, str] = {}
    if results_dir.exists():
        recorded, more = finalise_statuses(results_dir, callback.errors)
        notes += more
    errors = {t: recorded.get(t, reason) for t, reason in callback.errors.items()}
    notes += [
        f"trial {t} was run again after: {'; '.join(why)}" for t, why in callback.retried.items()
    ]
    unrecorded = sorted(t for t in callback.errors if t not in recorded)
    return SweepOutcome(
        sweep_dir, results_dir, len(ended) + num_run, statuses, errors, unrecorded, notes
    )


def result_grid(sweep_dir: str | Path) -> Any:
    """Ray Tune's `ResultGrid` of a sweep, read from `<sweep>/tune` (the state and logs Tune
    kept): `result_grid(DIR).get_dataframe()` has one row per trial with the scalars it last
    reported. `Tuner.restore` wants the trainable the sweep ran, which is fsf's `_trial`."""
    from ray import tune

    path = location(str(sweep_dir)) / TUNE_DIR
    if not path.exists():
        raise UsageError(f"{sweep_dir} holds no Ray Tune state ({path} does not exist)")
    return tune.Tuner.restore(str(path), trainable=_trial).get_results()
