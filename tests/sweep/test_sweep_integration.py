"""Real Ray Tune sweeps on CPU: DeepSpeed trials (one with 2 ranks), failures, and resume
after the driver is killed."""

from __future__ import annotations

import os
import pickle
import subprocess
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.dataset as ds
import pytest
import yaml

from tests.sweep.killing import check_study, cli, kill_after, resume, start

pytestmark = pytest.mark.slow

EXPECTED_STEPS = [0, 4, 8]


def _space(assets, tmp_path: Path, name: str, search: dict, **base) -> Path:
    data = {
        "name": name,
        "base": {
            "model": {"name": str(assets["xlmr"])},
            "task": {"name": "pawsx", "dataset": str(assets["pawsx"])},
            "target_langs": ["de", "fr"],
            "optim": {"max_steps": 8, "batch_size": 8, "lr": 1e-3},
            "eval": {"every_steps": 4},
            "deepspeed": {"zero_stage": 2},
            **base,
        },
        "search": {"objective": {"metric": "dev_target_mean", "mode": "max"}, **search},
        "storage": {"path": str(tmp_path / "runs")},
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _policy_grid(policies: list[str], **search) -> dict:
    """A grid over `policies`, one trial at a time (the kill tests' search)."""
    parameters = {"policy.name": {"type": "categorical", "values": policies}}
    return {"parameters": parameters, "searcher": "grid", "max_concurrent": 1, **search}


def _rows(sweep_dir: Path):
    """Evaluation rows, and the null-split row of a run that failed before evaluating; the
    analysis rows (split train, cka) are left out."""
    df = ds.dataset(sweep_dir / "results", partitioning="hive").to_table().to_pandas()
    return df[df["split"].isin(["dev", "test"]) | df["split"].isna()]


def _assert_complete(df, seeds=(0,)):
    """Every (trial, seed) has each evaluation step exactly once per split and language."""
    for (trial, seed), g in df.groupby(["trial_id", "seed"]):
        assert seed in seeds
        counts = g.groupby(["step", "split", "language"]).size()
        assert (counts == 1).all(), (trial, seed)
        assert sorted(g["step"].unique()) == EXPECTED_STEPS
        assert len(g) == len(EXPECTED_STEPS) * 2 * 3


class _RunsCode:
    """Unpickled, it creates the file `path` (as any code could run)."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (open, (str(self.path), "w"))


def _stop_ray():
    import ray

    if ray.is_initialized():
        ray.shutdown()


def test_sweep_with_single_and_multi_worker_trials(assets, tmp_path, capsys):
    from fsf.cli.sweep import main

    space = _space(
        assets,
        tmp_path,
        "mixed",
        {
            "parameters": {  # DF on one rank, FSF on one and two: three trials
                "policy.name": {"type": "categorical", "values": ["df", "fsf"]},
                "resources.workers": {
                    "type": "categorical",
                    "values": [1, 2],
                    "when": {"policy.name": ["fsf"]},
                },
                "policy.c1": {
                    "type": "float",
                    "low": 0.001,
                    "high": 0.1,
                    "log": True,
                    "grid": [0.01],
                    "when": {"policy.name": ["fsf"]},
                },
            },
            "searcher": "grid",
            "max_concurrent": 2,
        },
        # FSF measures its V_II layers' CKA online (policy_iv: cka) on one and two ranks
        policy={"policy_iv": "cka", "cka": {"every_steps": 2, "probe_size": 8}},
    )
    try:
        code = main(["--space", str(space), "--no-progress", "--num-cpus", "4"])
    finally:
        _stop_ray()
    out = capsys.readouterr().out
    assert code == 0
    df = _rows(tmp_path / "runs" / "mixed")
    assert df["trial_id"].nunique() == 3
    assert set(df["status"]) == {"completed"}
    assert sorted(df.groupby("trial_id")["num_workers"].first()) == [1, 1, 2]
    assert set(df["policy"]) == {"df", "fsf"}
    _assert_complete(df)
    every = ds.dataset(tmp_path / "runs" / "mixed" / "results", partitioning="hive").to_table()
    cka = every.filter(pc.equal(every["metric"], "cka_v2")).to_pandas()
    assert set(cka["policy"]) == {"fsf"}  # DF has no Policy IV: nothing measured
    assert sorted(cka.groupby("trial_id")["num_workers"].first()) == [1, 2]
    for _, g in cka.groupby("trial_id"):  # before training, then every 2 steps
        assert sorted(g["step"]) == [0, 2, 4, 6, 8] and (g["value"] <= 1.0 + 1e-6).all()
    assert "fr" in out and "results:" in out
    import optuna

    study = optuna.load_study(
        study_name="mixed", storage=f"sqlite:///{tmp_path / 'runs' / 'mixed' / 'optuna.db'}"
    )
    assert len([t for t in study.trials if t.state.name == "COMPLETE"]) == 3


def test_failed_trials_are_recorded_and_the_sweep_goes_on(assets, tmp_path):
    from fsf.sweep.space import load_space
    from fsf.sweep.tune import run_sweep

    space = _space(
        assets,
        tmp_path,
        "failing",
        {
            "parameters": {"optim.lr": {"type": "categorical", "values": [1e-3, 1e12]}},
            "searcher": "grid",
            "max_concurrent": 1,
            "max_failures": 1,
        },
        policy={"name": "df"},
    )
    try:
        outcome = run_sweep(load_space(space), progress=False, num_cpus=2)
    finally:
        _stop_ray()
    assert outcome.statuses == {"finished": 1, "failed": 1}
    df = _rows(outcome.sweep_dir)
    failed = df[df["status"] == "failed"]
    assert failed["trial_id"].nunique() == 1
    assert failed["failure_reason"].str.contains("nan|inf", case=False).all()
    assert (df[df["status"] == "completed"]["lr"] == 1e-3).all()
    (reason,) = outcome.errors.values()
    assert "nan" in reason.lower() or "inf" in reason.lower()


def test_resume_after_the_driver_is_killed(assets, tmp_path):
    space = _space(
        assets,
        tmp_path,
        "killed",
        _policy_grid(["df", "fs", "ff", "fsf", "noisytune", "only-s1"]),
    )
    sweep_dir = tmp_path / "runs" / "killed"
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "PYTHONUNBUFFERED": "1"}
    proc = start("--space", str(space), env=env)
    kill_after(proc, lambda: len(list((sweep_dir / "results").glob("trial=*/seed-*.parquet"))))
    # Tune's pickles replaced by ones that run code when loaded: a resume loads none of them
    marker = tmp_path / "unpickled"
    for name in ("tuner.pkl", "searcher-state-x.pkl", "search_gen_state-x.json"):
        (sweep_dir / "tune" / name).write_bytes(pickle.dumps(_RunsCode(marker)))
    resume(str(sweep_dir), env)
    assert not marker.exists()
    df = _rows(sweep_dir)
    assert df["trial_id"].nunique() == 6
    # every grid point ran exactly once, including one handed out just before the kill
    policies = df.groupby("trial_id")["policy"].first()
    assert sorted(policies) == sorted(["df", "fs", "ff", "fsf", "noisytune", "only-s1"])
    assert set(df["status"]) == {"completed"}
    _assert_complete(df)
    import optuna

    study = optuna.load_study(study_name="killed", storage=f"sqlite:///{sweep_dir / 'optuna.db'}")
    check_study(study, list(policies.index), sweep_dir / "results")

    # Tune's saved state cut short (a kill while Tune wrote it): resume never reads it, so the
    # finished sweep stays as it is (before fsf resumed from its own records, it refused)
    state = max((sweep_dir / "tune").glob("experiment_state-*.json"))
    state.write_bytes(state.read_bytes()[: state.stat().st_size // 2])
    again = subprocess.run(cli("resume", str(sweep_dir)), env=env, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    assert "6 trials ended (6 finished, 0 failed), 0 to run again" in again.stdout
    assert "Traceback" not in again.stderr
    assert _rows(sweep_dir).equals(df)


def test_asha_stops_trials_without_marking_them_failed(assets, tmp_path):
    from fsf.results import best_per_language
    from fsf.sweep.space import load_space
    from fsf.sweep.tune import run_sweep

    space = _space(
        assets,
        tmp_path,
        "asha",
        {
            "parameters": {"optim.lr": {"type": "float", "low": 1e-4, "high": 3e-3, "log": True}},
            "scheduler": {"type": "asha", "grace_period": 4, "reduction_factor": 2},
            "num_trials": 4,
            "max_concurrent": 2,
        },
    )
    try:
        outcome = run_sweep(load_space(space), progress=False, num_cpus=2)
    finally:
        _stop_ray()
    assert outcome.errors == {}
    df = _rows(outcome.sweep_dir)
    statuses = df.groupby("trial_id")["status"].first()
    assert set(statuses) <= {"completed", "stopped"} and "completed" in set(statuses)
    for trial, g in df.groupby("trial_id"):
        assert (g["step"].max() == 8) == (statuses[trial] == "completed")
    # the study says the same: a trial ASHA stopped is PRUNED (with the value it stopped
    # at), a whole one COMPLETE
    import optuna

    study = optuna.load_study(
        study_name="asha", storage=f"sqlite:///{outcome.sweep_dir / 'optuna.db'}"
    )
    states = {
        t.user_attrs["tune_trial_id"]: t.state.name
        for t in study.trials
        if "tune_trial_id" in t.user_attrs
    }
    assert states == {t: "COMPLETE" if s == "completed" else "PRUNED" for t, s in statuses.items()}
    assert all(t.value is not None for t in study.trials if t.state.name == "PRUNED")
    per = best_per_language(outcome.sweep_dir)
    assert {e["language"] for e in per.languages} == {"de", "fr"}
    assert per.target_mean is not None


def test_a_resumed_asha_sweep_keeps_the_rungs_of_trials_before_the_kill(assets, tmp_path):
    """Ray Tune saves no scheduler state; a resume rebuilds ASHA's rungs from the results.
    The driver is killed once Tune has saved a finished trial, before the sweep ends: the
    resumed rungs hold every trial finished before the kill, which never report again (with
    Tune's own restore the rungs held only the trials run after it, against which later
    trials were judged)."""
    import re

    policies = ["df", "fs", "ff", "fsf"]
    space = _space(
        assets,
        tmp_path,
        "asha-killed",
        _policy_grid(
            policies, scheduler={"type": "asha", "grace_period": 300, "reduction_factor": 2}
        ),
        deepspeed={"zero_stage": 0},
        optim={"max_steps": 600, "batch_size": 8, "lr": 1e-3},
        eval={"every_steps": 300},  # a few seconds a trial: time to kill between trials
    )
    sweep_dir = tmp_path / "runs" / "asha-killed"
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "PYTHONUNBUFFERED": "1"}
    proc = start("--space", str(space), env=env)
    kill_after(proc, lambda: _saved_trials(sweep_dir / "tune", "TERMINATED"), n=1)
    assert _saved_trials(sweep_dir / "tune", "TERMINATED") < len(policies)  # killed mid-way
    said = resume(str(sweep_dir), env)
    trials = set(_rows(sweep_dir)["trial_id"])
    assert len(trials) == len(policies)
    assert "note: resumed from the Optuna study and the results:" in said
    ended = int(re.search(r"(\d+) trials ended \((\d+) finished, 0 failed\)", said)[1])
    scored = re.search(r"ASHA's rungs rebuilt from the results with the scores of (\d+)", said)
    assert 1 <= ended < len(policies) and int(scored[1]) == ended  # each one's rung-300 score


def _saved_trials(tune_dir: Path, status: str | None = None) -> int:
    """How many trials (of `status`, e.g. TERMINATED) Tune's saved experiment state lists (0
    while none is saved)."""
    import json

    for path in tune_dir.glob("experiment_state-*.json"):
        try:
            trials = [json.loads(t) for t, _ in json.loads(path.read_text())["trial_data"]]
        except (OSError, ValueError, KeyError):
            return 0
        return sum(1 for t in trials if status is None or t["status"] == status)
    return 0


def _saved_search_count(tune_dir: Path) -> int:
    """How many trials Tune's saved search state (search_gen_state-*.json, a pickle despite
    its name) has created."""
    import pickle

    for path in tune_dir.glob("search_gen_state-*.json"):
        try:
            return int(pickle.loads(path.read_bytes())["counter"])
        except (OSError, pickle.UnpicklingError, EOFError, KeyError):
            return 0
    return 0


def test_resume_when_tunes_saved_files_disagree(assets, tmp_path):
    """Tune saves its trials (experiment_state) and its search state (search_gen_state,
    searcher-state) as separate files, and uploads them to S3 separately: a driver killed
    in between leaves one older than the other, or one not there at all. Resume must still
    run every grid point once, neither hang on a slot held by a trial Tune never restored
    nor lose a point. A resume reads none of Tune's files (the study and the results are
    fsf's record), so one sweep is torn both ways at once: its trials file is the one of an
    early save and its search state was never saved. (Each way alone was a test of its own
    while Tune's files were restored; with Tune's restore, "search never saved" could create
    no new trial and fsf refused.) Then the finished sweep's trials file loses its last
    trial, and a resume runs nothing again."""
    import shutil
    import time

    policies = ["df", "fs", "ff", "fsf", "noisytune", "only-s1"]
    space = _space(
        assets,
        tmp_path,
        "torn",
        _policy_grid(policies),
        deepspeed={"zero_stage": 0},
        optim={"max_steps": 600, "batch_size": 8, "lr": 1e-3},
        eval={"every_steps": 300},  # a few seconds a trial: time to see Tune save each
    )
    sweep_dir = tmp_path / "runs" / "torn"
    tune_dir = sweep_dir / "tune"
    early = tmp_path / "early"
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "PYTHONUNBUFFERED": "1"}
    proc = start("--space", str(space), env=env)

    first: list[int] = []

    def snapshot_then_count() -> int:
        # keep the files of the first save both of whose files know the same trials; then
        # count how many trials later saves (both files) have added
        n = _saved_trials(tune_dir)
        if not first and n and n == _saved_search_count(tune_dir):
            early.mkdir()
            for path in tune_dir.glob("experiment_state-*.json"):
                shutil.copy2(path, early / path.name)
            first.append(n)
        return (
            min(_saved_trials(tune_dir), _saved_search_count(tune_dir)) - first[0] if first else 0
        )

    kill_after(proc, snapshot_then_count, n=2)
    for path in early.iterdir():  # the torn state: Tune's trials as an earlier save knew them
        shutil.copy2(path, tune_dir / path.name)
    assert _saved_trials(tune_dir) < _saved_search_count(tune_dir)
    for path in tune_dir.glob("search*state-*"):  # and its search state never saved
        path.unlink()
    began = time.time()
    resume(str(sweep_dir), env)
    assert time.time() - began < 300
    df = _rows(sweep_dir)
    by_trial = df.groupby("trial_id")["policy"].first()
    assert sorted(by_trial) == sorted(policies)  # every grid point once
    assert set(df["status"]) == {"completed"}
    steps = df.groupby(["trial_id", "step", "split", "language"]).size()
    assert (steps == 1).all() and len(steps) == len(policies) * 3 * 2 * 3
    import optuna

    study = optuna.load_study(study_name="torn", storage=f"sqlite:///{sweep_dir / 'optuna.db'}")
    check_study(study, list(by_trial.index), sweep_dir / "results")

    # The finished sweep, whose Tune trials file misses its last trial and every trial it
    # has finished (saved before that trial was created, its search state after; a kill
    # between the two files or their uploads): the search's count said finished, so before
    # fsf checked it the resume ended at once, that trial neither known to Tune nor set
    # aside. Every trial is known to have finished; nothing runs again or is set aside.
    import json

    path = max(tune_dir.glob("experiment_state-*.json"))
    state = json.loads(path.read_text())
    state["trial_data"].pop()
    path.write_text(json.dumps(state))
    said = resume(str(sweep_dir), env)
    n = len(policies)
    assert f"{n} trials ended ({n} finished, 0 failed), 0 to run again" in said
    again = _rows(sweep_dir)
    assert sorted(again["trial_id"]) == sorted(df["trial_id"])  # the same rows, no more
    assert not (sweep_dir / "results" / ".orphaned").exists()
