"""Prediction files and checkpoints of real runs on the synthetic tasks: the XTREME files,
re-scored from disk, give the recorded test scores of the selected step; a saved checkpoint
loads with AutoModelFor...from_pretrained and reproduces its test scores."""

from __future__ import annotations

import json

import pytest
import yaml

from fsf.cli.train import main
from fsf.config import validate_run_config
from fsf.tasks import build_task
from fsf.train import evaluate_model, train

pytestmark = pytest.mark.slow

TASKS = {
    "classification": {"name": "pawsx", "dataset": "synthetic:pawsx"},
    "tagging": {"name": "tagging", "dataset": "synthetic:ner"},
    "qa": {"name": "qa", "dataset": "synthetic:qa"},
}


def _config(tmp_path, task: dict, save: str = "best", **extra):
    return validate_run_config(
        {
            "name": "r",
            "task": {**task, "max_eval_examples": 40, "max_train_examples": 200},
            "target_langs": ["fr", "ja"],
            "optim": {"max_steps": 9, "batch_size": 16},
            "eval": {"every_steps": 3, "predictions": True},
            "checkpoint": {"save": save},
            "output_dir": str(tmp_path),
            **extra,
        }
    )


@pytest.mark.parametrize("family", list(TASKS))
def test_prediction_files_rescore_to_the_recorded_scores_and_the_checkpoint_reloads(
    tmp_path, family
):
    import transformers

    config = _config(tmp_path, TASKS[family])
    summary = train(config)
    chosen = summary.checkpoint("source-dev")
    assert chosen is not None and len(summary.evaluations) == 4  # steps 0, 3, 6, 9
    run = tmp_path / "r"
    assert summary.artifacts == {
        "predictions": str(run / "predictions"),
        "checkpoint": str(run / "checkpoint"),
    }
    task_name = TASKS[family]["name"]
    folder = run / "predictions" / task_name
    suffix = "json" if family == "qa" else "tsv"
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        ["selection.json", *(f"test-{lang}.{suffix}" for lang in config.languages)]
    )
    selection = json.loads((folder / "selection.json").read_text())
    assert selection["rule"] == "source-dev" and selection["step"] == chosen.step
    # re-score every language's file from disk against the gold labels: the recorded scores
    task = build_task(config.task, config.model)
    for lang in config.languages:
        text = (folder / f"test-{lang}.{suffix}").read_text()
        examples = task.load(lang, "test")
        assert task.score_prediction_text(text, examples) == chosen.scores["test"][lang]
    # the checkpoint: save_pretrained + tokenizer + card + run config; reloads and scores
    ckpt = run / "checkpoint"
    assert {"config.json", "model.safetensors", "tokenizer.json", "README.md"} <= {
        p.name for p in ckpt.iterdir()
    }
    card = (ckpt / "README.md").read_text()
    assert f"step {chosen.step} of 9" in card and "best source-language (en) dev" in card
    assert "| fr |" in card and "policy:" in card  # per-language table, the fsf config
    assert validate_run_config(yaml.safe_load((ckpt / "fsf_run.yaml").read_text())) == config
    auto = {
        "classification": transformers.AutoModelForSequenceClassification,
        "tagging": transformers.AutoModelForTokenClassification,
        "qa": transformers.AutoModelForQuestionAnswering,
    }[family]
    model = auto.from_pretrained(str(ckpt))
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(ckpt))
    assert evaluate_model(config, model, tokenizer)["test"] == chosen.scores["test"]


def test_fsf_train_keeps_the_final_checkpoint_and_says_where(tmp_path, capsys):
    args = ["--no-progress", "-q", "--set", f"output_dir={tmp_path}", "--set", "name=f"]
    for item in ("optim.max_steps=4", "eval.every_steps=2", "checkpoint.save=final"):
        args += ["--set", item]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert f"checkpoint: {tmp_path / 'f' / 'checkpoint'}" in out and "predictions:" not in out
    info = json.loads((tmp_path / "f" / "checkpoint" / "fsf_checkpoint.json").read_text())
    assert info["rule"] == "final" and info["step"] == 4
    assert not (tmp_path / "f" / "predictions").exists()
