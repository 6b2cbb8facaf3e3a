"""Compaction: fold many per-run fragments into one file without changing any answer.

Only runs that are finished (every row's status is completed, failed or stopped) are
compacted; fragments of running trials, unreadable ones, and any the readers would set aside
(rows that break the schema's meaning, `fsf.results._validate`, or a file that is not one
run at that run's own path) stay where they are, named in the report. The new
file `<root>/trial=@compacted/part-<seq>-<hex>.parquet` records in its Parquet metadata
(`fsf.compacted_from`) the path, size and mtime of each fragment it replaced, and is written
atomically *before* those fragments are removed. So:

- a crash before the write leaves everything as it was;
- a crash after it leaves loose fragments that the reader recognises (same path, size and
  mtime as recorded) and skips with a note; the next `compact` deletes them;
- a fragment rewritten after it was read (a trial re-run) is not deleted, and being newer it
  wins over the compacted rows of that run (see `fsf.results.reader`).

Two compactions of one folder never run at once (an exclusive lock on `<root>/.fsf-compact.lock`).
On a URI (`s3://...`: object stores have no locks) that is the caller's job: run `compact`
from one place, best after the sweep (object stores keep mtimes in whole seconds, so a
fragment rewritten in the second it was read, with the same size, would not be told apart).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from fsf.results._errors import ResultsError
from fsf.results._validate import Part, settle
from fsf.results.fragment_reader import (
    COMPACTED_DIR,
    COMPACTED_FROM_KEY,
    COMPACTION_SEQ_KEY,
    _read_one,
    _read_schema,
    _Source,
)
from fsf.results.reader import SkippedFragment, list_fragments, resolve_root
from fsf.results.storage import Location, StoragePath
from fsf.results.writer import atomic_write_table, fragment_rel

__all__ = ["FINISHED", "CompactionReport", "compact"]

#: Statuses after which a run's fragment is never rewritten (unless the trial is re-run).
FINISHED = ("completed", "failed", "stopped")


@dataclass
class CompactionReport:
    """What `compact` did; paths are relative to the results root."""

    root: Location
    written: str | None = None
    compacted: list[str] = field(default_factory=list)
    running: list[str] = field(default_factory=list)
    skipped: list[SkippedFragment] = field(default_factory=list)
    removed_leftovers: list[str] = field(default_factory=list)
    rows: int = 0


def _finished(table: pa.Table) -> bool:
    status = table["status"]
    return table.num_rows > 0 and pc.all(pc.is_in(status, pa.array(FINISHED))).as_py() is True


def _not_home(src: _Source) -> str | None:
    """Why `src` is not a fragment as the writer lays it out (None when it is): one run,
    at that run's own path."""
    assert src.table is not None
    runs = src.table.select(["trial_id", "seed"]).group_by(["trial_id", "seed"]).aggregate([])
    if runs.num_rows != 1:
        return f"{src.rel}: holds {runs.num_rows} runs; a fragment holds one"
    trial_id, seed = runs["trial_id"][0].as_py(), runs["seed"][0].as_py()
    home = fragment_rel(trial_id, seed)
    if home != src.rel:
        return f"{src.rel}: holds run (trial {trial_id!r}, seed {seed}), whose fragment is {home}"
    return None


def _stat(path: Location) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_size, st.st_mtime_ns


def compact(path: str | Path | StoragePath, *, min_fragments: int = 2) -> CompactionReport:
    """Fold the fragments of finished runs under `path` into one atomically written file.

    Does nothing (writes no file) when fewer than `min_fragments` fragments are eligible.
    Query answers are the same before and after. Raises `ResultsError` if another compaction
    of the same folder is running.
    """
    root, _ = resolve_root(path)
    report = CompactionReport(root)
    with _lock(root):
        _compact_locked(root, report, min_fragments)
    return report


@contextlib.contextmanager
def _lock(root: Location) -> Iterator[None]:
    if isinstance(root, StoragePath):  # no locks on object stores (see the module doc)
        yield
        return
    with open(root / ".fsf-compact.lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise ResultsError(f"{root}: another compaction is running; try again later") from exc
        yield


def _compact_locked(root: Location, report: CompactionReport, min_fragments: int) -> None:
    rels = list_fragments(root)
    recorded: set[tuple[str, int, int]] = set()
    seq = 0
    for rel in rels:
        if rel.startswith(COMPACTED_DIR + "/"):
            meta = _read_schema(root / rel).metadata or {}
            seq = max(seq, int(meta.get(COMPACTION_SEQ_KEY, b"0")))
            for e in json.loads(meta.get(COMPACTED_FROM_KEY, b"[]")):
                recorded.add((e["path"], int(e["size"]), int(e["mtime_ns"])))
    readable = []
    for rel in rels:
        if rel.startswith(COMPACTED_DIR + "/"):
            continue
        src = _read_one(root, rel)
        if (rel, *src.stat) in recorded:
            (root / rel).unlink(missing_ok=True)
            report.removed_leftovers.append(rel)
        elif src.table is None:
            report.skipped.append(SkippedFragment(rel, src.error or "unreadable"))
        else:
            readable.append(src)
    # never fold what the readers set aside: the checks of `read_results`, and only files
    # the writer laid out (one run, at its own path)
    settled = settle([Part(s.rel, s.table) for s in readable], fragment_rel)
    eligible = []
    for src in readable:
        why = settled.set_aside.get(src.rel) or _not_home(src)
        if why is not None:
            report.skipped.append(SkippedFragment(src.rel, f"{why}; not folded", "invalid"))
        elif not _finished(src.table):
            report.running.append(src.rel)
        else:
            eligible.append(src)
    if len(eligible) < max(1, min_fragments):
        return
    table = pa.concat_tables([s.table for s in eligible])
    entries = [{"path": s.rel, "size": s.stat[0], "mtime_ns": s.stat[1]} for s in eligible]
    meta = dict(table.schema.metadata or {})
    meta[COMPACTED_FROM_KEY] = json.dumps(entries).encode()
    meta[COMPACTION_SEQ_KEY] = str(seq + 1).encode()
    name = f"{COMPACTED_DIR}/part-{seq + 1:06d}-{uuid.uuid4().hex[:8]}.parquet"
    atomic_write_table(table.replace_schema_metadata(meta), root / name)
    report.written, report.rows = name, table.num_rows
    for s in eligible:
        p = root / s.rel
        if _stat(p) == s.stat:  # unchanged since read: its rows are in the new file
            p.unlink()
            report.compacted.append(s.rel)
            try:  # a re-run trial may be creating its folder again: leave it then
                if p.parent != root and not any(p.parent.iterdir()):
                    p.parent.rmdir()
            except OSError:
                pass
