"""The sweep folder: where it is, what it records, and whether it may be resumed.

`<storage>/<name>/` holds `space.yaml`, `sweep.json`, `results/`, `optuna.db` and `tune/`
(Ray Tune's experiment state; `TUNE_DIR`). Here: finding the folder (`sweep_dir_for`),
the search stage's `sweep.json`, telling a folder Tune saved state in from one a driver killed
in its first seconds left behind (and starting such a one afresh), and refusing to resume a
folder another user could have written (`check_trusted`). Nothing here imports Ray; the
driver that runs a sweep in the folder is `fsf.sweep.tune`.
"""

from __future__ import annotations

import json
import logging
import os
import stat
from pathlib import Path
from typing import Any

from fsf.errors import FsfError, UsageError, os_reason
from fsf.provenance import stack_versions
from fsf.results.fragments import ORPHANED_DIR, set_aside_orphans
from fsf.results.reader import list_fragments
from fsf.results.storage import Location, location, write_bytes_atomic
from fsf.results.study import open_study_storage
from fsf.sweep.spec import SweepSpec

__all__ = ["TUNE_DIR", "check_trusted", "check_tune_state", "other_stack_note", "sweep_dir_for"]

log = logging.getLogger("fsf.sweep")
#: Ray Tune's experiment state under a sweep folder (and under `confirm/`).
TUNE_DIR = "tune"


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


def _tune_state_saved(tune_path: Location) -> bool:
    """Whether Ray Tune saved its experiment state (what `Tuner.restore` continues from):
    `tuner.pkl` and at least one `experiment_state-*.json`. A driver killed in its first
    seconds leaves neither, or `tuner.pkl` alone."""
    saved = tune_path.glob("experiment_state-*.json")
    return (tune_path / "tuner.pkl").is_file() and any(True for _ in saved)


#: Tune's saved search state: a search (fsf's `_Search`), or the grid of a confirmation
#: stage started before fsf gave it a searcher of its own
_SEARCH_STATES = ("search_gen_state-*.json", "basic-variant-state-*.json")


def check_tune_state(tune_path: Location) -> None:
    """Refuse to resume from Ray Tune saved state that Tune could not restore: the newest
    `experiment_state-*.json` (the one Tune reads) must parse and list its trials, and the
    search's state must have been saved too. A driver killed while Tune wrote or uploaded
    that file leaves it cut short, and Tune, failing to restore, would log an error and
    start the search afresh over a folder of finished trials; without the search's state it
    would create no new trial and end the sweep short. Raises `FsfError` (exit 1) naming the
    file; nothing is changed."""
    newest = max(tune_path.glob("experiment_state-*.json"), key=lambda p: p.name, default=None)
    if newest is None:
        return
    try:
        trials = json.loads(newest.read_bytes())["trial_data"]
        problem = None if trials else "it lists no trial"
    except OSError as exc:
        problem = f"unreadable: {os_reason(exc)}"
    except (ValueError, KeyError, TypeError) as exc:
        problem = f"cut short or damaged ({type(exc).__name__}: {exc})"
    if problem is None and not any(
        True for pattern in _SEARCH_STATES for _ in tune_path.glob(pattern)
    ):  # saved after the trials: a kill in between leaves trials without a search
        newest, problem = tune_path / _SEARCH_STATES[0], "missing"
    if problem is not None:
        sweep_dir = tune_path.parent
        raise FsfError(
            f"{newest}: Ray Tune's saved state is {problem}, so the sweep cannot be resumed "
            "(the driver was killed while Tune saved it); its results stay as they are and "
            f"can be queried (fsf-sweep best {sweep_dir}); to go on, start a new sweep "
            "(--name NEW)"
        )


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


def other_stack_note(sweep_dir: Location) -> str | None:
    """A note when the sweep in `sweep_dir` was started with another Ray, Optuna or Python
    than this driver's (sweep.json's `provenance.driver`). Resuming across the supported Rays
    works both ways (2.45 <-> 2.60, checked by scripts/smoke.py --resume-with); the runs then
    differ in what they ran with, which `fsf show` lists."""
    try:
        meta = json.loads((sweep_dir / "sweep.json").read_text())
    except (OSError, ValueError):
        return None
    then = ((meta.get("provenance") or {}) if isinstance(meta, dict) else {}).get("driver")
    if not isinstance(then, dict):
        return None
    now = stack_versions()
    moved = [
        f"{k} {then.get(k)} -> {now[k]}"
        for k in ("ray", "optuna", "python")
        if then.get(k) != now[k]
    ]
    if not moved:
        return None
    return (
        f"this sweep was started with another stack ({', '.join(moved)}); the runs made "
        "before and after this resume differ in what they ran with (`fsf show` lists them)"
    )


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
        "provenance": {"driver": stack_versions()},
    }


def _write_text(path: Location, text: str) -> None:
    write_bytes_atomic(path, text.encode())
