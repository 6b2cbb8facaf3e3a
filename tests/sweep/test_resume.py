"""Resume from fsf's own records (the Optuna study and the result fragments) after a driver
is killed at any moment: no grid point is lost, none runs twice, an interrupted trial runs
again under the trial id of its rows, no row is duplicated, ASHA judges as it did, and the
confirmation runs each candidate once. Fast: the searches and the resume are driven by
hand, the way the driver and Tune drive them, without starting Ray."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from fsf.results import read_results
from fsf.results.fragments import ORPHANED_DIR
from fsf.sweep.points import define_by_run, grid_points
from fsf.sweep.resume import (
    CONFIRM_TRIAL,
    assign_trial_ids,
    rebuild_rungs,
    recorded_reports,
    resume_confirm,
    resume_search,
)
from fsf.sweep.searcher import _StudySearch, enqueue_points, open_study
from fsf.sweep.space import validate_space
from fsf.sweep.trial import TRIAL_KEY, _ObjectiveTracker
from tests.results.helpers import ev2, run, write

POLICIES = ["df", "fs", "ff", "fsf"]


def _spec(**search):  # type: ignore[no-untyped-def]
    return validate_space(
        {
            "name": "resume",
            "search": {
                "parameters": {"policy.name": {"type": "categorical", "values": POLICIES}},
                "searcher": "grid",
                **search,
            },
        }
    )


def _study(tmp_path: Path, spec, offset: int = 0):  # type: ignore[no-untyped-def]
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'optuna.db'}")
    return open_study(spec, storage, seed_offset=offset)


def _search(study, spec) -> _StudySearch:  # type: ignore[no-untyped-def]
    return _StudySearch(study, define_by_run(spec), [("dev_target_mean", "max")])


def _sweep(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A new grid sweep: its study with the points enqueued, and its searcher."""
    spec = _spec()
    study = _study(tmp_path, spec)
    enqueue_points(study, grid_points(spec))
    return spec, study, _search(study, spec)


def _resumed(tmp_path: Path, spec):  # type: ignore[no-untyped-def]
    """What a resume does: the study reopened and made ready, a fresh searcher."""
    study = _study(tmp_path, spec, offset=1)
    plan = resume_search(study, tmp_path / "results")
    return plan, _search(study, spec)


def _rows(suggestion: dict) -> tuple[str, str]:
    return suggestion[TRIAL_KEY], suggestion["policy.name"]


def _run_all(searcher, ids) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    out = []
    for tune_id in ids:
        s = searcher.suggest(tune_id)
        out.append(_rows(s))
        searcher.on_trial_complete(tune_id, {"dev_target_mean": 0.5})
    return out


def test_a_trial_interrupted_in_training_runs_again_under_its_trial_id(tmp_path):
    spec, study, searcher = _sweep(tmp_path)
    first = _rows(searcher.suggest("t1"))
    searcher.on_trial_complete("t1", {"dev_target_mean": 0.5})
    killed = _rows(searcher.suggest("t2"))  # training when the driver is killed
    write(tmp_path / "results", [run("t1", [ev2(0, 0.5, 0.4), ev2(100, 0.8, 0.6)])])
    write(tmp_path / "results", [run("t2", [ev2(0, 0.5, 0.4)], status="running")])

    plan, resumed = _resumed(tmp_path, spec)
    assert plan.ended == {"t1": "finished"} and plan.rerun == ["t2"] and plan.moved == []
    rest = _run_all(resumed, ["a", "b", "c"])  # the fit asks for 4 - 1 ended trials
    assert killed in rest  # its point again, its rows under its own trial id
    assert sorted(p for _, p in [first, *rest]) == sorted(POLICIES)  # each point once
    trials = study.get_trials()
    (old,) = [t for t in trials if t.user_attrs.get("tune_trial_id") == "t2" and t.number == 1]
    assert old.state == TrialState.FAIL  # superseded by its re-run
    (rerun,) = [t for t in trials if t.user_attrs.get("fsf_rerun_of") == old.number]
    assert rerun.state == TrialState.COMPLETE and rerun.user_attrs["tune_trial_id"] == "t2"
    assert read_results(tmp_path / "results").table.num_rows > 0  # nothing set aside


