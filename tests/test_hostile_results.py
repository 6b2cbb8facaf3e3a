"""Hostile result folders: a file put into a sweep's results by a careless tool or a hostile
co-worker, and exports aimed into the sweep folder. Each fragment case adds one file (or
rewrites one) that would change the answer; the readers must set it aside, name it with the
rule it breaks, answer exactly as without it, say so in the answer and exit 3; `compact` must
not fold it. Each export case must be refused (exit 2) before anything is written.

Everything runs in-process through `fsf.cli.main` (what the `fsf` console script calls)."""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from fsf.cli import main
from fsf.results import SCHEMA, completed_evaluations, read_fragment, read_results
from fsf.results.writer import atomic_write_table
from tests.results.helpers import ev2, evaluation, run, write

A = "trial=a/seed-0.parquet"  # the fsf run that wins de, sw and the target mean
B = "trial=b/seed-0.parquet"  # the DF baseline


def _sweep(root: Path) -> Path:
    """A finished two-configuration sweep: FSF (trial a) beats DF (trial b) on every target."""
    runs = [
        run("a", [ev2(0, 0.5, 0.4, 0.3), ev2(10, 0.8, 0.62, 0.55)], params={"policy": "fsf"}),
        run(
            "b",
            [ev2(0, 0.5, 0.4, 0.3), ev2(10, 0.7, 0.58, 0.5)],
            params={"policy": "df"},
            policy="df",
        ),
    ]
    write(root / "results", runs)
    (root / "sweep.json").write_text(json.dumps({"name": "hostile"}))
    return root


def _rows(path: Path) -> list[dict[str, Any]]:
    return read_fragment(path).to_pylist()


def _put(path: Path, rows: list[dict[str, Any]]) -> None:
    atomic_write_table(pa.Table.from_pylist(rows, schema=SCHEMA), path)


def _as(rows: list[dict[str, Any]], **changes: Any) -> list[dict[str, Any]]:
    """`rows` with `changes` on every row (a callable gets the row and returns the value)."""
    return [{**r, **{k: v(r) if callable(v) else v for k, v in changes.items()}} for r in rows]


def _better(r: dict[str, Any]) -> float | None:
    """A score that would win everything."""
    return 0.99 if r["split"] in ("dev", "test") else r["value"]


# -- the attacks: (sweep folder) -> the path of the hostile file, relative to results/ -------


def _new_trial(**changes: Any) -> Callable[[Path], str]:
    """A new trial `h` at its own path, a copy of trial a's rows with `changes`."""

    def attack(res: Path) -> str:
        rows = _as(_rows(res / A), **{"trial_id": "h", "value": _better, **changes})
        _put(res / "trial=h" / "seed-0.parquet", rows)
        return "trial=h/seed-0.parquet"

    return attack


def _one_row(index: int, **changes: Any) -> Callable[[Path], str]:
    """A new trial `h`, a copy of trial a's rows with `changes` on one row only."""

    def attack(res: Path) -> str:
        rows = _as(_rows(res / A), trial_id="h", value=_better)
        rows[index] = {**rows[index], **changes}
        _put(res / "trial=h" / "seed-0.parquet", rows)
        return "trial=h/seed-0.parquet"

    return attack


def _extra_row(**changes: Any) -> Callable[[Path], str]:
    """A new trial `h` (a copy of trial a's winning rows) with one extra analysis row."""

    def attack(res: Path) -> str:
        rows = _as(_rows(res / A), trial_id="h", value=_better)
        extra = {**rows[0], "language": "en", "is_source": True, **changes}
        _put(res / "trial=h" / "seed-0.parquet", [*rows, extra])
        return "trial=h/seed-0.parquet"

    return attack


def _copy_of_a(where: str, *, value: Any = _better, step: Any = None) -> Callable[[Path], str]:
    """Trial a's rows, with winning scores, in a second file at `where`."""

    def attack(res: Path) -> str:
        rows = _as(_rows(res / A), value=value)
        if step is not None:
            rows = _as(rows, step=step)
        _put(res / where, rows)
        return where

    return attack


