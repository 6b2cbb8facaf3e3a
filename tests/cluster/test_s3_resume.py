"""A sweep whose folder is in S3 (a local moto endpoint) and whose study is a journal file on
the driver's disk: its driver is SIGKILLed mid-sweep and `fsf-sweep resume s3://...` finishes
it. Every grid point runs once, no row is lost or duplicated, orphans' rows leave the results.
"""

from __future__ import annotations

import os
import uuid

import pytest

from fsf.results import read_results
from fsf.results.storage import location
from tests.cluster.test_local_cluster import _check_rows, _space
from tests.sweep.killing import check_study, kill_after, resume, start

pytestmark = pytest.mark.slow

POLICIES = ["df", "fs", "ff", "fsf", "noisytune", "only-s1"]


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
    proc = start("--space", str(space), "--storage-path", bucket, env=env)
    results = location(sweep) / "results"
    kill_after(proc, lambda: len(results.glob("trial=*/seed-*.parquet")) if results.exists() else 0)
    resume(sweep, env)

    res = read_results(sweep)
    _check_rows(res, len(POLICIES), 8)
    policies = res.table.to_pandas().groupby("trial_id")["policy"].first()
    assert sorted(policies) == sorted(POLICIES)  # each grid point once
    import optuna

    study = optuna.load_study(
        study_name="killed-s3",
        storage=optuna.storages.JournalStorage(
            optuna.storages.journal.JournalFileBackend(str(tmp_path / "killed-s3.journal"))
        ),
    )
    check_study(study, list(policies.index), results)
