"""Export: every validated row to one Parquet or CSV file; entries as flat CSV rows."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

import pyarrow as pa

from fsf.atomic import atomic_path
from fsf.results._errors import ResultsUsageError
from fsf.results.reader import Results, load
from fsf.results.storage import Location, StoragePath, inside, location, write_bytes_atomic
from fsf.results.writer import atomic_write_table
from fsf.text import CONTROL_RE2, printable

__all__ = ["check_target", "export", "flat", "printable_strings", "write_csv"]


def export(
    results: Results | str | os.PathLike[str] | pa.Table, path: str | Path | StoragePath
) -> Location:
    """Write every validated row to `path` (.parquet or .csv; a local path or a URI),
    atomically; return the path. A path inside the sweep folder the results were read from
    is refused (`check_target`)."""
    path = location(path)
    suffix = path.suffix.lower()
    if suffix not in (".parquet", ".csv"):
        raise ResultsUsageError(
            f"cannot export to {path.name!r}: the file name must end in .parquet or .csv"
        )
    res = load(results)
    check_target(path, res.sweep_dir or res.root)
    table = res.table
    if suffix == ".parquet":
        return atomic_write_table(table, path)
    import pyarrow.csv as pacsv

    table = printable_strings(table)  # a CSV is read in terminals and spreadsheets too

    if isinstance(path, StoragePath):
        sink = pa.BufferOutputStream()
        pacsv.write_csv(table, sink, pacsv.WriteOptions(quoting_style="needed"))
        write_bytes_atomic(path, sink.getvalue().to_pybytes())
        return path
    with atomic_path(path) as tmp:
        pacsv.write_csv(table, tmp, pacsv.WriteOptions(quoting_style="needed"))
    return path


def check_target(path: str | Path | StoragePath, folder: Location | None) -> None:
    """Refuse an export target inside `folder` (the sweep folder, or a bare results folder):
    a file written there is read as results by every query (or replaces a live fragment)."""
    if folder is None:
        return
    target = location(path)
    if inside(target, folder):
        raise ResultsUsageError(
            f"--to {target}: inside the sweep folder {folder}, where the file would be read "
            "as results (or replace a fragment); write it elsewhere"
        )


def flat(entry: dict[str, Any]) -> dict[str, Any]:
    """An entry as one flat CSV row: config columns prefixed `config.`, the comparison with
    the baseline prefixed `vs_baseline.`, other lists and objects as JSON."""
    out: dict[str, Any] = {}
    for k, v in entry.items():
        if k == "config":
            for ck, cv in v.items():
                out[f"config.{ck}"] = json.dumps(cv, sort_keys=True) if ck == "params" else cv
        elif k == "vs_baseline" and isinstance(v, dict):
            for bk, bv in v.items():
                out[f"vs_baseline.{bk}"] = json.dumps(bv) if isinstance(bv, (list, dict)) else bv
        elif isinstance(v, (list, dict)):
            out[k] = json.dumps(v)
        else:
            out[k] = v
    return out


def write_csv(rows: list[dict[str, Any]], fh: Any) -> None:
    """Write flat rows (see `flat`) as CSV with the union of their keys as header; control
    characters in strings are escaped (`fsf.text.printable`)."""
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    w = csv.DictWriter(fh, fieldnames=[printable(k) for k in keys], lineterminator="\n")
    w.writeheader()
    w.writerows(
        {printable(k): printable(v) if isinstance(v, str) else v for k, v in r.items()}
        for r in rows
    )


def printable_strings(table: pa.Table) -> pa.Table:
    """`table` with control characters escaped in every string column that holds one
    (`fsf.text.printable`; a column without any is left as it is, without a Python pass)."""
    import pyarrow.compute as pc

    columns = []
    for col in table.columns:
        kind = col.type.value_type if pa.types.is_dictionary(col.type) else col.type
        if pa.types.is_string(kind) or pa.types.is_large_string(kind):
            plain = col.cast(kind) if pa.types.is_dictionary(col.type) else col
            if pc.any(pc.match_substring_regex(plain, CONTROL_RE2)).as_py():
                values = [None if v is None else printable(v) for v in plain.to_pylist()]
                col = pa.chunked_array([pa.array(values, type=kind)]).cast(col.type)
        columns.append(col)
    return pa.table(columns, schema=table.schema)
