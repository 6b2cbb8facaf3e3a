"""Results at URIs: file:// and S3 (a local moto endpoint) read and write like local folders."""

from __future__ import annotations

import json
import threading
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fsf.cli import results as results_cli
from fsf.errors import FsfError
from fsf.results import (
    ParquetReporter,
    best_per_language,
    compact,
    completed_evaluations,
    export,
    open_dataset,
    read_results,
)
from fsf.results.storage import StoragePath, location, write_bytes_atomic
from fsf.results.study import check_study_url, display_url, readable_study_url, resolve_study_url
from tests.results.helpers import ev2, run, write

RUNS = [
    run("a", [ev2(10, 0.5, 0.5, 0.5), ev2(20, 0.75, 0.625, 0.5)]),
    run("a", [ev2(10, 0.875, 0.6875, 0.5)], seed=1),
    run("b", [ev2(10, 0.9, 0.65625, 0.25)], policy="df"),
    run("c", [], status="failed", reason="OOM", policy="ff"),
]


def _rows(table: pa.Table) -> list[tuple]:
    t = table.drop_columns(["timestamp"])
    return sorted(tuple(r.values()) for r in t.to_pylist())


def _sweep(root: str) -> StoragePath:
    sweep = location(f"{root}/sw")
    assert isinstance(sweep, StoragePath)
    write(sweep / "results", RUNS)
    (sweep / "sweep.json").write_text(json.dumps({"name": "sw"}))
    return sweep


@pytest.fixture()
def local_answer(tmp_path):
    write(tmp_path / "local" / "results", RUNS)
    return read_results(tmp_path / "local")


@pytest.fixture(params=["file", "s3"])
def root(request, tmp_path) -> str:
    if request.param == "file":
        return f"file://{tmp_path}/store"
    s3 = request.getfixturevalue("s3")
    return s3.create_bucket(f"b-{uuid.uuid4().hex[:8]}") + "/sweeps"


def test_location_keeps_local_paths_and_parses_uris(tmp_path):
    assert location(str(tmp_path)) == tmp_path and isinstance(location("rel/dir"), Path)
    p = location(f"file://{tmp_path}/a")
    assert isinstance(p, StoragePath) and p.path == f"{tmp_path}/a"
    child = p / "results" / "trial=x"
    assert str(child) == f"file://{tmp_path}/a/results/trial=x"
    assert child.name == "trial=x" and child.parent.parent == p
    assert location(str(child)) == child
    assert sorted([p / "b", p / "a"]) == [p / "a", p / "b"]


def test_s3_uris_keep_bucket_and_query(s3):
    p = location("s3://bkt/sweeps?region=us-east-1")
    assert p.path == "bkt/sweeps"
    assert str(p / "x" / "y.parquet") == "s3://bkt/sweeps/x/y.parquet?region=us-east-1"
    assert str((p / "x").parent) == "s3://bkt/sweeps?region=us-east-1"


def test_results_round_trip_and_queries(root, local_answer):
    sweep = _sweep(root)
    res = read_results(str(sweep))
    assert res.skipped == [] and res.sweep_dir == sweep and res.root == sweep / "results"
    assert res.name == "sw"
    assert _rows(res.table) == _rows(local_answer.table)
    assert len(res.fragments) == 4
    # the lazy dataset sees the same rows
    assert open_dataset(str(sweep)).dataset.to_table().num_rows == res.table.num_rows
    assert best_per_language(str(sweep)).to_dict() == best_per_language(local_answer).to_dict()


def test_hidden_and_foreign_files_are_ignored(root):
    sweep = _sweep(root)
    results = sweep / "results"
    write_bytes_atomic(results / "trial=a" / ".tmp-123-seed-0.parquet.part", b"partial")
    write_bytes_atomic(results / "trial=zz" / "seed-0.parquet", b"not parquet")
    foreign = pa.BufferOutputStream()  # a Parquet file, but not fsf's (no JSON columns)
    pq.write_table(pa.table({"x": [1, 2]}), foreign)
    write_bytes_atomic(results / "trial=zy" / "seed-0.parquet", foreign.getvalue().to_pybytes())
    res = read_results(str(sweep))
    assert [s.path for s in res.skipped] == ["trial=zy/seed-0.parquet", "trial=zz/seed-0.parquet"]
    assert "not an fsf results file" in res.skipped[0].reason
    assert "unreadable" in res.skipped[1].reason
    assert set(res.table["trial_id"].to_pylist()) == {"a", "b", "c"}


def test_compact_and_export(root, tmp_path, local_answer):
    sweep = _sweep(root)
    rep = compact(str(sweep))
    assert len(rep.compacted) == 4 and rep.written
    res = read_results(str(sweep))
    assert res.skipped == [] and len(res.fragments) == 1
    assert _rows(res.table) == _rows(local_answer.table)
    out = export(res, f"{root}/exports/all.parquet")
    assert pq.read_table(out.path, filesystem=out.fs).num_rows == res.table.num_rows
    csv = export(res, f"{root}/exports/all.csv")
    assert csv.read_text().count("\n") == res.table.num_rows + 1
    # a run compacted by a second compaction is still found completed by a resumed sweep
    write(sweep / "results", [run("d", [ev2(50, 0.5, 0.5), ev2(100, 0.7, 0.6)])])
    assert compact(str(sweep), min_fragments=1).compacted == ["trial=d/seed-0.parquet"]
    got = completed_evaluations(sweep / "results", "d", 0)
    assert got is not None and [(e.step, e.is_final) for e in got] == [(50, False), (100, True)]
    assert completed_evaluations(sweep / "results", "c", 0) is None  # failed


