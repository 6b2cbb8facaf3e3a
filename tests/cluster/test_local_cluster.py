"""Sweeps on a real multi-node Ray cluster (a head and two worker nodes, each its own
`ray start` on this machine), results in S3 (a local moto endpoint): trials spread over the
nodes; a worker node killed mid-sweep loses no row and duplicates none."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
import yaml

from fsf.cluster import LocalCluster
from fsf.results import read_results
from fsf.results.storage import location

pytestmark = pytest.mark.slow

STEPS, EVERY = 8, 4
# the node-kill test's trials train for ~4 s after their first evaluation (~17 ms a step on
# 2 cores): the window in which the test sees one on node_b and kills that node
KILL_STEPS, KILL_EVERY = 240, 80
LANGS = ["de", "fr"]


def _rows_per_run(steps: int, every: int = EVERY) -> int:
    """Score rows of one (trial, seed): evaluations x splits (dev, test) x languages."""
    return (steps // every + 1) * 2 * (1 + len(LANGS))


@pytest.fixture()
def cluster(s3):
    """A head (0 CPUs, fsf_driver) and node_a, node_b (1 CPU each); S3 reachable from all.
    Afterwards no process of the cluster may be left, whatever the test did."""
    c = LocalCluster(env=s3.env)
    try:
        c.start()
        yield c
    finally:
        left = c.stop()
        ps = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
        leftover_ps = [line for line in ps.splitlines() if str(c.root) in line]
        shutil.rmtree(c.root, ignore_errors=True)
        assert left == [] and leftover_ps == [], f"Ray processes left behind: {left or leftover_ps}"


def _space(
    assets, tmp_path: Path, name: str, search: dict, steps: int = STEPS, every: int = EVERY
) -> Path:
    data = {
        "name": name,
        "base": {
            "model": {"name": str(assets["xlmr"])},
            "task": {"name": "pawsx", "dataset": str(assets["pawsx"])},
            "target_langs": LANGS,
            "optim": {"max_steps": steps, "batch_size": 8, "lr": 1e-3},
            "eval": {"every_steps": every},
            "deepspeed": {"zero_stage": 0},
        },
        "search": {"objective": {"metric": "dev_target_mean", "mode": "max"}, **search},
        # the study cannot live in S3: a journal file on the driver's disk
        "storage": {"path": "unused", "optuna": f"journal:{tmp_path / name}.journal"},
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _node_of(node_column: str) -> str:
    host, _, node_id = node_column.rpartition("/")
    assert host and len(node_id) == 56, node_column  # hostname/<full Ray node id>
    return node_id


def _check_rows(res, trials: int, steps: int, every: int = EVERY) -> None:
    """One fragment per (trial, seed), every evaluation's scores exactly once, no row twice
    (scores and the per-step training-loss rows), all completed."""
    assert res.skipped == []
    df = res.table.to_pandas()
    assert df["trial_id"].nunique() == trials
    assert set(df["status"]) == {"completed"}
    scores = df[df["split"].isin(["dev", "test"])]
    per_run = scores.groupby(["trial_id", "seed"]).size()
    assert len(per_run) == trials and (per_run == _rows_per_run(steps, every)).all(), per_run
    fragments = Counter(f.split("/")[0] for f in res.fragments)
    assert len(fragments) == trials and set(fragments.values()) == {1}, res.fragments
    keys = ["trial_id", "seed", "step", "split", "language", "metric"]
    assert not df.duplicated(keys).any()


def test_sweep_spreads_trials_over_nodes_with_results_in_s3(cluster, s3, assets, tmp_path):
    """Three trials, two at a time: the single-rank DF and FSF trials first, one on node_a
    and one on node_b, then a two-rank FSF trial whose driver runs on the head (the only
    node with fsf_driver) and whose ranks run on both worker nodes."""
    import ray

    from fsf.cli.results import main as results_main
    from fsf.sweep.space import load_space
    from fsf.sweep.tune import run_sweep

    bucket = s3.create_bucket(f"sweeps-{uuid.uuid4().hex[:8]}")
    space = _space(
        assets,
        tmp_path,
        "spread",
        {
            "parameters": {
                "policy.name": {"type": "categorical", "values": ["df", "fsf"]},
                "resources.workers": {
                    "type": "categorical",
                    "values": [1, 2],
                    "when": {"policy.name": ["fsf"]},
                },
            },
            "searcher": "grid",
            "max_concurrent": 2,
            "resources": {"cpus": 1, "driver_resources": {"fsf_driver": 1}},
        },
    )
    try:
        outcome = run_sweep(
            load_space(space), address=cluster.address, storage_path=bucket, progress=False
        )
    finally:
        ray.shutdown()
    assert outcome.statuses == {"finished": 3}, outcome.errors
    sweep = str(outcome.sweep_dir)
    assert sweep == f"{bucket}/spread"
    res = read_results(sweep)
    _check_rows(res, 3, STEPS)
    df = res.table.to_pandas()
    # the node column holds the Ray node id: trials ran on both worker nodes, never the head
    ids = cluster.node_ids()
    names = {v: k for k, v in ids.items()}
    nodes = {t: names[_node_of(n)] for t, n in df.groupby("trial_id")["node"].first().items()}
    assert set(nodes.values()) == {"node_a", "node_b"}, nodes
    workers = df.groupby("trial_id")["num_workers"].first()
    assert sorted(workers) == [1, 1, 2]
    # Tune's experiment state, the sweep's metadata and the results are all in the bucket
    folder = location(sweep)
    assert (folder / "tune").is_dir() and (folder / "space.yaml").is_file()
    assert yaml.safe_load((folder / "sweep.json").read_text())["optuna_storage"].startswith(
        "journal:"
    )
    import optuna

    study = optuna.load_study(
        study_name="spread",
        storage=optuna.storages.JournalStorage(
            optuna.storages.journal.JournalFileBackend(str(tmp_path / "spread.journal"))
        ),
    )
    assert sum(t.state.name == "COMPLETE" for t in study.trials) == 3
    # queries work on the bucket
    assert results_main(["show", sweep]) == 0
    assert results_main(["best", "--sweep", sweep, "--per-language", "--format", "json"]) == 0


def test_a_worker_node_killed_mid_sweep(cluster, s3, assets, tmp_path):
    """`fsf-sweep --address ... --storage-path s3://...` with max_failures: node_b is killed
    (its raylet's process group) while a trial trains there; the sweep completes, that
    trial is retried on node_a, and every run has its rows exactly once."""
    bucket = s3.create_bucket(f"sweeps-{uuid.uuid4().hex[:8]}")
    space = _space(
        assets,
        tmp_path,
        "killed",
        {
            "parameters": {"policy.name": {"type": "categorical", "values": ["df", "fsf", "fs"]}},
            "searcher": "grid",
            "max_concurrent": 2,
            "max_failures": 2,
            "resources": {"cpus": 1},
        },
        steps=KILL_STEPS,
        every=KILL_EVERY,
    )
    sweep = location(f"{bucket}/killed")
    node_b = cluster.node_ids()["node_b"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    log = tmp_path / "sweep.log"
    with open(log, "w") as fh:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "fsf.cli.sweep",
                "--space",
                str(space),
                "--address",
                cluster.address,
                "--storage-path",
                bucket,
                "--no-progress",
            ],
            env=env,
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        victim = None
        deadline = time.monotonic() + 180
        while victim is None and time.monotonic() < deadline and proc.poll() is None:
            if (sweep / "results").is_dir():
                df = read_results(str(sweep)).table.to_pandas()
                on_b = df[(df["status"] == "running") & df["node"].str.endswith(node_b)]
                if len(on_b):
                    victim = on_b["trial_id"].iloc[0]
                    break
            time.sleep(0.3)
        assert victim is not None, "no trial was seen training on node_b\n" + log.read_text()
        cluster.kill_node("node_b")
        proc.wait(timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 9)
            proc.wait()
    out = log.read_text()
    assert proc.returncode == 0, out[-4000:]
    assert "sweep finished: 3 trials (3 finished)" in out, out[-4000:]
    res = read_results(str(sweep))
    _check_rows(res, 3, KILL_STEPS, KILL_EVERY)
    df = res.table.to_pandas()
    # the killed trial was retried, and finished on the surviving node
    rows = df[df["trial_id"] == victim]
    assert _node_of(rows["node"].iloc[0]) == cluster.node_ids()["node_a"], (
        f"trial {victim} was not re-run on node_a: it had finished on node_b before the kill "
        f"(its last evaluation at {rows['elapsed_s'].max():.1f} s)"
    )
