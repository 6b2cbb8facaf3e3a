"""Query correctness on hand-built tables with known answers."""

from __future__ import annotations

import math

import pytest

from fsf.errors import FsfError
from fsf.results import best, best_per_language, summary
from tests.results.helpers import ev2, run, table


def toy():
    """de scores (source-dev): a .65625 (2 seeds), b .65625 (1), d+e .625 (2), g .5, h .5."""
    return table(
        [
            # a, seed 0: en best at step 20 -> de .625; de's own dev is best at step 10
            run(
                "a", [ev2(10, 0.5, 0.5, 0.5, dev_de=0.75), ev2(20, 0.75, 0.625, 0.5)], policy="fsf"
            ),
            # a, seed 1: en ties at steps 10 and 20 -> the earlier step (de .6875)
            run("a", [ev2(10, 0.875, 0.6875, 0.5), ev2(20, 0.875, 0.5, 0.5)], seed=1, policy="fsf"),
            run("b", [ev2(10, 0.9, 0.65625)], policy="df"),  # no sw: not ranked for sw
            run("c", [ev2(10, 0.99, 0.99, 0.99)], status="failed", reason="boom", policy="ff"),
            run("d", [ev2(10, 0.75, 0.5, 0.5)], policy="fs", lr=2e-5),
            run("e", [ev2(10, 0.75, 0.75, 0.5)], seed=1, policy="fs", lr=2e-5),
            run("h", [ev2(10, 0.5, 0.5, 0.25)], policy="noisytune", lr=3e-5),
            run("g", [ev2(10, 0.5, 0.5, 0.25)], policy="noisytune", lr=4e-5),
        ]
    )


def test_source_dev_ranking_ties_seeds_and_failed():
    rk = best(toy(), "de", top=10)
    got = [(e["trial_id"], e["score"], e["n_seeds"]) for e in rk.entries]
    assert got == [
        ("a", 0.65625, 2),
        ("b", 0.65625, 1),  # same score: more seeds first
        ("d", 0.625, 2),  # d and e share params except the seed: one configuration
        ("g", 0.5, 1),  # same score and seeds: smaller trial_id first
        ("h", 0.5, 1),
    ]
    a = rk.entries[0]
    assert a["steps"] == [20, 10] and a["seeds"] == [0, 1] and a["step"] == 20
    assert a["std"] == pytest.approx(math.sqrt(2 * 0.03125**2))
    assert rk.entries[1]["std"] is None
    assert rk.entries[2]["trial_ids"] == ["d", "e"]
    assert rk.excluded["failed_runs"] == 1 and rk.excluded["failed_trials"] == 1
    assert rk.excluded["duplicate_runs"] == 0
    assert not rk.oracle and a["oracle"] is False and a["selection"] == "objective"
    assert a["selection_score"] == pytest.approx(0.65625)  # de's own dev at the checkpoint
    assert a["metric"] == "accuracy" and a["language"] == "de"
    assert a["config"]["policy"] == "fsf" and a["config"]["params"]["lr"] == 1e-5
    assert [e["rank"] for e in rk.entries] == [1, 2, 3, 4, 5]
    assert [e["trial_id"] for e in best(toy(), "de", top=2).entries] == ["a", "b"]


def test_missing_language_not_ranked():
    rk = best(toy(), "sw", top=10)
    assert "b" not in [e["trial_id"] for e in rk.entries]
    assert rk.excluded["runs_without_score"] == 1


def test_unknown_language_lists_available():
    with pytest.raises(FsfError) as err:
        best(toy(), "xx")
    assert err.value.exit_code == 2
    assert "de, en, sw" in str(err.value)


def test_bad_selection_and_top():
    with pytest.raises(FsfError, match="objective, source-dev, target-dev, all-dev, oracle-test"):
        best(toy(), "de", select="oracle")
    with pytest.raises(FsfError, match="top"):
        best(toy(), "de", top=0)


def test_best_per_language_and_target_mean():
    per = best_per_language(toy())
    assert [e["language"] for e in per.languages] == ["de", "sw"]
    assert per.languages[0]["trial_id"] == "a"
    # sw: a .5 (2 seeds), d/e .5 (2 seeds) -> tie on score and seeds -> smaller trial id
    assert per.languages[1]["trial_id"] == "a"
    tm = per.target_mean
    # target mean per config: a: ((.625+.5)/2 + (.6875+.5)/2)/2 = .578125; b lacks sw
    assert tm["trial_id"] == "a" and tm["score"] == pytest.approx(0.578125)
    assert tm["languages"] == ["de", "sw"]
    d = per.to_dict()
    assert d["format"] == "fsf.best-per-language/2" and d["source_lang"] == "en"


def test_summary_counts_and_policies():
    s = summary(toy())
    assert s["trials"]["total"] == 7 and s["trials"]["by_status"] == {"completed": 6, "failed": 1}
    assert s["runs"]["total"] == 8
    assert s["failures"] == [{"trial_id": "c", "seed": 0, "reason": "boom"}]
    pols = {p["policy"]: p for p in s["policies"]}
    assert set(pols) == {"fsf", "df", "fs", "noisytune"}  # ff only failed
    assert pols["fsf"]["test_target_mean"] == pytest.approx(0.578125)
    assert pols["fsf"]["test_gap"] == pytest.approx((0.75 + 0.875) / 2 - 0.578125)
    assert pols["df"]["test_target_mean"] is None  # lacks sw
    (obj,) = s["objectives"]
    assert obj["metric"] == "dev_target_mean" and obj["value"] is not None


def test_several_tasks_need_a_choice():
    t = toy()
    import pyarrow as pa
    import pyarrow.compute as pc

    other = t.set_column(t.schema.get_field_index("task"), "task", pa.array(["pawsx"] * t.num_rows))
    other = other.set_column(
        other.schema.get_field_index("trial_id"),
        "trial_id",
        pc.binary_join_element_wise(other["trial_id"], "p", ""),
    )
    both = pa.concat_tables([t, other])
    with pytest.raises(FsfError, match="several tasks"):
        best(both, "de")
    assert best(both, "de", task="pawsx").entries[0]["trial_id"] == "ap"


def test_docs_schema_table_matches_schema():
    from pathlib import Path

    from fsf.results import SCHEMA

    doc = (Path(__file__).resolve().parents[2] / "docs" / "results.md").read_text()
    for f in SCHEMA:
        assert f"| `{f.name}` | {f.type} |" in doc, f.name
