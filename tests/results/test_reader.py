"""Reading results folders: round trip, atomicity, corrupt and foreign fragments, compaction."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fsf.errors import FsfError
from fsf.results import (
    SCHEMA,
    Results,
    best_per_language,
    compact,
    evaluation_rows,
    fragment_reader,
    open_dataset,
    read_results,
)
from tests.results.helpers import ev2, run, write

SAMPLE = [
    run("a", [ev2(10, 0.5, 0.5, 0.5), ev2(20, 0.75, 0.625, 0.5)]),
    run("a", [ev2(10, 0.875, 0.6875, 0.5)], seed=1),
    run("b", [ev2(10, 0.9, 0.65625, 0.25)], policy="df"),
    run("c", [], status="failed", reason="OOM before the first evaluation", policy="ff"),
]


def _sweep(tmp_path: Path, runs=SAMPLE) -> Path:
    write(tmp_path / "sw" / "results", runs)
    return tmp_path / "sw"


def test_round_trip(tmp_path):
    sweep = _sweep(tmp_path)
    res = read_results(sweep)
    assert res.skipped == [] and res.sweep_dir == sweep and res.root == sweep / "results"
    assert res.table.schema.equals(SCHEMA, check_metadata=False)
    expected = []
    for inf, evals, status, reason in SAMPLE:
        for ev in evals:
            expected += evaluation_rows(inf, ev, status, reason)
    got = res.table.drop_columns(["timestamp"]).to_pylist()
    want = pa.Table.from_pylist(expected, schema=SCHEMA).drop_columns(["timestamp"]).to_pylist()

    def key(r):
        return (r["trial_id"], r["seed"], r["step"] or -1, r["split"] or "", r["language"] or "")

    failed = [r for r in got if r["trial_id"] == "c"]
    assert len(failed) == 1 and failed[0]["split"] is None and failed[0]["value"] is None
    assert failed[0]["failure_reason"] == "OOM before the first evaluation"
    assert sorted((r for r in got if r["trial_id"] != "c"), key=key) == sorted(want, key=key)
    assert read_results(sweep / "results").table.num_rows == res.table.num_rows


def test_missing_and_empty_folders(tmp_path):
    with pytest.raises(FsfError, match="no such folder") as err:
        read_results(tmp_path / "nope")
    assert err.value.exit_code == 2
    with pytest.raises(FsfError, match="holds no results"):
        read_results(tmp_path)
    (tmp_path / "s" / "results").mkdir(parents=True)
    assert read_results(tmp_path / "s").table.num_rows == 0


def test_corrupt_fragment_is_reported_and_excluded(tmp_path):
    sweep = _sweep(tmp_path)
    frag = sweep / "results" / "trial=b" / "seed-0.parquet"
    data = frag.read_bytes()
    frag.write_bytes(data[: len(data) // 2])
    res = read_results(sweep)
    assert [s.path for s in res.skipped] == ["trial=b/seed-0.parquet"]
    assert "partial or corrupt" in res.skipped[0].reason
    assert "b" not in set(res.table["trial_id"].to_pylist())
    assert {e["trial_id"] for e in best_per_language(res).languages} == {"a"}


def _with_version(table: pa.Table, version: str) -> pa.Table:
    return table.replace_schema_metadata({**table.schema.metadata, b"fsf.schema_version": version})


def test_future_and_old_schema_versions_are_rejected(tmp_path):
    sweep = _sweep(tmp_path)
    frag = sweep / "results" / "trial=b" / "seed-0.parquet"
    pq.write_table(_with_version(pq.read_table(frag), "99"), frag)
    frag0 = sweep / "results" / "trial=a" / "seed-1.parquet"
    pq.write_table(_with_version(pq.read_table(frag0), "0"), frag0)
    res = read_results(sweep)
    reasons = {s.path: s.reason for s in res.skipped}
    assert "newer fsf (schema v99" in reasons["trial=b/seed-0.parquet"]
    assert "upgrade fsf" in reasons["trial=b/seed-0.parquet"]
    assert "v0 is not supported" in reasons["trial=a/seed-1.parquet"]
    foreign = sweep / "results" / "trial=z" / "x.parquet"
    foreign.parent.mkdir()
    pq.write_table(pa.table({"x": [1]}), foreign)
    assert (
        "not an fsf results file"
        in {s.path: s.reason for s in read_results(sweep).skipped}["trial=z/x.parquet"]
    )


def test_older_version_needs_an_explicit_upgrade(tmp_path, monkeypatch):
    sweep = _sweep(tmp_path)
    monkeypatch.setattr(fragment_reader, "SCHEMA_VERSION", 2)
    res = read_results(sweep)
    assert res.table.num_rows == 0 and "no upgrade v1->v2" in res.skipped[0].reason
    monkeypatch.setitem(fragment_reader.UPGRADES, 1, lambda t: t)
    res = read_results(sweep)
    assert res.skipped == [] and res.table.num_rows > 0


def test_hidden_temp_files_are_ignored(tmp_path):
    sweep = _sweep(tmp_path)
    (sweep / "results" / "trial=a" / ".tmp-123-seed-0.parquet.part").write_bytes(b"PAR1junk")
    (sweep / "results" / "trial=a" / ".tmp-456-seed-0.parquet").write_bytes(b"PAR1junk")
    assert read_results(sweep).skipped == []


_KILLED_WRITER = """
import sys, numpy as np, pyarrow as pa
from fsf.results.writer import atomic_write_table
n = int(sys.argv[2])
t = pa.table({"x": np.arange(n, dtype=np.float64), "y": np.random.default_rng(0).random(n)})
atomic_write_table(t, sys.argv[1])
print("ready", flush=True)
while True:
    atomic_write_table(t, sys.argv[1])
