"""Benchmark: what reading the text columns as Arrow dictionaries would save (a lever measured
and not made; docs/benchmarks.md, section 10).

fsf's results table keeps two columns dictionary-typed (`params_json`, `config_json`: one
text per run); its other 16 text columns (`trial_id`, `split`, `language`, `metric`,
`policy`, ...) are plain strings, though each holds a handful of distinct values and Parquet
stores them dictionary-encoded. This reads the 1 M-row folder of `bench_query.py` (1,000
fragments, and the same rows compacted into one file) three ways, each file read whole
with page checksums verified, as fsf's reader does:

* `fsf`: the JSON columns as dictionaries, the rest as strings (fsf's types);
* `all dict`: every text column as a dictionary (what a change of those 16 types would read);
* `dict, cast`: the same, then cast back to strings (the types unchanged).

The sides alternate in rotating order; ratios are medians of per-round ratios. It also
checks which pyarrow operations a dictionary-typed column lacks (the cost to users' code of
changing the types).

    python bench/bench_read_types.py           # 1 M rows, ~1 minute
    python bench/bench_read_types.py --smoke   # tiny, seconds
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_query import build_table, write_fragments

from fsf.results import SCHEMA, compact

JSON = [f.name for f in SCHEMA if pa.types.is_dictionary(f.type)]
TEXT = [f.name for f in SCHEMA if pa.types.is_string(f.type)] + JSON


def read(files: list[Path], dictionary: list[str], cast: bool = False) -> list[pa.Table]:
    """Every file read whole (checksums verified), 2 files at a time as fsf's reader does."""

    def one(path: Path) -> pa.Table:
        pf = pq.ParquetFile(path, page_checksum_verification=True, read_dictionary=dictionary)
        table = pf.read(use_threads=len(files) == 1)
        if cast:
            table = pa.table(
                {
                    n: c.cast(pa.string())
                    if n not in JSON and pa.types.is_dictionary(c.type)
                    else c
                    for n, c in zip(table.column_names, table.columns, strict=True)
                }
            )
        return table

    with ThreadPoolExecutor(2) as pool:
        return list(pool.map(one, files))


def rounds(sides: dict[str, Callable[[], Any]], repeat: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {k: [] for k in sides}
    names = list(sides)
    for r in range(repeat):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            t0 = time.perf_counter()
            sides[name]()
            times[name].append(time.perf_counter() - t0)
    return times


def missing_kernels() -> list[str]:
    """pyarrow operations users apply to text columns that a dictionary column lacks."""
    col = pa.chunked_array([pa.array(["b", "a", "b"]).dictionary_encode()])
    table = pa.table({"language": col})
    tries = {
        "Table.sort_by": lambda: table.sort_by("language"),
        "count_distinct": lambda: pc.count_distinct(col),
        "min_max": lambda: pc.min_max(col),
        "starts_with": lambda: pc.starts_with(col, "a"),
    }
    out = []
    for name, fn in tries.items():
        try:
            fn()
        except pa.ArrowNotImplementedError:
            out.append(name)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--smoke", action="store_true", help="tiny table: just run and print")
    p.add_argument("--repeat", type=int, default=7)
    args = p.parse_args(argv)
    repeat = 2 if args.smoke else args.repeat
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "results"
        table = build_table(1, args.smoke, False)
        n = write_fragments(table, root)
        print(f"{table.num_rows:,} rows; pyarrow {pa.__version__}; 2 threads; {repeat} rounds")
        print(
            f"{'layout':<18} {'fsf s':>8} {'all dict s':>11} {'dict, cast s':>13} "
            f"{'fsf / all dict':>15} {'fsf / dict, cast':>17}"
        )
        for name in (f"{n:,} fragments", "1 compacted file"):
            if name == "1 compacted file":  # (removes the fragments)
                compact(root)
            files = sorted(root.rglob("*.parquet"))
            t = rounds(
                {
                    "fsf": lambda files=files: read(files, JSON),
                    "all dict": lambda files=files: read(files, TEXT),
                    "dict, cast": lambda files=files: read(files, TEXT, cast=True),
                },
                repeat,
            )
            med = {k: statistics.median(v) for k, v in t.items()}
            r1 = statistics.median(a / b for a, b in zip(t["fsf"], t["all dict"], strict=True))
            r2 = statistics.median(a / b for a, b in zip(t["fsf"], t["dict, cast"], strict=True))
            print(
                f"{name:<18} {med['fsf']:>8.4f} {med['all dict']:>11.4f} "
                f"{med['dict, cast']:>13.4f} {r1:>15.2f} {r2:>17.2f}"
            )
    lacking = missing_kernels()
    print("on a dictionary column, pyarrow lacks:", ", ".join(lacking) or "nothing checked")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
