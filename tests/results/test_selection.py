"""Selection rules, seeds counted once, budgets and paired statistics, on hand-built results
whose answers are known (dev and test disagree on purpose)."""

from __future__ import annotations

import pytest

from fsf.errors import FsfError
from fsf.results import (
    Results,
    best,
    best_per_language,
    paired_difference,
    summary,
    top_configurations,
)
from tests.results.helpers import ev2, evaluation, run, table


def _disagree():
    """Configuration A wins every dev score, B every test score; D is plain DF."""

    def ev(step, dev, test):
        langs = ("en", "de", "sw")
        return evaluation(step, dict.fromkeys(langs, dev), dict.fromkeys(langs, test))

    return table(
        [
            run("A", [ev(10, 0.8, 0.5)], policy="fsf", lr=1e-5),
            run("A", [ev(10, 0.82, 0.52)], seed=1, policy="fsf", lr=1e-5),
            run("B", [ev(10, 0.7, 0.9)], policy="fs", lr=2e-5),
            run("B", [ev(10, 0.72, 0.92)], seed=1, policy="fs", lr=2e-5),
            run("D", [ev(10, 0.6, 0.6)], policy="df", lr=3e-5),
            run("D", [ev(10, 0.61, 0.6)], seed=1, policy="df", lr=3e-5),
        ]
    )


@pytest.mark.parametrize("rule", ["objective", "source-dev", "target-dev", "all-dev"])
def test_every_dev_rule_chooses_the_dev_winner(rule):
    t = _disagree()
    for lang in ("de", "sw", "target-mean"):
        rk = best(t, lang, select=rule)
        assert rk.entries[0]["trial_id"] == "A", (rule, lang)
        assert not rk.oracle and not rk.to_dict()["selection"]["oracle"]
        assert "TEST" not in rk.rule.describe() and "ORACLE" not in rk.rule.describe()
    per = best_per_language(t, select=rule)
    assert {e["trial_id"] for e in per.languages} == {"A"}
    assert per.target_mean["trial_id"] == "A"
    assert per.target_mean["score"] == pytest.approx(0.51)  # A's test score, reported honestly
    s = summary(t, select=rule)
    assert s["policies"][0]["policy"] == "fsf" and s["objectives"][0]["trial_id"] == "A"


def test_oracle_test_is_only_used_by_name_and_is_labelled():
    t = _disagree()
    assert best(t, "de").rule.name == "objective"  # the default never looks at test
    rk = best(t, "de", select="oracle-test")
    assert rk.entries[0]["trial_id"] == "B"
    assert rk.oracle and rk.entries[0]["oracle"] and rk.to_dict()["oracle"]
    assert rk.rule.describe().startswith("ORACLE")
    assert best_per_language(t, select="oracle-test").target_mean["trial_id"] == "B"


def test_objective_rule_ranks_the_target_mean_by_the_sweeps_objective():
    res = Results.from_table(_disagree())
    res.sweep = {"objective": [{"metric": "dev_source", "mode": "min"}]}
    rk = best(res, "target-mean")
    assert rk.entries[0]["trial_id"] == "D"  # the lowest source dev score
    assert rk.entries[0]["selection_score"] == pytest.approx(0.605)
    assert "dev_source (min" in rk.entries[0]["chosen_by"]
    res = Results.from_table(_disagree())
    res.sweep = {"objective": [{"metric": "nonsense", "mode": "max"}]}
    with pytest.raises(FsfError, match="cannot be computed"):
        best(res, "de")


def test_each_checkpoint_rule():
    x = table(
        [
            run(
                "x",
                [
                    evaluation(10, {"en": 0.5, "de": 0.75, "sw": 0.25}, {"de": 0.125}),
                    evaluation(20, {"en": 0.75, "de": 0.25, "sw": 0.25}, {"de": 0.25}),
                    evaluation(30, {"en": 0.25, "de": 0.5, "sw": 0.875}, {"de": 0.375}),
                ],
            )
        ]
    )
    assert best(x, "de").entries[0]["score"] == 0.25  # source-dev checkpoint: step 20
    assert best(x, "de", select="source-dev").entries[0]["step"] == 20
    assert best(x, "de", select="all-dev").entries[0]["score"] == 0.375  # mean dev best at 30
    own = best(x, "de", select="target-dev")  # de's own dev: step 10
    assert own.entries[0]["score"] == 0.125 and own.entries[0]["step"] == 10
    assert not own.oracle
    oracle = best(x, "de", select="oracle-test")
    assert oracle.entries[0]["score"] == 0.375 and oracle.oracle


def test_the_objective_checkpoint_follows_the_sweep():
    x = table(
        [
            run(
                "x",
                [
                    evaluation(10, {"en": 0.5, "de": 0.75}, {"en": 0.5, "de": 0.125}),
                    evaluation(20, {"en": 0.75, "de": 0.25}, {"en": 0.5, "de": 0.25}),
                ],
            )
        ]
    )
    assert best(x, "de").entries[0]["step"] == 20
    res = Results.from_table(x)
    res.sweep = {"checkpoint": "target-dev"}
    assert best(res, "de").entries[0]["step"] == 10


def test_a_seed_is_counted_once():
    """Two trials of one configuration with the same seed (a repeat trained twice): one run
    counts, the one trained longest."""
    t = table(
        [
            run("x1", [ev2(10, 0.5, 0.25, 0.5)], status="stopped"),
            run("x2", [ev2(10, 0.5, 0.25, 0.5), ev2(100, 0.75, 0.5, 0.5)]),
            run("x3", [ev2(100, 0.75, 0.75, 0.5)], seed=1),
        ]
    )
    rk = best(t, "de")
    (e,) = rk.entries
    assert e["n_seeds"] == 2 and e["seeds"] == [0, 1] and e["run_trials"] == ["x2", "x3"]
    assert e["score"] == pytest.approx(0.625) and e["duplicates"] == 1
    assert e["trial_ids"] == ["x1", "x2", "x3"]
    assert rk.excluded["duplicate_runs"] == 1 and rk.excluded["runs_without_score"] == 0
    assert e["budget"] == {"trained": [100, 100], "planned": [100, 100], "full": True}
    assert not e["stopped"]