"""


def test_writer_killed_mid_write_leaves_no_partial_file(tmp_path):
    path = tmp_path / "trial=k" / "seed-0.parquet"
    n = 3_000_000
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILLED_WRITER, str(path), str(n)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout.readline().strip() == "ready"
        deadline = time.time() + 30
        while time.time() < deadline:  # kill while a temp file is being written
            tmps = list(path.parent.glob(".tmp-*"))
            if tmps and any(t.exists() and t.stat().st_size > 0 for t in tmps):
                break
            time.sleep(0.001)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert pq.read_table(path).num_rows == n  # the last complete version
    visible = [p.name for p in path.parent.iterdir() if not p.name.startswith(".")]
    assert visible == ["seed-0.parquet"]
    assert all(p.suffix == ".part" for p in path.parent.glob(".tmp-*"))


def test_plain_pyarrow_pandas_duckdb_read_results(tmp_path):
    import duckdb
    import pandas as pd
    import pyarrow.dataset as ds

    sweep = _sweep(tmp_path)
    (sweep / "results" / "trial=a" / ".tmp-1-seed-0.parquet.part").write_bytes(b"junk")
    n = read_results(sweep).table.num_rows
    root = sweep / "results"
    assert ds.dataset(root, format="parquet", partitioning="hive").count_rows() == n
    df = pd.read_parquet(root)
    assert len(df) == n and set(df["trial_id"]) == {"a", "b", "c"}
    con = duckdb.connect()
    got = con.execute(
        f"select count(*), count(distinct trial) from read_parquet('{root}/**/*.parquet', "
        "hive_partitioning=true)"
    ).fetchone()
    assert got == (n, 3)


def test_compaction_keeps_answers(tmp_path):
    runs = [*SAMPLE, run("r", [ev2(10, 0.99, 0.99, 0.99)], status="running")]
    sweep = _sweep(tmp_path, runs)
    before = best_per_language(read_results(sweep)).to_dict()
    rep = compact(sweep)
    assert rep.written and rep.written.startswith("trial=@compacted/")
    assert sorted(rep.compacted) == [
        "trial=a/seed-0.parquet",
        "trial=a/seed-1.parquet",
        "trial=b/seed-0.parquet",
        "trial=c/seed-0.parquet",
    ]
    assert rep.running == ["trial=r/seed-0.parquet"]
    meta = pq.read_schema(sweep / "results" / rep.written).metadata
    assert len(json.loads(meta[b"fsf.compacted_from"])) == 4
    res = read_results(sweep)
    assert res.skipped == [] and res.fragments == [rep.written, "trial=r/seed-0.parquet"]
    assert best_per_language(res).to_dict() == before
    assert compact(sweep).written is None  # one eligible fragment is not worth a file


def test_interrupted_compaction_and_rerun(tmp_path):
    sweep = _sweep(tmp_path)
    root = sweep / "results"
    saved = {p: p.read_bytes() for p in root.rglob("*.parquet")}
    stats = {p: os.stat(p) for p in saved}
    rep = compact(sweep)
    for p, data in saved.items():  # as if the compaction died before removing them
        p.parent.mkdir(exist_ok=True)
        p.write_bytes(data)
        os.utime(p, ns=(stats[p].st_atime_ns, stats[p].st_mtime_ns))
    res = read_results(sweep)
    assert len(res.skipped) == 4 and all("already compacted" in s.reason for s in res.skipped)
    assert res.table.num_rows == pq.read_metadata(root / rep.written).num_rows
    assert len(compact(sweep).removed_leftovers) == 4
    # trial b is re-run after compaction: its new fragment wins over the compacted rows
    write(root, [run("b", [ev2(10, 0.9, 0.125, 0.125)], policy="df")])
    res = read_results(sweep)
    b = res.table.filter(pa.compute.equal(res.table["trial_id"], "b"))
    assert set(b["value"].to_pylist()) == {0.9, 0.125}


def _as_plain_strings(path: Path) -> None:
    """Rewrite a fragment as fsf wrote it before 2026-12-06: JSON columns as plain strings."""
    t = pq.read_table(path)
    plain = pa.schema(
        [f.with_type(pa.string()) if f.name.endswith("_json") else f for f in t.schema],
        metadata=t.schema.metadata,
    )
    pq.write_table(t.cast(plain), path)


def test_run_json_is_kept_once_per_value_not_per_row(tmp_path):
    """A real run config (`config_json`, ~1.5 kB) is the same text on every row of a run: the
    table holds each distinct text once (one dictionary for the whole table), for fragments
    written now and by earlier fsf versions alike, and plain Arrow operations still work."""
    evals = [ev2(step, 0.5, 0.5, 0.5) for step in range(10, 410, 10)]
    runs = [run(t, evals, seed=s, lr=lr) for t, lr in (("a", 1e-5), ("b", 2e-5)) for s in (0, 1)]
    paths = write(tmp_path / "sw" / "results", runs)
    before = best_per_language(read_results(tmp_path / "sw")).to_dict()
    _as_plain_strings(paths[0])
    res = read_results(tmp_path / "sw")
    assert res.skipped == [] and best_per_language(res).to_dict() == before
    for name in ("params_json", "config_json"):
        col = res.table[name]
        assert col.type == SCHEMA.field(name).type and pa.types.is_dictionary(col.type)
        dictionary = col.chunk(0).dictionary
        assert all(c.dictionary.equals(dictionary) for c in col.chunks)
        as_text = col.cast(pa.string())
        held = dictionary.nbytes + sum(c.indices.nbytes for c in col.chunks)
        if name == "config_json":
            assert len(dictionary) == 4 and len(as_text[0].as_py()) > 1000
            assert held * 20 < as_text.nbytes  # 4 texts, not one per row
    t = res.table
    scanned = open_dataset(tmp_path / "sw").dataset.to_table()  # the lazy reader: same types
    assert scanned.num_rows == t.num_rows and scanned["config_json"].type == col.type
    assert t.group_by("config_json").aggregate([]).num_rows == 4
    assert t.group_by(["params_json", "seed"]).aggregate([("value", "count")]).num_rows == 4
    assert t.to_pandas()["params_json"].astype(str).nunique() == 2
    # an in-memory table with plain-string JSON columns is conformed the same way
    plain = t.cast(
        pa.schema([f.with_type(pa.string()) if f.name.endswith("_json") else f for f in t.schema])
    )
    wrapped = Results.from_table(plain)
    assert wrapped.table.schema.equals(SCHEMA, check_metadata=False)
    assert best_per_language(wrapped).to_dict() == before
