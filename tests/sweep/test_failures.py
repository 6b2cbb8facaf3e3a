"""Failures that must leave a trace, found before Ray starts or after it stopped: unwritable
folders, a driver killed in its first seconds, failures that could not be recorded, the
sweep's exit code. Fast: no Ray instance is started here."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from types import SimpleNamespace

import optuna
import pyarrow.parquet as pq
import pytest
import yaml

from fsf.cli.sweep import _finish, main
from fsf.errors import FsfError
from fsf.results import read_results
from fsf.results.fragments import finalise_statuses
from fsf.sweep.folder import _tune_state_saved, restart_stillborn
from fsf.sweep.progress import ProgressCallback, _last_line
from fsf.sweep.tune import SweepOutcome
from tests.fs import read_only
from tests.results.helpers import ev2, run, write


def _space(tmp_path: Path, name: str = "fail") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "name": name,
                "base": {"optim": {"max_steps": 2}},
                "storage": {"path": str(tmp_path / "runs")},
            }
        )
    )
    return path


def _sweep_folder(root: Path, name: str = "sw") -> Path:
    folder = root / name
    (folder / "tune").mkdir(parents=True)
    (folder / "space.yaml").write_text(yaml.safe_dump({"name": name}))
    (folder / "sweep.json").write_text(json.dumps({"name": name}))
    (folder / "tune" / "tuner.pkl").write_bytes(b"pickle")
    (folder / "tune" / "experiment_state-2026-12-01_00-00-00.json").write_text("{}")
    return folder


# ---------------------------------------------------------------------- exit code


def _outcome(tmp_path: Path, **kw) -> SweepOutcome:  # type: ignore[no-untyped-def]
    base = dict(
        sweep_dir=tmp_path,
        results_dir=tmp_path / "results",
        num_trials=2,
        statuses={"finished": 1, "failed": 1},
        errors={"t2": "TrainingDiverged: the training loss is nan at step 9"},
    )
    return SweepOutcome(**{**base, **kw})


def test_a_sweep_with_some_failures_recorded_exits_0_and_names_the_reason(tmp_path, capsys):
    assert _finish(_outcome(tmp_path)) == 0
    out = capsys.readouterr().out
    assert "trial t2 failed: TrainingDiverged: the training loss is nan at step 9" in out


def test_a_sweep_whose_trials_all_failed_exits_1(tmp_path, capsys):
    code = _finish(_outcome(tmp_path, statuses={"failed": 2}))
    assert code == 1
    assert "every trial of the sweep failed (2)" in capsys.readouterr().err


def test_a_failure_that_could_not_be_recorded_exits_1(tmp_path, capsys):
    code = _finish(_outcome(tmp_path, unrecorded=["t2"]))
    assert code == 1
    captured = capsys.readouterr()
    assert "[NOT recorded in the results]" in captured.out
    assert "could not record their failure" in captured.err


def test_the_failure_line_is_the_exception_not_its_module_path(tmp_path):
    tb = "Traceback (most recent call last):\n  ...\nfsf.train.worker.TrainingDiverged: nan"
    assert _last_line(tb) == "TrainingDiverged: nan"
    assert _last_line(None) == "unknown error"
    # an exception whose message runs over several lines is named by its first (Ray's
    # ActorDiedError: its last line was "The actor is dead because ...")
    died = (
        "Traceback (most recent call last):\n  ...\nray.exceptions.ActorDiedError: The actor "
        "died unexpectedly before finishing this task.\n\tclass_name: ImplicitFunc\n\tThe "
        "actor is dead because its worker process has died."
    )
    assert _last_line(died).startswith("ActorDiedError: The actor died unexpectedly")
    # as Tune writes it: each failure under a `Failure #` line, the exception without its name
    tune_wrote = (
        "Failure # 1 (occurred at 2026-12-07)\nTraceback ...\nValueError: first\n"
        "Failure # 2 (occurred at 2026-12-07)\nThe actor died unexpectedly before finishing "
        "this task.\n\tclass_name: ImplicitFunc\nThe actor is dead because its worker died."
    )
    assert _last_line(tune_wrote) == "The actor died unexpectedly before finishing this task."
    # a message line that looks like a field ("Worker ID: ...") is not an exception
    assert _last_line("ValueError: bad\nWorker ID: 53c5") == "ValueError: bad"
    error = tmp_path / "error.txt"
    error.write_text(tb)
    cb = ProgressCallback(total=1, objective=SimpleNamespace(metric="m", mode="max"), enabled=False)
    trial = SimpleNamespace(trial_id="t1", error_file=str(error), get_error=lambda: None)
    cb.on_trial_error(0, [], trial)
    assert cb.errors == {"t1": "TrainingDiverged: nan"}


def test_finalise_statuses_returns_the_recorded_reasons(tmp_path):
    root = tmp_path / "results"
    write(
        root,
        [
            run("ok", [ev2(0, 0.5, 0.4)]),
            run("bad", [ev2(0, 0.5, 0.4)], status="failed", reason="TrainingDiverged: nan"),
            run("killed", [ev2(0, 0.5, 0.4)], status="running"),
            run("asha", [ev2(0, 0.5, 0.4)], status="running"),
            run("ended", [ev2(0, 0.5, 0.4), dataclasses.replace(ev2(8, 0.6, 0.5), is_final=True)],
                status="running"),
        ],
    )  # fmt: skip
    recorded, notes = finalise_statuses(root, {"killed": "RayActorError: the actor died"})
    assert recorded == {"bad": "TrainingDiverged: nan", "killed": "RayActorError: the actor died"}
    assert notes == []
    status = {
        t: pq.read_table(root / f"trial={t}" / "seed-0.parquet")["status"][0].as_py()
        for t in ("killed", "asha", "ended")
    }
    # `ended`: Tune stopped it after its final evaluation was recorded (a whole run)
    assert status == {"killed": "failed", "asha": "stopped", "ended": "completed"}


def test_finalise_statuses_reports_what_it_cannot_write(tmp_path):
    root = tmp_path / "results"
    write(root, [run("killed", [ev2(0, 0.5, 0.4)], status="running")])
    with read_only(root):
        recorded, notes = finalise_statuses(root, {"killed": "RayActorError"})
    assert recorded == {} and len(notes) == 1 and "could not mark" in notes[0]


# ---------------------------------------------------------------------- folders


def test_a_storage_root_that_cannot_be_written_is_exit_1_before_ray_starts(tmp_path, capsys):
    space = _space(tmp_path)
    locked = tmp_path / "locked"
    locked.mkdir()
    with read_only(locked):
        code = main(["--space", str(space), "--storage-path", str(locked / "sub"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 1, err
    assert f"cannot write the sweep folder {locked / 'sub' / 'fail'}" in err
    assert "Traceback" not in err and len(err.splitlines()) == 1


def test_a_resume_onto_an_unwritable_results_folder_is_exit_1_before_ray_starts(tmp_path, capsys):
    folder = _sweep_folder(tmp_path / "runs")
    (folder / "space.yaml").write_text(_space(tmp_path).read_text())
    (folder / "results").mkdir()
    with read_only(folder / "results"):
        code = main(["resume", str(folder), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 1, err
    assert f"cannot write results to {folder / 'results'}" in err


def test_fsf_train_with_an_unwritable_output_dir_is_exit_1_before_training(tmp_path, capsys):
    from fsf.cli.train import main as train

    out = tmp_path / "out"
    out.mkdir()
    with read_only(out):
        code = train(["--set", f"output_dir={out}", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 1 and f"cannot write results to {out / 'run' / 'results'}" in err, err


def test_a_report_that_cannot_be_written_is_exit_1(tmp_path, capsys):
    root = tmp_path / "sweep"
    write(root / "results", [run("t0", [ev2(0, 0.5, 0.4, 0.3), ev2(10, 0.8, 0.6, 0.5)])])
    out = tmp_path / "report"
    out.mkdir()
    with read_only(out):
        code = main(["report", str(root), "--out", str(out / "r")])
    err = capsys.readouterr().err
    assert code == 1 and "cannot write the report to" in err and "--out DIR" in err, err


def test_a_file_uri_is_resumed_as_the_local_folder_it_names(tmp_path, capsys):
    """`fsf resume file:///path` is `fsf resume /path`: the same folder, the same checks, the
    same messages naming the local path."""
    folder = _sweep_folder(tmp_path / "runs")
    (folder / "space.yaml").write_text(_space(tmp_path).read_text())
    (folder / "results").mkdir()
    with read_only(folder / "results"):
        code = main(["resume", folder.as_uri(), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 1, err
    assert f"cannot write results to {folder / 'results'}:" in err and "file:" not in err


def test_resume_has_no_trust_flag_any_more(capsys):
    """Nothing a resume reads is unpickled (the study, the results, YAML and JSON), so
    there is no ownership check to override."""
    with pytest.raises(SystemExit) as exc:
        main(["resume", "DIR", "--trust"])
    assert exc.value.code == 2 and "--trust" in capsys.readouterr().err


# ---------------------------------------------------------------------- killed early


def test_what_counts_as_saved_tune_state(tmp_path):
    tune = tmp_path / "tune"
    assert not _tune_state_saved(tune)
    tune.mkdir()
    (tune / "tuner.pkl").write_bytes(b"x")
    assert not _tune_state_saved(tune)  # constructed, never saved
    (tune / "experiment_state-2026-12-01_00-00-00.json").write_text("{}")
    assert _tune_state_saved(tune)


def test_what_a_driver_killed_in_its_first_seconds_leaves_may_be_taken_over(tmp_path):
    from fsf.sweep.folder import _stillborn

    folder = tmp_path / "sw"
    folder.mkdir()
    (folder / "space.yaml").write_text("name: sw\n")  # killed before sweep.json
    assert _stillborn(folder)
    (folder / "sweep.json").write_text("{}")
    (folder / "optuna.db").write_bytes(b"")
    (folder / "tune").mkdir()
    (folder / "tune" / "tuner.pkl").write_bytes(b"x")
    assert _stillborn(folder)
    write(folder / "results", [run("begun", [ev2(0, 0.5, 0.4)], status="running")])
    assert not _stillborn(folder)  # a trial had begun: resume it (its rows move aside)
    (folder / "results" / "trial=begun" / "seed-0.parquet").unlink()
    assert _stillborn(folder)
    (folder / "notes.txt").write_text("mine")
    assert not _stillborn(folder)  # something fsf did not write: never taken over
    (folder / "notes.txt").unlink()
    (folder / "tune" / "experiment_state-x.json").write_text("{}")
    assert not _stillborn(folder)  # Tune saved its state: a real sweep


def test_a_stillborn_sweep_restarts_afresh(tmp_path):
    """Killed before Tune saved anything: the study (points enqueued, one handed out) goes,
    the fragment of the trial that had begun is moved aside, Tune's partial folder goes."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    from fsf.sweep.space import validate_space

    spec = validate_space({"name": "sb"})
    folder = _sweep_folder(tmp_path)
    url = f"sqlite:///{folder / 'optuna.db'}"
    study = optuna.create_study(study_name="sb", storage=url)
    study.enqueue_trial({"x": 1})
    study.ask()  # handed out, RUNNING
    write(folder / "results", [run("begun", [ev2(0, 0.5, 0.4)], status="running")])
    notes = restart_stillborn(spec, folder, url)
    assert "starting it afresh" in notes[0] and ".orphaned" in notes[0]
    assert optuna.get_all_study_names(url) == []
    assert not (folder / "tune").exists()
    assert (folder / "results" / ".orphaned" / "trial=begun" / "seed-0.parquet").is_file()
    assert read_results(folder).table.num_rows == 0


