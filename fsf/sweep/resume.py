"""What a resumed sweep is rebuilt from: the Optuna study and the result fragments, fsf's own
records (docs/architecture.md, "Resume design"). Ray Tune's saved files are never read.

- `resume_search(study, results_dir)`: the search stage. Trials the study saw end are never
  run again; each unfinished one (RUNNING: the driver died while it trained) is enqueued
  again with the trial id of its rows, then failed (superseded by that re-run); draws never
  handed to Tune are failed, a grid point among them enqueued again first; fragments of
  trial ids the study does not hold are set aside.
- `rebuild_rungs(scheduler, spec, results_dir, trial_ids)`: ASHA's rungs, from the
  evaluations each ended trial recorded, replayed through the objective it reported with.
- `assign_trial_ids(candidates, results_dir)` and `resume_confirm(candidates, runs,
  results_dir)`: the confirmation stage's runs (candidate x seed) still to train, each under
  its candidate's trial id; a racing confirmation's rounds are in its sweep.json
  (`fsf.sweep.confirm`).

Each step writes ahead of what depends on it (a re-run is enqueued before the trial it
continues is failed), so a driver killed during a resume leaves records the next resume
reads the same way.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from typing import Any

from fsf.results import read_results
from fsf.results.fragment_reader import recorded_evaluations
from fsf.results.fragments import ORPHANED_DIR, set_aside_orphans
from fsf.results.race import CANDIDATE_TRIAL
from fsf.results.storage import Location
from fsf.sweep.searcher import ORPHANS_ATTR, POINT_ATTR, RERUN_ATTR, TRIAL_ATTR
from fsf.sweep.spec import SweepSpec
from fsf.sweep.trial import _ObjectiveTracker

__all__ = [
    "CONFIRM_TRIAL",
    "ConfirmResume",
    "SearchResume",
    "assign_trial_ids",
    "rebuild_rungs",
    "resume_confirm",
    "resume_search",
]

log = logging.getLogger("fsf.sweep")


def handed_out(study: Any) -> bool:
    """Whether any trial of the study was handed to Tune (it has a trial id)."""
    return any(TRIAL_ATTR in t.user_attrs for t in study.get_trials(deepcopy=False))


@dataclass
class SearchResume:
    """What `resume_search` found and did: `ended` (trial id -> `finished` or `failed`:
    never run again), `rerun` (trial ids enqueued to run again), `moved` (fragment folders
    set aside: trial ids the study does not hold)."""

    ended: dict[str, str] = field(default_factory=dict)
    rerun: list[str] = field(default_factory=list)
    moved: list[str] = field(default_factory=list)
    scored: int | None = None  # trials whose scores ASHA's rebuilt rungs hold

    def note(self) -> str:
        failed = sum(1 for s in self.ended.values() if s == "failed")
        parts = [
            f"resumed from the Optuna study and the results: {len(self.ended)} trials ended "
            f"({len(self.ended) - failed} finished, {failed} failed), {len(self.rerun)} "
            "to run again"
        ]
        if self.scored is not None:
            parts.append(
                f"ASHA's rungs rebuilt from the results with the scores of {self.scored} trials"
            )
        if self.moved:
            parts.append(
                f"fragments of {len(self.moved)} trial(s) the study does not hold moved to "
                f"results/{ORPHANED_DIR}"
            )
        return "; ".join(parts)


def resume_search(study: Any, results_dir: Location) -> SearchResume:
    """Prepare the study for a fresh fit that continues the sweep (see the module doc)."""
    from optuna.trial import TrialState

    out = SearchResume()
    trials = study.get_trials(deepcopy=False)
    ignored = set(study.user_attrs.get(ORPHANS_ATTR, []))  # set aside by an earlier fsf
    superseded = {t.user_attrs[RERUN_ATTR] for t in trials if RERUN_ATTR in t.user_attrs}
    known = set()
    for trial in trials:
        rows = trial.user_attrs.get(TRIAL_ATTR)
        if trial.number in ignored:
            continue
        if rows is not None:
            known.add(rows)
        if trial.state == TrialState.RUNNING:
            # an enqueued point's parameters are Optuna's `fixed_params` from the moment it
            # is asked; `params` only once each is suggested: a kill between the two left a
            # point with no params, whose re-run drew a random one (CI, 2026-12-08)
            params = {**trial.system_attrs.get("fixed_params", {}), **trial.params}
            if trial.number not in superseded and rows is not None:
                fixed = {RERUN_ATTR: trial.number, TRIAL_ATTR: rows}
                study.enqueue_trial(params, user_attrs=fixed)
                out.rerun.append(rows)
            elif trial.number not in superseded and POINT_ATTR in trial.user_attrs:
                # a grid point drawn but never handed out (killed between Optuna's ask
                # and the trial id): enqueued again, or the point would never run
                fixed = {RERUN_ATTR: trial.number, POINT_ATTR: True}
                study.enqueue_trial(params, user_attrs=fixed)
            # a draw never handed out, or one whose re-run is enqueued: it ends here
            study.tell(trial.number, state=TrialState.FAIL)
        elif trial.state.is_finished() and rows is not None and trial.number not in superseded:
            out.ended[rows] = "failed" if trial.state == TrialState.FAIL else "finished"
    if results_dir.exists():
        out.moved = set_aside_orphans(results_dir, known)
        if out.moved:
            log.warning(
                "moved fragments the study does not hold to %s: %s", ORPHANED_DIR, out.moved
            )
    return out


def recorded_reports(spec: SweepSpec, results_dir: Location, trial_id: str) -> list[dict]:
    """What trial `trial_id` reported to Tune, read back from its fragments: each seed's
    evaluations in order, through the objective tracker the trial used."""
    metrics = [o.metric for o in spec.search.objective]
    finished: list[dict[str, float]] = []
    out: list[dict[str, Any]] = []
    for index, seed in enumerate(spec.search.seeds):
        evaluations = recorded_evaluations(str(results_dir), trial_id, seed)
        if not evaluations:
            break
        tracker = _ObjectiveTracker(metrics, index, finished, spec.search.checkpoint)
        out += [tracker.scalars(ev) for ev in evaluations]
        finished.append({m: out[-1].get(f"{m}_seed", math.nan) for m in metrics})
    return out


def rebuild_rungs(
    scheduler: Any, spec: SweepSpec, results_dir: Location, trial_ids: list[str]
) -> int:
    """Replay what each trial of `trial_ids` reported into `scheduler` (a fresh ASHA) through
    its public hooks, so its rungs hold their scores; returns how many trials reported."""
    from ray.tune.experiment import Trial

    n = 0
    for trial_id in trial_ids:
        reports = recorded_reports(spec, results_dir, trial_id)
        if not reports:
            continue
        trial = Trial("fsf", trial_id=trial_id, stub=True)
        scheduler.on_trial_add(None, trial)
        for report in reports:
            scheduler.on_trial_result(None, trial, report)
        scheduler.on_trial_remove(None, trial)
        n += 1
    return n


#: A confirmation candidate's key in confirm/sweep.json naming the trial id of its rows (every
#: seed of a candidate writes under it, whichever Tune trial runs the seed)
CONFIRM_TRIAL = CANDIDATE_TRIAL


@dataclass
class ConfirmResume:
    """The confirmation's runs still to train, `todo`: (candidate, seed, the trial id of the
    candidate's rows); how many of the runs asked for are `finished` (a completed
    fragment); fragments `moved` aside (of no candidate)."""

    todo: list[tuple[int, int, str]]
    finished: int
    moved: list[str] = field(default_factory=list)

    def note(self) -> str:
        note = (
            f"resumed from its results: {self.finished} of {self.finished + len(self.todo)} "
            f"runs finished, {len(self.todo)} to run"
        )
        if self.moved:
            note += f"; fragments of {len(self.moved)} trial(s) of no candidate set aside"
        return note


def _key(params: Any) -> str:
    return json.dumps(params, sort_keys=True, default=str)


def _runs(results_dir: Location) -> dict[str, dict[str, Any]]:
    """Trial id -> its params key and completed seeds, from the fragments."""
    runs: dict[str, dict[str, Any]] = {}
    if not results_dir.exists():
        return runs
    table = read_results(results_dir).table
    for row in table.select(["trial_id", "seed", "status", "params_json"]).to_pylist():
        run = runs.setdefault(row["trial_id"], {"key": None, "done": set()})
        run["key"] = run["key"] or _key(json.loads(row["params_json"] or "{}"))
        if row["status"] == "completed":
            run["done"].add(row["seed"])
    return runs


def assign_trial_ids(candidates: list[dict[str, Any]], results_dir: Location) -> bool:
    """Give each candidate the trial id of its rows (`CONFIRM_TRIAL`), in place, before any
    run trains; returns whether one was added (the caller records them). A candidate of a
    confirmation begun by an older fsf (one Tune trial per candidate) keeps the id of the
    fragments whose sampled parameters are its own (the most completed seeds, then the
    smaller id); any other gets a new id in Tune's shape."""
    import uuid

    missing = [c for c in candidates if not c.get(CONFIRM_TRIAL)]
    if not missing:
        return False
    runs = _runs(results_dir)
    prefix = uuid.uuid4().hex[:5]
    taken = {c.get(CONFIRM_TRIAL) for c in candidates}
    for i, candidate in enumerate(candidates):
        if candidate.get(CONFIRM_TRIAL):
            continue
        mine = [
            t for t, r in runs.items() if r["key"] == _key(candidate["params"]) and t not in taken
        ]
        rows = min(mine, key=lambda t: (-len(runs[t]["done"]), t), default=None)
        candidate[CONFIRM_TRIAL] = rows or f"{prefix}_{i:05d}"
        taken.add(candidate[CONFIRM_TRIAL])
    return True


def resume_confirm(
    candidates: list[dict[str, Any]], runs: list[tuple[int, int]], results_dir: Location
) -> ConfirmResume:
    """Which of `runs` ((candidate, seed) pairs) train (again): those without a completed
    fragment under their candidate's trial id (`assign_trial_ids`). Fragments of no
    candidate are set aside."""
    ids = [c[CONFIRM_TRIAL] for c in candidates]
    done = {t: r["done"] for t, r in _runs(results_dir).items()}
    todo, finished = [], 0
    for i, seed in runs:
        if seed in done.get(ids[i], set()):
            finished += 1
        else:
            todo.append((i, seed, ids[i]))
    moved = set_aside_orphans(results_dir, set(ids)) if results_dir.exists() else []
    return ConfirmResume(todo, finished, moved)
