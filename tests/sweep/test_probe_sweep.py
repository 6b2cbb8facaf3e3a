"""A real layer-probe sweep (Ray Tune + DeepSpeed trials on CPU) on the tiny 2-layer model."""

from __future__ import annotations

import itertools
import json

import pytest
import yaml

pytestmark = pytest.mark.slow


def test_probe_sweep_runs_every_trial_and_suggests_a_valid_policy(assets, tmp_path, capsys):
    import ray

    from fsf.analysis import write_report
    from fsf.cli.sweep import main
    from fsf.config import validate_run_config
    from fsf.results import read_results
    from fsf.sweep.probe import run_probe
    from fsf.sweep.space import validate_space

    spec = validate_space(
        {
            "name": "probe",
            "base": {
                "model": {"name": str(assets["xlmr"])},
                "task": {"name": "pawsx", "dataset": str(assets["pawsx"])},
                "target_langs": ["de", "fr"],
                "policy": {"name": "df"},
                "optim": {"max_steps": 4, "batch_size": 8, "lr": 3e-3},
                "eval": {"every_steps": 4, "at_start": False},
            },
            "search": {"seeds": [0, 1], "max_concurrent": 2},
            "storage": {"path": str(tmp_path / "runs")},
            "probe": {},
        }
    )
    try:
        outcome = run_probe(spec, progress=False, num_cpus=2)
    finally:
        if ray.is_initialized():
            ray.shutdown()
    assert outcome.statuses == {"finished": 13} and outcome.errors == {}
    res = read_results(outcome.sweep_dir)
    finals = res.table.filter(res.table["is_final"])
    runs = set()
    for cfg_json, seed in zip(
        finals["config_json"].to_pylist(), finals["seed"].to_pylist(), strict=True
    ):
        p = json.loads(cfg_json)["probe"]
        runs.add((p["action"], p["layer"], p["part"], seed))
    expected = {("none", None, "all", s) for s in (0, 1)} | {
        (a, layer, part, s)
        for a, layer, part, s in itertools.product(
            ("reinit", "freeze"), (1, 2), ("all", "attention", "ffn"), (0, 1)
        )
    }
    assert runs == expected  # (layers x actions x parts + baseline) x seeds
    out = outcome.outputs
    assert {p.name for p in out.values()} == {
        "probe.png",
        "probe.md",
        "probe.csv",
        "policy-sets.yaml",
    }
    assert all(p.stat().st_size > 0 for p in out.values())
    cfg = validate_run_config(yaml.safe_load(out["policy"].read_text()))
    assert set(cfg.policy.sets.resolve(2).describe()) == {"S_I", "S_II", "V_I", "V_II"}
    assert "| 2 |" in out["table"].read_text()
    # analyse again from the sweep folder; the report has the probe section
    again = tmp_path / "again"
    assert main(["probe", "--sweep", str(outcome.sweep_dir), "--out", str(again)]) == 0
    assert (again / "policy-sets.yaml").read_text() == out["policy"].read_text()
    report = write_report(res, tmp_path / "report")
    assert "Layer probes" in report.markdown.read_text()
    assert any(p.name == "probe.png" for p in report.images)
    capsys.readouterr()
