"""Resume after a crash between Optuna's write and Tune's state save: no grid point is lost,
no orphaned trial's rows are duplicated. Fast: the searcher and the callback are driven by
hand, the way Tune drives them, without starting Ray."""

from __future__ import annotations

import pickle
from pathlib import Path
from types import SimpleNamespace

import optuna
import pytest
from optuna.trial import TrialState

from fsf.results import read_results
from fsf.results.fragments import ORPHANED_DIR
from fsf.sweep._callbacks import _OrphanFragments
from fsf.sweep.searcher import _ResumableOptunaSearch
from fsf.sweep.space import define_by_run, validate_space
from tests.results.helpers import ev2, run, write

POLICIES = ["df", "fs", "ff", "fsf"]


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

    resumed = pickle.loads(as_constructed)
    resumed.restore(str(tmp_path / "searcher.pkl"))
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

    resumed = pickle.loads(as_constructed)
    resumed.restore(str(tmp_path / "searcher.pkl"))
    assert len(resumed.orphans) == 2
    again = resumed.suggest("t4")["policy.name"]
    resumed.save(str(tmp_path / "searcher.pkl"))  # saved, then killed once more

    twice = pickle.loads(as_constructed)
    twice.restore(str(tmp_path / "searcher.pkl"))
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
    resumed = pickle.loads(as_constructed)
    resumed.restore(str(tmp_path / "searcher.pkl"))
    assert resumed.orphans == []
    resumed.on_trial_complete("t2", {"dev_target_mean": 0.7})
    study = optuna.load_study(study_name="resume", storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    assert [t.state for t in study.trials[:2]] == [TrialState.RUNNING, TrialState.COMPLETE]


@pytest.mark.parametrize("first_step_trials", [["a", "b"], ["a", "b", "c"]])
def test_fragments_of_trials_tune_does_not_know_leave_the_results(tmp_path, first_step_trials):
    root = tmp_path / "results"
    write(root, [run(t, [ev2(0, 0.5, 0.4), ev2(10, 0.8, 0.6)]) for t in ("a", "b", "c")])
    callback = _OrphanFragments(root)
    trials = [SimpleNamespace(trial_id=t) for t in first_step_trials]
    callback.on_step_begin(0, trials)
    write(root, [run("d", [ev2(0, 0.5, 0.4)])])  # a new trial of the resumed sweep
    callback.on_step_begin(1, [*trials, SimpleNamespace(trial_id="d")])

    kept = set(read_results(root).table.column("trial_id").to_pylist())
    assert kept == {*first_step_trials, "d"}
    if "c" in first_step_trials:
        assert not (root / ORPHANED_DIR).exists()
    else:
        assert [p.name for p in (root / ORPHANED_DIR).iterdir()] == ["trial=c"]
