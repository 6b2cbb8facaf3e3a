"""Result rows checked against the schema's meaning before any answer uses them.

A fragment can be a sound Parquet file with fsf's columns and still say what no run can: a
step of -5, an accuracy of 57.0, a status nobody writes, the same score twice with two
values, or a run's rows copied into a second file under another folder name. Any of these
would become an answer (the best configuration of every language), so the reader checks
every row of every file, and a file that breaks a rule is *set aside* whole: its rows are in
no answer, and it is named with the first broken rule, how many rows break it and an
example. The rules:

- who: `trial_id` and `seed` are never null; `status` is one of `STATUSES`; `split` is one
  of `SPLITS` or null (the one row of a run that failed before its first evaluation); a row
  with a split has a `step`, a `language` and a `metric`;
- `step` >= 0;
- `value` in the range the schema stores: a score (dev, test) in [0, 1], as every fsf metric
  is a fraction, never a percentage; a CKA in [0, 1] (up to float rounding); a training loss
  >= 0; NaN and null mean "not measured" and pass;
- one row per (trial, seed, step, split, language, metric) key;
- a run's rows come from one file. A run found in several files keeps the file the writer
  puts it in (`trial=<id>/seed-<s>.parquet`, `fsf.results.writer.fragment_path`), else a
  compacted file (the later one; a loose fragment at the run's own path wins over compacted
  rows, as a re-run trial does, and supersedes them: that is not a conflict); every other
  file holding the run is set aside; when no file holding it is its own, all are.

Every check is a vectorised pass over the whole table read (one chunk per file), not a loop
over files: the common case, nothing wrong, costs a few passes over the columns
(docs/benchmarks.md, "Fragments validated on read"). Only where a pass finds something is
the work narrowed to the rows at fault, mapped back to their files.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from fsf.results.columns import chunk_map, column_np, first_codes, run_index
from fsf.results.schema import CKA_SPLIT, EVAL_SPLITS, SCHEMA, TRAIN_SPLIT

__all__ = ["SPLITS", "STATUSES", "Part", "Settled", "settle"]

#: The statuses a run's rows may carry (docs/results.md, "Schema").
STATUSES = ("running", "completed", "failed", "stopped")
#: The splits a row may have (null: a run that failed before its first evaluation).
SPLITS = (*EVAL_SPLITS, TRAIN_SPLIT, CKA_SPLIT)
#: How far above 1 a CKA may be (the monitor computes it in float32).
CKA_SLACK = 1e-4
_DEV, _TEST, _TRAIN, _CKA = range(4)


@dataclass
class Part:
    """One file's rows: its path under the results root, and for a compacted file its
    sequence number (later wins)."""

    rel: str
    table: pa.Table
    compacted: bool = False
    seq: int = 0


@dataclass
class Settled:
    """What `settle` leaves: the rows that count (rows of runs a later source superseded
    are dropped: not a fault), the files set aside (path -> reason), the files used, and
    what the checks computed on `table` that the queries compute too (`Results.cache`
    entries: the run index, the split masks, the language and metric codes)."""

    table: pa.Table
    set_aside: dict[str, str] = field(default_factory=dict)
    used: list[str] = field(default_factory=list)
    cache: dict[Any, Any] = field(default_factory=dict)


def settle(parts: Sequence[Part], home_rel: Any) -> Settled:
    """Check `parts` (see the module's rules) and return the rows that count.

    `home_rel(trial_id, seed)`: the path, relative to the results root, of a run's own
    fragment. Parts are set aside whole; the rest are concatenated in the given order."""

    parts = list(parts)
    aside: dict[int, str] = {}
    # nulls where a run is named: free to count, and the run index needs them gone
    for i, p in enumerate(parts):
        for col in ("trial_id", "seed"):
            nulls = p.table[col].null_count
            if nulls and i not in aside:
                aside[i] = f"{nulls} row(s) with a null {col} (every row names its run)"
    live = [i for i in range(len(parts)) if i not in aside]
    tables, index = _one_source_per_run(parts, live, aside, home_rel)
    while True:  # again only when files were set aside (at most twice: rows, then keys)
        live = [i for i in live if i not in aside]
        table = _concat([tables[i] for i in live])
        if index is None:
            index = run_index(table)
        bounds = np.cumsum([0] + [tables[i].num_rows for i in live])
        cols = _Columns(table)
        found = _row_problems(cols, bounds) or _key_problems(cols, bounds, index)
        if not found:
            break
        for k, reason in found.items():
            aside[live[k]] = reason
        index = None
    cache: dict[Any, Any] = {("first_codes", c): cols.codes[c] for c in ("language", "metric")}
    dev, test = cols.split == _DEV, cols.split == _TEST
    cache.update({"run_index": index, "split_masks": (dev, test)})
    return Settled(
        table=table,
        set_aside={parts[i].rel: f"{parts[i].rel}: set aside: {r}" for i, r in aside.items()},
        used=[parts[i].rel for i in live],
        cache=cache,
    )


def _concat(tables: list[pa.Table]) -> pa.Table:
    return pa.concat_tables(tables) if tables else SCHEMA.empty_table()


# -- one source per run ----------------------------------------------------------------------


def _one_source_per_run(
    parts: list[Part], live: list[int], aside: dict[int, str], home_rel: Any
) -> tuple[dict[int, pa.Table], Any]:
    """Each run's rows from one part (see the module's rules); returns each live part's
    table (a compacted part without the runs another source supersedes) and the run index of
    their concatenation when nothing changed (else None)."""

    tables = {i: parts[i].table for i in live}
    table = _concat([tables[i] for i in live])
    index = run_index(table)
    r, starts, lengths = index
    bounds = np.cumsum([0] + [tables[i].num_rows for i in live])
    inner = bounds[1:-1][(bounds[1:-1] > 0) & (bounds[1:-1] < table.num_rows)]
    if lengths is not None and np.isin(inner, starts).all():
        return tables, index  # every run is one block inside one file: the common case
    # (part, run) pairs: where either changes from one row to the next
    part = np.repeat(np.arange(len(live)), np.diff(bounds))
    change = np.ones(len(r), bool)
    change[1:] = (r[1:] != r[:-1]) | (part[1:] != part[:-1])
    at = np.flatnonzero(change)
    pairs = np.unique(np.stack([r[at], part[at]], axis=1), axis=0)
    runs, counts = np.unique(pairs[:, 0], return_counts=True)
    shared = runs[counts > 1]
    if not len(shared):
        return tables, index
    ids, first = np.unique(r[at], return_index=True)
    first_row = dict(zip(ids.tolist(), at[first].tolist(), strict=True))
    drop: dict[int, set[tuple[str, int]]] = {}
    for run in shared.tolist():
        holders = [live[k] for k in pairs[pairs[:, 0] == run, 1].tolist()]
        row = first_row[run]
        trial_id, seed = table["trial_id"][row].as_py(), table["seed"][row].as_py()
        home = home_rel(trial_id, seed)
        own = [i for i in holders if not parts[i].compacted and parts[i].rel == home]
        compacted = sorted((i for i in holders if parts[i].compacted), key=lambda i: parts[i].seq)
        keep = own[0] if own else (compacted[-1] if compacted else None)
        for i in holders:
            if i == keep:
                continue
            if parts[i].compacted:  # superseded by a re-run or a later compaction
                drop.setdefault(i, set()).add((trial_id, seed))
            elif i not in aside:
                where = f"its own fragment {home}" if own else (
                    f"the compacted file {parts[keep].rel}" if keep is not None else
                    f"{len(holders) - 1} other file(s), none of them its own fragment {home}"
                )  # fmt: skip
                aside[i] = (
                    f"holds rows of run (trial {trial_id!r}, seed {seed}), which {where} "
                    "holds too; a run's rows come from one file"
                )
    for i, gone in drop.items():
        tables[i] = _drop_runs(tables[i], gone)
    return tables, None


def _drop_runs(table: pa.Table, runs: set[tuple[str, int]]) -> pa.Table:
    key = pc.binary_join_element_wise(
        table["trial_id"], pc.cast(table["seed"], pa.string()), "\x1f"
    )
    gone = pa.array([f"{t}\x1f{s}" for t, s in runs])
    return table.filter(pc.invert(pc.is_in(key, value_set=gone)))


# -- rows ------------------------------------------------------------------------------------


class _Columns:
    """The columns the checks share, as numpy: split codes (`SPLITS` order; -1 null, -2 a
    split not in it), step, and first-appearance codes of language and metric (lazily)."""

    def __init__(self, table: pa.Table):
        self.table = table
        first, names = first_codes(table["split"])
        lut = [SPLITS.index(x) if x in SPLITS else -2 for x in names]
        self.split = np.array([*lut, -1], np.int64)[first]  # -1 (null) indexes the last
        self.codes: dict[str, tuple[np.ndarray, list[Any]]] = {}

    def code(self, column: str) -> tuple[np.ndarray, list[Any]]:
        if column not in self.codes:
            self.codes[column] = first_codes(self.table[column])
        return self.codes[column]


class _Found(dict):
    """part index (into the live parts) -> reason; the first reason found for a part wins."""

    def __init__(self, bounds: np.ndarray):
        super().__init__()
        self.bounds = bounds

    def blame(self, rows: np.ndarray, what: str, example: Any) -> None:
        """`rows` (positions in the table) break a rule: `what` (with the number of rows of
        each part), `example(row)` -> text of one of them."""
        if not len(rows):
            return
        part = np.searchsorted(self.bounds, rows, side="right") - 1
        for k in np.unique(part).tolist():
            if k in self:
                continue
            mine = rows[part == k]
            self[k] = f"{len(mine)} row(s) with {what} (e.g. {example(int(mine[0]))})"


def _row_text(table: pa.Table, row: int) -> str:
    r = {c: table[c][row].as_py() for c in ("step", "split", "language", "metric", "value")}
    return f"step {r['step']}, {r['split']} {r['language']} {r['metric']} = {r['value']!r}"


def _row_problems(cols: _Columns, bounds: np.ndarray) -> _Found:
    found = _Found(bounds)
    table = cols.table
    if table.num_rows == 0:
        return found
    status = table["status"]
    seen = {x for u in chunk_map(status, pc.unique) for x in u.to_pylist()}
    if seen - set(STATUSES):
        bad = ~column_np(status, False, bool, lambda c: pc.is_in(c, pa.array(STATUSES)))
        found.blame(
            np.flatnonzero(bad),
            f"a status that is none of {', '.join(STATUSES)}",
            lambda i: f"status {status[i].as_py()!r}",
        )
    split = cols.split
    found.blame(
        np.flatnonzero(split == -2),
        f"a split that is none of {', '.join(SPLITS)}",
        lambda i: f"split {table['split'][i].as_py()!r}",
    )
    has_split = split >= 0
    for col in ("step", "language", "metric"):
        if table[col].null_count:
            null = column_np(table[col], True, bool, pc.is_null)
            found.blame(
                np.flatnonzero(null & has_split),
                f"a split but a null {col}",
                lambda i: _row_text(table, i),
            )
    low = pc.min(table["step"]).as_py()
    if low is not None and low < 0:
        step = column_np(table["step"], 0, np.int64)
        found.blame(np.flatnonzero(step < 0), "a negative step", lambda i: _row_text(table, i))
    lo, hi = (v.as_py() for v in pc.min_max(table["value"]).values())
    if lo is not None and (lo < 0 or hi > 1):
        value = column_np(table["value"], np.nan, np.float64)
        with np.errstate(invalid="ignore"):
            found.blame(
                np.flatnonzero(value < 0),
                "a value below 0 (scores, CKA and losses are >= 0)",
                lambda i: _row_text(table, i),
            )
            over = np.flatnonzero(value > 1)
        kind = split[over]
        score = (kind == _DEV) | (kind == _TEST)
        found.blame(
            over[score],
            "a score above 1 (fsf stores every metric as a fraction in [0, 1])",
            lambda i: _row_text(table, i),
        )
        found.blame(
            over[(kind == _CKA) & (value[over] > 1 + CKA_SLACK)],
            "a CKA above 1",
            lambda i: _row_text(table, i),
        )
    return found


# -- keys ------------------------------------------------------------------------------------


def _key_problems(cols: _Columns, bounds: np.ndarray, index: Any) -> _Found:
    """Rows repeating a (trial, seed, step, split, language, metric) key.

    Fast path: the writer writes a run's evaluations in step order, each one's rows split by
    split, language and metric in the same order every time, its training-loss rows in step
    order. With languages and metrics numbered by first appearance, the keys of each kind of
    row (scores, losses, CKA) then rise strictly down the table, and a repeat cannot hide. A
    run whose keys do not rise (a hand-made file, a CKA monitor's rows) is checked exactly,
    by sorting its keys."""

    found = _Found(bounds)
    table, split = cols.table, cols.split
    r, _, _ = index
    lang, lang_names = cols.code("language")
    metric, metric_names = cols.code("metric")
    if table.num_rows == 0:
        return found
    step = column_np(table["step"], 0, np.int64)
    keyed = split >= 0
    width = int(step.max()) + 1
    dims = (int(r.max()) + 1, width, len(SPLITS), len(lang_names) + 1, len(metric_names) + 1)
    if np.prod([float(d) for d in dims]) >= 2.0**62:  # keys too wide for one int64
        suspects = np.unique(r[keyed])
        key = None
    else:
        key = r.astype(np.int64) * width + step
        key *= len(SPLITS)
        key += split
        key *= dims[3]
        key += lang
        key *= dims[4]
        key += metric
        suspects = _not_rising(key, r, split, keyed)
    if not len(suspects):
        return found
    rows = np.flatnonzero(np.isin(r, suspects) & keyed)
    if key is not None:
        k = key[rows]
        order = np.argsort(k, kind="stable")
        same = k[order][1:] == k[order][:-1]
    else:
        keys = (metric[rows], lang[rows], split[rows], step[rows], r[rows])
        order = np.lexsort(keys)
        same = np.ones(len(rows) - 1, bool) if len(rows) else np.zeros(0, bool)
        for c in keys:
            same &= c[order][1:] == c[order][:-1]
    second = rows[order][1:][same]  # a row repeating the key of the row before it
    first = rows[order][:-1][same]
    part = np.searchsorted(bounds, second, side="right") - 1
    part_first = np.searchsorted(bounds, first, side="right") - 1
    found.blame(
        second[part == part_first],  # two files sharing a run are `_one_source_per_run`'s
        "the (trial, seed, step, split, language, metric) key of another row of the file",
        lambda i: (
            f"run ({table['trial_id'][i].as_py()!r}, seed {table['seed'][i].as_py()}), "
            + _row_text(table, i)
        ),
    )
    return found


def _not_rising(key: np.ndarray, r: np.ndarray, split: np.ndarray, keyed: np.ndarray) -> Any:
    """The runs in whose rows of one kind (scores, training losses, CKA) `key` does not rise
    strictly from one row to the next of that kind."""
    if split.max(initial=-1) <= _TEST and keyed.all():  # scores only: one kind
        fall = np.flatnonzero(key[1:] <= key[:-1]) + 1
        return np.unique(r[fall])
    kind = np.where(split <= _TEST, 0, split - 1)  # dev and test rows are one kind
    out = []
    for value in (0, 1, 2):
        mask = keyed & (kind == value)
        if mask.all():
            idx = None
            k = key
        else:
            idx = np.flatnonzero(mask)
            if len(idx) < 2:
                continue
            k = key[idx]
        fall = np.flatnonzero(k[1:] <= k[:-1]) + 1
        if len(fall):
            out.append(r[fall if idx is None else idx[fall]])
    return np.unique(np.concatenate(out)) if out else np.zeros(0, np.int64)