def _repeat_in_own_file(which: str, pick: Callable[[list], list]) -> Callable[[Path], str]:
    """The fragment `which` rewritten with `pick(rows)` appended as winning repeats."""

    def attack(res: Path) -> str:
        rows = _rows(res / which)
        _put(res / which, [*rows, *_as(pick(rows), value=_better)])
        return which

    return attack


def _repeat_first_at_end(which: str) -> Callable[[Path], str]:
    """The fragment `which` with its first row repeated last (a repeat far from its twin)."""

    def attack(res: Path) -> str:
        rows = _rows(res / which)
        _put(res / which, [*rows, {**rows[0], "value": 0.99}])
        return which

    return attack


def _new_trial_repeating(index: int) -> Callable[[Path], str]:
    """A new trial `h` (a copy of trial a's rows) with its row `index` repeated at the end,
    winning."""

    def attack(res: Path) -> str:
        rows = _as(_rows(res / A), trial_id="h")
        _put(res / "trial=h" / "seed-0.parquet", [*rows, {**rows[index], "value": 0.99}])
        return "trial=h/seed-0.parquet"

    return attack


def _two_runs_in_one_file(res: Path) -> str:
    """A file holding copies of both runs, with winning scores."""
    rows = _as(_rows(res / A) + _rows(res / B), value=_better)
    _put(res / "trial=zz" / "seed-0.parquet", rows)
    return "trial=zz/seed-0.parquet"


def _loss_rows(*values: float, same_step: bool = False) -> Callable[[Path], str]:
    """A new trial `h` with per-step training loss rows (`values`, steps 1.. or all 1)."""

    def attack(res: Path) -> str:
        rows = _as(_rows(res / A), trial_id="h", value=_better)
        base = {**rows[0], "split": "train", "metric": "loss", "language": "en"}
        loss = [
            {**base, "step": 1 if same_step else i + 1, "value": v} for i, v in enumerate(values)
        ]
        _put(res / "trial=h" / "seed-0.parquet", [*rows, *loss])
        return "trial=h/seed-0.parquet"

    return attack


@dataclass
class Attack:
    id: str
    make: Callable[[Path], str]
    expect: str  # what the reason must say


ATTACKS = [
    # -- steps
    Attack("negative-steps", _new_trial(step=lambda r: -5 - r["step"]), "a negative step"),
    Attack("one-negative-step", _one_row(3, step=-1), "a negative step"),
    Attack("step-min-int", _one_row(0, step=-(2**63)), "a negative step"),
    # -- a metric's range: every score is a fraction in [0, 1]
    Attack("score-57", _new_trial(value=lambda r: 57.0), "a score above 1"),
    Attack("score-percent", _new_trial(value=lambda r: 100 * r["value"]), "a score above 1"),
    Attack("score-1.5-one-row", _one_row(5, value=1.5), "a score above 1"),
    Attack("score-inf", _one_row(2, value=math.inf), "a score above 1"),
    Attack("score-negative", _one_row(2, value=-0.3), "a value below 0"),
    Attack("score-minus-inf", _one_row(1, value=-math.inf), "a value below 0"),
    Attack("loss-negative", _loss_rows(0.9, -1.0), "a value below 0"),
    Attack(
        "cka-above-1",
        _extra_row(split="cka", metric="cka_layer_3", value=1.5),
        "a CKA above 1",
    ),
    # -- statuses and splits nobody writes
    Attack("status-unknown", _new_trial(status="winning"), "a status that is none of"),
    Attack("status-uppercase", _new_trial(status="COMPLETED"), "a status that is none of"),
    Attack("status-null", _new_trial(status=None), "a status that is none of"),
    Attack("status-one-row", _one_row(4, status="best"), "a status that is none of"),
    Attack("split-unknown", _new_trial(split="valid"), "a split that is none of"),
    Attack("split-uppercase", _one_row(0, split="DEV"), "a split that is none of"),
    # -- rows that name no run, or no language
    Attack("null-trial-id", _new_trial(trial_id=None), "a null trial_id"),
    Attack("null-seed", _new_trial(seed=None), "a null seed"),
    Attack("null-language", _new_trial(language=None), "a split but a null language"),
    Attack("null-metric", _one_row(2, metric=None), "a split but a null metric"),
    Attack("null-step", _one_row(2, step=None), "a split but a null step"),
    # -- one row per (trial, seed, step, split, language, metric) key
    Attack(
        "repeat-in-own-file",
        _repeat_in_own_file(A, lambda rows: rows),
        "the (trial, seed, step, split, language, metric) key",
    ),
    Attack(
        "repeat-of-the-baseline",
        _repeat_in_own_file(B, lambda rows: rows[-3:]),
        "the (trial, seed, step, split, language, metric) key",
    ),
    Attack(
        "repeat-far-from-its-twin",
        _repeat_first_at_end(A),
        "the (trial, seed, step, split, language, metric) key",
    ),
    Attack(
        "repeat-in-a-new-trial",
        _new_trial_repeating(7),
        "the (trial, seed, step, split, language, metric) key",
    ),
    Attack(
        "repeated-loss-step",
        _loss_rows(0.9, 0.8, same_step=True),
        "the (trial, seed, step, split, language, metric) key",
    ),
    # -- a run's rows from one file
    Attack("copy-under-another-folder", _copy_of_a("trial=zz/seed-0.parquet"), "its own fragment"),
    Attack("copy-at-the-root", _copy_of_a("extra.parquet"), "its own fragment"),
    Attack("copy-as-another-seed-file", _copy_of_a("trial=a/seed-9.parquet"), "its own fragment"),
    Attack(
        "copy-in-a-hidden-looking-folder",
        _copy_of_a("trial=a.bak/seed-0.parquet"),
        "its own fragment",
    ),
    Attack(
        "copy-with-new-steps",
        _copy_of_a("trial=zz/seed-0.parquet", step=lambda r: r["step"] + 5),
        "its own fragment",
    ),
    Attack("two-runs-copied-in-one-file", _two_runs_in_one_file, "its own fragment"),
]


