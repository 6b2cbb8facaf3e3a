"""Benchmark: best configuration per target language, fsf's query vs DuckDB and pandas.

Builds a realistic results table, answers "the best configuration of every target language,
under the default selection rule (`objective`)" with `fsf.results.best_per_language`, with the
DuckDB SQL of docs/results.md ("Reproducing fsf's answers without fsf", the query a test
checks against fsf's answer; read from the doc, so the two never drift apart) and with an
idiomatic pandas implementation of the same rule, checks that all agree, and prints times.

Sizes (`--sizes`, millions of rows): 1 = 500 trials x 2 seeds x 20 evaluations x 2 splits x
25 languages; 20 = 2,000 trials x 2 seeds x 100 evaluations x 2 splits x 25 languages. In
memory, every side starts from the data already loaded (an Arrow table for fsf and DuckDB,
which scans it in place; a DataFrame for pandas, at 1 M rows only: 20 M rows as a DataFrame
do not fit this machine). From disk (`--disk`), the table is written as the writer lays it
out (one Parquet fragment per run: 1,000 and 4,000 files) and each side reads it itself: fsf
`read_results` + the query, DuckDB the same SQL over `read_parquet('.../**/*.parquet')`,
pandas `read_parquet` + its group-by. The sides alternate, in a rotating order, and the
ratios are medians of the per-round ratios (this VM's speed drifts by 10-30% over seconds).

With `--disk`, the 1 M folder is then compacted (`fsf-sweep compact`: one file) and read
by both sides again: the layout a finished sweep can be given, whose figure does not depend
on the number of files. (Not at 20 M: fsf reads a file whole, 8 GiB at 20 M rows, and beside
DuckDB's buffers that took this 24 GB VM out of memory.)

`config_json` (the run config on every row, about 1.6 kB in a real sweep) is `{}` unless
`--full-config`. fsf's reader loads every column, DuckDB only the nine its SQL names; since
2026-12-06 the JSON columns are dictionary-typed, so fsf keeps each run's config once (as
Parquet stores it) and a 20 M-row table of real configs takes ~7 GiB of memory, not ~40 GB.

    python bench/bench_query.py                      # 1 M rows in memory
    python bench/bench_query.py --sizes 1 20 --disk  # the full benchmark
    python bench/bench_query.py --smoke              # tiny sizes, seconds
"""

from __future__ import annotations

import argparse
import gc
import itertools
import math
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from fsf.cli._base import print_table
from fsf.results import best_per_language, compact, read_results
from fsf.results._testing import synthetic_table
from fsf.results.writer import atomic_write_table, fragment_path

DOC = Path(__file__).resolve().parents[1] / "docs" / "results.md"
#: millions of rows -> (trials, seeds, evaluations per run, languages)
SHAPES = {1: (500, 2, 20, 25), 20: (2000, 2, 100, 25)}
CHUNK_TRIALS = 100  # tables are built (and written) this many trials at a time


