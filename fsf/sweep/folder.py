"""The sweep folder: where it is, what it records, and whether a fresh run may take it over.

`<storage>/<name>/` holds `space.yaml`, `sweep.json`, `results/`, `optuna.db` and `tune/`
(Ray Tune's logs and experiment state, `TUNE_DIR`, which fsf writes through Tune and never
reads). Here: finding the folder (`sweep_dir_for`), checking it before a fresh run or a
resume (`check_folder`), writing its `space.yaml` and the search stage's `sweep.json`
(`write_folder`), and telling a real sweep from what a driver killed in its first seconds
left behind (and starting such a one afresh, `restart_stillborn`). Nothing here imports Ray; the driver that runs a sweep in the
folder is `fsf.sweep.tune`, and what a resume reads is `fsf.sweep.resume`.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import yaml

from fsf.errors import FsfError, UsageError, os_reason
from fsf.provenance import stack_versions
from fsf.results.fragments import ORPHANED_DIR, set_aside_orphans
from fsf.results.reader import list_fragments
from fsf.results.storage import Location, location, write_bytes_atomic
from fsf.results.study import display_url, open_study_storage
from fsf.sweep.spec import SweepSpec

__all__ = [
    "TUNE_DIR",
    "check_folder",
    "other_stack_note",
    "restart_stillborn",
    "sweep_dir_for",
    "write_folder",
]

log = logging.getLogger("fsf.sweep")
#: Ray Tune's folder under a sweep folder (and under `confirm/`): written, never read by fsf.
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
    """Whether Ray Tune saved its experiment state: `tuner.pkl` and at least one
    `experiment_state-*.json` (file names only; nothing is read). A driver killed in its
    first seconds leaves neither, or `tuner.pkl` alone; a folder with both is a real sweep,
    which a fresh run never takes over (`fsf resume` continues it)."""
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


def restart_stillborn(spec: SweepSpec, sweep_dir: Location, study_url: str) -> list[str]:
    """Make a sweep whose driver died in its first seconds startable afresh, in place: its
    Optuna study (points enqueued, none finished) is deleted, any fragment moves to
    `results/.orphaned/`, Tune's partial folder goes. Refused when the study holds a
    finished trial (then the folder was damaged, not stillborn)."""
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
                f"{sweep_dir}: the sweep looks unstarted, but the Optuna study has "
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
        f"{sweep_dir} was interrupted before any trial started (in its first seconds): "
        "starting it afresh"
    )
    if moved:
        note += f"; fragments of trials that had begun moved to results/{ORPHANED_DIR}/"
    log.warning(note)
    return [note]


def check_folder(sweep_dir: Location, resume: bool) -> bool:
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


def write_folder(spec: SweepSpec, sweep_dir: Location, study_url: str, resume: bool) -> None:
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