def test_a_study_with_finished_trials_but_no_tune_state_is_not_wiped(tmp_path):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    from fsf.sweep.space import validate_space

    folder = _sweep_folder(tmp_path)
    url = f"sqlite:///{folder / 'optuna.db'}"
    study = optuna.create_study(study_name="sb", storage=url)
    study.tell(study.ask(), 0.5)
    with pytest.raises(FsfError, match="finished trial"):
        restart_stillborn(validate_space({"name": "sb"}), folder, url)
    assert optuna.get_all_study_names(url) == ["sb"]


def test_a_completed_run_read_back_gives_optuna_the_same_objective(tmp_path):
    """A run completed before an interruption is not trained again: its recorded evaluations
    go through the same objective tracker, which must then report what the run reported."""
    from fsf.results import ParquetReporter, completed_evaluations
    from fsf.sweep.trial import _ObjectiveTracker
    from tests.results.helpers import info

    evs = [ev2(0, 0.5, 0.4, 0.3), ev2(5, 0.9, 0.7, 0.6), ev2(10, 0.8, 0.6, 0.5)]
    for ev in evs:
        ev.total_steps = 10
    evs[-1].is_final = True
    writer = ParquetReporter(tmp_path, info("t1"))
    live = _ObjectiveTracker(["dev_target_mean"], 0, [], "source-dev")
    for ev in evs:
        writer.report(ev)
        reported = live.scalars(ev)
    writer.finish("completed")
    again = _ObjectiveTracker(["dev_target_mean"], 0, [], "source-dev")
    for ev in completed_evaluations(tmp_path, "t1", 0):
        replayed = again.scalars(ev)
    assert replayed["checkpoint_step"] == reported["checkpoint_step"] == 5
    for key in ("dev_target_mean", "dev_target_mean_seed", "progress_step", "is_final"):
        assert replayed[key] == pytest.approx(reported[key]), key


