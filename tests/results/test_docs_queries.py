"""The DuckDB, polars and pandas queries of docs/results.md give `fsf best`'s own answer, on a
sweep without a confirmation stage and on one with it (where `fsf best` answers from the
confirmation), reading the fragments the doc names or the file `fsf export` writes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from fsf.cli import main
from tests.results.helpers import ev2, run, write

DOC = Path(__file__).resolve().parents[2] / "docs" / "results.md"


def _section() -> str:
    return (
        DOC.read_text().split("### Reproducing fsf's answers without fsf", 1)[1].split("\n## ")[0]
    )


def _block(lang: str, needle: str = "") -> str:
    """The first `lang` code block of the section that contains `needle`."""
    blocks = re.findall(rf"```{lang}\n(.*?)```", _section(), re.S)
    return next(b for b in blocks if needle in b)


def _rows(sweep: Path) -> Path:
    """ROWS as the doc says: DIR/confirm/results when it holds fragments, else DIR/results."""
    confirm = sweep / "confirm" / "results"
    return confirm if any(confirm.rglob("*.parquet")) else sweep / "results"


def _search_only(root: Path) -> Path:
    """Dev and test disagree, two trials repeat a (configuration, seed), one run is stopped,
    one failed, one lacks a language."""
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


def _confirmed(root: Path) -> Path:
    """A search won by FSF on every language, and its confirmation on fresh seeds, where DF
    wins de and FSF sw (one confirmed run failed, one was stopped)."""
    fsf, df = {"policy": "fsf"}, {"policy": "df"}
    write(
        root / "results",
        [
            run("s1", [ev2(10, 0.8, 0.7, 0.7)], params=fsf),
            run("s2", [ev2(10, 0.8, 0.5, 0.5)], params=df, policy="df"),
        ],
    )
    (root / "sweep.json").write_text(json.dumps({"name": "docs"}))
    write(
        root / "confirm" / "results",
        [
            run("c1", [ev2(10, 0.8, 0.55, 0.7), ev2(20, 0.8, 0.52, 0.72)], seed=100, params=fsf),
            run("c1", [ev2(10, 0.8, 0.57, 0.6), ev2(20, 0.7, 0.6, 0.6)], seed=101, params=fsf),
            run("c2", [ev2(10, 0.8, 0.6, 0.5)], seed=100, params=df, policy="df"),
            run("c2", [ev2(10, 0.8, 0.62, 0.55)], seed=101, params=df, policy="df"),
            run(
                "c2",
                [ev2(10, 0.8, 0.9, 0.9)],
                seed=102,
                params=df,
                policy="df",
                status="failed",
                reason="RayActorError",
            ),
            run("c3", [ev2(10, 0.8, 0.9, 0.2)], seed=103, params=df, policy="df", status="stopped"),
        ],
    )
    meta = {"name": "docs", "stage": "confirm", "seeds": [100, 101, 102, 103]}
    (root / "confirm" / "sweep.json").write_text(json.dumps(meta))
    return root


SWEEPS = {"search only": _search_only, "with a confirmation stage": _confirmed}


@pytest.fixture(scope="module", params=list(SWEEPS))
def sweep(request, tmp_path_factory):
    return SWEEPS[request.param](tmp_path_factory.mktemp("docs") / "s")


def _fsf_best(sweep: Path, *flags: str) -> list[tuple]:
    """`fsf best DIR --per-language`'s answer per language: (language, trial, score, seeds)."""
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["best", str(sweep), "--per-language", "--format", "json", *flags]) == 0
    data = json.loads(out.getvalue())
    return [(e["language"], e["trial_id"], e["score"], e["n_seeds"]) for e in data["languages"]]


def _same(got: list[tuple], want: list[tuple]) -> None:
    assert [(g[0], g[1], g[3]) for g in got] == [(w[0], w[1], w[3]) for w in want]
    assert [g[2] for g in got] == pytest.approx([w[2] for w in want])


def _exported(sweep: Path, tmp_path: Path) -> Path:
    target = tmp_path / "rows.parquet"
    assert main(["export", str(sweep), "--to", str(target)]) == 0
    return target


def test_the_confirmed_sweep_answers_otherwise_from_its_search(tmp_path):
    """(Else the confirmation cases below could not tell the stages apart.)"""
    sweep = _confirmed(tmp_path / "s")
    assert _fsf_best(sweep) != _fsf_best(sweep, "--stage", "search")
    assert {x[1] for x in _fsf_best(sweep)} == {"c1", "c2"}


@pytest.mark.parametrize("source", ["fragments", "export"])
def test_documented_duckdb_query(sweep, source, tmp_path):
    duckdb = pytest.importorskip("duckdb")
    sql = _block("sql")
    if source == "export":
        sql = sql.replace("'ROWS/**/*.parquet'", f"'{_exported(sweep, tmp_path)}'")
    got = duckdb.sql(sql.replace("ROWS", str(_rows(sweep)))).fetchall()
    _same(got, _fsf_best(sweep))


@pytest.mark.parametrize("source", ["fragments", "export"])
def test_documented_polars_query(sweep, source, tmp_path):
    pytest.importorskip("polars")
    code = _block("python", "import polars")
    if source == "export":
        code = code.replace('"ROWS/**/*.parquet"', f'"{_exported(sweep, tmp_path)}"')
    scope: dict = {}
    exec(code.replace("ROWS", str(_rows(sweep))), scope)
    _same(scope["answer"].sort("language").rows(), _fsf_best(sweep))


@pytest.mark.parametrize("source", ["fragments", "export"])
def test_documented_pandas_query(sweep, source, tmp_path):
    code = _block("python", "import pandas")
    rows = _exported(sweep, tmp_path) if source == "export" else _rows(sweep)
    scope: dict = {}
    exec(code.replace('"ROWS"', f'"{rows}"'), scope)
    got = list(scope["answer"].sort_values("language").itertuples(index=False, name=None))
    _same(got, _fsf_best(sweep))
