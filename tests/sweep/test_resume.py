"""Resume after a crash between Optuna's write and Tune's state save, or between Tune's own
saved files: no grid point is lost, none runs twice, no slot is held by a trial that will
not run, no orphaned trial's rows are duplicated. Fast: the searcher, the search algorithm
and the callback are driven by hand, the way Tune drives them, without starting Ray."""

from __future__ import annotations

import pickle
from pathlib import Path
from types import SimpleNamespace

import optuna
import pytest
from optuna.trial import TrialState

from fsf.errors import FsfError
from fsf.results import read_results
from fsf.results.fragments import ORPHANED_DIR
from fsf.sweep._callbacks import _ResumeCheck
from fsf.sweep.folder import check_tune_state
from fsf.sweep.searcher import _RESTORED, _Candidates, _ResumableOptunaSearch, search_algorithm
from fsf.sweep.space import define_by_run, validate_space
from tests.results.helpers import ev2, run, write

POLICIES = ["df", "fs", "ff", "fsf"]


def _trials(*ids: str, finished: tuple[str, ...] = ()) -> list[SimpleNamespace]:
    """Tune's restored trials (as `Trial`s are seen by the resume check)."""
    return [
        SimpleNamespace(trial_id=t, is_finished=lambda t=t: t in finished, config={}) for t in ids
    ]


def _restore(as_constructed: bytes, path: Path, trials: list) -> _ResumableOptunaSearch:
    """The searcher as Tune restores it (from its pickle in tuner.pkl and its saved state),
    reconciled with Tune's restored `trials` the way the resume check does."""
    resumed = pickle.loads(as_constructed)
    resumed.restore(str(path))
    resumed.reconcile(trials)
    return resumed


def _searcher(tmp_path: Path) -> _ResumableOptunaSearch:
    spec = validate_space(
        {
            "name": "resume",
            "search": {
                "parameters": {"policy.name": {"type": "categorical", "values": POLICIES}},
                "searcher": "grid",
            },
        }
    )
    return _ResumableOptunaSearch(
        space=define_by_run(spec),
        metric="dev_target_mean",
        mode="max",
        sampler=optuna.samplers.RandomSampler(seed=0),
        storage=optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'optuna.db'}"),
        study_name="resume",
        points_to_evaluate=[{"policy.name": p} for p in POLICIES],
    )