# ---------------------------------------------------------------------- a lost baseline


def _confirmed_without_baseline(root: Path, baseline_fails: bool = True) -> Path:
    """A sweep whose confirmation re-ran FSF and DF on two seeds; DF's trial failed (its
    worker was killed) unless `baseline_fails` is false."""
    fsf, df = {"policy": "fsf"}, {"policy": "df"}
    write(
        root / "results",
        [run("s1", [ev2(10, 0.8, 0.7)], params=fsf), run("s2", [ev2(10, 0.8, 0.5)], params=df)],
    )
    (root / "sweep.json").write_text(json.dumps({"name": "lost"}))
    status = "failed" if baseline_fails else "completed"
    write(
        root / "confirm" / "results",
        [
            run("c1", [ev2(10, 0.8, 0.7)], seed=100, params=fsf),
            run("c1", [ev2(10, 0.8, 0.72)], seed=101, params=fsf),
            run(
                "c2",
                [ev2(10, 0.8, 0.6)],
                seed=100,
                params=df,
                policy="df",
                status=status,
                reason="RayActorError: the actor died",
            ),
        ],
    )
    meta = {"name": "lost", "stage": "confirm", "seeds": [100, 101], "baseline": {}}
    (root / "confirm" / "sweep.json").write_text(json.dumps(meta))
    return root