def pandas_best_per_language(df: pd.DataFrame) -> pd.DataFrame:
    """The same answer as `best_per_language()` (the default rule: each run's checkpoint by
    its source-language dev score; each language's configuration by that language's dev
    score at the checkpoint, mean over seeds; test scores reported), in plain pandas.

    Configurations are keyed by `params_json` (in this benchmark a trial's typed config is a
    function of its sampled parameters and no parameter is the seed). Trials that drew the
    same parameters share their seeds: each (configuration, seed) counts once (all runs here
    have the same budget and status, so the smaller trial id's run).
    """
    df = df[(df["metric"] == df["primary_metric"]) & (df["status"] != "failed")]
    df = df[df["value"].notna()]
    dev_src = df[(df["split"] == "dev") & df["is_source"]]
    dev_src = dev_src.sort_values(
        ["trial_id", "seed", "value", "step"], ascending=[True, True, False, True]
    )
    sel = dev_src.drop_duplicates(["trial_id", "seed"])[["trial_id", "seed", "step"]]
    at = df[~df["is_source"]].merge(sel, on=["trial_id", "seed", "step"])
    keys = ["params_json", "trial_id", "seed", "language"]
    dev = at[at["split"] == "dev"][[*keys, "value"]].rename(columns={"value": "select"})
    test = at[at["split"] == "test"][[*keys, "value"]].rename(columns={"value": "score"})
    both = dev.merge(test, on=keys).sort_values("trial_id")
    both = both.drop_duplicates(["params_json", "seed", "language"])
    g = (
        both.groupby(["params_json", "language"])
        .agg(
            select=("select", "mean"),
            score=("score", "mean"),
            std=("score", "std"),
            n_seeds=("score", "size"),
            trial_id=("trial_id", "min"),
        )
        .reset_index()
    )
    g = g.sort_values(
        ["language", "select", "n_seeds", "trial_id"], ascending=[True, False, False, True]
    )
    return g.drop_duplicates("language")[["language", "trial_id", "score", "std", "n_seeds"]]


def documented_sql() -> str:
    """The DuckDB query of docs/results.md, with `ROWS` still in it."""
    text = DOC.read_text().split("### Reproducing fsf's answers without fsf", 1)[1]
    match = re.search(r"```sql\n(.*?)```", text, re.S)
    if match is None:  # pragma: no cover - the doc changed
        raise SystemExit(f"no SQL block under 'Reproducing fsf's answers without fsf' in {DOC}")
    return match.group(1)


SOURCE = "read_parquet('ROWS/**/*.parquet', hive_partitioning = true)"


def duckdb_sql(source: str) -> str:
    """The documented query reading from `source` (a table name or a read_parquet call)."""
    sql = documented_sql()
    if SOURCE not in sql:  # pragma: no cover - the doc changed
        raise SystemExit(f"the SQL of {DOC} no longer reads {SOURCE}; update this benchmark")
    return sql.replace(SOURCE, source)


Answer = list[tuple[str, str, float, int]]


def fsf_answer(table: Any) -> Answer:
    res = best_per_language(table)
    return [(e["language"], e["trial_id"], e["score"], e["n_seeds"]) for e in res.languages]


def pandas_answer(df: pd.DataFrame) -> Answer:
    g = pandas_best_per_language(df)
    return [
        (r.language, r.trial_id, float(r.score), int(r.n_seeds)) for r in g.itertuples(index=False)
    ]


def duckdb_answer(con: Any, sql: str) -> Answer:
    return [(a, b, float(c), int(d)) for a, b, c, d in con.sql(sql).fetchall()]


def same(a: Answer, b: Answer) -> bool:
    return len(a) == len(b) and all(
        x[0] == y[0] and x[1] == y[1] and x[3] == y[3] and math.isclose(x[2], y[2], abs_tol=1e-12)
        for x, y in zip(a, b, strict=True)
    )


def rounds(sides: dict[str, Callable[[], Any]], repeat: int) -> dict[str, Any]:
    """Run every side once per round, `repeat` rounds, the order rotating each round (so each
    side runs first, middle and last alike). Returns per side its times and last result."""
    names = list(sides)
    times: dict[str, list[float]] = {n: [] for n in names}
    out: dict[str, Any] = {}
    for r in range(repeat):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            t0 = time.perf_counter()
            out[name] = sides[name]()
            times[name].append(time.perf_counter() - t0)
    return {"times": times, "answers": out}


def ratio(times: dict[str, list[float]], peer: str, base: str = "fsf") -> float:
    """Median over rounds of peer's time / base's time (> 1: base is faster)."""
    return statistics.median(p / b for p, b in zip(times[peer], times[base], strict=True))


