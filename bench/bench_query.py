"""Benchmark: best configuration per target language, fsf's query vs a plain pandas group-by.

Builds a realistic results table (default 500 trials x 2 seeds x 20 steps x 2 splits x
25 languages x 1 metric = 1,000,000 rows), answers "the best configuration of every target
language, under the default selection rule" with `fsf.results.best_per_language` and with an idiomatic
pandas implementation of the same rules, checks that both agree, and prints the times.
Both sides start from the data in memory (an Arrow table for fsf, a DataFrame for pandas);
`--disk` also writes the fragments and times loading them with each library.

    python bench/bench_query.py            # full size; goal: fsf >= 10x pandas and < 1 s
    python bench/bench_query.py --smoke    # tiny sizes, seconds
"""

from __future__ import annotations

import argparse
import itertools
import math
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from fsf._cli import print_table
from fsf.results import best_per_language, read_results
from fsf.results._testing import synthetic_table
from fsf.results.writer import atomic_write_table, fragment_path


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


def fsf_answer(table: Any) -> list[tuple[str, str, float, int]]:
    res = best_per_language(table)
    return [(e["language"], e["trial_id"], e["score"], e["n_seeds"]) for e in res.languages]


def pandas_answer(df: pd.DataFrame) -> list[tuple[str, str, float, int]]:
    g = pandas_best_per_language(df)
    return [
        (r.language, r.trial_id, float(r.score), int(r.n_seeds)) for r in g.itertuples(index=False)
    ]


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """(median seconds over `repeat` calls, the last result)."""
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def paired(
    fa: Callable[[], Any], fb: Callable[[], Any], repeat: int
) -> tuple[float, float, float, Any, Any]:
    """Alternate `fa` and `fb` `repeat` times each, so that both see the same machine state;
    (median s of fa, median s of fb, median of the per-pair ratios fb / fa, last results)."""
    ta, tb, ratios, a, b = [], [], [], None, None
    for _ in range(repeat):
        t0 = time.perf_counter()
        a = fa()
        t1 = time.perf_counter()
        b = fb()
        t2 = time.perf_counter()
        ta.append(t1 - t0)
        tb.append(t2 - t1)
        ratios.append((t2 - t1) / (t1 - t0))
    return statistics.median(ta), statistics.median(tb), statistics.median(ratios), a, b


def same(a: list[tuple], b: list[tuple]) -> bool:
    return len(a) == len(b) and all(
        x[0] == y[0] and x[1] == y[1] and x[3] == y[3] and math.isclose(x[2], y[2], abs_tol=1e-12)
        for x, y in zip(a, b, strict=True)
    )


def write_fragments(table: Any, root: Path) -> None:
    """One fragment per (trial, seed), as the writer lays them out."""
    df_keys = table.select(["trial_id", "seed"]).to_pandas()
    bounds = (df_keys != df_keys.shift()).any(axis=1).to_numpy().nonzero()[0].tolist()
    bounds.append(table.num_rows)
    for a, b in itertools.pairwise(bounds):
        part = table.slice(a, b - a)
        atomic_write_table(
            part, fragment_path(root, part["trial_id"][0].as_py(), part["seed"][0].as_py())
        )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--smoke", action="store_true", help="tiny sizes: just run and print")
    p.add_argument("--trials", type=int, default=500)
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--languages", type=int, default=25)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--disk", action="store_true", help="also time loading written fragments")
    args = p.parse_args(argv)
    if args.smoke:
        args.trials, args.steps, args.languages, args.repeat = 10, 4, 5, 1
    langs = ("en", *(f"l{i:02d}" for i in range(args.languages - 1)))
    t0 = time.perf_counter()
    table = synthetic_table(args.trials, args.seeds, args.steps, langs, failed_every=50)
    df = table.to_pandas()
    build = time.perf_counter() - t0
    fsf_answer(table), pandas_answer(df)  # warm-up (imports, allocator)
    t_fsf, t_pd, speedup, a, b = paired(
        lambda: fsf_answer(table), lambda: pandas_answer(df), args.repeat
    )
    ok = same(a, b)
    rows: list[list[Any]] = [
        ["best_per_language (in memory)", t_fsf, t_pd, speedup, "yes" if ok else "NO"],
    ]
    if args.disk:
        with tempfile.TemporaryDirectory() as tmp:
            write_fragments(table, Path(tmp) / "results")
            t_rf, res = timed(lambda: read_results(tmp), max(1, args.repeat // 2))
            t_rp, _ = timed(
                lambda: pd.read_parquet(Path(tmp) / "results"), max(1, args.repeat // 2)
            )
            ok_disk = same(fsf_answer(res), b)
            rows.append(["load fragments", t_rf, t_rp, t_rp / t_rf, "yes" if ok_disk else "NO"])
            ok = ok and ok_disk
    title = (
        f"{table.num_rows:,} rows ({args.trials} trials x {args.seeds} seeds x {args.steps} steps"
        f" x 2 splits x {args.languages} languages), built in {build:.1f} s; median of "
        f"{args.repeat}, fsf and pandas alternating (speed-up: median of the paired ratios)"
    )
    print_table(["query", "fsf s", "pandas s", "speed-up", "same answer"], rows, title=title)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
