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

import json
import logging
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from ray.tune import Callback

from fsf.errors import FsfError, UsageError, os_reason
from fsf.results.fragments import ORPHANED_DIR, finalise_statuses, set_aside_orphans
from fsf.results.reader import list_fragments
from fsf.results.storage import Location, location, write_bytes_atomic
from fsf.results.study import (
    display_url,
    open_study_storage,
    require_study_storage,
    resolve_study_url,
)
from fsf.results.writer import check_writable
from fsf.sweep._ray import _check_address, _init_ray
from fsf.sweep.searcher import _ResumableOptunaSearch, _sampler
from fsf.sweep.space import (
    SweepSpec,
    define_by_run,
    grid_points,
    trial_workers,
    with_overrides,
)
from fsf.sweep.trial import _trial

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


# --------------------------------------------------------------------- the driver


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


class _OrphanFragments(Callback):
    """On resume, before any new trial starts, sets aside the fragments of trials Tune's
    saved state does not know (they ran after its last save and will not be continued):
    their configurations run again as new trials, so their rows would be duplicates
    (`fsf.results.fragments.set_aside_orphans`)."""

    def __init__(self, results_dir: Path):
        self.results_dir = results_dir
        self.done = False
        self.moved: list[str] = []

    def on_step_begin(self, iteration: int, trials: list, **info: Any) -> None:
        if self.done:
            return
        self.done = True
        self.moved = set_aside_orphans(self.results_dir, {t.trial_id for t in trials})
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


def _optuna_storage(spec: SweepSpec, sweep_dir: Location):  # type: ignore[no-untyped-def]
    return open_study_storage(resolve_study_url(spec.storage.optuna, sweep_dir))


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

            if options.get("mode") in ("offline", "disabled"):
                # Ray's callback asks for an API key unless the environment says offline
                os.environ.setdefault("WANDB_MODE", str(options["mode"]))
            out.append(WandbLoggerCallback(**{"project": spec.name, **options}))
    return out


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
        recorded, more = finalise_statuses(results_dir, callback.errors)
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
    moved = set_aside_orphans(sweep_dir / "results", set())
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
    if moved:
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
