"""Results under failure: page checksums catch a flipped bit, a write that cannot happen is
reported and leaves nothing half-written, a completed run is read back exactly."""

from __future__ import annotations

import math
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fsf.results import (
    ParquetReporter,
    ResultsWriteError,
    completed_evaluations,
    open_dataset,
    read_results,
)
from fsf.results.writer import check_writable
from tests.fs import read_only, small_disk
from tests.results.helpers import ev2, info, run, write


def _flip_a_bit_in_a_data_page(path: Path) -> None:
    """Flip one bit inside the last column chunk's pages (not the footer, not a page header:
    the last byte of the chunk is page data)."""
    meta = pq.ParquetFile(path).metadata
    col = meta.row_group(0).column(meta.num_columns - 1)
    start = col.dictionary_page_offset or col.data_page_offset
    end = start + col.total_compressed_size
    data = bytearray(path.read_bytes())
    data[end - 2] ^= 0x10
    path.write_bytes(bytes(data))


def test_every_page_fsf_writes_has_a_checksum_and_a_flipped_bit_is_reported(tmp_path):
    root = tmp_path / "results"
    write(root, [run("a", [ev2(0, 0.5, 0.4), ev2(10, 0.8, 0.6)]), run("b", [ev2(0, 0.5, 0.4)])])
    bad = root / "trial=a" / "seed-0.parquet"
    _flip_a_bit_in_a_data_page(bad)
    res = read_results(root)
    (skipped,) = res.skipped
    assert skipped.path == "trial=a/seed-0.parquet"
    assert "checksum" in skipped.reason.lower() and "corrupt" in skipped.reason
    assert set(res.table.column("trial_id").to_pylist()) == {"b"}
    # the lazy dataset verifies pages as it scans
    with pytest.raises(OSError, match=r"(?i)checksum"):
        open_dataset(root).dataset.to_table()


def test_a_truncated_and_a_flipped_fragment_are_reported_alike(tmp_path):
    root = tmp_path / "results"
    write(root, [run(t, [ev2(0, 0.5, 0.4)]) for t in ("a", "b", "c")])
    cut = root / "trial=a" / "seed-0.parquet"
    cut.write_bytes(cut.read_bytes()[:200])
    _flip_a_bit_in_a_data_page(root / "trial=b" / "seed-0.parquet")
    reasons = {s.path: s.reason for s in read_results(root).skipped}
    assert set(reasons) == {"trial=a/seed-0.parquet", "trial=b/seed-0.parquet"}
    assert all("unreadable" in r and "partial or corrupt file" in r for r in reasons.values())


def _reporter(root: Path) -> ParquetReporter:
    return ParquetReporter(root, info("t1"))


def test_a_read_only_results_folder_is_a_clear_failure(tmp_path):
    root = tmp_path / "results"
    root.mkdir()
    writer = _reporter(root)
    with read_only(root):
        with pytest.raises(ResultsWriteError, match=r"cannot write results to .*seed-0\.parquet"):
            writer.report(ev2(0, 0.5, 0.4))
        with pytest.raises(ResultsWriteError) as err:
            writer.finish("failed", "TrainingDiverged: the training loss is nan at step 9")
        assert "the run failed (TrainingDiverged: the training loss is nan at step 9)" in str(
            err.value
        )
        with pytest.raises(ResultsWriteError, match="cannot write results to"):
            check_writable(root)
    assert list(root.iterdir()) == []


