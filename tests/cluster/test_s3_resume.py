"""A sweep whose folder is in S3 (a local moto endpoint) and whose study is a journal file on
the driver's disk: its driver is SIGKILLed mid-sweep and `fsf-sweep resume s3://...` finishes
it. Every grid point runs once, no row is lost or duplicated, orphans' rows leave the results.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid

import pytest

from fsf.results import read_results
from fsf.results.storage import location
from tests.cluster.test_local_cluster import _check_rows, _space

pytestmark = pytest.mark.slow

POLICIES = ["df", "fs", "ff", "fsf", "noisytune", "only-s1"]


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "fsf.sweep.cli", *args, "--no-progress", "--num-cpus", "2"]


def test_a_sweep_in_s3_resumes_after_its_driver_is_killed(s3, assets, tmp_path):
    bucket = s3.create_bucket(f"sweeps-{uuid.uuid4().hex[:8]}")
    space = _space(
        assets,
        tmp_path,
        "killed-s3",
        {
            "parameters": {"policy.name": {"type": "categorical", "values": POLICIES}},
            "searcher": "grid",
            "max_concurrent": 1,
        },
    )
    sweep = f"{bucket}/killed-s3"
    env = {**os.environ, **s3.env, "RAY_AUTH_MODE": "disabled", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        _cli("--space", str(space), "--storage-path", bucket),
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    results = location(sweep) / "results"
    try:
        deadline = time.time() + 240
        done: list = []
        while time.time() < deadline and proc.poll() is None:
            done = results.glob("trial=*/seed-*.parquet") if results.exists() else []
            if len(done) >= 3:
                break
            time.sleep(0.5)
        assert len(done) >= 3, "the sweep made no progress"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the driver and its local Ray instance
        proc.wait()
    time.sleep(1)
    code = subprocess.run(
        _cli("resume", sweep),
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        start_new_session=True,
    )
    assert code.returncode == 0, code.stderr[-3000:]

    res = read_results(sweep)
    _check_rows(res, len(POLICIES), 8)
    df = res.table.to_pandas()
    policies = df.groupby("trial_id")["policy"].first()
    assert sorted(policies) == sorted(POLICIES)  # each grid point once
    import optuna

    study = optuna.load_study(
        study_name="killed-s3",
        storage=optuna.storages.JournalStorage(
            optuna.storages.journal.JournalFileBackend(str(tmp_path / "killed-s3.journal"))
        ),
    )
    orphans = set(study.user_attrs.get("fsf_orphans", []))
    ran = [
        t.user_attrs.get("tune_trial_id")
        for t in study.trials
        if t.state.name == "COMPLETE" and t.number not in orphans
    ]
    assert sorted(map(str, ran)) == sorted(policies.index)
    tune_ids = {t.number: t.user_attrs.get("tune_trial_id") for t in study.trials}
    moved = {p.name for p in (results / ".orphaned").glob("trial=*")}
    assert moved <= {f"trial={tune_ids[n]}" for n in orphans}
