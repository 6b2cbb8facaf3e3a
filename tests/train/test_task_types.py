"""NER and QA through the real DeepSpeed worker: hub-layout fixtures with few-shot shots,
the task's Policy IV default, and fsf-train's rows carrying every metric of a task."""

from __future__ import annotations

import pyarrow.dataset as ds
import pytest

from fsf.cli.train import main
from fsf.testing import qa_dataset, tagging_dataset
from fsf.train import train

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("tasks")
    return {
        "panx": tagging_dataset(root / "panx"),
        "mlqa": qa_dataset(root / "mlqa", sizes=(0, 12, 12)),
        "squad": qa_dataset(root / "squad", "squad", sizes=(48, 4, 0)),
    }


def _fsf(run_config, task: dict):
    """FSF with the phase switch at step 2 of 4: P2 (where Policy IV acts) is reached."""
    return run_config(
        **{
            "task": task,
            "policy.name": "fsf",
            "policy.switch": "step",
            "policy.switch_step": 2,
            "optim.max_steps": 4,
            "eval.every_steps": 2,
            "few_shot.m": 3,
        }
    )


def _check(summary, metrics: set[str]) -> None:
    assert [e.step for e in summary.evaluations] == [0, 2, 4]
    for ev in summary.evaluations:
        for split in ("dev", "test"):
            assert set(ev.scores[split]) == {"en", "de", "fr"}
            for scores in ev.scores[split].values():
                assert set(scores) == metrics
                assert all(0.0 <= v <= 1.0 for v in scores.values())
    assert summary.final.phase == "P2"


def test_panx_trains_with_policy_iv_off_by_default(run_config, data):
    summary = train(_fsf(run_config, {"name": "panx", "dataset": str(data["panx"])}))
    _check(summary, {"f1", "precision", "recall"})
    assert summary.final.metric == "f1"
    assert summary.final.multipliers["V_II"] == 1  # the task turns Policy IV off


def test_mlqa_trains_on_squad_with_policy_iv(run_config, data):
    task = {"name": "mlqa", "dataset": str(data["mlqa"]), "train_dataset": str(data["squad"])}
    summary = train(_fsf(run_config, task))
    _check(summary, {"f1", "exact_match"})
    assert summary.final.multipliers["V_II"] == 10


@pytest.mark.parametrize(
    ("task", "metrics"),
    [("ner", {"f1", "precision", "recall"}), ("qa", {"f1", "exact_match"})],
)
def test_fsf_train_on_the_synthetic_tasks_writes_every_metric(tmp_path, capsys, task, metrics):
    name = "tagging" if task == "ner" else "qa"
    args = ["--no-progress", "--set", f"task={{name: {name}, dataset: 'synthetic:{task}'}}"]
    for item in ("optim.max_steps=6", "eval.every_steps=6", f"output_dir={tmp_path}", "name=r"):
        args += ["--set", item]
    assert main(args) == 0
    assert "f1" in capsys.readouterr().out
    rows = ds.dataset(tmp_path / "r" / "results", partitioning="hive").to_table().to_pandas()
    rows = rows[rows["split"].isin(["dev", "test"])]
    assert set(rows["metric"]) == metrics
    assert set(rows["primary_metric"]) == {"f1"}
    assert set(rows["language"]) == {"en", "fk", "fr", "ja", "cy", "sw", "ur"}
    assert rows["value"].between(0, 1).all()
    assert set(rows["policy_iv"]) == {task == "qa"}  # off for NER by default
    # 2 evaluations x 2 splits x 7 languages, each with every metric
    assert len(rows) == 2 * 2 * 7 * len(metrics)
