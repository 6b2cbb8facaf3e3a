"""The model card of a kept checkpoint: a `huggingface_hub.ModelCard` whose front matter has
the licence and a `model-index` holding every score of the saved step."""

from __future__ import annotations

from pathlib import Path

import pytest
from huggingface_hub import ModelCard
from huggingface_hub.repocard_data import model_index_to_eval_results

from fsf.config import validate_run_config
from fsf.tasks import build_task
from fsf.train.artifacts import model_card
from tests.analysis.helpers import evaluation


def _card(tmp_path: Path, **over) -> ModelCard:
    data = {
        "name": "r",
        "task": {"name": "pawsx", "dataset": "synthetic:pawsx"},
        "target_langs": ["de", "sw"],
        "checkpoint": {"save": "best"},
        **over,
    }
    config = validate_run_config(data)
    task = build_task(config.task, config.model)
    ev = evaluation(30, 90, 0.81, 0.702, 0.55)
    return ModelCard(model_card(config, task, ev))


def test_the_card_has_a_model_index_of_every_score_and_the_licence(tmp_path):
    card = _card(tmp_path)
    assert card.data.license == "apache-2.0"  # the embedded encoder: fsf's own licence
    assert card.data.model_name == "r" and card.data.library_name == "transformers"
    index = card.data.to_dict()["model-index"]
    name, results = model_index_to_eval_results(index)  # parses back: a valid model-index
    assert name == "r"
    got = {(r.dataset_split, r.dataset_config, r.metric_type): r.metric_value for r in results}
    want = {
        (split, lang, "accuracy"): value
        for split in ("dev", "test")
        for lang, value in (("en", 0.81), ("de", 0.702), ("sw", 0.55))
    }
    assert got == pytest.approx(want)
    assert {r.task_type for r in results} == {"text-classification"}
    assert "| de | 70.20 | 70.20 |" in card.text and "Licence: `apache-2.0`." in card.text


def test_the_licence_is_the_base_models(tmp_path):
    base = tmp_path / "base"
    base.mkdir()
    (base / "README.md").write_text("---\nlicense: mit\n---\n# a base model\n")
    card = _card(tmp_path, model={"name": str(base)})
    assert card.data.license == "mit" and "base_model" not in card.data.to_dict()
    stated = _card(tmp_path, model={"name": str(base)}, checkpoint={"save": "best",
                                                                     "license": "cc-by-4.0"})  # fmt: skip
    assert stated.data.license == "cc-by-4.0"


def test_an_unknown_licence_is_said_to_be_unknown(tmp_path):
    card = _card(tmp_path, model={"name": str(tmp_path / "no-card")})
    assert card.data.license == "other" and card.data.license_name == "unknown"
    assert "set `checkpoint.license`" in card.text