def test_every_point_runs_once_over_two_interrupted_resumes(tmp_path):
    """The re-run is killed too; a second resume runs it again, still under its trial id."""
    spec, _, searcher = _sweep(tmp_path)
    ran = [_rows(searcher.suggest("t1"))]
    searcher.on_trial_complete("t1", {"dev_target_mean": 0.5})
    killed = _rows(searcher.suggest("t2"))

    _, resumed = _resumed(tmp_path, spec)
    ran += _run_all(resumed, ["a"])  # one more point finished, then the re-run starts...
    again = _rows(resumed.suggest("b"))  # ... and the driver is killed once more
    plan, twice = _resumed(tmp_path, spec)
    assert len(plan.ended) == 2 and len(plan.rerun) == 1
    ran += _run_all(twice, ["x", "y"])
    assert sorted(p for _, p in ran) == sorted(POLICIES)
    assert killed in ran or again in ran
    assert len({rows for rows, _ in ran}) == len(POLICIES)  # one trial id per point


def test_a_resume_killed_between_its_two_writes_enqueues_no_second_rerun(tmp_path):
    """A resume enqueues the re-run first, then fails the trial it continues: killed in
    between, the next resume finds the re-run and only fails the old trial."""
    spec, study, searcher = _sweep(tmp_path)
    searcher.suggest("t1")
    old = study.get_trials(deepcopy=False)[0]
    study.enqueue_trial(old.params, user_attrs={"tune_trial_id": "t1", "fsf_rerun_of": 0})
    plan, resumed = _resumed(tmp_path, spec)  # t1 still RUNNING: the kill came in between
    assert plan.rerun == [] and plan.ended == {}
    assert study.get_trials(deepcopy=False)[0].state == TrialState.FAIL
    ran = _run_all(resumed, ["a", "b", "c", "d"])
    assert (
        sorted(p for _, p in ran) == sorted(POLICIES) and ("t1", old.params["policy.name"]) in ran
    )


def test_a_grid_point_drawn_but_never_handed_out_still_runs_once(tmp_path):
    """Killed between Optuna's ask and the trial id (the point is RUNNING in the study, with
    no rows): the resume enqueues the point again, so every point runs once (this lost a
    point to a random draw in CI, 2026-12-07)."""
    spec, study, searcher = _sweep(tmp_path)
    ran = _run_all(searcher, ["t1"])
    define_by_run(spec)(study.ask())  # the driver dies here, before the trial id is set
    plan, resumed = _resumed(tmp_path, spec)
    assert plan.rerun == [] and plan.ended == {"t1": "finished"}
    assert study.get_trials(deepcopy=False)[1].state == TrialState.FAIL
    ran += _run_all(resumed, ["a", "b", "c"])
    assert sorted(p for _, p in ran) == sorted(POLICIES)
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    assert all("fsf_point" in t.user_attrs for t in done)  # no point left to a random draw


def test_a_grid_point_asked_but_not_yet_suggested_still_runs_once(tmp_path):
    """Killed between Optuna's ask and the suggestion of its parameters: the point is RUNNING
    with no params, only Optuna's `fixed_params`; the resume enqueues those, so the point
    runs once and no other point twice (this ran noisytune twice and ff never, CI 2026-12-08)."""
    spec, study, searcher = _sweep(tmp_path)
    ran = _run_all(searcher, ["t1"])
    asked = study.ask()  # the driver dies here, before define_by_run suggests the point
    frozen = study.get_trials(deepcopy=False)[asked.number]
    point = frozen.system_attrs["fixed_params"]
    assert frozen.params == {} and point == {"policy.name": "fs"}
    plan, resumed = _resumed(tmp_path, spec)
    assert plan.rerun == [] and plan.ended == {"t1": "finished"}
    (again,) = [
        t
        for t in study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
        if t.user_attrs.get("fsf_rerun_of") == asked.number
    ]
    assert again.system_attrs["fixed_params"] == point  # the point itself, not a free draw
    ran += _run_all(resumed, ["a", "b", "c"])
    assert sorted(p for _, p in ran) == sorted(POLICIES)


