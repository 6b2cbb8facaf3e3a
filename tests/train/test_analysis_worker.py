"""What the worker records for analysis (real DeepSpeed engines on CPU): the per-step loss
curve and its phases, CKA against the pretrained model, and layer probes."""

from __future__ import annotations

import pytest
import torch

from fsf.analysis import cka_curves, gap_curves
from fsf.results import ParquetReporter, TrialInfo, read_results
from fsf.train import ListReporter, train

pytestmark = pytest.mark.slow


def _run(cfg, root):
    writer = ParquetReporter(root, TrialInfo(cfg))
    summary = train(cfg, writer)
    writer.finish("completed")
    return summary, read_results(root)


def test_detected_phases_match_the_policys_own(run_config, tmp_path):
    """The loss-trend rule applied to the recorded loss curve gives, step for step, the
    phase the policy recorded while training (window 1, threshold 0: P1 while the loss
    falls; sticky)."""
    cfg = run_config(
        **{
            "policy.name": "fsf",
            "policy.window": 1,
            "policy.threshold": 0.0,
            "optim.max_steps": 12,
            "optim.lr": 3e-3,
            "eval.every_steps": 4,
        }
    )
    summary, res = _run(cfg, tmp_path / "results")
    (curve,) = gap_curves(res).runs
    assert curve.loss_steps.tolist() == list(range(1, 13))
    losses = [r.loss for ev in summary.evaluations for r in ev.train_steps]
    assert curve.loss.tolist() == losses
    assert curve.detected_phase == curve.recorded_step_phase
    assert curve.detected_at_evaluations() == [e.phase for e in summary.evaluations]
    assert "P2" in curve.detected_phase  # the run did switch, so the check has teeth
    assert curve.detected_switch == curve.recorded_switch


def test_cka_rows_are_written_when_enabled_and_only_then(run_config, tmp_path):
    cfg = run_config(
        **{
            "policy.name": "df",
            "optim.max_steps": 6,
            "analysis.cka.every_steps": 4,
            "analysis.cka.probe_size": 10,
        }
    )
    _, res = _run(cfg, tmp_path / "on")
    curves = cka_curves(res)
    (run,) = curves.runs
    assert run.steps.tolist() == [0, 4, 6]  # before training, every 4 steps, the last
    assert run.layers.tolist() == [0, 1, 2]  # embeddings + 2 layers
    assert sorted(run.values) == ["de", "en", "fr"]
    for mat in run.values.values():
        assert mat[:, 0] == pytest.approx(1.0, abs=1e-6)  # the untouched pretrained model
        assert (mat[:, 1:] < 1.0 - 1e-6).all() and (mat > 0).all()
    off = run_config(**{"optim.max_steps": 6})
    _, res_off = _run(off, tmp_path / "off")
    assert cka_curves(res_off).runs == []
    assert set(res_off.table["split"].to_pylist()) == {"dev", "test", "train"}


def test_cka_reference_is_taken_before_a_probe_changes_the_model(run_config, tmp_path):
    """Re-initialising layer 2 leaves the states below it as they were: at step 0, CKA is 1
    for the embeddings and layer 1 and below 1 for layer 2."""
    cfg = run_config(
        **{
            "optim.max_steps": 2,
            "eval.every_steps": 2,
            "probe.action": "reinit",
            "probe.layer": 2,
            "analysis.cka.every_steps": 2,
            "analysis.cka.languages": ["en"],
        }
    )
    rep = ListReporter()
    summary = train(cfg, rep)
    start = summary.evaluations[0].cka[0]["en"]
    assert start[0] == pytest.approx(1.0, abs=1e-9) and start[1] == pytest.approx(1.0, abs=1e-9)
    assert start[2] < 1 - 1e-6  # small: a random tiny layer is close to the identity


def test_a_frozen_part_does_not_move(run_config, monkeypatch):
    seen = {}
    original = torch.optim.AdamW.__init__

    def spy(self, params, *args, **kwargs):
        groups = list(params)
        seen["names"] = [g["name"] for g in groups]
        return original(self, groups, *args, **kwargs)

    monkeypatch.setattr(torch.optim.AdamW, "__init__", spy)
    cfg = run_config(**{"optim.max_steps": 3, "probe.action": "freeze", "probe.layer": 1})
    train(cfg)
    assert not any(n.startswith("layer1.") for n in seen["names"])
    assert any(n.startswith("layer2.") for n in seen["names"])