def build_table(millions: int, smoke: bool, full_config: bool) -> pa.Table:
    trials, seeds, steps, n_langs = SHAPES[millions]
    if smoke:
        trials, steps, n_langs = (10, 4, 5) if millions == 1 else (20, 6, 5)
    langs = ("en", *(f"l{i:02d}" for i in range(n_langs - 1)))
    parts = [
        synthetic_table(
            min(CHUNK_TRIALS, trials - first),
            seeds,
            steps,
            langs,
            failed_every=50,
            seed=first,
            first_trial=first,
            full_config=full_config,
        )
        for first in range(0, trials, CHUNK_TRIALS)
    ]
    return pa.concat_tables(parts)


def json_memory(table: pa.Table) -> tuple[int, int]:
    """Bytes of the dictionary-typed JSON columns: as held (indices, and each distinct
    dictionary once) and as they would be as plain strings (offsets and text per row),
    computed without expanding them."""
    held = plain = 0
    for name in ("params_json", "config_json"):
        seen: set[int] = set()
        for chunk in table[name].chunks:
            lengths = pc.binary_length(chunk.dictionary).to_numpy(zero_copy_only=False)
            idx = chunk.indices.to_numpy(zero_copy_only=False)
            plain += int(lengths[idx].sum()) + 4 * (len(chunk) + 1)
            held += chunk.indices.nbytes
            if chunk.dictionary.buffers()[-1].address not in seen:  # shared after unify
                seen.add(chunk.dictionary.buffers()[-1].address)
                held += chunk.dictionary.nbytes
    return held, plain


def write_fragments(table: pa.Table, root: Path) -> int:
    """One fragment per (trial, seed), as the writer lays them out; returns how many."""
    df_keys = table.select(["trial_id", "seed"]).to_pandas()
    bounds = (df_keys != df_keys.shift()).any(axis=1).to_numpy().nonzero()[0].tolist()
    bounds.append(table.num_rows)
    for a, b in itertools.pairwise(bounds):
        part = table.slice(a, b - a)
        atomic_write_table(
            part, fragment_path(root, part["trial_id"][0].as_py(), part["seed"][0].as_py())
        )
    return len(bounds) - 1