def test_a_resume_killed_after_enqueueing_a_drawn_point_enqueues_it_no_second_time(tmp_path):
    spec, study, _ = _sweep(tmp_path)
    drawn = study.ask()
    define_by_run(spec)(drawn)
    study.enqueue_trial(drawn.params, user_attrs={"fsf_point": True, "fsf_rerun_of": 0})
    _, resumed = _resumed(tmp_path, spec)  # the kill came before the draw was failed
    ran = _run_all(resumed, ["a", "b", "c", "d"])
    assert sorted(p for _, p in ran) == sorted(POLICIES)
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    assert len(done) == 4 and all("fsf_point" in t.user_attrs for t in done)


def test_draws_never_handed_to_tune_end_with_the_interruption(tmp_path):
    """A draw in progress (asked, never handed out) and a repeat parked on its twin are
    failed; neither counts as a trial of the sweep."""
    spec = _spec(searcher="random", num_trials=4)
    study = _study(tmp_path, spec)
    search = _StudySearch(study, define_by_run(spec), [("dev_target_mean", "max")], True)
    first = search.suggest("t1")  # training
    study.ask()  # a draw the driver was killed while making
    study.enqueue_trial({"policy.name": first["policy.name"]})
    parked = study.ask()
    parked.suggest_categorical("policy.name", POLICIES)
    parked.set_user_attr("fsf_waiting_for", 0)
    plan, _ = _resumed(tmp_path, spec)
    assert plan.rerun == ["t1"] and plan.ended == {}
    states = [t.state for t in study.get_trials()[:3]]
    assert states == [TrialState.FAIL] * 3


def test_fragments_the_study_does_not_hold_are_set_aside(tmp_path):
    spec, _, searcher = _sweep(tmp_path)
    searcher.suggest("t1")
    searcher.on_trial_complete("t1", {"dev_target_mean": 0.5})
    root = tmp_path / "results"
    write(root, [run(t, [ev2(0, 0.5, 0.4), ev2(100, 0.8, 0.6)]) for t in ("t1", "stray")])
    plan, _ = _resumed(tmp_path, spec)
    assert plan.moved == ["trial=stray"] and "1 trial(s) the study does not hold" in plan.note()
    assert [p.name for p in (root / ORPHANED_DIR).iterdir()] == ["trial=stray"]
    assert set(read_results(root).table.column("trial_id").to_pylist()) == {"t1"}


def test_trials_an_earlier_fsf_orphaned_are_ignored(tmp_path):
    """A folder resumed by fsf before it resumed from its own records: its orphans (rows set
    aside, points enqueued again) count neither as ended trials nor as repeats' twins."""
    spec, study, searcher = _sweep(tmp_path)
    orphan = searcher.suggest("t1")
    searcher.on_trial_complete("t1", {"dev_target_mean": 0.9})
    study.set_user_attr("fsf_orphans", [0])
    study.enqueue_trial({"policy.name": orphan["policy.name"]})  # as that fsf did
    plan, resumed = _resumed(tmp_path, spec)
    assert plan.ended == {}
    ran = _run_all(resumed, ["a", "b", "c", "d"])
    assert sorted(p for _, p in ran) == sorted(POLICIES)


def _asha():  # type: ignore[no-untyped-def]
    from ray.tune.schedulers import ASHAScheduler

    return ASHAScheduler(
        time_attr="progress_step",
        metric="dev_target_mean",
        mode="max",
        grace_period=10,
        max_t=100,
        reduction_factor=2,
    )


