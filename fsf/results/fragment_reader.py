"""Reading one fragment: a Parquet file read whole and checked before its rows are used.

A fragment is read with its pages' checksums verified (on an object store, fetched whole
and retried when a read straddles a rewrite); its schema version is checked, an older one
upgraded through `UPGRADES` (never guessed), and its columns conformed to `SCHEMA`. What
fails is not raised but recorded (`_Source.error`), so that the folder reader
(`fsf.results.reader`) can skip the fragment and say why. `completed_evaluations` reads one
run's fragment back as the evaluations it recorded (what a resumed sweep reports instead of
training the run again); `recorded_evaluations` does so whatever the run's status (what a
resumed ASHA sweep replays into its rungs).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from fsf.results.evaluation import Evaluation
from fsf.results.schema import (
    EVAL_SPLITS,
    SCHEMA,
    SCHEMA_VERSION,
    SchemaVersionError,
    check_schema,
)
from fsf.results.storage import Location, StoragePath, location

__all__ = [
    "COMPACTED_DIR",
    "COMPACTED_FROM_KEY",
    "COMPACTION_SEQ_KEY",
    "UPGRADES",
    "completed_evaluations",
    "parquet_source",
    "read_fragment",
    "recorded_evaluations",
]

#: Folder (under the results root) of the files written by `compact`.
COMPACTED_DIR = "trial=@compacted"
#: Parquet key-value metadata of a compacted file: JSON list of the fragments it replaced.
COMPACTED_FROM_KEY = b"fsf.compacted_from"
#: Parquet key-value metadata of a compacted file: its sequence number (later wins).
COMPACTION_SEQ_KEY = b"fsf.compaction_seq"

#: Explicit upgrades: `UPGRADES[v]` turns a table of schema version v into version v + 1.
#: A fragment older than `SCHEMA_VERSION` with no chain of upgrades is skipped, never guessed.
UPGRADES: dict[int, Callable[[pa.Table], pa.Table]] = {}


#: Columns read as dictionaries (their SCHEMA type) straight from Parquet's dictionary pages,
#: also from files written before they had that type: never expanded to a string per row.
_DICTIONARY_COLUMNS = [f.name for f in SCHEMA if pa.types.is_dictionary(f.type)]


def _hidden(name: str) -> bool:
    """Whether readers skip a file or folder of this name (the writer's `.tmp-*` files), as
    pyarrow and pandas do."""
    return name.startswith((".", "_"))


class _FragmentError(Exception):
    pass


def _conform(table: pa.Table, where: str) -> pa.Table:
    """`table` with exactly SCHEMA's columns in order and types, or `_FragmentError`."""
    if table.schema.equals(SCHEMA, check_metadata=False):
        return table.replace_schema_metadata(SCHEMA.metadata)
    missing = [f.name for f in SCHEMA if f.name not in table.column_names]
    if missing:
        raise _FragmentError(f"{where}: missing columns {', '.join(missing)}")
    cols = []
    for f in SCHEMA:
        col = table[f.name]
        if not col.type.equals(f.type):
            try:
                col = col.cast(f.type)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise _FragmentError(
                    f"{where}: column {f.name} is {col.type}, expected {f.type} ({exc})"
                ) from exc
        cols.append(col)
    return pa.Table.from_arrays(cols, schema=SCHEMA)


def _upgrade(table: pa.Table, version: int, where: str) -> pa.Table:
    while version < SCHEMA_VERSION:
        step = UPGRADES.get(version)
        if step is None:
            raise _FragmentError(
                f"{where}: schema v{version} is older than v{SCHEMA_VERSION} and no upgrade "
                f"v{version}->v{version + 1} is registered; re-run the trial, or rewrite the "
                f"file with the fsf that wrote it"
            )
        table, version = step(table), version + 1
    return table


@dataclass
class _Source:
    rel: str
    table: pa.Table | None = None
    error: str | None = None
    compacted_from: list[dict[str, Any]] | None = None
    seq: int = 0
    stat: tuple[int, int] = (0, 0)


def parquet_source(path: Location) -> tuple[str, Any]:
    """(path, filesystem) arguments of pyarrow's readers for a local or URI path."""
    if isinstance(path, StoragePath):
        return path.path, path.fs
    return str(path), None


def _read_schema(path: Location) -> pa.Schema:
    where, fs = parquet_source(path)
    return pq.read_schema(where, filesystem=fs)


def _open(source: Any) -> pq.ParquetFile:
    try:
        return pq.ParquetFile(
            source, page_checksum_verification=True, read_dictionary=_DICTIONARY_COLUMNS
        )
    except KeyError:  # not an fsf file (no JSON columns): the schema check says what it is
        if isinstance(source, pa.BufferReader):
            source.seek(0)
        return pq.ParquetFile(source, page_checksum_verification=True)


def _parquet_file(path: Location, attempts: int = 8) -> pq.ParquetFile:
    """The Parquet file at `path`, its pages' checksums verified when read (files written
    before fsf wrote checksums have none, and read as before). On an object store the whole
    object is fetched, then parsed: a read is several requests (size, then ranges), and one
    that straddles a rewrite of the object mixes two versions and fails to parse, so it is
    retried; a parse that succeeds saw one complete version (a mix cannot end in the footer's
    magic bytes)."""
    if not isinstance(path, StoragePath):
        return _open(path)
    for attempt in range(attempts):
        data = path.read_bytes()
        try:
            return _open(pa.BufferReader(data))
        except pa.ArrowInvalid:
            if attempt == attempts - 1:
                raise
            time.sleep(0.05 * (attempt + 1))
    raise AssertionError("unreachable")


def read_fragment(path: str | Path | StoragePath) -> pa.Table:
    """One Parquet file read whole, its page checksums verified (raises OSError or
    `pyarrow.ArrowException` when it is unreadable or corrupt)."""
    return _parquet_file(location(path)).read()


def completed_evaluations(
    root: str | Path | StoragePath, trial_id: str, seed: int
) -> list[Evaluation] | None:
    """The evaluations (in step order, the last one final) of run (`trial_id`, `seed`) if
    its fragment under the results folder `root` records it as completed, else None (no
    fragment, not completed, unreadable, or rows the readers would set aside). A run that `compact` folded into a compacted file
    is read from there (a loose fragment of the run, a re-run, wins as in every query).

    A sweep asks this before it trains a run, so that a run finished before an interruption
    is never trained (and its completed rows never overwritten) again: its recorded
    evaluations are reported instead, in the order they were made."""
    return _evaluations(root, trial_id, seed, completed=True)


def recorded_evaluations(
    root: str | Path | StoragePath, trial_id: str, seed: int
) -> list[Evaluation]:
    """The evaluations (in step order) that run (`trial_id`, `seed`) recorded, whatever its
    status (a stopped or failed run's too); [] when there is none or it cannot be read."""
    return _evaluations(root, trial_id, seed, completed=False) or []


def _evaluations(
    root: str | Path | StoragePath, trial_id: str, seed: int, completed: bool
) -> list[Evaluation] | None:
    from fsf.results.writer import fragment_path

    path = fragment_path(root, trial_id, seed)
    try:
        if path.exists():
            table = read_fragment(path)
        else:  # `compact` may have folded it into a compacted file (also while the sweep ran)
            table = _compacted_run(location(root), path, trial_id, seed)
    except (OSError, pa.ArrowException, ValueError):
        return None
    if table is None:
        return None
    from fsf.results._validate import Part, settle
    from fsf.results.writer import fragment_rel

    if settle([Part(f"{path.parent.name}/{path.name}", table)], fragment_rel).set_aside:
        return None  # rows no reader would use (a negative step, a score of 57, ...)
    rows = table.to_pylist()
    if not rows or (completed and any(r["status"] != "completed" for r in rows)):
        return None
    scored = [r for r in rows if r["split"] in EVAL_SPLITS and r["step"] is not None]
    if completed and not any(r["is_final"] for r in scored):
        return None
    if not scored:
        return None
    first = scored[0]
    try:
        targets = list(json.loads(first["config_json"])["target_langs"])
    except (TypeError, ValueError, KeyError):
        targets = sorted({r["language"] for r in scored} - {first["source_lang"]})
    names = {"S_I": "mult_s1", "S_II": "mult_s2", "V_I": "mult_v1", "V_II": "mult_v2"}
    names.update(embeddings="mult_embeddings", head="mult_head")
    by_step: dict[int, list[dict[str, Any]]] = {}
    for r in scored:
        by_step.setdefault(r["step"], []).append(r)
    out = []
    for step in sorted(by_step):
        group = by_step[step]
        head = group[0]
        scores: dict[str, dict[str, dict[str, float]]] = {}
        for r in group:
            value = r["value"] if r["value"] is not None else math.nan
            scores.setdefault(r["split"], {}).setdefault(r["language"], {})[r["metric"]] = value
        out.append(
            Evaluation(
                step=step,
                epoch=head["epoch"],
                loss=head["train_loss"],
                phase=head["phase"],
                phi=head["phi"],
                multipliers={k: head[c] for k, c in names.items()},
                scores=scores,
                metric=head["primary_metric"],
                source_lang=head["source_lang"],
                target_langs=targets,
                elapsed_s=head["elapsed_s"] or 0.0,
                total_steps=head["total_steps"],
                is_final=bool(head["is_final"]),
            )
        )
    return out


def _compacted_run(root: Location, path: Location, trial_id: str, seed: int) -> pa.Table | None:
    """The rows of run (`trial_id`, `seed`), whose loose fragment would be `path`, from the
    latest compacted file that records it among the fragments it replaced (None if none
    does). Which file holds a run is in each file's footer: only that one file is read."""
    folder = root / COMPACTED_DIR
    if not folder.is_dir():
        return None
    rel = f"{path.parent.name}/{path.name}"
    latest: tuple[int, Location] | None = None
    for file in folder.iterdir():
        if not file.name.endswith(".parquet") or _hidden(file.name):
            continue
        meta = _read_schema(file).metadata or {}
        paths = {e["path"] for e in json.loads(meta.get(COMPACTED_FROM_KEY, b"[]"))}
        seq = int(meta.get(COMPACTION_SEQ_KEY, b"0"))
        if rel in paths and (latest is None or seq > latest[0]):
            latest = (seq, file)
    if latest is None:
        return None
    table = read_fragment(latest[1])
    mine = pc.and_(pc.equal(table["trial_id"], trial_id), pc.equal(table["seed"], seed))
    return table.filter(mine)


def _read_one(root: Location, rel: str, threads: bool = True) -> _Source:
    """One fragment read and checked (`threads`: pyarrow decodes its columns on its own
    threads; the folder reader turns that off when it reads several fragments at once)."""
    src = _Source(rel)
    path = root / rel
    try:
        st = path.stat()
        src.stat = (st.st_size, st.st_mtime_ns)
        pf = _parquet_file(path)
        schema = pf.schema_arrow  # (built anew on every access)
        version = check_schema(schema, where=rel)
        meta = schema.metadata or {}
        table = pf.read(use_threads=threads)
        table = _conform(_upgrade(table, version, rel), rel)
        if COMPACTED_FROM_KEY in meta:
            src.compacted_from = json.loads(meta[COMPACTED_FROM_KEY])
            src.seq = int(meta.get(COMPACTION_SEQ_KEY, b"0"))
        src.table = table
    except SchemaVersionError as exc:
        src.error = str(exc)
    except _FragmentError as exc:
        src.error = str(exc)
    except (OSError, pa.ArrowException, ValueError) as exc:
        src.error = f"{rel}: unreadable ({type(exc).__name__}: {exc}); partial or corrupt file"
    return src
