"""The confirmation stage keeps each run's checkpoint and prediction files at the step that
`fsf best` reports, whatever `search.checkpoint` is. It used to keep them at the best
source-language dev step under `all-dev` and `target-dev` too (the worker's keeper knew only
source-dev). Fast: the stage's run config, the worker's keeper and the query, by hand."""

from __future__ import annotations

import pytest
import torch

from fsf.results import Results, best
from fsf.sweep.confirm import _stage_spec
from fsf.sweep.points import trial_run_config
from fsf.sweep.space import validate_space
from fsf.train._evaluate import Keeper
from fsf.train.artifacts import selection_text
from fsf.train.reporter import RunSummary
from tests.results.helpers import evaluation, run, table

LANGS = ("en", "de", "sw")


def _evaluations() -> list:
    """Each rule's checkpoint at its own step: source-dev 5, all-dev 10, target-dev 12."""
    dev = {
        0: (0.5, 0.3, 0.3),
        5: (0.9, 0.4, 0.4),
        10: (0.7, 0.8, 0.8),
        12: (0.3, 0.85, 0.85),
        15: (0.6, 0.6, 0.6),
    }
    return [
        evaluation(
            step, dict(zip(LANGS, d, strict=True)), dict.fromkeys(LANGS, step / 100), total=15
        )
        for step, d in dev.items()
    ]


@pytest.mark.parametrize("rule, step", [("source-dev", 5), ("all-dev", 10), ("target-dev", 12)])
def test_a_confirmed_run_keeps_its_files_at_the_step_fsf_best_reports(tmp_path, rule, step):
    spec = validate_space(
        {
            "name": "ckpt",
            "base": {"target_langs": ["de", "sw"]},
            "search": {
                "parameters": {"policy.name": {"type": "categorical", "values": ["df", "fsf"]}},
                "checkpoint": rule,
            },
            "confirm": {"top_k": 1},
        }
    )
    stage = _stage_spec(spec, spec.confirm)
    config = trial_run_config(stage, {"policy.name": "fsf"}, 100, "c0")
    assert config.eval.predictions and config.checkpoint.save == "best"

    keeper = Keeper(config, rank=0)
    model = torch.nn.Linear(1, 1)
    evs = _evaluations()
    for ev in evs:  # the worker offers each evaluation with its test predictions and weights
        with torch.no_grad():
            model.weight.fill_(ev.step)
        keeper.offer(ev, {"de": [ev.step]}, model)
    kept, preds, weights = keeper.result(RunSummary(evs))

    res = Results.from_table(table([run("c0", evs, seed=100)]))
    res.sweep = {"checkpoint": rule}  # the confirmation's sweep.json
    reported = best(res, "target-mean").entries[0]["step"]
    assert kept.step == reported == step
    assert preds == {"de": [step]} and float(weights["weight"]) == step
    said = selection_text(config, kept)  # what selection.json and the model card say
    assert said.startswith(f"step {step} of 15")
    assert ("no target-language data" in said) == (rule == "source-dev")
