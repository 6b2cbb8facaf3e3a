"""The shipped synthetic NER space runs under Ray Tune (cut down to one short trial), with a
few-shot parameter, and its results rank by the task's F1."""

from __future__ import annotations

from pathlib import Path

import pyarrow.dataset as ds
import pytest
import yaml

pytestmark = pytest.mark.slow

SPACE = Path(__file__).parents[2] / "sweeps" / "synthetic-ner.yaml"


def test_synthetic_ner_space_runs(tmp_path):
    import ray

    from fsf.results import best_per_language
    from fsf.sweep.space import validate_space
    from fsf.sweep.tune import run_sweep

    data = yaml.safe_load(SPACE.read_text())
    data["base"]["optim"]["max_steps"] = 10
    data["base"]["eval"]["every_steps"] = 5
    params = data["search"]["parameters"]
    params["policy.name"]["values"] = ["fsf"]  # one grid point of the shipped space
    params["policy.policy_iv"]["values"] = [False]
    params["few_shot.m"]["values"] = [5]
    data["storage"] = {"path": str(tmp_path / "runs")}
    try:
        outcome = run_sweep(validate_space(data), progress=False, num_cpus=2)
    finally:
        if ray.is_initialized():
            ray.shutdown()
    assert outcome.errors == {} and outcome.num_trials == 1
    rows = ds.dataset(outcome.sweep_dir / "results", partitioning="hive").to_table().to_pandas()
    rows = rows[rows["split"].isin(["dev", "test"])]
    assert set(rows["metric"]) == {"f1", "precision", "recall"}
    assert set(rows["few_shot_m"]) == {5} and set(rows["policy_iv"]) == {False}
    assert sorted(rows["step"].unique()) == [0, 5, 10]
    per = best_per_language(outcome.sweep_dir)
    assert {e["language"] for e in per.languages} == {"fk", "fr", "ja", "cy", "sw", "ur"}
    assert per.metric == "f1" and per.target_mean is not None