def test_a_confirmation_that_lost_its_baseline_says_so_and_the_sweep_exits_1(tmp_path, capsys):
    sweep = _confirmed_without_baseline(tmp_path / "lost")
    outcome = _outcome(sweep, results_dir=sweep / "results", statuses={"finished": 2})
    assert _finish(outcome) == 1
    out, err = capsys.readouterr()
    line = "baseline:  MISSING for every row: no configuration matching policy.name=df has a score"
    assert out.count(line) == 2  # the confirmed ranking and the per-language answer
    assert (
        "error: the sweep's answer has no comparison with the baseline for de, target-mean" in err
    )
    # fsf best says it too, on its own line
    assert main(["best", str(sweep), "--per-language"]) == 0
    assert line in capsys.readouterr().out


def test_a_baseline_that_shares_no_seed_is_missing_for_the_rest(tmp_path, capsys):
    sweep = _confirmed_without_baseline(tmp_path / "lost", baseline_fails=False)
    assert main(["best", str(sweep), "--per-language"]) == 0
    out = capsys.readouterr().out
    assert "baseline:  MISSING" not in out  # DF is the baseline row, FSF shares seed 100
    outcome = _outcome(sweep, results_dir=sweep / "results", statuses={"finished": 2})
    assert _finish(outcome) == 0


def test_a_search_that_never_ran_the_baseline_says_so_but_exits_0(tmp_path, capsys):
    sweep = tmp_path / "nodf"
    write(sweep / "results", [run("s1", [ev2(10, 0.8, 0.7)], params={"policy": "fsf"})])
    outcome = _outcome(sweep, results_dir=sweep / "results", statuses={"finished": 1})
    assert _finish(outcome) == 0
    assert "baseline:  MISSING for every row" in capsys.readouterr().out


def test_the_closing_lines_say_where_checkpoints_and_predictions_are(tmp_path, capsys):
    sweep = _confirmed_without_baseline(tmp_path / "art", baseline_fails=False)
    for seed in (100, 101):
        run_dir = sweep / "confirm" / "runs" / "c1" / f"seed-{seed}"
        (run_dir / "checkpoint").mkdir(parents=True)
        (run_dir / "predictions" / "xnli").mkdir(parents=True)
    (sweep / "confirm" / "runs" / "c2" / "seed-100" / "predictions").mkdir(parents=True)
    outcome = _outcome(sweep, results_dir=sweep / "results", statuses={"finished": 2})
    assert _finish(outcome) == 0
    lines = capsys.readouterr().out.splitlines()
    runs = sweep / "confirm" / "runs"
    at = lines.index(f"checkpoints: {runs / 'c1' / 'seed-100' / 'checkpoint'}")
    assert lines[at + 1] == f"{'':13}{runs / 'c1' / 'seed-101' / 'checkpoint'}"
    assert lines[at + 2] == f"predictions: {runs / 'c1' / 'seed-100' / 'predictions'}"
    assert lines[at + 4] == f"{'':13}{runs / 'c2' / 'seed-100' / 'predictions'}"
    assert lines[at - 1] == f"results: {sweep / 'results'}"
