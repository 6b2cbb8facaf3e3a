"""The DuckDB and polars queries of docs/results.md give fsf's own answer."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from fsf.results import best_per_language
from tests.results.helpers import ev2, run, write

DOC = Path(__file__).resolve().parents[2] / "docs" / "results.md"


def _block(lang: str) -> str:
    text = DOC.read_text().split("### Reproducing fsf's answers without fsf", 1)[1]
    return re.search(rf"```{lang}\n(.*?)```", text, re.S).group(1)


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """Dev and test disagree, two trials repeat a (configuration, seed), one run is stopped,
    one failed, one lacks a language."""
    root = tmp_path_factory.mktemp("docs") / "s"
    p1 = {"policy": "fsf", "lr": 1e-5}
    p2 = {"policy": "df", "lr": 2e-5}
    p3 = {"policy": "fs", "lr": 3e-5}
    runs = [
        run("a", [ev2(10, 0.5, 0.5, 0.5, dev_de=0.9), ev2(20, 0.8, 0.6, 0.4)], params=p1),
        run("a", [ev2(10, 0.7, 0.7, 0.6), ev2(20, 0.7, 0.5, 0.7)], seed=1, params=p1),
        run("b", [ev2(10, 0.6, 0.55, 0.65), ev2(20, 0.65, 0.58, 0.6)], params=p2, policy="df"),
        run("c", [ev2(10, 0.6, 0.50, 0.65)], params=p2, policy="df", status="stopped"),
        run("d", [ev2(10, 0.9, 0.9, 0.9)], params=p3, policy="fs", status="failed", reason="x"),
        run("e", [ev2(10, 0.6, 0.62)], params=p3, policy="fs"),
    ]
    write(root / "results", runs)
    return root


def _fsf(sweep):
    per = best_per_language(sweep)
    return [(e["language"], e["trial_id"], e["score"], e["n_seeds"]) for e in per.languages]


def test_documented_duckdb_query(sweep):
    duckdb = pytest.importorskip("duckdb")
    sql = _block("sql").replace("DIR", str(sweep))
    got = duckdb.sql(sql).fetchall()
    want = _fsf(sweep)
    assert [(g[0], g[1], g[3]) for g in got] == [(w[0], w[1], w[3]) for w in want]
    assert [g[2] for g in got] == pytest.approx([w[2] for w in want])


def test_documented_polars_query(sweep):
    pytest.importorskip("polars")
    code = _block("python").replace("DIR", str(sweep))
    scope: dict = {}
    exec(code, scope)
    got = scope["answer"].sort("language").rows()
    want = _fsf(sweep)
    assert [(g[0], g[1], g[3]) for g in got] == [(w[0], w[1], w[3]) for w in want]
    assert [g[2] for g in got] == pytest.approx([w[2] for w in want])