def test_a_failed_write_leaves_the_previous_object(root, monkeypatch):
    target = location(f"{root}/atomic/seed-0.parquet")
    from fsf.results import atomic_write_table

    first = pa.table({"x": [1, 2, 3]})
    atomic_write_table(first, target)

    def broken(table, where, **kw):
        where.write(b"PAR1 half a file")
        raise OSError("disk full")

    monkeypatch.setattr(pq, "write_table", broken)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_table(pa.table({"x": [9]}), target)
    monkeypatch.undo()
    assert pq.read_table(target.path, filesystem=target.fs).equals(first)
    assert [p.name for p in target.parent.iterdir()] == ["seed-0.parquet"]


def test_readers_never_see_a_partial_fragment_while_it_is_rewritten(root):
    """A trial rewrites its fragment after every evaluation while `fsf-sweep show` reads."""
    from tests.results.helpers import info

    results = location(f"{root}/race/results")
    reporter = ParquetReporter(results, info("t"))
    reporter.report(ev2(0, 0.5, 0.5))
    done = threading.Event()
    errors: list[Exception] = []

    def train() -> None:
        try:
            for step in range(1, 25):
                reporter.report(ev2(step, 0.5, 0.5))
        except Exception as exc:  # reported below
            errors.append(exc)
        finally:
            done.set()

    thread = threading.Thread(target=train)
    thread.start()
    seen = set()
    while not done.is_set():
        res = read_results(str(results))
        assert res.skipped == []
        seen.add(res.table.num_rows)
    thread.join()
    assert not errors and len(seen) >= 2  # reads did overlap the rewrites
    assert seen <= {4 * n for n in range(1, 26)}  # whole evaluations only (2 langs x 2 splits)


def test_cli_queries_on_a_uri(root, capsys, monkeypatch, tmp_path):
    sweep = _sweep(root)
    assert results_cli.main(["show", str(sweep)]) == 0
    assert "sw (search stage)" in capsys.readouterr().out
    assert results_cli.main(["best", "--sweep", str(sweep), "--per-language"]) == 0
    assert "de" in capsys.readouterr().out
    monkeypatch.chdir(tmp_path)
    assert results_cli.main(["report", str(sweep)]) == 0
    out = capsys.readouterr().out
    expected = Path(sweep.path) / "report" if root.startswith("file") else tmp_path / "report-sw"
    assert (expected / "report.html").is_file(), out
    assert results_cli.main(["report", str(sweep), "--out", "s3://b/r"]) == 2


def test_missing_uri_is_a_usage_error(root, capsys):
    assert results_cli.main(["show", f"{root}/nope"]) == 2
    assert "no such folder" in capsys.readouterr().err


# ---------------------------------------------------------------------- study storage


def test_study_urls_are_checked():
    assert check_study_url("postgresql://u:pw@db/optuna") is None
    assert check_study_url("mysql+pymysql://u@db/optuna") is None
    assert check_study_url("journal:/mnt/nfs/o.journal") is None
    assert "journal" in check_study_url("journal:")
    assert "URI" in check_study_url("journal:s3://b/o.journal")
    assert "unknown database" in check_study_url("mongodb://x/y")
    assert "not a database URL" in check_study_url("optuna.db")
    assert display_url("postgresql://u:secret@db/optuna") == "postgresql://u:***@db/optuna"


def test_study_storage_resolution(tmp_path, monkeypatch, s3):
    monkeypatch.delenv("FSF_OPTUNA_STORAGE", raising=False)
    assert resolve_study_url(None, tmp_path / "sw") == f"sqlite:///{tmp_path}/sw/optuna.db"
    assert resolve_study_url(None, location(f"file://{tmp_path}/sw")).endswith("/sw/optuna.db")
    assert resolve_study_url("journal:o.journal", tmp_path / "sw") == (
        f"journal:{tmp_path}/sw/o.journal"
    )
    bucket = location("s3://bkt/sweeps/sw")
    with pytest.raises(FsfError, match=r"object store.*storage\.optuna"):
        resolve_study_url(None, bucket)
    with pytest.raises(FsfError, match="relative journal path"):
        resolve_study_url("journal:o.journal", bucket)
    assert resolve_study_url(f"journal:{tmp_path}/j", bucket) == f"journal:{tmp_path}/j"
    monkeypatch.setenv("FSF_OPTUNA_STORAGE", "postgresql://u:pw@db/o")
    assert resolve_study_url("journal:/x", bucket) == "postgresql://u:pw@db/o"
    monkeypatch.setenv("FSF_OPTUNA_STORAGE", "nonsense")
    with pytest.raises(FsfError, match=r"\$FSF_OPTUNA_STORAGE"):
        resolve_study_url(None, tmp_path)


def test_readable_study_url_prefers_the_folder_then_sweep_json(tmp_path, monkeypatch):
    monkeypatch.delenv("FSF_OPTUNA_STORAGE", raising=False)
    journal = tmp_path / "o.journal"
    meta = {"optuna_storage": f"journal:{journal}"}
    assert readable_study_url(tmp_path, meta) is None  # the journal file does not exist
    journal.write_text("")
    assert readable_study_url(tmp_path, meta) == f"journal:{journal}"
    assert readable_study_url(tmp_path, {"optuna_storage": "postgresql://u:***@db/o"}) is None
    (tmp_path / "optuna.db").write_text("")
    assert readable_study_url(tmp_path, meta) == f"sqlite:///{tmp_path}/optuna.db"