def test_budget_marks_stopped_runs():
    t = table([run("s", [ev2(10, 0.5, 0.25, 0.5), ev2(40, 0.6, 0.3, 0.5)], status="stopped")])
    (e,) = best(t, "de").entries
    assert e["budget"] == {"trained": [40], "planned": [100], "full": False}
    assert e["stopped"] and e["status"] == "stopped"


def _paired():
    """DF on three seeds, FSF on the same three and a fourth."""
    df = [0.60, 0.62, 0.59]
    fsf = [0.64, 0.63, 0.66, 0.7]
    runs = [run("d", [ev2(10, 0.8, v, v)], seed=s, policy="df") for s, v in enumerate(df)]
    runs += [
        run("f", [ev2(10, 0.8, v, v)], seed=s, policy="fsf", lr=2e-5) for s, v in enumerate(fsf)
    ]
    return table(runs), df, fsf


def test_paired_statistics_against_the_baseline_match_scipy():
    from scipy import stats

    t, df, fsf = _paired()
    rk = best(t, "de", top=2)
    top, base = rk.entries
    assert top["trial_id"] == "f" and base["vs_baseline"]["is_baseline"]
    v = top["vs_baseline"]
    ref = stats.ttest_rel(fsf[:3], df)
    ci = ref.confidence_interval(0.95)
    assert v["n"] == 3 and v["seeds"] == [0, 1, 2] and v["trial_id"] == "d"
    assert v["mean"] == pytest.approx(sum(fsf[:3]) / 3 - sum(df) / 3)
    assert v["p"] == pytest.approx(ref.pvalue, rel=1e-9)
    assert (v["ci_low"], v["ci_high"]) == pytest.approx((ci.low, ci.high), rel=1e-9)
    assert v["verdict"] == ("better" if ci.low > 0 else "within noise")
    per = best_per_language(t)
    assert per.target_mean["vs_baseline"]["p"] == pytest.approx(ref.pvalue, rel=1e-9)


def test_paired_difference_edge_cases():
    from scipy import stats

    assert paired_difference([], []).verdict == "untested"
    one = paired_difference([0.5], [0.4])
    assert one.verdict == "untested" and one.mean == pytest.approx(0.1) and one.ci is None
    same = paired_difference([0.5, 0.6], [0.4, 0.5])
    assert same.ci == pytest.approx((0.1, 0.1)) and same.verdict == "better"
    noisy = paired_difference([0.5, 0.3, 0.7], [0.45, 0.4, 0.5])
    ref = stats.ttest_rel([0.5, 0.3, 0.7], [0.45, 0.4, 0.5])
    assert noisy.p == pytest.approx(ref.pvalue) and noisy.verdict == "within noise"
    with pytest.raises(ValueError):
        paired_difference([1.0], [1.0, 2.0])


def test_the_baseline_is_any_run_config_match():
    t, _, _ = _paired()
    assert best(t, "de", baseline={"policy.name": "noisytune"}).entries[0]["vs_baseline"] is None
    rk = best(t, "de", baseline={"optim.lr": 2e-5})
    assert rk.entries[0]["vs_baseline"]["is_baseline"]


def test_top_configurations_for_the_confirmation():
    t, _, _ = _paired()
    top, base = top_configurations(t, 1)
    assert [c["trial_id"] for c in top] == ["f"] and base["trial_id"] == "d"
    assert top[0]["params"] == {"policy": "fsf", "lr": 2e-5} and base["rank"] == 2
    with pytest.raises(FsfError, match="test"):
        top_configurations(t, 1, select="oracle-test")


def _random_run(rng, n: int) -> list:
    """Evaluations whose scores sit on a coarse grid (ties are common), some missing."""
    langs = ("en", "de", "sw")

    def score() -> float:
        return float("nan") if rng.random() < 0.1 else round(rng.integers(1, 6) / 5, 1)

    return [
        evaluation(10 * i, {x: score() for x in langs}, {x: score() for x in langs})
        for i in range(n)
    ]


@pytest.mark.parametrize("rule", ["source-dev", "target-dev", "all-dev", "test"])
def test_a_training_run_and_the_queries_choose_the_same_checkpoint(rule):
    """One home, two forms: the tracker a run keeps its checkpoint by (and a trial computes
    its objective with) and the queries' vectorised kernel pick the same evaluation under
    every rule, for every entry, ties to the earlier step and NaN never."""
    import numpy as np

    from fsf.results.selection import best_evaluation

    rng = np.random.default_rng(7)
    select = "oracle-test" if rule == "test" else rule
    compared = 0
    for i in range(30):
        evs = _random_run(rng, int(rng.integers(2, 7)))
        res = Results.from_table(table([run(f"r{i}", evs)]))
        for lang in ("de", "sw", "target-mean"):
            chosen = best_evaluation(evs, rule, None if lang == "target-mean" else lang)
            try:
                entries = best(res, lang, select=select).entries
            except FsfError:  # no evaluation of this entry has a test score to report
                entries = []
            if chosen is None or not entries:
                continue
            assert entries[0]["step"] == chosen.step, (i, lang, [e.step for e in evs])
            compared += 1
    assert compared > 40
