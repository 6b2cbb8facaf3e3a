"""`search.splits`: the search stage evaluates fewer splits (dev alone: it chooses on dev),
the confirmation stage evaluates the base's, so the answer's test scores come from it."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from fsf.errors import ConfigError
from fsf.sweep.confirm import _stage_spec
from fsf.sweep.points import trial_run_config
from fsf.sweep.space import load_space, validate_space
from tests.sweep.test_space import GOOD

ROOT = Path(__file__).resolve().parents[2]

SPACE = {
    "name": "t",
    "base": copy.deepcopy(GOOD["base"]),
    "search": {
        "parameters": {"policy.name": {"type": "categorical", "values": ["df", "fs"]}},
        "objective": {"metric": "dev_target_mean", "mode": "max"},
        "splits": ["dev"],
    },
    "confirm": {"top_k": 1, "seeds": [7, 8]},
}


def _space(**search: object) -> dict:
    data = copy.deepcopy(SPACE)
    data["search"].update(search)
    return data


def test_the_search_evaluates_its_splits_and_the_confirmation_the_bases():
    spec = validate_space(_space())
    assert spec.base_config().eval.splits == ["dev", "test"]
    searched = trial_run_config(spec, {"policy.name": "fs"}, 0, "s0")
    assert searched.eval.splits == ["dev"]
    assert spec.confirm is not None
    confirming = trial_run_config(_stage_spec(spec, spec.confirm), {"policy.name": "fs"}, 7, "c")
    assert confirming.eval.splits == ["dev", "test"] and confirming.eval.predictions


def test_without_splits_the_search_evaluates_the_bases():
    data = _space()
    del data["search"]["splits"]
    spec = validate_space(data)
    assert trial_run_config(spec, {"policy.name": "df"}, 0, "s0").eval.splits == ["dev", "test"]


@pytest.mark.parametrize(
    "change, message",
    [
        ({"splits": ["test"]}, "no trial reports this metric"),
        ({"splits": []}, "at least 1"),
    ],
)
def test_splits_the_objective_cannot_use_are_refused(change, message):
    with pytest.raises(ConfigError) as err:
        validate_space(_space(**change))
    assert "search." in str(err.value) and message in str(err.value)


def test_a_search_without_test_needs_a_confirmation():
    data = _space()
    data["confirm"] = None
    with pytest.raises(ConfigError) as err:
        validate_space(data)
    assert "search.splits" in str(err.value) and "confirm" in str(err.value)


def test_the_search_cannot_evaluate_more_than_the_base():
    data = _space(splits=["dev", "test"])
    data["base"]["eval"] = {"splits": ["dev"]}
    with pytest.raises(ConfigError) as err:
        validate_space(data)
    assert "search.splits" in str(err.value) and "not more" in str(err.value)


def test_the_default_space_searches_on_dev_and_confirms_with_test():
    spec = load_space(ROOT / "sweeps" / "policies.yaml")
    assert spec.search.splits == ["dev"] and spec.confirm is not None
    params = {"policy.name": "fs", "optim.lr": 1e-3}
    assert trial_run_config(spec, params, 0, "s").eval.splits == ["dev"]
    confirming = _stage_spec(spec, spec.confirm)
    assert trial_run_config(confirming, params, 100, "c").eval.splits == ["dev", "test"]