def _answer(folder: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple:
    """(exit code, the per-language answer, the JSON, stderr) of `fsf best --per-language`."""
    capsys.readouterr()
    code = main(["best", str(folder), "--per-language", "--format", "json", *extra])
    out, err = capsys.readouterr()
    data = json.loads(out)
    entries = [*data["languages"], data["target_mean"]]
    key = [(e["language"], e["trial_id"], round(e["score"], 12), e["n_seeds"]) for e in entries]
    return code, key, data, err


def test_there_are_at_least_40_cases():
    assert len(ATTACKS) + len(EXPORTS) + len(COMPACT_CASES) + 6 >= 40


@pytest.mark.parametrize("attack", ATTACKS, ids=lambda a: a.id)
def test_a_hostile_fragment_is_set_aside_named_and_changes_no_answer(
    attack: Attack, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sweep = _sweep(tmp_path / "s")
    rel = attack.make(sweep / "results")
    # what the answer is without the hostile file: a copy of the folder, the file removed
    # (a rewritten fragment: the run it held is gone)
    clean = tmp_path / "clean"
    shutil.copytree(sweep, clean)
    (clean / "results" / rel).unlink()
    _, want, _, _ = _answer(clean, capsys)

    code, got, data, err = _answer(sweep, capsys)
    assert code == 3
    assert got == want
    (skipped,) = data["skipped_fragments"]
    assert skipped["path"] == rel and skipped["kind"] == "invalid"
    assert attack.expect in skipped["reason"], skipped["reason"]
    assert f"{rel}: set aside: " in err and attack.expect in err
    # the table says it too, on its own line
    capsys.readouterr()
    assert main(["best", str(sweep), "--per-language"]) == 3
    out = capsys.readouterr().out
    assert "left out:  1 fragment(s): 1 set aside (rows that break the schema's meaning)" in out


# -- compact does not fold a file the readers set aside ------------------------------------

COMPACT_CASES = [a for a in ATTACKS if a.id in {
    "negative-steps", "score-57", "status-unknown", "null-language", "repeat-in-a-new-trial",
    "copy-under-another-folder", "two-runs-copied-in-one-file", "copy-with-new-steps",
}]  # fmt: skip


@pytest.mark.parametrize("attack", COMPACT_CASES, ids=lambda a: a.id)
def test_compact_does_not_fold_a_hostile_fragment(
    attack: Attack, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sweep = _sweep(tmp_path / "s")
    rel = attack.make(sweep / "results")
    hostile = (sweep / "results" / rel).read_bytes()
    _, before, _, _ = _answer(sweep, capsys)
    capsys.readouterr()
    assert main(["compact", str(sweep)]) == 3
    err = capsys.readouterr().err
    assert f"{rel}: set aside: " in err and "not folded" in err
    assert (sweep / "results" / rel).read_bytes() == hostile  # left in place, unchanged
    (part,) = (sweep / "results").glob("trial=@compacted/*.parquet")
    folded = read_fragment(part)
    assert sorted(set(folded["trial_id"].to_pylist())) == ["a", "b"]
    assert 0.99 not in folded["value"].to_pylist()
    code, after, _, err = _answer(sweep, capsys)
    assert code == 3 and after == before and rel in err


def test_compact_folds_only_fragments_at_their_own_path(tmp_path, capsys):
    """A sound copy of a run in a file of its own under another name (no second copy to
    conflict with) reads, but is not what the writer lays out: `compact` leaves it."""
    sweep = _sweep(tmp_path / "s")
    rows = _as(_rows(sweep / "results" / A), trial_id="c")
    _put(sweep / "results" / "trial=elsewhere" / "seed-0.parquet", rows)
    assert main(["compact", str(sweep)]) == 3
    err = capsys.readouterr().err
    assert (
        "trial=elsewhere/seed-0.parquet: holds run (trial 'c', seed 0), whose fragment is " in err
    )
    assert (sweep / "results" / "trial=elsewhere" / "seed-0.parquet").is_file()


def test_a_copy_of_a_compacted_run_is_set_aside(tmp_path, capsys):
    """After compaction a loose copy of a run with winning scores must not win over the
    compacted rows (a loose fragment wins only at the run's own path: a re-run)."""
    sweep = _sweep(tmp_path / "s")
    _, want, _, _ = _answer(sweep, capsys)
    rows = _rows(sweep / "results" / A)
    assert main(["compact", str(sweep)]) == 0
    _put(sweep / "results" / "trial=zz" / "seed-0.parquet", _as(rows, value=_better))
    code, got, data, _ = _answer(sweep, capsys)
    assert code == 3 and got == want
    assert (
        "the compacted file trial=@compacted/part-000001-" in data["skipped_fragments"][0]["reason"]
    )
    # a re-run at the run's own path still wins over its compacted rows, as documented
    rerun = _as(rows, value=lambda r: 0.95 if r["split"] in ("dev", "test") else r["value"])
    _put(sweep / "results" / A, rerun)
    code, got, data, _ = _answer(sweep, capsys)
    assert code == 3 and [s["path"] for s in data["skipped_fragments"]] == [
        "trial=zz/seed-0.parquet"
    ]
    assert data["target_mean"]["trial_id"] == "a" and data["target_mean"]["score"] == 0.95


# -- the other readers ----------------------------------------------------------------------


def test_show_export_and_report_leave_the_hostile_rows_out_too(tmp_path, capsys):
    sweep = _sweep(tmp_path / "s")
    rel = _new_trial(value=lambda r: 57.0)(sweep / "results")
    capsys.readouterr()
    assert main(["show", str(sweep)]) == 3
    out, err = capsys.readouterr()
    assert "left out:  1 fragment(s): 1 set aside" in out and rel in err
    target = tmp_path / "rows.parquet"
    assert main(["export", str(sweep), "--to", str(target)]) == 3
    exported = read_fragment(target)
    assert set(exported["trial_id"].to_pylist()) == {"a", "b"}
    assert max(exported["value"].to_pylist()) <= 1
    assert main(["report", str(sweep), "--out", str(tmp_path / "report")]) == 3
    md = (tmp_path / "report" / "report.md").read_text()
    assert rel in md and "a score above 1" in md


def test_a_resumed_sweep_does_not_reuse_a_hostile_completed_fragment(tmp_path):
    """`completed_evaluations` (what a resumed sweep reports instead of training a finished
    run again) refuses a completed fragment whose rows the readers would set aside."""
    root = tmp_path / "results"
    scores = {"en": 0.8, "de": 0.6}
    write(root, [run("c", [evaluation(0, scores, scores), evaluation(100, scores, scores)])])
    assert len(completed_evaluations(root, "c", 0)) == 2
    path = root / "trial=c" / "seed-0.parquet"
    rows = _rows(path)
    _put(path, _as(rows, value=lambda r: 57.0))
    assert completed_evaluations(root, "c", 0) is None
    _put(path, [*rows, rows[0]])
    assert completed_evaluations(root, "c", 0) is None
    _put(path, rows)
    assert len(completed_evaluations(root, "c", 0)) == 2


def test_a_hostile_fragment_of_the_confirmation_stage_is_set_aside(tmp_path, capsys):
    sweep = _sweep(tmp_path / "s")
    confirm = _sweep(sweep / "confirm")
    (confirm / "sweep.json").write_text(json.dumps({"name": "hostile", "stage": "confirm"}))
    _, want, _, _ = _answer(sweep, capsys)
    rel = _new_trial(step=lambda r: -1 - r["step"])(confirm / "results")
    code, got, data, err = _answer(sweep, capsys)
    assert code == 3 and got == want and data["stage"]["name"] == "confirm"
    assert data["skipped_fragments"][0]["path"] == rel and "a negative step" in err


def test_a_sound_folder_sets_nothing_aside(tmp_path, capsys):
    """The checks pass what the writer writes: CKA a hair above 1 (float32), losses above 1,
    NaN and null scores, a run that failed before its first evaluation."""
    sweep = _sweep(tmp_path / "s")
    rows = _rows(sweep / "results" / A)
    extra = [
        {**rows[0], "split": "cka", "metric": "cka_layer_0", "language": "en", "value": 1 + 1e-7},
        {**rows[0], "split": "train", "metric": "loss", "language": "en", "value": 2.3},
        {**rows[0], "step": 5, "value": math.nan},
        {**rows[0], "step": 6, "value": None},
    ]
    _put(sweep / "results" / A, [*rows, *extra])
    failed = {k: None for k in rows[0]}
    failed.update(
        schema_version=1, sweep="hostile", trial_id="f", seed=0, status="failed",
        failure_reason="RayActorError", task="xnli", policy="df",
    )  # fmt: skip
    _put(sweep / "results" / "trial=f" / "seed-0.parquet", [failed])
    res = read_results(sweep)
    assert res.skipped == [] and len(res.fragments) == 3
    code, _, data, err = _answer(sweep, capsys)
    assert code == 0 and data["skipped_fragments"] == [] and "set aside" not in err


# -- export: never into the sweep folder ---------------------------------------------------

EXPORTS = {
    "over-a-live-fragment": "{sweep}/results/" + A,
    "beside-the-fragments": "{sweep}/results/all.parquet",
    "a-new-trial-folder": "{sweep}/results/trial=x/seed-0.parquet",
    "the-sweep-folder": "{sweep}/rows.csv",
    "the-confirmation-stage": "{sweep}/confirm/results/rows.parquet",
    "dot-dot-back-in": "{tmp}/elsewhere/../s/results/rows.parquet",
    "file-uri": "file://{sweep}/results/rows.parquet",
    "through-a-symlink": "{tmp}/link/rows.parquet",
}


@pytest.mark.parametrize("target", list(EXPORTS.values()), ids=list(EXPORTS))
def test_export_refuses_a_target_inside_the_sweep_folder(
    target: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sweep = _sweep(tmp_path / "s")
    (sweep / "confirm" / "results").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "link").symlink_to(sweep / "results")
    before = {p: p.read_bytes() for p in sorted(sweep.rglob("*")) if p.is_file()}
    to = target.format(sweep=sweep, tmp=tmp_path)
    assert main(["export", str(sweep), "--to", to]) == 2
    err = capsys.readouterr().err
    assert "inside the sweep folder" in err and "write it elsewhere" in err
    assert {p: p.read_bytes() for p in sorted(sweep.rglob("*")) if p.is_file()} == before


def test_export_of_a_bare_results_folder_refuses_a_target_in_it(tmp_path, capsys):
    sweep = _sweep(tmp_path / "s")
    (sweep / "sweep.json").unlink()
    target = sweep / "results" / "rows.parquet"
    assert main(["export", str(sweep / "results"), "--to", str(target)]) == 2
    assert "inside the sweep folder" in capsys.readouterr().err and not target.exists()
    assert main(["export", str(sweep / "results"), "--to", str(tmp_path / "ok.csv")]) == 0
