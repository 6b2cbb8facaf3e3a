"""The vectorised core of the queries: runs, configurations, step selection, score lookup.

A *run* is one (trial_id, seed); a *configuration* is a set of runs that differ only in the
seed. Everything per row is a pyarrow compute kernel or a numpy array operation; Python
loops only touch runs and configurations (thousands), never rows (millions).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from fsf.results._errors import ResultsError, ResultsUsageError, choices
from fsf.results.reader import Results
from fsf.results.schema import EVAL_SPLITS

__all__ = [
    "CONFIG_COLUMNS",
    "THREADS",
    "Frame",
    "cached_codes",
    "chunk_map",
    "column_np",
    "eval_results",
    "first_codes",
    "frame",
    "no_hugepage_advice",
    "parallel",
    "pieces",
    "split_masks",
    "take_rows",
]

#: Typed columns that identify a configuration (with `params_json` minus any `seed`).
CONFIG_COLUMNS = (
    "task",
    "dataset",
    "model",
    "source_lang",
    "policy",
    "c1",
    "c2",
    "r",
    "window",
    "threshold",
    "switch_mode",
    "switch_point",
    "policy_iv",
    "lr",
    "batch_size",
    "few_shot_m",
    "zero_stage",
)
_RUN_COLUMNS = (
    "trial_id",
    "seed",
    "status",
    "failure_reason",
    "primary_metric",
    "params_json",
    "total_steps",
)


#: Threads for the per-chunk passes over a column (pyarrow's kernels release the GIL).
THREADS = min(4, os.cpu_count() or 1)
#: Columns shorter than this are mapped on the calling thread (a pool costs ~0.1 ms).
_PARALLEL_ROWS = 1_000_000


def pieces(col: pa.ChunkedArray | pa.Array) -> list[pa.Array | _Join]:
    """The chunks of `col`, consecutive small ones grouped into pieces of at least a quarter
    million rows (a table read from a thousand fragments has a thousand chunks: one kernel
    call per chunk would cost more in Python than in the kernels). A group is a `_Join`,
    joined into one array by the thread that uses it (`_array`)."""
    chunks = col.chunks if isinstance(col, pa.ChunkedArray) else [col]
    if len(chunks) <= 2 * THREADS:
        return list(chunks)
    out, group, rows = [], [], 0
    for c in chunks:
        group.append(c)
        rows += len(c)
        if rows >= 250_000:
            out.append(group)
            group, rows = [], 0
    if group:
        out.append(group)
    return [g[0] if len(g) == 1 else _Join(g) for g in out]


class _Join:
    """Chunks to be joined into one array by the thread that uses them."""

    def __init__(self, chunks: list[pa.Array]):
        self.chunks = chunks

    def __len__(self) -> int:
        return sum(len(c) for c in self.chunks)

    def array(self) -> pa.Array:
        return pa.concat_arrays(self.chunks)


def _array(piece: pa.Array | _Join) -> pa.Array:
    return piece.array() if isinstance(piece, _Join) else piece


def chunk_map(col: pa.ChunkedArray | pa.Array, fn: Callable[[pa.Array], Any]) -> list[Any]:
    """`fn` of each of `pieces(col)`, on `THREADS` threads for a long column."""
    return parallel(lambda p: fn(_array(p)), pieces(col), len(col))


def parallel(fn: Callable[[Any], Any], items: list[Any], rows: int) -> list[Any]:
    """`[fn(x) for x in items]`, on `THREADS` threads when they cover `rows` >= a million.

    The threads are one pool kept for the process (starting threads anew cost ~15 ms of a
    60 ms query at 1 M rows), made again in a forked child (a fork keeps no threads). `fn`
    must not call `parallel` itself."""
    if len(items) < 2 or THREADS < 2 or rows < _PARALLEL_ROWS:
        return [fn(x) for x in items]
    return list(_pool().map(fn, items))


_POOL: tuple[int, ThreadPoolExecutor] | None = None
_POOL_LOCK = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    global _POOL
    with _POOL_LOCK:
        if _POOL is None or _POOL[0] != os.getpid():
            _POOL = (os.getpid(), ThreadPoolExecutor(THREADS, thread_name_prefix="fsf-query"))
        return _POOL[1]


def column_np(
    col: pa.ChunkedArray | pa.Array,
    fill: Any,
    dtype: Any,
    fn: Callable[[pa.Array], pa.Array] | None = None,
) -> np.ndarray:
    """`col` (or `fn` of each piece of it) as one numpy array of `dtype`, nulls replaced by
    `fill`: each piece converted and copied into place, on `THREADS` threads (see
    `chunk_map`)."""
    parts = pieces(col)
    if len(parts) == 1:
        arr = _array(parts[0])
        return _np(fn(arr) if fn else arr, fill).astype(dtype, copy=False)
    out = np.empty(len(col), dtype)
    starts = np.cumsum([0] + [len(p) for p in parts])

    def put(k: int) -> None:
        arr = _array(parts[k])
        out[starts[k] : starts[k + 1]] = _np(fn(arr) if fn else arr, fill)

    parallel(put, list(range(len(parts))), len(col))
    return out


def first_codes(col: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, list[Any]]:
    """(code per row, names) of a column: one code per distinct value, numbered in order of
    first appearance down the column (-1: null). Dictionary-encoded piece by piece on
    threads (see `pieces`), each piece's codes then mapped to the column's."""
    encoded = chunk_map(col, pc.dictionary_encode)
    names: list[Any] = []
    index: dict[Any, int] = {}
    luts = []
    # each piece has its own dictionary; a small Python pass over the dictionaries (a few
    # hundred names, not millions of rows) makes one numbering for the whole column
    for enc in encoded:
        local = []
        for x in enc.dictionary.to_pylist():
            local.append(index.setdefault(x, len(names)))
            if local[-1] == len(names):
                names.append(x)
        luts.append(np.array([*local, -1], np.int64))  # the appended -1: null
    codes = np.empty(len(col), np.int64)
    bounds = np.cumsum([0] + [len(enc) for enc in encoded])

    def put(k: int) -> None:
        np.take(luts[k], _np(encoded[k].indices, -1), out=codes[bounds[k] : bounds[k + 1]])

    parallel(put, list(range(len(encoded))), len(col))
    return codes, names


def cached_codes(results: Results, column: str) -> tuple[np.ndarray, list[Any]]:
    """`first_codes` of a column of `results`; cached (the reader leaves those it computed
    while validating the rows)."""
    key = ("first_codes", column)
    if key not in results.cache:
        results.cache[key] = first_codes(results.table[column])
    return results.cache[key]


@contextlib.contextmanager
def no_hugepage_advice() -> Iterator[None]:
    """numpy advises the kernel to back its large arrays with huge pages. Where the kernel
    then compacts memory on the page fault (transparent huge pages with `defrag: madvise`,
    the kernel's default) and memory is fragmented, every fresh array of tens of MB stalls:
    at 8 M result rows the selection kernel took 5.7 s instead of 0.7 s on the project's VM
    (docs/benchmarks.md, benchmark 4). Inside this block numpy gives no such advice; the
    previous setting is restored on exit."""
    setter = getattr(getattr(getattr(np, "_core", None), "multiarray", None),
                     "_set_madvise_hugepage", None)  # fmt: skip
    if setter is None:  # another numpy: nothing to switch
        yield
        return
    previous = setter(False)
    try:
        yield
    finally:
        setter(previous)


def take_rows(data: pa.Table | pa.ChunkedArray, idx: np.ndarray) -> pa.Table | pa.ChunkedArray:
    """`data.take(idx)`, record batch by record batch (chunk by chunk for a column), so
    that only the chunks holding a row are touched. (pyarrow's take on a table of many
    chunks, as `read_results` and `concat_tables` leave it, first joins every chunk of every
    column: 1.5 s for three takes at 8 M rows in 8 chunks.)"""
    if len(idx) > 1 and not (idx[1:] >= idx[:-1]).all():  # take in row order, then reorder
        order = np.argsort(idx, kind="stable")
        back = np.empty_like(order)
        back[order] = np.arange(len(order))
        return take_rows(data, idx[order]).take(pa.array(back))
    # a table's record batches are zero-copy slices with every column's chunks aligned
    parts = data.to_batches() if isinstance(data, pa.Table) else data.chunks
    if len(parts) <= 1:
        return data.take(pa.array(idx))
    bounds = np.cumsum([0] + [len(c) for c in parts])
    which = np.searchsorted(bounds, idx, side="right") - 1
    cuts = np.searchsorted(which, np.arange(len(parts) + 1))
    taken = [
        parts[k].take(pa.array(idx[cuts[k] : cuts[k + 1]] - bounds[k]))
        for k in range(len(parts))
        if cuts[k + 1] > cuts[k]
    ]
    if isinstance(data, pa.Table):
        return pa.Table.from_batches(taken, schema=data.schema)
    return pa.chunked_array(taken, type=data.type)


def _np(arr: pa.Array | pa.ChunkedArray, fill: Any) -> np.ndarray:
    """`arr` as numpy, nulls replaced by `fill` (no copy pass when there are none)."""
    if arr.null_count:
        arr = pc.fill_null(arr, fill)
    return arr.to_numpy(zero_copy_only=False)


def run_index(table: pa.Table) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(run id per row, first row of each run, rows per run if each run is contiguous).

    Runs are numbered in order of appearance.

    Fast path: the writer and the compactor keep each run's rows contiguous, so a run starts
    wherever (trial_id, seed) changes; if some run turns out to be split, hash instead.
    """
    n = table.num_rows
    if n == 0:
        return np.zeros(0, np.int32), np.zeros(0, np.int64), None
    tid = table["trial_id"].combine_chunks()
    seed = _np(table["seed"], -1)
    changed = [np.zeros(1, np.int64)]
    if n > 1:
        ne = pc.not_equal(tid.slice(1), tid.slice(0, n - 1))
        changed.append(pc.indices_nonzero(pc.fill_null(ne, True)).to_numpy().astype(np.int64) + 1)
        changed.append(np.flatnonzero(seed[1:] != seed[:-1]) + 1)
    starts = np.unique(np.concatenate(changed))
    # if every start is a distinct (trial, seed), no run is split and no hashing is needed
    keys = set(zip(tid.take(pa.array(starts)).to_pylist(), seed[starts].tolist(), strict=True))
    # (tid is one chunk here: combined above)
    if len(keys) == len(starts):
        lengths = np.diff(np.append(starts, n))
        r = np.repeat(np.arange(len(starts), dtype=np.int32), lengths)
        return r, starts, lengths
    codes = pc.dictionary_encode(tid).indices.to_numpy(zero_copy_only=False).astype(np.int64)
    _, seed_codes = np.unique(seed, return_inverse=True)
    key = codes * (int(seed_codes.max()) + 1) + seed_codes
    _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")  # number runs by first appearance
    rank = np.empty(len(order), np.int32)
    rank[order] = np.arange(len(order))
    return rank[inverse], first[order], None


def argmax_first(groups: list[np.ndarray], value: np.ndarray, step: np.ndarray) -> np.ndarray:
    """Positions of the best row per group: highest `value`, ties to the lowest `step`.

    `groups` are non-negative integer arrays (e.g. run id, language code).
    """
    if len(value) == 0:
        return np.zeros(0, np.int64)
    g = groups[0]
    if len(groups) == 1 and (g[1:] >= g[:-1]).all():  # already grouped: no sort needed
        # the usual case (rows in run order): per-group max and min by reduceat, O(n) where
        # the lexsort below is O(n log n) over millions of evaluations
        starts = np.flatnonzero(np.r_[True, g[1:] != g[:-1]])
        lengths = np.diff(np.append(starts, len(g)))
        best = value == np.repeat(np.maximum.reduceat(value, starts), lengths)
        first_step = np.minimum.reduceat(np.where(best, step, np.iinfo(step.dtype).max), starts)
        pos = np.flatnonzero(best & (step == np.repeat(first_step, lengths)))
        keep = np.r_[True, g[pos][1:] != g[pos][:-1]]
        return pos[keep]
    # the groups packed into one integer key (mixed radix), so one lexsort orders by group,
    # then best value, then earliest step: the first row of each group is its answer
    key = groups[0].astype(np.int64)
    for g in groups[1:]:
        key = key * (int(g.max()) + 1) + g
    order = np.lexsort((step, -value, key))
    ks = key[order]
    first = np.empty(len(order), bool)
    first[0] = True
    first[1:] = ks[1:] != ks[:-1]
    return order[first]


def parse_params(raw: str | None) -> dict[str, Any]:
    """The sampled parameters of `params_json` as a dict (unparsable text kept as `_raw`)."""
    try:
        params = json.loads(raw) if raw else {}
    except ValueError:
        return {"_raw": raw}
    return params if isinstance(params, dict) else {"_value": params}


def _params_key(raw: str | None) -> str:
    """`params_json` without its `seed` key, canonical (the writer already sorts keys)."""
    if raw is None or '"seed"' not in raw:
        return raw or "{}"
    params = parse_params(raw)
    params.pop("seed", None)
    return json.dumps(params, sort_keys=True, default=str)


@dataclass
class Frame:
    """Per-row arrays of one (task, metric) slice of the results, plus run/config tables."""

    results: Results
    task: str
    metric: str
    source_lang: str | None
    r: np.ndarray  # run id per row
    ok: np.ndarray  # per run: of this task and not failed
    all_ok: bool
    lengths: np.ndarray | None  # rows per run when each run's rows are contiguous
    one_metric: bool  # every row has `metric` (no need to compare it)
    is_metric: np.ndarray  # per row: the metric is `metric` (null: False)
    step: np.ndarray
    value: np.ndarray
    is_source: np.ndarray
    runs: list[dict[str, Any]]  # per run: trial_id, seed, status, failure_reason, config
    cfg: np.ndarray  # config id per run (-1: not in this slice or failed)
    configs: list[dict[str, Any]]  # per config: config, trial_ids, trial_id, policy
    cfg_rank: np.ndarray  # tie-break order of each config (by representative trial_id)
    failed_runs: int
    failed_trials: int
    _languages: list[str] | None = None

    @property
    def language(self) -> pa.ChunkedArray:
        return self.results.table["language"]

    # -- rows ---------------------------------------------------------------------------------

    def rows(self, mask: np.ndarray | None, split: str) -> np.ndarray:
        """Positions of usable rows of `split` and this metric where `mask` (None: all).

        Usable: the run is of this task and not failed, the value is finite.
        """
        idx = np.arange(len(self.r)) if mask is None else np.flatnonzero(mask)
        keep = np.isfinite(self.value[idx])
        if not self.all_ok:
            keep &= self.ok[self.r[idx]]
        keep &= split_masks(self.results)[EVAL_SPLITS.index(split)][idx]
        if not self.one_metric:
            keep &= self.is_metric[idx]
        return idx[keep]

    def target_languages(self, rows: np.ndarray) -> list[str]:
        """The non-source languages among `rows` (row positions), sorted."""
        idx = rows[~self.is_source[rows]]
        langs = pc.unique(self.language.take(pa.array(idx))).to_pylist()
        return sorted(x for x in langs if x is not None)

    def languages(self) -> list[str]:
        """Every language with a usable score, sorted."""
        if self._languages is None:
            rows = self.rows(None, "dev"), self.rows(None, "test")
            langs = pc.unique(self.language.take(pa.array(np.concatenate(rows)))).to_pylist()
            self._languages = sorted(x for x in langs if x is not None)
        return self._languages


def runs_of(results: Results) -> tuple[np.ndarray, list[dict[str, Any]], pa.Table]:
    """(run id per row, one dict per run, the runs' columns as a table); cached."""
    if "runs" not in results.cache:
        table = results.table
        # the reader leaves the index it computed while validating the rows (same table)
        r, starts, lengths = results.cache.pop("run_index", None) or run_index(table)
        cols = take_rows(table.select(list(_RUN_COLUMNS + CONFIG_COLUMNS)), starts)
        results.cache["runs"] = (r, cols.to_pylist(), cols)
        results.cache["run_lengths"] = lengths
        results.cache["run_starts"] = starts
    return results.cache["runs"]


def _equal_to(value: str) -> Callable[[Any], Any]:
    """`c -> c == value`, element-wise (a closure per value, as column_np calls it per chunk)."""
    return lambda c: pc.equal(c, value)


def split_masks(results: Results) -> tuple[np.ndarray, np.ndarray]:
    """(split == dev, split == test) per row, as numpy booleans (null: False); cached."""
    if "split_masks" not in results.cache:
        split = results.table["split"]
        results.cache["split_masks"] = tuple(
            column_np(split, False, bool, _equal_to(name)) for name in EVAL_SPLITS
        )
    return results.cache["split_masks"]


def eval_results(results: Results) -> Results:
    """`results` restricted to evaluation rows: split dev or test, or no split (the row a run
    that failed before its first evaluation leaves). Analysis rows (split train, cka) are
    left out. Returns `results` itself when it has no other rows; cached."""
    if "eval_results" not in results.cache:
        is_dev, is_test = split_masks(results)
        keep = is_dev | is_test
        split = results.table["split"]
        if split.null_count:
            keep |= _np(pc.is_null(split), False)  # a failed run's row without a split
        if keep.all():
            view = results
        else:
            view = dataclasses.replace(results, table=results.table.filter(keep), cache={})
            view.cache["split_masks"] = (is_dev[keep], is_test[keep])
            for key, value in results.cache.items():  # codes the reader left: the same rows
                if isinstance(key, tuple) and key[0] == "first_codes":
                    view.cache[key] = (value[0][keep], value[1])
        results.cache["eval_results"] = view
    return results.cache["eval_results"]


def frame(results: Results, task: str | None, metric: str | None) -> Frame:
    """The `Frame` of one task and metric (defaults: the only task; its primary metric),
    over the evaluation rows only (see `eval_results`)."""
    key = ("frame", task, metric)
    if key in results.cache:
        return results.cache[key]
    with no_hugepage_advice():
        return _frame(results, task, metric, key)


def _frame(results: Results, task: str | None, metric: str | None, key: Any) -> Frame:
    outer, results = results, eval_results(results)
    table = results.table
    if table.num_rows == 0:
        where = results.root or "the table"
        raise ResultsError(f"no results in {where} yet (no readable evaluation rows)")
    r, runs, run_table = runs_of(results)
    runs = [dict(x) for x in runs]
    tasks = sorted({x["task"] for x in runs if x["task"] is not None})
    if task is None:
        if len(tasks) > 1:
            raise ResultsUsageError(
                f"the results hold several tasks ({choices(tasks)}); choose one with --task"
            )
        task = tasks[0] if tasks else ""
    elif task not in tasks:
        raise ResultsUsageError(f"unknown task {task!r}; choose one of: {choices(tasks)}")
    in_task = np.array([x["task"] == task for x in runs], bool)
    failed = np.array([x["status"] == "failed" for x in runs], bool)
    ok = in_task & ~failed
    metric_col = table["metric"]
    if metric is None:
        prim = sorted(
            {x["primary_metric"] for x, t in zip(runs, in_task, strict=True) if t} - {None}
        )
        if len(prim) != 1:
            raise ResultsUsageError(
                f"task {task!r} has {'no' if not prim else 'several'} primary metrics "
                f"({choices(prim)}); choose one with --metric"
            )
        metric = prim[0]
    if ("first_codes", "metric") in results.cache:  # left by the reader: no pass over text
        codes, names = results.cache["first_codes", "metric"]
        is_metric = codes == (names.index(metric) if metric in names else -2)
    else:
        is_metric = column_np(metric_col, False, bool, lambda c: pc.equal(c, metric))
    if not is_metric.any():
        known = [m for m in pc.unique(metric_col).to_pylist() if m is not None]
        raise ResultsUsageError(f"unknown metric {metric!r}; choose one of: {choices(known)}")
    value = column_np(table["value"], np.nan, np.float64)
    srcs = sorted({x["source_lang"] for x, t in zip(runs, ok, strict=True) if t} - {None})
    fr = Frame(
        results=results,
        task=task,
        metric=metric,
        source_lang=srcs[0] if len(srcs) == 1 else None,
        r=r,
        ok=ok,
        all_ok=bool(ok.all()),
        lengths=results.cache["run_lengths"],
        one_metric=bool(is_metric.all()),
        is_metric=is_metric,
        step=column_np(table["step"], -1, np.int64),
        value=value,
        is_source=column_np(table["is_source"], False, bool),
        runs=runs,
        cfg=np.full(len(runs), -1, np.int64),
        configs=[],
        cfg_rank=np.zeros(0, np.int64),
        failed_runs=int((in_task & failed).sum()),
        failed_trials=len(
            {x["trial_id"] for x, f in zip(runs, in_task & failed, strict=True) if f}
        ),
    )
    _group_configs(fr, ok, run_table)
    outer.cache[key] = fr
    return fr


def _group_configs(fr: Frame, ok: np.ndarray, run_table: pa.Table) -> None:
    """Assign each usable run a configuration (same typed config and params except seed)."""
    ids: dict[tuple[Any, ...], int] = {}
    columns = []
    for c in CONFIG_COLUMNS:
        col = run_table[c]
        if pa.types.is_floating(col.type):  # NaN -> null, so that NaN configs group together
            col = pc.if_else(pc.is_nan(col), pa.scalar(None, col.type), col)
        columns.append(col.to_pylist())
    columns.append([_params_key(p) for p in run_table["params_json"].to_pylist()])
    for i, key in enumerate(zip(*columns, strict=True)):
        if not ok[i]:
            continue
        run = fr.runs[i]
        cid = ids.setdefault(key, len(ids))
        if cid == len(fr.configs):
            config = dict(zip(CONFIG_COLUMNS, key, strict=False))
            config["params"] = parse_params(run["params_json"])
            config["params"].pop("seed", None)
            fr.configs.append({"config": config, "runs": []})
        fr.configs[cid]["runs"].append(i)
        fr.cfg[i] = cid
    for entry in fr.configs:
        entry["runs"].sort(key=lambda i: (fr.runs[i]["seed"], fr.runs[i]["trial_id"]))
        entry["trial_ids"] = sorted({fr.runs[i]["trial_id"] for i in entry["runs"]})
        entry["trial_id"] = entry["trial_ids"][0]
    order = sorted(range(len(fr.configs)), key=lambda k: fr.configs[k]["trial_id"])
    fr.cfg_rank = np.empty(len(order), np.int64)
    fr.cfg_rank[order] = np.arange(len(order))
