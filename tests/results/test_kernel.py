"""The selection kernel (`fsf.results.cube`) on untidy tables: answers do not depend on the
order of the rows, and they match the documented DuckDB query with failed runs, a second
metric, missing values and repeated configurations in the table."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from fsf.results import RULES, best_per_language, summary, top_configurations
from fsf.results._testing import synthetic_table
from fsf.results.columns import THREADS, column_np
from tests.results.test_docs_queries import _block

LANGS = ("en", "de", "fr", "ja", "sw")


def _untidy(seed: int = 0) -> pa.Table:
    """Failed trials, repeated configurations (seeds counted once), rows of a second metric
    interleaved with the primary one, and some scores missing (NaN or null)."""
    rng = np.random.default_rng(seed)
    base = synthetic_table(14, 3, 6, LANGS, failed_every=5, seed=seed)
    # trial t00013 repeats t00003's sampled parameters (a repeat the searcher asked for)
    params = base["params_json"].to_pylist()
    tid = base["trial_id"].to_pylist()
    p3 = next(p for p, t in zip(params, tid, strict=True) if t == "t00003")
    params = [p3 if t == "t00013" else p for p, t in zip(params, tid, strict=True)]
    base = base.set_column(base.schema.get_field_index("params_json"), "params_json",
                           pa.array(params, pa.string()))  # fmt: skip
    f1 = base.set_column(base.schema.get_field_index("metric"), "metric",
                         pa.array(["f1"] * len(base), pa.string()))  # fmt: skip
    f1 = f1.set_column(f1.schema.get_field_index("value"), "value",
                       pa.array(rng.random(len(base))))  # fmt: skip
    table = pa.concat_tables([base, f1])
    # interleave the metrics within each evaluation, as a writer of two metrics would
    table = table.sort_by([("trial_id", "ascending"), ("seed", "ascending"),
                           ("step", "ascending"), ("split", "ascending")])  # fmt: skip
    value = table["value"].to_numpy().copy()
    missing = rng.random(len(value)) < 0.04
    value[missing] = np.nan
    nulls = rng.random(len(value)) < 0.02
    return table.set_column(table.schema.get_field_index("value"), "value",
                            pa.array(value, mask=nulls))  # fmt: skip


def _shuffled(table: pa.Table, seed: int = 1) -> pa.Table:
    return table.take(pa.array(np.random.default_rng(seed).permutation(len(table))))


def _answers(table: pa.Table, rule: str) -> str:
    """Every answer, as `_json`."""
    answers = {
        "per_language": best_per_language(table, select=rule).to_dict(),
        "summary": summary(table, select=rule),
    }
    if rule != "oracle-test":  # (a confirmation never chooses on test)
        answers["top"], answers["baseline"] = top_configurations(table, 5, select=rule)
    return _json(answers)


def _json(obj: object) -> str:
    """`obj` as JSON, floats to 12 digits (a mean over seeds sums them in the order the runs
    appear in the table)."""
    text = json.dumps(obj, sort_keys=True, default=str)
    return json.dumps(json.loads(text, parse_float=lambda x: round(float(x), 12)), sort_keys=True)


@pytest.mark.parametrize("rule", RULES)
def test_answers_do_not_depend_on_row_order(rule):
    table = _untidy()
    want = _answers(table, rule)
    for seed in (1, 2):
        assert _answers(_shuffled(table, seed), rule) == want


def test_untidy_table_matches_the_documented_duckdb_query():
    duckdb = pytest.importorskip("duckdb")
    for seed in (0, 3):
        table = _untidy(seed)
        con = duckdb.connect()
        con.register("results_table", table)
        source = "read_parquet('ROWS/**/*.parquet', hive_partitioning = true)"
        got = con.sql(_block("sql").replace(source, "results_table")).fetchall()
        per = best_per_language(table)
        want = [(e["language"], e["trial_id"], e["score"], e["n_seeds"]) for e in per.languages]
        assert [(g[0], g[1], g[3]) for g in got] == [(w[0], w[1], w[3]) for w in want]
        assert [g[2] for g in got] == pytest.approx([w[2] for w in want], abs=1e-12)
        # the repeat of t00003 shares its seeds: no configuration counts more than 3
        assert max(w[3] for w in want) <= 3


def test_languages_without_a_usable_score_are_not_ranked():
    """A language seen only in failed runs, and rows without a language, rank nothing; a
    table split into many chunks answers as one."""
    table = _untidy()
    lang = table["language"].to_pylist()
    status = table["status"].to_pylist()
    lang = ["xx" if s == "failed" and x == "ja" else x for x, s in zip(lang, status, strict=True)]
    lang[5::97] = [None] * len(lang[5::97])
    table = table.set_column(table.schema.get_field_index("language"), "language",
                             pa.array(lang, pa.string()))  # fmt: skip
    per = best_per_language(table).to_dict()
    assert "xx" not in json.dumps(per)
    assert {e["language"] for e in per["languages"]} == {"de", "fr", "ja", "sw"}
    chunked = pa.Table.from_batches(table.to_batches(max_chunksize=331))
    assert _json(best_per_language(chunked).to_dict()) == _json(per)
    assert _json(best_per_language(_shuffled(table)).to_dict()) == _json(per)
    shuffled = pa.Table.from_batches(_shuffled(table).to_batches(max_chunksize=331))
    assert _json(best_per_language(shuffled).to_dict()) == _json(per)


def test_column_np_on_threads_matches_to_numpy(monkeypatch):
    """The per-chunk conversion on threads gives pyarrow's own answer, nulls filled."""
    import fsf.results.columns as columns

    monkeypatch.setattr(columns, "_PARALLEL_ROWS", 0)  # threads even for a small column
    monkeypatch.setattr(columns, "THREADS", max(THREADS, 2))
    rng = np.random.default_rng(0)
    values = rng.random(10_000)
    parts = [values[a : a + 997] for a in range(0, len(values), 997)]
    col = pa.chunked_array([pa.array(v, mask=rng.random(len(v)) < 0.1) for v in parts])
    got = column_np(col, -1.0, np.float64)
    assert np.array_equal(got, pc.fill_null(col, -1.0).to_numpy())
    words = pa.chunked_array([pa.array(["dev", "test", None] * 300)] * 7)
    got = column_np(words, False, bool, lambda c: pc.equal(c, "dev"))
    assert np.array_equal(got, pc.fill_null(pc.equal(words, "dev"), False).to_numpy())


