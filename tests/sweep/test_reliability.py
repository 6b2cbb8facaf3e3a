"""A sweep's driver SIGKILLed at five moments, from its first milliseconds to the middle of a
resume, and resumed each time; a sweep whose disk fills up. Real Ray Tune sweeps of the
tiny encoder (tests/sweep/killing.py has the kill-and-resume helpers).

The five kills happen to one sweep, one after the other, so that the whole chain costs one
sweep's trials plus six driver starts: each kill is followed by the recovery a user would
run (a fresh run after the first, `fsf-sweep resume` after the others), and the state left
behind is checked after every kill (every fragment readable, no row twice); the last resume
runs to completion and every row is checked. A fragment that was complete when its driver
was killed must be byte-for-byte the same at the end: a completed result is never
overwritten by a re-run of its trial."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from fsf.results import read_results
from tests.fs import small_disk
from tests.sweep.killing import check_study, cli, resume

pytestmark = pytest.mark.slow

POLICIES = ["df", "fs", "ff", "fsf", "noisytune"]
STEPS = [0, 2, 4]


def _space(assets, tmp_path: Path, name: str, policies: list[str], storage: Path) -> Path:
    data = {
        "name": name,
        "base": {
            "model": {"name": str(assets["xlmr"])},
            "task": {"name": "pawsx", "dataset": str(assets["pawsx"])},
            "target_langs": ["de", "fr"],
            "optim": {"max_steps": 4, "batch_size": 8, "lr": 1e-3},
            "eval": {"every_steps": 2},
        },
        "search": {
            "parameters": {"policy.name": {"type": "categorical", "values": policies}},
            "searcher": "grid",
            "max_concurrent": 1,
        },
        "storage": {"path": str(storage)},
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _env() -> dict[str, str]:
    return {**os.environ, "RAY_AUTH_MODE": "disabled", "PYTHONUNBUFFERED": "1"}


def _start(log: Path, *args: str) -> subprocess.Popen:
    with open(log, "ab") as fh:
        return subprocess.Popen(
            cli(*args),
            env=_env(),
            start_new_session=True,  # the driver and its Ray instance: one process group
            stdout=fh,
            stderr=subprocess.STDOUT,
        )


def _kill_when(proc: subprocess.Popen, ready: Callable[[], bool], what: str) -> float:
    """SIGKILL the driver's process group the moment `ready()` holds; returns the seconds
    since the call. Fails if the driver ended (or took 240 s) before that moment came."""
    t0 = time.monotonic()
    try:
        while not ready():
            assert proc.poll() is None, f"the driver ended before {what}"
            assert time.monotonic() - t0 < 240, f"no {what} within 240 s"
            time.sleep(0.02)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    elapsed = time.monotonic() - t0
    time.sleep(1)  # let the kernel reap the Ray processes of the group
    return elapsed


def _statuses(sweep: Path) -> dict[str, str]:
    """Fragment (relative path) -> its status, for the fragments that read."""
    out = {}
    for path in sorted((sweep / "results").glob("trial=*/seed-*.parquet")):
        try:
            col = pq.read_table(path, columns=["status"])["status"].to_pylist()
        except Exception:
            continue
        out[str(path.relative_to(sweep))] = col[0] if len(set(col)) == 1 else "mixed"
    return out


def _experiment_state_mtime(sweep: Path) -> float:
    return max((p.stat().st_mtime for p in (sweep / "tune").glob("experiment_state-*")), default=0)


def _check_consistent(sweep: Path) -> None:
    """What a kill may leave: every fragment readable and one status each, no row twice."""
    if not (sweep / "results").exists():
        return
    res = read_results(sweep)
    assert res.skipped == [], res.skipped
    df = res.table.to_pandas()
    key = ["trial_id", "seed", "step", "split", "language", "metric"]
    assert not df.duplicated(key).any()
    assert (df.groupby(["trial_id", "seed"])["status"].nunique() == 1).all()


def test_a_sweep_killed_at_five_moments_is_resumed_to_completion(assets, tmp_path):
    storage = tmp_path / "runs"
    space = _space(assets, tmp_path, "chain", POLICIES, storage)
    sweep = storage / "chain"
    log = tmp_path / "driver.log"
    moments: dict[str, float] = {}

    # 1. its first milliseconds: the sweep folder exists, Ray is not up
    proc = _start(log, "--space", str(space))
    moments["first milliseconds"] = _kill_when(proc, sweep.exists, "a sweep folder")
    _check_consistent(sweep)
    # a fresh run of the same space takes over what is left (or an empty folder)

    # 2. its first seconds: Tune built (tuner.pkl), before its first fragment
    proc = _start(log, "--space", str(space))
    moments["first seconds"] = _kill_when(
        proc, lambda: (sweep / "tune" / "tuner.pkl").exists(), "tune/tuner.pkl"
    )
    _check_consistent(sweep)

    # 3. in the middle of a trial: a fragment is being written (status running)
    proc = _start(log, "resume", str(sweep))
    moments["mid-trial"] = _kill_when(
        proc, lambda: "running" in _statuses(sweep).values(), "a running trial"
    )
    _check_consistent(sweep)

    # 4. the moment a trial completes, before Tune saves that it did
    done = {p for p, s in _statuses(sweep).items() if s == "completed"}
    proc = _start(log, "resume", str(sweep))
    moments["a trial just completed"] = _kill_when(
        proc,
        lambda: {p for p, s in _statuses(sweep).items() if s == "completed"} - done,
        "a newly completed trial",
    )
    _check_consistent(sweep)
    completed = {
        p: (sweep / p).read_bytes() for p, s in _statuses(sweep).items() if s == "completed"
    }
    assert completed

    # 5. during a resume: Tune restored the sweep and saved its state again
    saved = _experiment_state_mtime(sweep)
    proc = _start(log, "resume", str(sweep))
    moments["during a resume"] = _kill_when(
        proc, lambda: _experiment_state_mtime(sweep) > saved, "a restored, re-saved state"
    )
    _check_consistent(sweep)

    # the last resume runs to completion
    resume(str(sweep), _env())
    res = read_results(sweep)
    assert res.skipped == []
    df = res.table.to_pandas()
    df = df[df["split"].isin(["dev", "test"])]
    policies = df.groupby("trial_id")["policy"].first()
    assert sorted(policies) == sorted(POLICIES), policies  # every grid point once
    assert set(df["status"]) == {"completed"}
    for (trial, _seed), g in df.groupby(["trial_id", "seed"]):
        assert sorted(g["step"].unique()) == STEPS, trial
        assert len(g) == len(STEPS) * 2 * 3, trial  # steps x splits x languages, once each
    for path, data in completed.items():  # never re-run, never overwritten
        # (a trial Tune's saved state never knew is an orphan: its fragment moves, intact,
        # to results/.orphaned/ and its point runs again under a new id)
        orphaned = sweep / "results" / ".orphaned" / Path(path).relative_to("results")
        kept = sweep / path if (sweep / path).exists() else orphaned
        assert kept.read_bytes() == data, path
    import optuna

    study = optuna.load_study(study_name="chain", storage=f"sqlite:///{sweep / 'optuna.db'}")
    check_study(study, list(policies.index), sweep / "results")
    assert len(moments) == 5, moments


def test_a_full_disk_is_a_clear_failure_with_nothing_half_written(assets, tmp_path):
    """The results folder fills up (a 16 KiB tmpfs, smaller than one fragment): every trial
    fails writing its rows, and neither the rows nor the failures can be recorded. The driver
    says so and exits 1; the results folder holds no file, whole or partial."""
    storage = tmp_path / "runs"
    space = _space(assets, tmp_path, "full", ["df", "fsf"], storage)
    sweep = storage / "full"
    sweep.mkdir(parents=True)
    # the folder a driver killed in its first seconds leaves; its results on a small disk
    (sweep / "space.yaml").write_text(space.read_text())
    with small_disk(sweep / "results", kib=16):
        proc = subprocess.run(
            cli("resume", str(sweep)),
            env=_env(),
            capture_output=True,
            text=True,
            timeout=600,
            start_new_session=True,
        )
        left = [p.name for p in (sweep / "results").rglob("*") if p.is_file()]
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert "No space left on device" in proc.stdout
    assert "the failure could not be recorded" in proc.stdout
    assert "[NOT recorded in the results]" in proc.stdout
    assert "could not record their failure" in proc.stderr
    assert "every trial of the sweep failed (2)" in proc.stderr
    assert left == [], left  # nothing half-written (no fragment, no temp file)