def test_a_full_disk_is_a_clear_failure_and_leaves_nothing_half_written(tmp_path):
    with small_disk(tmp_path / "disk", kib=256) as disk:
        root = disk / "results"
        writer = _reporter(root)
        writer.report(ev2(0, 0.5, 0.4))
        fragment = root / "trial=t1" / "seed-0.parquet"
        first = fragment.read_bytes()
        _fill(disk / "filler", leave=len(first) // 2)  # the next rewrite cannot fit
        with pytest.raises(ResultsWriteError, match="No space left on device"):
            writer.report(ev2(10, 0.8, 0.6))
        with pytest.raises(ResultsWriteError, match="the failure could not be recorded"):
            writer.finish("failed", "OSError: disk full")
        assert sorted(p.name for p in root.rglob("*") if p.is_file()) == ["seed-0.parquet"]
        assert fragment.read_bytes() == first  # the last complete version, untouched
        assert read_results(root).skipped == []


def _fill(path: Path, leave: int) -> None:
    """Fill the disk holding `path` until about `leave` bytes are free."""
    import os

    free = os.statvfs(path.parent)
    size = max(0, free.f_bavail * free.f_frsize - leave)
    with open(path, "wb") as fh:
        fh.write(b"\0" * size)


def test_completed_evaluations_read_every_evaluation_back(tmp_path):
    root = tmp_path / "results"
    evs = [ev2(0, 0.5, 0.4, 0.3), ev2(5, 0.7, 0.5, 0.4, phase="P2"), ev2(10, 0.8, 0.6, 0.5)]
    for ev in evs:
        ev.total_steps = 10
    evs[-1].is_final = True
    writer = _reporter(root)
    for ev in evs:
        writer.report(ev)
    assert completed_evaluations(root, "t1", 0) is None  # still running
    writer.finish("completed")
    got = completed_evaluations(root, "t1", 0)
    assert got is not None and [e.step for e in got] == [0, 5, 10]
    assert [e.is_final for e in got] == [False, False, True]
    for a, b in zip(got, evs, strict=True):
        assert a.scalars().keys() == b.scalars().keys()
        for key, value in b.scalars().items():
            assert math.isclose(a.scalars()[key], value), key
        assert (a.phase, a.multipliers, a.total_steps) == (b.phase, b.multipliers, 10)
    assert got[0].target_langs == ["de", "sw"] and got[0].source_lang == "en"
    assert completed_evaluations(root, "t1", 1) is None  # another seed
    assert completed_evaluations(root, "nope", 0) is None


@pytest.mark.parametrize("status", ["failed", "stopped"])
def test_only_completed_runs_count_as_completed(tmp_path, status):
    root = tmp_path / "results"
    writer = _reporter(root)
    ev = ev2(10, 0.8, 0.6)
    ev.is_final = True
    writer.report(ev)
    writer.finish(status, "boom" if status == "failed" else None)
    assert completed_evaluations(root, "t1", 0) is None
    path = root / "trial=t1" / "seed-0.parquet"
    path.write_bytes(path.read_bytes()[:100])  # unreadable: not completed either
    assert completed_evaluations(root, "t1", 0) is None


def test_a_table_from_an_older_fsf_without_checksums_still_reads(tmp_path):
    root = tmp_path / "results"
    write(root, [run("a", [ev2(0, 0.5, 0.4)])])
    path = root / "trial=a" / "seed-0.parquet"
    table = pq.read_table(path)
    pq.write_table(table, path, compression="zstd")  # no page checksums
    res = read_results(root)
    assert res.skipped == [] and res.table.num_rows == table.num_rows
    assert isinstance(res.table, pa.Table)


def test_completed_runs_are_found_after_compaction(tmp_path):
    """`compact` may run while a sweep does (it folds finished runs only): a run it folded is
    still a completed run when the sweep resumes, never trained again; a loose fragment of
    the same run (a re-run) wins over the compacted rows, as in every query."""
    from fsf.results import compact

    root = tmp_path / "results"
    evs = [ev2(0, 0.5, 0.4, 0.3), ev2(10, 0.8, 0.6, 0.5)]
    for ev in evs:
        ev.total_steps = 10
    evs[-1].is_final = True
    for trial in ("t1", "t2"):
        writer = ParquetReporter(root, info(trial))
        for ev in evs:
            writer.report(ev)
        writer.finish("completed")
    running = ParquetReporter(root, info("t1", seed=1))
    running.report(evs[0])
    before = {t: completed_evaluations(root, t, 0) for t in ("t1", "t2")}
    report = compact(root)
    assert sorted(report.compacted) == ["trial=t1/seed-0.parquet", "trial=t2/seed-0.parquet"]
    assert not (root / "trial=t1" / "seed-0.parquet").exists()
    for trial, want in before.items():
        got = completed_evaluations(root, trial, 0)
        assert want is not None and got is not None
        assert [(e.step, e.is_final, e.scalars()) for e in got] == [
            (e.step, e.is_final, e.scalars()) for e in want
        ]
    assert completed_evaluations(root, "t1", 1) is None  # still running: not compacted
    assert completed_evaluations(root, "t3", 0) is None
    rerun = ParquetReporter(root, info("t2"))  # t2 seed 0 trained again, not finished yet
    rerun.report(evs[0])
    assert completed_evaluations(root, "t2", 0) is None
