"""Column kernels: numpy views of Arrow columns, built piece by piece on threads, and the
two group operations the queries and the row checks share (which rows are one run, the best
row of each group).

They know nothing of a results folder: `fsf.results._validate` uses them while the reader
checks rows, `fsf.results.frame` and `fsf.results.cube` when the queries run, so the reader
and the queries both sit above this module.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = [
    "THREADS",
    "argmax_first",
    "chunk_map",
    "column_np",
    "filled_np",
    "first_codes",
    "no_hugepage_advice",
    "parallel",
    "pieces",
    "run_index",
    "take_rows",
]


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
        return filled_np(fn(arr) if fn else arr, fill).astype(dtype, copy=False)
    out = np.empty(len(col), dtype)
    starts = np.cumsum([0] + [len(p) for p in parts])

    def put(k: int) -> None:
        arr = _array(parts[k])
        out[starts[k] : starts[k + 1]] = filled_np(fn(arr) if fn else arr, fill)

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
        np.take(luts[k], filled_np(encoded[k].indices, -1), out=codes[bounds[k] : bounds[k + 1]])

    parallel(put, list(range(len(encoded))), len(col))
    return codes, names


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


def filled_np(arr: pa.Array | pa.ChunkedArray, fill: Any) -> np.ndarray:
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
    seed = filled_np(table["seed"], -1)
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
