"""Reading a results folder: every readable fragment, and a report of every one that is not.

A results folder is the hive-partitioned Parquet dataset the writer makes
(`<root>/trial=<id>/seed-<s>.parquet`), plus the files `compact` makes
(`<root>/trial=@compacted/part-<seq>-<hex>.parquet`). `read_results` accepts the sweep folder
(which holds `results/`) or the `results/` folder itself, as a local path or a URI on a
pyarrow filesystem (`s3://bucket/sweeps/NAME`, `file:///...`; see `fsf.results.storage`).

Contract (how one fragment is read and checked is `fsf.results.fragment_reader`):
- Hidden files and folders (name starts with '.' or '_', e.g. the writer's `.tmp-*` files)
  and files not ending in `.parquet` are ignored, as pyarrow and pandas ignore them.
- Each fragment is read whole and checked before its rows are used: unreadable (truncated,
  corrupt: every page's CRC checksum is verified, so a flipped bit is caught), not an fsf file, a newer schema version, an older version without a registered
  upgrade, or columns that do not convert to `SCHEMA`. Such a fragment is *skipped*: its rows
  are left out of every answer and it is listed in `Results.skipped` with the reason.
- Each (trial_id, seed) comes from one source only. A loose fragment at the run's own path
  (`trial=<id>/seed-<s>.parquet`) wins over compacted rows of the same run (the trial was
  re-run after compaction); a loose fragment that a compaction recorded with the same size
  and mtime is a leftover of an interrupted compaction and is skipped (its rows are already
  in the compacted file); among compacted files the later wins. Any other file holding a
  run that another file holds is set aside (below).
- The rows of every fragment are checked against the schema's meaning (`fsf.results._validate`:
  who the row is about, steps >= 0, known statuses and splits, scores in [0, 1], one row per
  (trial, seed, step, split, language, metric) key); a fragment that breaks a rule is set
  aside whole and listed in `Results.skipped` (kind `invalid`) with the rule and an example.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds

from fsf.results._errors import ResultsUsageError
from fsf.results._validate import Part, settle

# Reading one fragment lives in fsf.results.fragment_reader; its public names stay
# importable from here, where the queries and the package's __init__ have always found them.
from fsf.results.fragment_reader import (
    _conform,
    _FragmentError,
    _hidden,
    _read_one,
    _read_schema,
    _Source,
    parquet_source,
)
from fsf.results.schema import SCHEMA, SCHEMA_VERSION, SchemaVersionError, check_schema
from fsf.results.storage import Location, StoragePath, location
from fsf.results.writer import fragment_rel

__all__ = [
    "CONFIRM_DIR",
    "Results",
    "ResultsDataset",
    "SkippedFragment",
    "confirmation_of",
    "list_fragments",
    "load",
    "open_dataset",
    "read_results",
    "resolve_root",
]

#: Folder (under a sweep folder) of the confirmation stage: a sweep folder of its own, with
#: `results/`, `sweep.json` (stage "confirm", its seeds and candidates) and `tune/`.
CONFIRM_DIR = "confirm"

PARTITIONING = ds.partitioning(pa.schema([("trial", pa.string())]), flavor="hive")


@dataclass(frozen=True)
class SkippedFragment:
    """A fragment left out of the answers: its path (relative to the root), why, and what
    kind of fault: `unreadable` (truncated, corrupt, not fsf's, another schema version),
    `invalid` (readable, but its rows break the schema's meaning and it was set aside:
    `fsf.results._validate`) or `leftover` (its rows are already in a compacted file)."""

    path: str
    reason: str
    kind: str = "unreadable"

    def to_dict(self) -> dict[str, str]:
        return {"path": self.path, "reason": self.reason, "kind": self.kind}


@dataclass
class Results:
    """The validated rows of a results folder (`table` has exactly `SCHEMA`'s columns).

    `skipped`: fragments whose rows are not in `table`. `sweep`: the parsed `sweep.json` of the
    sweep folder ({} when there is none). `sweep_dir`: the folder holding `results/`,
    `optuna.db` and `sweep.json`, or None for a bare results folder or an in-memory table.
    """

    table: pa.Table
    root: Location | None = None
    sweep_dir: Location | None = None
    skipped: list[SkippedFragment] = field(default_factory=list)
    fragments: list[str] = field(default_factory=list)
    sweep: dict[str, Any] = field(default_factory=dict)
    cache: dict[Any, Any] = field(default_factory=dict, repr=False, compare=False)
    """Derived per-query state (see `fsf.results.cube`); do not rely on it."""

    @classmethod
    def from_table(cls, table: pa.Table) -> Results:
        """Wrap an in-memory table (columns are conformed to `SCHEMA`)."""
        return cls(table=_conform(table, "<table>").unify_dictionaries())

    @property
    def name(self) -> str:
        """The sweep's name: sweep.json's `name`, else the folder name."""
        if self.sweep.get("name"):
            return str(self.sweep["name"])
        if self.sweep_dir is not None:
            return self.sweep_dir.name
        return self.root.name if self.root is not None else "results"


@dataclass
class ResultsDataset:
    """A `pyarrow.dataset.Dataset` over the fragments whose footer passed the checks."""

    dataset: ds.Dataset
    root: Location
    skipped: list[SkippedFragment]


def resolve_root(
    path: str | os.PathLike[str] | StoragePath,
) -> tuple[Location, Location | None]:
    """(results root, sweep folder or None) of a sweep folder or a results folder."""
    try:
        p = location(path)
    except ValueError as exc:
        raise ResultsUsageError(str(exc)) from None
    if not p.exists():
        raise ResultsUsageError(
            f"no such folder: {p}; pass a sweep folder (holding results/) or a results folder"
        )
    if not p.is_dir():
        raise ResultsUsageError(f"{p} is a file; pass a sweep folder or a results folder")
    if (p / "results").is_dir():
        return p / "results", p
    if any(c.name.startswith("trial=") or c.suffix == ".parquet" for c in p.iterdir()):
        parent = p.parent
        marked = any((parent / n).exists() for n in ("sweep.json", "optuna.db", "space.yaml"))
        return p, parent if p.name == "results" and marked else None
    raise ResultsUsageError(
        f"{p} holds no results: expected a results/ folder or trial=<id>/ fragments in it"
    )


def list_fragments(root: str | Path | StoragePath) -> list[str]:
    """Relative paths (sorted, '/'-separated) of the Parquet files a reader considers."""
    root = location(root)
    if isinstance(root, StoragePath):
        return sorted(
            rel
            for rel, _ in root.files()
            if rel.endswith(".parquet") and not any(_hidden(part) for part in rel.split("/"))
        )
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not _hidden(d))
        rel = Path(dirpath).relative_to(root)
        out += [
            (rel / f).as_posix() for f in filenames if f.endswith(".parquet") and not _hidden(f)
        ]
    return sorted(out)


def _parts(sources: list[_Source], skipped: list[SkippedFragment]) -> list[Part]:
    """The readable sources as parts for `settle`: loose fragments first, then compacted
    files from the latest; a loose fragment that a compaction recorded with its size and
    mtime is a leftover of an interrupted compaction (its rows are in the compacted file)
    and is skipped."""
    compacted = sorted((s for s in sources if s.compacted_from is not None), key=lambda s: s.seq)
    recorded = {
        (e["path"], int(e["size"]), int(e["mtime_ns"])): s.rel
        for s in compacted
        for e in s.compacted_from or []
    }
    parts = []
    for s in sources:
        if s.compacted_from is not None or s.table is None:
            continue
        into = recorded.get((s.rel, *s.stat))
        if into is not None:
            skipped.append(
                SkippedFragment(
                    s.rel,
                    f"{s.rel}: already compacted into {into} (left by an interrupted "
                    "compaction; `compact` removes it)",
                    "leftover",
                )
            )
            continue
        parts.append(Part(s.rel, s.table))
    parts += [Part(s.rel, s.table, True, s.seq) for s in reversed(compacted) if s.table is not None]
    return parts


def read_results(
    path: str | os.PathLike[str] | StoragePath, *, threads: int | None = None
) -> Results:
    """Read and validate every fragment under a sweep folder or a results folder.

    Raises `ResultsUsageError` (exit code 2) when `path` is missing or holds no results
    folder; an empty results folder gives an empty table. Unusable fragments (unreadable, or
    rows that break the schema's meaning: `fsf.results._validate`) are skipped and listed in
    `Results.skipped`, never mixed into the table.
    """
    root, sweep_dir = resolve_root(path)
    rels = list_fragments(root)
    workers = threads or min(8, os.cpu_count() or 1)
    if len(rels) > 1 and workers > 1:  # fragments in parallel, each on one thread
        with ThreadPoolExecutor(workers) as pool:
            sources = list(pool.map(lambda r: _read_one(root, r, threads=False), rels))
    else:
        sources = [_read_one(root, r) for r in rels]
    skipped = [SkippedFragment(s.rel, s.error) for s in sources if s.error is not None]
    settled = settle(_parts(sources, skipped), fragment_rel)
    skipped += [SkippedFragment(p, why, "invalid") for p, why in settled.set_aside.items()]
    # one dictionary per JSON column for the whole table (each fragment has its own), so
    # that group_by and joins on them work as on plain strings
    res = Results(
        table=settled.table.unify_dictionaries(),
        root=root,
        sweep_dir=sweep_dir,
        skipped=sorted(skipped, key=lambda k: k.path),
        fragments=sorted(settled.used),
        sweep=_sweep_json(sweep_dir),
    )
    res.cache.update(settled.cache)  # what the checks computed that the queries use too
    return res


def load(results: Results | str | os.PathLike[str] | StoragePath | pa.Table) -> Results:
    """`results` as a `Results`: read a folder (or URI), wrap a table, or return it unchanged."""
    if isinstance(results, Results):
        return results
    if isinstance(results, pa.Table):
        return Results.from_table(results)
    if isinstance(results, (str, os.PathLike, StoragePath)):
        return read_results(results)
    raise TypeError(f"expected Results, a folder path or a pyarrow.Table, got {type(results)}")


def confirmation_of(results: Results) -> Results | None:
    """The results of the sweep's confirmation stage (`<sweep>/confirm/`), or None when the
    sweep has none (yet) or `results` is itself a confirmation."""
    if results.sweep.get("stage") == "confirm" or results.sweep_dir is None:
        return None
    folder = results.sweep_dir / CONFIRM_DIR
    if not (folder / "results").is_dir() or not list_fragments(folder / "results"):
        return None
    return read_results(folder)


def _sweep_json(sweep_dir: Location | None) -> dict[str, Any]:
    if sweep_dir is None or not (sweep_dir / "sweep.json").is_file():
        return {}
    path = sweep_dir / "sweep.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ResultsUsageError(f"{path}: not valid JSON ({exc}); fix or remove it") from exc
    if not isinstance(data, dict):
        raise ResultsUsageError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def open_dataset(path: str | Path | StoragePath) -> ResultsDataset:
    """A lazy `pyarrow.dataset` (hive partitioning, key `trial`, typed string) of the results.

    Only the footers are checked here (schema version, readable metadata): a file whose footer
    is intact but whose data pages are corrupt fails when scanned (page checksums are
    verified). `read_results` reads every
    fragment whole and is the reader the queries use. Compacted leftovers are not removed.
    """
    root, _ = resolve_root(path)
    base, fs = parquet_source(root)
    good, skipped = [], []
    for rel in list_fragments(root):
        try:
            version = check_schema(_read_schema(root / rel), where=rel)
            if version != SCHEMA_VERSION:
                raise _FragmentError(f"{rel}: schema v{version}; read it with read_results")
            good.append(parquet_source(root / rel)[0])
        except (SchemaVersionError, _FragmentError) as exc:
            skipped.append(SkippedFragment(rel, str(exc)))
        except (OSError, pa.ArrowException) as exc:
            skipped.append(SkippedFragment(rel, f"{rel}: unreadable ({exc})"))
    verified = ds.ParquetFileFormat(
        default_fragment_scan_options=ds.ParquetFragmentScanOptions(page_checksum_verification=True)
    )
    dataset = ds.dataset(
        good,
        schema=SCHEMA.append(pa.field("trial", pa.string())),
        format=verified,
        partitioning=PARTITIONING,
        partition_base_dir=base,
        filesystem=fs,
    )
    return ResultsDataset(dataset, root, skipped)
