"""The training worker inside a real DeepSpeed engine on CPU."""

from __future__ import annotations

import pytest
import torch

from fsf.policies import policy_names
from fsf.train import ListReporter, scheduled_lr_factor, train

pytestmark = pytest.mark.slow


@pytest.fixture()
def lr_log(monkeypatch):
    """Record the (group name -> lr) that AdamW sees at each real optimizer step.

    ZeRO-2 steps the optimizer once per param group (one group visible at a time), so the
    records of one step are merged until a group name repeats."""
    log: list[dict[str, float]] = []
    original = torch.optim.AdamW.step

    def step(self, *args, **kwargs):
        seen = {g["name"]: g["lr"] for g in self.param_groups}
        if not log or set(seen) & set(log[-1]):
            log.append({})
        log[-1].update(seen)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.AdamW, "step", step)
    return log


@pytest.mark.parametrize("stage", [0, 2])
def test_param_group_lrs_follow_the_policy_across_a_phase_switch(run_config, lr_log, stage):
    cfg = run_config(
        **{
            "policy.name": "fsf",
            "policy.switch": "step",
            "policy.switch_step": 3,
            "deepspeed.zero_stage": stage,
            "optim.max_steps": 6,
            "optim.warmup_ratio": 0.34,
        }
    )
    summary = train(cfg)
    assert len(lr_log) == 6
    # 2-layer model: S_I = layer 1 (S_II its FFN), V_I = V_II's layers = layer 2
    for t, lrs in enumerate(lr_log, start=1):
        base = 1e-3 * scheduled_lr_factor(t, 2, 6)
        p1 = t <= 3
        assert lrs["layer1.attention"] == pytest.approx(base * (0.01 if p1 else 1))
        assert lrs["layer1.ffn"] == pytest.approx(base * (0.01 if p1 else 1))  # phi undefined
        assert lrs["layer1.ffn.no_decay"] == pytest.approx(base * (0.01 if p1 else 1))
        assert lrs["layer2.attention"] == pytest.approx(base * (1 if p1 else 10))
        assert lrs["layer2.ffn"] == pytest.approx(base)
        assert lrs["embeddings"] == pytest.approx(base) and lrs["head"] == pytest.approx(base)
    phases = [e.phase for e in summary.evaluations]
    assert phases == ["P1", "P1", "P2"]  # evaluations at steps 0, 3, 6
    assert summary.evaluations[-1].multipliers["V_II"] == 10


def test_slowed_weights_do_not_move_with_c1_zero(run_config, monkeypatch):
    """Behaviour, not bookkeeping: with c1 = 0 the S_I weights are frozen during P1."""
    from transformers import AutoModelForSequenceClassification

    snapshots = []
    original = torch.optim.AdamW.step

    def step(self, *args, **kwargs):
        out = original(self, *args, **kwargs)
        named = {g["name"]: [p.detach().clone() for p in g["params"]] for g in self.param_groups}
        snapshots.append(named)
        return out

    monkeypatch.setattr(torch.optim.AdamW, "step", step)
    cfg = run_config(
        **{
            "policy.name": "fs",
            "policy.c1": 0.0,
            "policy.switch": "step",
            "policy.switch_step": 2,
            "optim.max_steps": 4,
        }
    )
    del AutoModelForSequenceClassification
    train(cfg)
    s1, s2, s3 = snapshots[0], snapshots[1], snapshots[2]
    same = lambda a, b, name: all(torch.equal(x, y) for x, y in zip(a[name], b[name], strict=False))  # noqa: E731
    assert same(s1, s2, "layer1.attention")  # step 2 is still P1: no change
    assert not same(s2, s3, "layer1.attention")  # step 3 is P2: it moves
    assert not same(s1, s2, "layer2.attention")  # V_I trains all along


@pytest.mark.parametrize("arch", ["xlmr", "bert"])
@pytest.mark.parametrize("policy", policy_names())
def test_every_policy_trains_tiny_models(run_config, assets, arch, policy):
    cfg = run_config(
        **{
            "model.name": str(assets[arch]),
            "policy.name": policy,
            "policy.window": 1,
            "optim.max_steps": 4,
            "eval.every_steps": 4,
        }
    )
    reporter = ListReporter()
    summary = train(cfg, reporter)
    assert [e.step for e in reporter.evaluations] == [0, 4]
    final = summary.final
    assert final.is_final and final.loss is not None and final.loss > 0
    assert set(final.scores) == {"dev", "test"}
    assert set(final.scores["test"]) == {"en", "de", "fr"}
    assert 0 <= final.target_mean("test") <= 1
    assert final.gap("dev") == pytest.approx(final.source("dev") - final.target_mean("dev"))


def test_same_seed_same_result(run_config):
    cfg = run_config(**{"policy.name": "noisytune", "optim.max_steps": 5})
    a, b = train(cfg), train(cfg)
    assert [e.loss for e in a.evaluations] == [e.loss for e in b.evaluations]
    assert [e.scores for e in a.evaluations] == [e.scores for e in b.evaluations]
    c = train(run_config(**{"policy.name": "noisytune", "optim.max_steps": 5, "seed": 1}))
    assert [e.loss for e in a.evaluations] != [e.loss for e in c.evaluations]


def test_it_learns_and_selects_models(run_config):
    cfg = run_config(
        **{"policy.name": "df", "optim.max_steps": 60, "optim.lr": 3e-3, "eval.every_steps": 20}
    )
    summary = train(cfg)
    assert summary.final.source("dev") > 0.6  # the pair label is learnable from the words
    assert summary.checkpoint("source-dev").source("dev") == max(
        e.source("dev") for e in summary.evaluations
    )
    assert summary.checkpoint("all-dev").all_mean("dev") == max(
        e.all_mean("dev") for e in summary.evaluations
    )


def test_few_shot_examples_leave_the_dev_split(run_config, monkeypatch):
    from fsf.train import worker

    seen = {}
    original = worker.load_data

    def spy(task, config, tokenizer):
        train_features, evals = original(task, config, tokenizer)
        seen["train"] = len(train_features)
        seen["dev"] = {lang: len(es.features) for lang, es in evals["dev"].items()}
        return train_features, evals

    monkeypatch.setattr(worker, "load_data", spy)
    train(run_config(**{"few_shot.m": 5, "optim.max_steps": 1}))
    assert seen["train"] == 64 + 2 * 5
    assert seen["dev"] == {"en": 24, "de": 19, "fr": 19}