def test_a_grid_point_handed_out_after_the_last_save_is_not_lost(tmp_path):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    searcher = _searcher(tmp_path)
    as_constructed = pickle.dumps(searcher)  # what Tune keeps in tuner.pkl
    first = searcher.suggest("t1")
    searcher.on_trial_complete("t1", {"dev_target_mean": 0.5})
    searcher.save(str(tmp_path / "searcher.pkl"))  # Tune's last periodic save
    orphan = searcher.suggest("t2")  # handed out, then the driver is killed

    resumed = _restore(as_constructed, tmp_path / "searcher.pkl", _trials("t1", finished=("t1",)))
    rest = [resumed.suggest(t)["policy.name"] for t in ("t3", "t4", "t5")]

    assert sorted([first["policy.name"], *rest]) == sorted(POLICIES)
    assert orphan["policy.name"] in rest
    study = optuna.load_study(study_name="resume", storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    (failed,) = [t for t in study.trials if t.state == TrialState.FAIL]
    assert failed.params == orphan and "fsf_orphaned" in failed.user_attrs
    assert resumed.orphans == [failed.number]
    running = [t for t in study.trials if t.state == TrialState.RUNNING]
    assert sorted(t.user_attrs["tune_trial_id"] for t in running) == ["t3", "t4", "t5"]


def test_a_grid_point_finished_after_the_last_save_runs_again_once(tmp_path):
    """Tune saved its state before a trial started; the trial finished (told to Optuna) and
    the next was handed out before the kill. Both points run again, once, over two resumes."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    searcher = _searcher(tmp_path)
    as_constructed = pickle.dumps(searcher)
    first = searcher.suggest("t1")
    searcher.save(str(tmp_path / "searcher.pkl"))
    searcher.on_trial_complete("t1", {"dev_target_mean": 0.5})  # Tune knew t1: not an orphan
    done = searcher.suggest("t2")
    searcher.on_trial_complete("t2", {"dev_target_mean": 0.6})
    running = searcher.suggest("t3")

    resumed = _restore(as_constructed, tmp_path / "searcher.pkl", _trials("t1"))
    assert len(resumed.orphans) == 2
    again = resumed.suggest("t4")["policy.name"]
    resumed.save(str(tmp_path / "searcher.pkl"))  # saved, then killed once more

    twice = _restore(as_constructed, tmp_path / "searcher.pkl", _trials("t1", "t4"))
    assert twice.orphans == []
    rest = [twice.suggest(t)["policy.name"] for t in ("t5", "t6")]
    ran = [first["policy.name"], again, *rest]
    assert sorted(ran) == sorted(POLICIES)
    assert {done["policy.name"], running["policy.name"]} <= set(ran[1:])
    study = optuna.load_study(study_name="resume", storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    assert study.user_attrs["fsf_orphans"] == [1, 2]


def test_trials_tune_knows_are_not_orphans(tmp_path):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    searcher = _searcher(tmp_path)
    as_constructed = pickle.dumps(searcher)
    searcher.suggest("t1")
    searcher.suggest("t2")  # still running when the state is saved: Tune resumes it
    searcher.save(str(tmp_path / "searcher.pkl"))
    resumed = _restore(as_constructed, tmp_path / "searcher.pkl", _trials("t1", "t2"))
    assert resumed.orphans == []
    resumed.on_trial_complete("t2", {"dev_target_mean": 0.7})
    study = optuna.load_study(study_name="resume", storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    assert [t.state for t in study.trials[:2]] == [TrialState.RUNNING, TrialState.COMPLETE]


def test_a_searcher_saved_after_tunes_trials_loses_no_point(tmp_path):
    """The searcher's state comes from a later save than Tune's trials (the files were
    uploaded one by one when the driver was killed): it knows t2, finished, whose rows leave
    the results since Tune does not; t2's point runs again."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    searcher = _searcher(tmp_path)
    as_constructed = pickle.dumps(searcher)
    first = searcher.suggest("t1")
    searcher.on_trial_complete("t1", {"dev_target_mean": 0.5})
    lost = searcher.suggest("t2")
    searcher.on_trial_complete("t2", {"dev_target_mean": 0.6})
    searcher.save(str(tmp_path / "searcher.pkl"))  # knows t1 and t2; Tune's trials only t1

    resumed = _restore(as_constructed, tmp_path / "searcher.pkl", _trials("t1", finished=("t1",)))
    assert resumed.orphans == [1]
    rest = [resumed.suggest(t)["policy.name"] for t in ("t3", "t4", "t5")]
    assert sorted([first["policy.name"], *rest]) == sorted(POLICIES)
    assert lost["policy.name"] in rest


def test_a_searcher_saved_before_tunes_trials_runs_no_point_twice(tmp_path):
    """The searcher's state comes from an earlier save than Tune's trials: Tune restores t2
    (in training when it saved) that the searcher never handed out as far as its own state
    says. t2 is not an orphan, its point is not run again, and its result reaches Optuna."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    searcher = _searcher(tmp_path)
    as_constructed = pickle.dumps(searcher)
    first = searcher.suggest("t1")
    searcher.on_trial_complete("t1", {"dev_target_mean": 0.5})
    searcher.save(str(tmp_path / "searcher.pkl"))  # knows t1 only; Tune's trials t1, t2
    second = searcher.suggest("t2")

    trials = _trials("t1", "t2", finished=("t1",))
    resumed = _restore(as_constructed, tmp_path / "searcher.pkl", trials)
    assert resumed.orphans == []
    resumed.on_trial_complete("t2", {"dev_target_mean": 0.7})
    rest = [resumed.suggest(t)["policy.name"] for t in ("t3", "t4")]
    assert sorted([first["policy.name"], second["policy.name"], *rest]) == sorted(POLICIES)
    study = optuna.load_study(study_name="resume", storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    assert study.trials[1].state == TrialState.COMPLETE and study.trials[1].value == 0.7


def test_a_search_state_from_another_save_holds_no_slot_tune_will_not_free(tmp_path):
    """The search's saved state (trials created, the concurrency limiter's live trials) comes
    from a save made while t1 trained; Tune's trials from a later one: t1 finished, t2 in
    training. Restored as saved, t1 would hold the only slot for ever (the sweep hangs);
    reconciled, t2 holds it and the next candidate follows t2."""
    search = search_algorithm(_Candidates(4), max_concurrent=1)
    search._experiment = "the experiment"  # what Tune gives it when the sweep starts
    assert search.searcher.suggest("t1") == {"candidate": 0}
    search.save_to_dir(str(tmp_path), "s")

    restored = search_algorithm(_Candidates(4), max_concurrent=1)
    restored.restore_from_dir(str(tmp_path))
    assert [restored] == _RESTORED
    assert restored.searcher.suggest("t3") is None  # t1's slot, as saved
    trials = _trials("t1", "t2", finished=("t1",))
    trials[0].config, trials[1].config = {"candidate": 0}, {"candidate": 1}
    restored.reconcile(trials)
    assert restored._counter == 2  # the trials Tune has, so the right number are created
    assert restored.searcher.suggest("t3") is None  # t2 trains in the only slot
    restored.searcher.on_trial_complete("t2")
    assert restored.searcher.suggest("t3") == {"candidate": 2}
    assert restored.searcher.suggest("t4") is None
    restored.searcher.on_trial_complete("t3")
    assert restored.searcher.suggest("t4") == {"candidate": 3}
    restored.searcher.on_trial_complete("t4")
    assert restored.searcher.suggest("t5") == "FINISHED"
    _RESTORED.clear()


def test_a_search_whose_state_was_never_saved_is_not_resumed(tmp_path):
    """Tune restored its trials but found no saved search state (the driver was killed
    between the two files): the search, as unpickled from tuner.pkl, could create no new
    trial, so the resume stops instead of ending the sweep short."""
    from ray import cloudpickle  # what Tune pickles tuner.pkl with

    as_constructed = cloudpickle.dumps(search_algorithm(_Candidates(4), max_concurrent=1))
    restored = pickle.loads(as_constructed)  # how Tune gets it back: registered for the check
    assert [restored] == _RESTORED
    with pytest.raises(FsfError, match="not its search state"):
        restored.reconcile(_trials("t1"))
    _RESTORED.clear()


@pytest.mark.parametrize(
    "text, problem",
    [
        ('{"trial_data": [["{}", "{}"]], "runner_data": {}, "stats": {}}', None),
        ('{"trial_data": [["{}", "{}"]], "runner_da', "cut short"),
        ('{"trial_data": [], "runner_data": {}}', "lists no trial"),
        ('{"trial_data": [["{}", "{}"]]}', "state is missing"),
    ],
)
def test_a_tune_state_cut_short_is_refused_before_tune_restarts_the_search(tmp_path, text, problem):
    """Tune, failing to parse its saved state, would start the search afresh over a folder
    of finished trials; fsf refuses first, naming the file Tune would have read."""
    tune = tmp_path / "sweep" / "tune"
    tune.mkdir(parents=True)
    (tune / "experiment_state-2026-01-01_00-00-00.json").write_text("{}")  # an older one
    newest = tune / "experiment_state-2026-01-02_00-00-00.json"
    newest.write_text(text)
    if problem == "state is missing":  # saved after the trials' file
        newest = tune / "search_gen_state-*.json"
    else:
        (tune / "search_gen_state-2026-01-02_00-00-00.json").write_bytes(b"saved")
    if problem is None:
        check_tune_state(tune)
        return
    with pytest.raises(FsfError, match=problem) as err:
        check_tune_state(tune)
    assert str(newest) in str(err.value) and "--name NEW" in str(err.value)
    assert err.value.exit_code == 1


def test_a_resume_that_tune_could_not_restore_changes_nothing(tmp_path):
    """Tune logs its restore failure and starts afresh with no trials: the resume check
    stops the fit at its first step, before any fragment is set aside."""
    root = tmp_path / "results"
    write(root, [run(t, [ev2(0, 0.5, 0.4)]) for t in ("a", "b")])
    with pytest.raises(FsfError, match="could not restore"):
        _ResumeCheck(root).on_step_begin(0, [])
    assert not (root / ORPHANED_DIR).exists()
    assert set(read_results(root).table.column("trial_id").to_pylist()) == {"a", "b"}


@pytest.mark.parametrize("first_step_trials", [["a", "b"], ["a", "b", "c"]])
def test_fragments_of_trials_tune_does_not_know_leave_the_results(tmp_path, first_step_trials):
    root = tmp_path / "results"
    write(root, [run(t, [ev2(0, 0.5, 0.4), ev2(10, 0.8, 0.6)]) for t in ("a", "b", "c")])
    callback = _ResumeCheck(root)
    trials = _trials(*first_step_trials)
    callback.on_step_begin(0, trials)
    write(root, [run("d", [ev2(0, 0.5, 0.4)])])  # a new trial of the resumed sweep
    callback.on_step_begin(1, [*trials, SimpleNamespace(trial_id="d")])

    kept = set(read_results(root).table.column("trial_id").to_pylist())
    assert kept == {*first_step_trials, "d"}
    said = "resumed from Ray Tune's saved state: {} trials (0 finished, {} to run again)"
    assert callback.summary.startswith(said.format(*[len(first_step_trials)] * 2))
    if "c" in first_step_trials:
        assert not (root / ORPHANED_DIR).exists() and "moved" not in callback.summary
    else:
        assert [p.name for p in (root / ORPHANED_DIR).iterdir()] == ["trial=c"]
        assert "fragments of 1 trial(s) Tune had not saved moved to" in callback.summary


def _asha():  # type: ignore[no-untyped-def]
    from ray.tune.schedulers import ASHAScheduler

    return ASHAScheduler(
        time_attr="progress_step",
        metric="dev_target_mean",
        mode="max",
        grace_period=1,
        max_t=8,
        reduction_factor=2,
    )


def _report(scheduler, trial_id: str, step: int, score: float) -> str:  # type: ignore[no-untyped-def]
    trial = SimpleNamespace(trial_id=trial_id)
    if trial_id not in scheduler._trial_info:
        scheduler.on_trial_add(None, trial)
    return scheduler.on_trial_result(None, trial, {"progress_step": step, "dev_target_mean": score})


def test_a_resumed_asha_judges_trials_against_the_rungs_it_had(tmp_path):
    """Ray Tune saves no scheduler state: after a resume, ASHA's rungs were empty and a trial
    the uninterrupted sweep stops (worse than the trials before the kill) trained on. The
    rungs are saved with the search's state and restored with it; records of trials Tune
    did not restore are dropped."""
    from ray import cloudpickle

    scheduler = _asha()
    search = search_algorithm(_Candidates(8), max_concurrent=2, scheduler=scheduler)
    search._experiment = "the experiment"
    constructed = cloudpickle.dumps({"search": search, "scheduler": scheduler})  # tuner.pkl
    for trial_id, score in [("t2", 0.7), ("t1", 0.8), ("t3", 0.9), ("lost", 0.95)]:
        assert _report(scheduler, trial_id, 1, score) == "CONTINUE"
    assert _report(scheduler, "t4", 1, 0.1) == "STOP"  # the uninterrupted sweep stops it
    search.save_to_dir(str(tmp_path), "s")

    tuner = pickle.loads(constructed)  # Tune's restore: one pickle, the same scheduler in both
    restored, fresh = tuner["search"], tuner["scheduler"]
    assert restored.scheduler is fresh and _report(_asha(), "t4", 1, 0.1) == "CONTINUE"
    restored.restore_from_dir(str(tmp_path))
    trials = _trials("t1", "t2", "t3", "t4", finished=("t1", "t2", "t3", "t4"))
    for i, t in enumerate(trials):
        t.config = {"candidate": i}
    restored.reconcile(trials)  # "lost" ran after Tune's last save of its trials
    (recorded,) = [r for m, r in fresh._brackets[0]._rungs if m == 1]
    assert recorded == {"t1": 0.8, "t2": 0.7, "t3": 0.9, "t4": 0.1}
    assert restored.asha_scored() == 4  # what the resume says it restored
    assert _report(fresh, "t5", 1, 0.2) == "STOP"  # judged as the uninterrupted sweep would
    assert _report(fresh, "t6", 1, 0.85) == "CONTINUE"
    _RESTORED.clear()


def test_a_search_saved_before_the_scheduler_was_kept_restores_as_before(tmp_path):
    """A sweep folder started before the rungs were saved (its search state has none, its
    search no scheduler): resume works as it did, with fresh rungs."""
    old = search_algorithm(_Candidates(2), max_concurrent=1)
    del old.scheduler  # as unpickled from such a folder's tuner.pkl
    old._experiment = "the experiment"
    old.save_to_dir(str(tmp_path), "s")
    state = pickle.loads(next(tmp_path.glob("search_gen_state-*")).read_bytes())
    assert "asha_rungs" not in state
    restored = search_algorithm(_Candidates(2), max_concurrent=1, scheduler=_asha())
    restored.restore_from_dir(str(tmp_path))
    restored.reconcile(_trials())
    assert all(not r for _, r in restored.scheduler._brackets[0]._rungs)
    _RESTORED.clear()


def test_a_restored_search_is_not_finished_before_it_is_reconciled(tmp_path):
    """Tune asks whether the search is finished before its first step. A search state saved
    after the last trial was created, with Tune's trials saved before it: the count says
    finished, so Tune would end the sweep without that trial's point; the restored search
    is unfinished until the first step reconciles it, then counts what Tune has."""
    search = search_algorithm(_Candidates(2), max_concurrent=1)
    search._experiment, search._total_samples = "the experiment", 2
    search._counter = 2  # both trials created, the second after Tune's last save of trials
    search.save_to_dir(str(tmp_path), "s")
    restored = search_algorithm(_Candidates(2), max_concurrent=1)
    restored.restore_from_dir(str(tmp_path))
    assert not restored.is_finished()  # so Tune takes a first step
    trial = _trials("t1", finished=("t1",))
    trial[0].config = {"candidate": 0}
    _ResumeCheck(tmp_path / "results").on_step_begin(0, trial)  # reconciles, unregisters
    assert _RESTORED == [] and not restored.is_finished()  # one trial to create
    restored._counter = 2
    assert restored.is_finished()