def test_pieces_join_small_chunks_and_keep_large_ones(monkeypatch):
    import fsf.results.columns as columns

    monkeypatch.setattr(columns, "THREADS", 2)
    small = pa.chunked_array([pa.array(np.arange(a, a + 1000)) for a in range(0, 600_000, 1000)])
    parts = [columns._array(p) for p in columns.pieces(small)]
    assert len(parts) == 3 and all(len(p) >= 250_000 or p is parts[-1] for p in parts)
    assert np.array_equal(np.concatenate([p.to_numpy() for p in parts]), np.arange(600_000))
    large = pa.chunked_array([pa.array(np.zeros(10)), pa.array(np.ones(5))])
    assert columns.pieces(large) == large.chunks  # few chunks: as they are
    empty = pa.chunked_array([], type=pa.float64())
    assert column_np(empty, 0.0, np.float64).shape == (0,)


def test_the_thread_pool_is_reused_and_remade_in_a_forked_child(monkeypatch):
    """`parallel` keeps one pool per process; a child forked after the parent used it (a
    fork keeps no threads) gets a pool of its own instead of hanging on the parent's."""
    import multiprocessing
    import threading

    import fsf.results.columns as columns

    monkeypatch.setattr(columns, "THREADS", 2)
    monkeypatch.setattr(columns, "_POOL", None)

    def names(_: int) -> str:
        return threading.current_thread().name

    first = columns.parallel(names, list(range(8)), 10**6)
    pool = columns._pool()
    assert columns.parallel(names, list(range(8)), 10**6) and columns._pool() is pool
    assert all(n.startswith("fsf-query") for n in first)
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(1) as child:
        got = child.apply_async(columns.parallel, (abs, [-1, -2, -3], 10**6)).get(timeout=30)
    assert got == [1, 2, 3]
