"""The racing rule: drops by a Holm-corrected paired test, stops when the best candidate's
difference to the baseline is decided, or when the seed budget is spent."""

from __future__ import annotations

import pytest

from fsf.results.race import RaceRule, race_round

RULE = RaceRule(first_round=3, per_round=2, max_seeds=7, alpha=0.05, margin=0.005)
SEEDS = [100, 101, 102, 103, 104, 105, 106]


def _scores(**per: list[float]) -> dict[str, dict[int, float]]:
    return {name: dict(zip(SEEDS, v, strict=False)) for name, v in per.items()}


def test_a_clearly_worse_candidate_is_dropped_and_a_close_one_kept():
    scores = _scores(
        a=[0.80, 0.82, 0.81], b=[0.70, 0.71, 0.69], c=[0.79, 0.83, 0.80], df=[0.75, 0.74, 0.76]
    )
    r = race_round(scores, ["a", "b", "c"], "df", RULE, round_no=1)
    assert r.best == "a" and r.seeds == 3
    assert set(r.dropped) == {"b"} and "Holm" in r.dropped["b"]
    assert r.alive == ["a", "c"]


def test_better_than_the_baseline_decides_the_race():
    scores = _scores(a=[0.80, 0.82, 0.81], df=[0.75, 0.76, 0.755])
    r = race_round(scores, ["a"], "df", RULE, round_no=1)
    assert r.decision == "better" and r.stop.startswith("decided: a is better")
    assert r.vs_baseline.ci[0] > 0


def test_equivalence_within_the_margin_decides_the_race():
    scores = _scores(a=[0.801, 0.799, 0.800, 0.8005], df=[0.800, 0.800, 0.8002, 0.8003])
    r = race_round(scores, ["a"], "df", RaceRule(first_round=3, margin=0.005), round_no=1)
    assert r.decision == "equivalent" and "within ±0.5 points" in r.stop


def test_noise_goes_on_until_the_budget_is_spent():
    noisy = _scores(a=[0.80, 0.70, 0.78], df=[0.74, 0.79, 0.72])
    r = race_round(noisy, ["a"], "df", RULE, round_no=1)
    assert r.stop is None and r.decision == "undecided"
    long = _scores(
        a=[0.80, 0.70, 0.78, 0.72, 0.79, 0.71, 0.77], df=[0.74, 0.79, 0.72, 0.78, 0.71, 0.77, 0.76]
    )
    r = race_round(long, ["a"], "df", RULE, round_no=3)
    assert r.seeds == 7 and r.stop.startswith("seed budget spent")


def test_the_baseline_as_the_best_candidate():
    scores = _scores(df=[0.80, 0.81, 0.80], b=[0.60, 0.61, 0.62])
    r = race_round(scores, ["df", "b"], "df", RULE, round_no=1)
    assert r.best == "df" and r.dropped.keys() == {"b"}
    assert r.decision == "baseline best" and r.vs_baseline is None


def test_holm_is_stricter_than_uncorrected_tests():
    # b and c are each just worse than a (one-sided p ~ 0.038 over 4 seeds): uncorrected, both
    # would go at 0.05; Holm needs the smaller p <= 0.025 first, so neither is dropped
    a = [0.80, 0.81, 0.82, 0.80]
    d_b, d_c = [0.01, 0.028, 0.002, 0.02], [0.028, 0.01, 0.02, 0.002]
    scores = _scores(
        a=a,
        b=[x - d for x, d in zip(a, d_b, strict=True)],
        c=[x - d for x, d in zip(a, d_c, strict=True)],
        df=[0.5, 0.5, 0.5, 0.5],
    )
    r = race_round(scores, ["a", "b", "c"], "df", RaceRule(first_round=3), round_no=1)
    assert r.best == "a" and not r.dropped
    alone = race_round(scores, ["a", "b"], "df", RaceRule(first_round=3), round_no=1)
    assert "b" in alone.dropped  # one comparison: no correction, p ~ 0.038 <= 0.05


def test_min_mode_prefers_lower_values():
    scores = _scores(a=[0.20, 0.21, 0.19], b=[0.40, 0.41, 0.39], df=[0.30, 0.31, 0.29])
    r = race_round(scores, ["a", "b"], "df", RULE, round_no=1, mode="min")
    assert r.best == "a" and "b" in r.dropped and r.decision == "better"


def test_one_seed_decides_nothing():
    r = race_round({"a": {100: 0.9}, "df": {100: 0.5}}, ["a"], "df", RULE, round_no=1)
    assert r.seeds == 1 and r.stop is None and not r.dropped


@pytest.mark.parametrize(
    "kw", [{"first_round": 1}, {"per_round": 0}, {"alpha": 1.5}, {"margin": -1}, {"max_seeds": 2}]
)
def test_the_rule_is_checked(kw):
    with pytest.raises(ValueError, match="race"):
        RaceRule(**kw)


def test_run_objectives_are_the_per_seed_values_the_configuration_mean_is_made_of(tmp_path):
    """What the race compares: each run's objective at its checkpoint, whose mean over seeds
    is the configuration's selection score (the value Optuna received)."""
    from fsf.results import run_objectives, top_configurations
    from tests.results.helpers import evaluation, run, write

    runs = []
    for seed, (early, late) in enumerate([(0.60, 0.50), (0.70, 0.72)]):
        evs = [  # source dev peaks at step 50 for seed 0, at 100 for seed 1: the checkpoints
            evaluation(50, {"en": 0.9 - 0.1 * seed, "de": early}, {"en": 0.9, "de": 0.1}),
            evaluation(100, {"en": 0.8 + 0.1 * seed, "de": late}, {"en": 0.9, "de": 0.2}),
        ]
        runs.append(run("t0", evs, seed=seed, policy="fsf"))
    write(tmp_path / "results", runs)
    got = sorted((r["seed"], r["value"]) for r in run_objectives(tmp_path))
    assert got == [(0, pytest.approx(0.60)), (1, pytest.approx(0.72))]
    top, _ = top_configurations(tmp_path, 1)
    assert top[0]["selection_score"] == pytest.approx((0.60 + 0.72) / 2)