def bench_size(millions: int, args: argparse.Namespace, tmp: Path) -> list[list[Any]]:
    import duckdb

    con = duckdb.connect()
    con.execute(f"SET threads TO {args.duckdb_threads}")
    # (DuckDB's default buffer pool is 80% of RAM: beside fsf's 8 GiB table at 20 M rows that
    # took the 24 GB VM out of memory; its query needs far less)
    con.execute(f"SET memory_limit = '{args.duckdb_memory}'")
    t0 = time.perf_counter()
    table = build_table(millions, args.smoke, args.full_config)
    build = time.perf_counter() - t0
    n = table.num_rows
    label = f"{n / 1e6:g}M" if n >= 1e6 else f"{n:,}"
    print(f"{label}: {n:,} rows, {table.nbytes / 2**30:.2f} GiB in memory, built in {build:.1f} s",
          file=sys.stderr)  # fmt: skip
    held, plain = json_memory(table)
    print(f"{label}: JSON columns {held / 2**20:,.1f} MiB as dictionaries (fsf's type), "
          f"{plain / 2**20:,.1f} MiB as plain strings (fsf's type before 2026-12-06)",
          file=sys.stderr)  # fmt: skip
    con.register("results_table", table)
    mem_sql = duckdb_sql("results_table")
    sides: dict[str, Callable[[], Any]] = {
        "fsf": lambda: fsf_answer(table),
        "duckdb": lambda: duckdb_answer(con, mem_sql),
    }
    df = None
    if millions == 1:
        df = table.to_pandas()
        sides["pandas"] = lambda: pandas_answer(df)
    rounds(sides, 1)  # warm-up: imports, allocator, DuckDB's catalog
    res = rounds(sides, args.repeat)
    rows: list[list[Any]] = []

    def keep(row: list[Any]) -> None:  # printed as it comes too, in case a later one fails
        rows.append(row)
        print(f"  {row}", file=sys.stderr)

    keep(_row(f"{label} in memory", res, n))
    con.unregister("results_table")
    if args.disk:
        root = tmp / f"sweep{millions}"
        t0 = time.perf_counter()
        files = write_fragments(table, root / "results")
        print(f"{label}: {files:,} fragments written in {time.perf_counter() - t0:.0f} s",
              file=sys.stderr)  # fmt: skip
        del table, df, sides
        gc.collect()
        disk_sql = duckdb_sql(SOURCE.replace("ROWS", str(root / "results")))
        sides = {
            "fsf": lambda: _released(fsf_answer(read_results(root))),
            "duckdb": lambda: duckdb_answer(con, disk_sql),
        }
        if millions == 1:
            sides["pandas"] = lambda: pandas_answer(pd.read_parquet(root / "results"))
        disk_repeat = max(1, args.repeat // 3) if millions > 1 else args.repeat
        res = rounds(sides, disk_repeat)
        keep(_row(f"{label} from {files:,} fragments", res, n))
        if millions > 1:  # (one file of 20 M rows, read whole by fsf beside DuckDB's buffers,
            return rows  # took this 24 GB VM out of memory)
        # the same folder after `fsf-sweep compact` (one file), read by each side again
        t0 = time.perf_counter()
        report = compact(root)
        print(f"{label}: compacted into {report.written} in {time.perf_counter() - t0:.0f} s",
              file=sys.stderr)  # fmt: skip
        if "pandas" in sides:
            del sides["pandas"]  # (the fragments' figure is the pandas comparison)
        res = rounds(sides, disk_repeat)
        keep(_row(f"{label} from 1 compacted file", res, n))
    return rows


def _released(answer: Answer) -> Answer:
    """`answer`, after pyarrow's allocator has given the table it read back to the system."""
    gc.collect()
    pa.default_memory_pool().release_unused()
    return answer


def _row(what: str, res: dict[str, Any], n: int) -> list[Any]:
    times, ans = res["times"], res["answers"]
    ok = all(same(ans["fsf"], ans[s]) for s in ans)
    med = {s: statistics.median(t) for s, t in times.items()}
    return [
        what,
        med["fsf"],
        med["duckdb"],
        ratio(times, "duckdb"),
        med.get("pandas"),
        ratio(times, "pandas") if "pandas" in times else None,
        len(times["fsf"]),
        "yes" if ok else "NO",
    ]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--smoke", action="store_true", help="tiny sizes: just run and print")
    p.add_argument("--sizes", type=int, nargs="+", default=[1], choices=sorted(SHAPES),
                   help="millions of rows (1, 20)")  # fmt: skip
    p.add_argument("--repeat", type=int, default=9, help="rounds in memory (disk: a third at 20M)")
    p.add_argument("--disk", action="store_true", help="also from the Parquet fragments")
    p.add_argument("--full-config", action="store_true",
                   help="a full run config in config_json (as real sweeps have)")  # fmt: skip
    p.add_argument("--duckdb-threads", type=int, default=2)
    p.add_argument("--duckdb-memory", default="6GB", help="DuckDB's memory_limit")
    args = p.parse_args(argv)
    if args.smoke:
        args.repeat, args.disk, args.sizes = 1, True, [1, 20]
    rows: list[list[Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for m in args.sizes:
            rows += bench_size(m, args, Path(tmp))
            gc.collect()
    title = (
        "best_per_language (rule objective): fsf vs DuckDB (the SQL of docs/results.md, "
        f"{args.duckdb_threads} threads) and pandas; median seconds of the rounds, sides "
        "alternating; speed-up = median of the per-round ratios peer s / fsf s (> 1: fsf is faster); "
        f"config_json {'full' if args.full_config else '{}'}"
    )
    print_table(
        ["data", "fsf s", "DuckDB s", "speed-up vs DuckDB", "pandas s", "speed-up vs pandas",
         "rounds", "same answer"],
        rows,
        title=title,
    )  # fmt: skip
    return 0 if all(r[-1] == "yes" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
