"""Expected validation performance (Dodge et al. 2019) against its definition."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fsf.results.evp import expected_best


def test_one_trial_expects_the_mean_and_many_approach_the_best():
    values = [0.61, 0.70, 0.55, 0.80, 0.66]
    curve = expected_best(values)
    assert curve.trials == 5 and curve.n == [1, 2, 3, 4, 5]
    assert curve.at(1)[0] == pytest.approx(np.mean(values))
    assert curve.at(1)[1] == pytest.approx(np.std(values))
    assert all(a <= b + 1e-12 for a, b in zip(curve.mean, curve.mean[1:], strict=False))
    assert curve.at(5)[0] < max(values)  # drawing with replacement may miss the best
    assert expected_best(values * 200).mean[-1] == pytest.approx(max(values), abs=1e-9)


def test_matches_sampling_with_replacement():
    rng = np.random.default_rng(0)
    values = rng.normal(size=7)
    curve = expected_best(values)
    draws = rng.choice(values, size=(200_000, 4)).max(axis=1)
    assert curve.at(4)[0] == pytest.approx(draws.mean(), abs=0.01)
    assert curve.at(4)[1] == pytest.approx(draws.std(), abs=0.01)


def test_min_mode_mirrors_max():
    values = [3.0, 1.0, 2.0, 5.0]
    low = expected_best(values, "min")
    high = expected_best([-v for v in values], "max")
    assert low.mean == pytest.approx([-m for m in high.mean])
    assert low.std == pytest.approx(high.std)
    assert low.at(4)[0] < np.mean(values)


def test_failed_trials_are_not_outcomes():
    curve = expected_best([0.5, float("nan"), None, 0.7])  # type: ignore[list-item]
    assert curve.trials == 2 and curve.at(1)[0] == pytest.approx(0.6)
    assert expected_best([]).trials == 0


def test_mode_is_checked():
    with pytest.raises(ValueError, match="mode"):
        expected_best([1.0], "best")


@pytest.mark.parametrize("with_test", [True, False])
def test_policy_evp_reads_each_trials_objective_from_the_results(tmp_path, capsys, with_test):
    """Per policy, the curve comes from the trials' objective values as Optuna received them
    (dev target mean at the source-dev checkpoint), and `fsf show` prints it; also from a
    search that evaluated dev alone (`search.splits: [dev]`: no test scores)."""
    from fsf.results.summarize import policy_evp
    from tests.results.helpers import evaluation, run, write

    values = {"df": [0.50, 0.70], "fsf": [0.60, 0.80, 0.90]}
    runs = []
    for policy, vs in values.items():
        for i, v in enumerate(vs):
            scores = {"en": 0.9, "de": v, "sw": v}
            ev = evaluation(100, scores, scores if with_test else {})
            runs.append(run(f"{policy}{i}", [ev], policy=policy, lr=1e-5 * (i + 1)))
    root = tmp_path / "sweep"
    write(root / "results", runs)
    curves = {c["policy"]: c for c in policy_evp(root)}
    assert curves["df"]["trials"] == 2 and curves["fsf"]["trials"] == 3
    for policy, vs in values.items():
        expected = expected_best(vs)
        assert curves[policy]["mean"] == pytest.approx(expected.mean)
        assert curves[policy]["std"] == pytest.approx(expected.std)
    from fsf import cli

    assert cli.main(["show", str(root)]) == 0
    out = capsys.readouterr().out
    assert "expected best dev_target_mean" in out and "86.3 ± 6.7" in out  # fsf, n = 3
    assert cli.main(["show", str(root), "--format", "json"]) == 0
    shown = {c["policy"]: c for c in json.loads(capsys.readouterr().out)["evp"]}
    assert shown["fsf"]["mean"] == pytest.approx(curves["fsf"]["mean"])