def _report(scheduler, trial_id: str, result: dict) -> str:  # type: ignore[no-untyped-def]
    from ray.tune.experiment import Trial

    trial = Trial("t", trial_id=trial_id, stub=True)
    scheduler.on_trial_add(None, trial)
    return scheduler.on_trial_result(None, trial, result)


def test_a_resumed_asha_judges_trials_against_the_rungs_it_had(tmp_path):
    """Ray Tune saves no scheduler state: with Tune's own restore, ASHA's rungs started
    empty and a trial the uninterrupted sweep stops trained on. The rungs are rebuilt from
    the results: what each finished trial reported, read back from its fragments."""
    asha = {"type": "asha", "grace_period": 10, "reduction_factor": 2, "max_t": 100}
    spec = _spec(scheduler=asha)
    root = tmp_path / "results"
    scores = {"t1": 0.8, "t2": 0.7, "t3": 0.9, "t4": 0.6}
    live = _asha()
    for trial_id, score in scores.items():
        evs = [ev2(0, 0.5, 0.4, 0.4), ev2(10, score, score, score), ev2(100, score, 0.5, 0.5)]
        write(root, [run(trial_id, evs)])
        tracker = _ObjectiveTracker(["dev_target_mean"], 0, [], "source-dev")
        for ev in evs:  # what the trial reported to the live scheduler
            _report(live, trial_id, tracker.scalars(ev))
    assert recorded_reports(spec, root, "t1")[1]["dev_target_mean"] == pytest.approx(0.8)

    fresh = _asha()
    assert rebuild_rungs(fresh, spec, root, sorted(scores)) == 4
    rungs = [dict(r) for _, r in fresh._brackets[0]._rungs]
    assert rungs == [dict(r) for _, r in live._brackets[0]._rungs] and any(rungs)
    low = {"progress_step": 10, "dev_target_mean": 0.1}
    assert _report(fresh, "t5", low) == "STOP"  # as the uninterrupted sweep judges it
    assert _report(_asha(), "t5", low) == "CONTINUE"  # (what empty rungs did)
    assert _report(fresh, "t6", {"progress_step": 10, "dev_target_mean": 0.95}) == "CONTINUE"


def test_a_confirmation_resumes_each_run_under_its_candidates_trial_id(tmp_path):
    """Each run (candidate x seed) with a completed fragment is not run again; every other
    runs under its candidate's trial id: one begun by an older fsf keeps the id of the
    fragments with its parameters, one never started gets a new id; fragments of no
    candidate are set aside."""
    root = tmp_path / "confirm" / "results"
    candidates = [{"params": {"policy.name": p}} for p in ("fsf", "fs", "df")]
    evs = [ev2(0, 0.5, 0.4), ev2(100, 0.8, 0.6)]
    write(root, [run("A", evs, seed=s, params={"policy.name": "fsf"}) for s in (7, 8)])
    write(root, [run("B", evs, seed=7, params={"policy.name": "fs"})])
    write(root, [run("B", evs[:1], seed=8, params={"policy.name": "fs"}, status="running")])
    write(root, [run("Z", evs, seed=7, params={"policy.name": "ff"})])
    assert assign_trial_ids(candidates, root)
    ids = [c[CONFIRM_TRIAL] for c in candidates]
    assert ids[:2] == ["A", "B"] and ids[2] not in ("A", "B", "Z")
    assert not assign_trial_ids(candidates, root)  # recorded: never assigned again
    runs = [(i, s) for i in range(3) for s in (7, 8)]
    plan = resume_confirm(candidates, runs, root)
    assert plan.todo == [(1, 8, "B"), (2, 7, ids[2]), (2, 8, ids[2])] and plan.finished == 3
    assert plan.moved == ["trial=Z"]
    assert "3 of 6 runs finished, 3 to run" in plan.note()
