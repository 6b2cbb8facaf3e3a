"""`policy_iv: cka` inside the real DeepSpeed engine: the worker measures the V_II layers' CKA
on its probe batch, records it, and applies c2 exactly where the rule says, step for step
(replayed from the recorded loss and CKA curves by `fsf.policies.explain`)."""

from __future__ import annotations

import json

import pyarrow.compute as pc
import pytest

from fsf.cli.policies import main as policy_main
from fsf.policies import explain
from fsf.results import ParquetReporter, TrialInfo, read_results
from fsf.results.schema import CKA_SPLIT, CKA_V2_METRIC
from fsf.train import train

pytestmark = pytest.mark.slow

C2 = 10.0


def _run(run_config, root, min_drop: float):
    cfg = run_config(
        **{
            "policy.name": "fsf",
            "policy.policy_iv": "cka",
            "policy.cka": {"every_steps": 2, "probe_size": 16, "window": 2, "min_drop": min_drop},
            "policy.switch": "step",
            "policy.switch_step": 2,
            "optim.max_steps": 12,
            "optim.lr": 3e-3,
            "eval.every_steps": 1,
        }
    )
    with ParquetReporter(root, TrialInfo(cfg)) as writer:
        summary = train(cfg, writer)
    return cfg, summary, read_results(root).table


def _replayed(cfg, summary, table):
    rows = table.filter(
        pc.and_(pc.equal(table["split"], CKA_SPLIT), pc.equal(table["metric"], CKA_V2_METRIC))
    )
    curve = sorted(zip(rows["step"].to_pylist(), rows["value"].to_pylist(), strict=True))
    losses = [r.loss for ev in summary.evaluations for r in ev.train_steps if r.loss is not None]
    records = explain(cfg.policy, 2, losses=losses, cka=curve)
    return curve, records


@pytest.mark.parametrize("min_drop", [0.0, 1.0])
def test_c2_follows_the_recorded_cka_curve(run_config, tmp_path, capsys, min_drop):
    cfg, summary, table = _run(run_config, tmp_path / "results", min_drop)
    curve, records = _replayed(cfg, summary, table)
    assert [s for s, _ in curve] == [0, 2, 4, 6, 8, 10, 12]  # before training, every 2 steps
    assert curve[0][1] == pytest.approx(1.0, abs=1e-6)  # the untouched pretrained model
    assert all(0 < v < 1.0 - 1e-6 for _, v in curve[1:])  # fine-tuning moved the V_II layers
    evals = [ev for ev in summary.evaluations if ev.step > 0]
    assert [ev.step for ev in evals] == [r["step"] for r in records]
    recorded = [ev.multipliers["V_II"] for ev in evals]
    replayed = [r["set_multipliers"]["V_II"] for r in records]
    assert recorded == replayed  # the worker did what the rule says, at every step
    p2 = [k for ev, k in zip(evals, recorded, strict=True) if ev.phase == "P2"]
    assert p2
    # the command line replays the same run from its results folder alone
    code = policy_main(
        ["explain", "--run", str(tmp_path / "results"), "--layers", "2", "--format", "json"]
    )
    assert code == 0
    replayed_cli = [r["layers"][1]["attention"] for r in json.loads(capsys.readouterr().out)]
    assert replayed_cli == recorded
    bad = ["explain", "--run", str(tmp_path / "results"), "--layers", "2", "--trial", "nope"]
    assert policy_main(bad) == 2
    err = capsys.readouterr().err
    assert "no run matches" in err and "t seed 0" in err and "Traceback" not in err
    if min_drop == 0.0:  # the CKA keeps falling on this run: c2 throughout P2
        assert C2 in p2
    else:  # a 1.0 drop never happens: c2 only before the window holds 2 measurements
        assert all(k == 1.0 for ev, k in zip(evals, recorded, strict=True) if ev.step >= 2)


def test_cka_gate_off_without_policy_iv_or_for_a_policy_without_iv(run_config, tmp_path):
    cfg = run_config(**{"policy.name": "fs", "policy.policy_iv": "cka", "optim.max_steps": 4})
    with ParquetReporter(tmp_path / "r", TrialInfo(cfg)) as writer:
        train(cfg, writer)
    table = read_results(tmp_path / "r").table
    assert CKA_V2_METRIC not in set(table["metric"].to_pylist())  # FS has no Policy IV: no cost
