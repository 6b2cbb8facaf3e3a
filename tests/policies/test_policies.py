"""Every policy's multipliers equal the table of fsf-method.md, in both phases, at L=12 and 24.

The expected values are written out from the table, independently of the rule engine.
"""

import pytest

from fsf.errors import FsfError
from fsf.policies import PhaseState, PolicyConfig, Unit, build_policy, policy_names
from fsf.policies.weight_sets import KINDS

C1, C2, R = 0.01, 10.0, 3.0
#: The paper's policies and ablations, whose multipliers the table below writes out. A policy
#: added to the registry is not in this list: the contract suite covers it
#: (tests/policies/test_policy_contract.py), its own tests its values.
PAPER = (
    "df", "noisytune", "fs", "ff", "fsf",
    "only-s1", "only-s2", "swap-s", "only-v1", "only-v2", "swap-v",
)  # fmt: skip
PHI = 0.5
SLOW2 = 1 - PHI**R  # max(1 - phi^r, 0)


def _bounds(layers: int) -> tuple[int, int]:
    return {12: (10, 4), 24: (20, 8)}[layers]  # S_I = 1..b1, S_II = FFN of 1..b2


def expected(policy: str, layers: int, unit: Unit, phase: str) -> float:
    b1, b2 = _bounds(layers)
    if unit.layer == 0:
        return 1.0
    s1 = unit.layer <= b1
    s2 = unit.layer <= b2 and unit.kind == "ffn"
    v1 = unit.layer > b1
    v2 = v1 and unit.kind == "attention"
    p1 = phase == "P1"
    k = 1.0
    slow = {"fs", "fsf", "only-v1", "only-v2", "swap-v"}
    fast = {"ff", "fsf", "only-s1", "only-s2", "swap-s"}
    if policy in slow:  # Policy I on S_I, II on S_II
        k *= (C1 if p1 and s1 else 1.0) * (SLOW2 if not p1 and s2 else 1.0)
    if policy in fast:  # Policy IV on V_II
        k *= C2 if not p1 and v2 else 1.0
    if policy == "only-s1":  # I and II both on S_I
        k *= C1 if p1 and s1 else SLOW2 if s1 else 1.0
    if policy == "only-s2":
        k *= C1 if p1 and s2 else SLOW2 if s2 else 1.0
    if policy == "swap-s":  # I on S_II, II on S_I
        k *= C1 if p1 and s2 else SLOW2 if not p1 and s1 else 1.0
    if policy in ("only-v1", "swap-v"):  # IV on all of V_I
        k *= C2 if not p1 and v1 else 1.0
    if policy == "only-v2":
        k *= C2 if not p1 and v2 else 1.0
    return k


def test_the_paper_policies_are_registered():
    assert set(PAPER) <= set(policy_names())


@pytest.mark.parametrize("layers", [12, 24])
@pytest.mark.parametrize("policy", PAPER)
@pytest.mark.parametrize("phase", ["P1", "P2"])
def test_multipliers_match_the_table(policy, layers, phase):
    config = PolicyConfig(name=policy)
    sets = config.sets.resolve(layers)
    pol = build_policy(config, sets)
    got = pol.multipliers(PhaseState(300, phase, PHI))
    units = [Unit.embeddings(), Unit.head()] + [
        Unit(i, k) for i in range(1, layers + 1) for k in KINDS
    ]
    assert set(got) == set(units)
    for unit in units:
        assert got[unit] == pytest.approx(expected(policy, layers, unit, phase)), unit


def test_fsf_table_rows_at_12_layers():
    """The four rows of fsf-method.md's table, spelled out."""
    pol = build_policy(PolicyConfig(name="fsf"), PolicyConfig().sets.resolve(12))
    p1 = pol.multipliers(PhaseState(1, "P1", None))
    p2 = pol.multipliers(PhaseState(500, "P2", 0.9))
    assert p1[Unit(2, "ffn")] == C1 and p2[Unit(2, "ffn")] == pytest.approx(1 - 0.9**3)
    assert p1[Unit(7, "attention")] == C1 and p2[Unit(7, "attention")] == 1
    assert p1[Unit(6, "ffn")] == C1 and p2[Unit(6, "ffn")] == 1
    assert p1[Unit(12, "attention")] == 1 and p2[Unit(12, "attention")] == C2
    assert p1[Unit(11, "ffn")] == 1 and p2[Unit(11, "ffn")] == 1
    assert p2[Unit.embeddings()] == 1 and p2[Unit.head()] == 1


def test_policy_iv_off_and_phi_undefined():
    cfg = PolicyConfig(name="fsf", policy_iv=False)
    pol = build_policy(cfg, cfg.sets.resolve(12))
    k = pol.multipliers(PhaseState(10, "P2", None))
    assert k[Unit(12, "attention")] == 1.0  # Policy IV off (as on NER)
    assert k[Unit(1, "ffn")] == 1.0  # R(phi) leaves K = 1 while phi is undefined
    # the task default applies unless the config says otherwise
    pol = build_policy(PolicyConfig(name="fsf"), cfg.sets.resolve(12), policy_iv=False)
    assert pol.multipliers(PhaseState(10, "P2", 0.5))[Unit(12, "attention")] == 1.0


def test_phi_above_one_clamps_to_zero():
    pol = build_policy(PolicyConfig(name="fs"), PolicyConfig().sets.resolve(12))
    assert pol.multipliers(PhaseState(10, "P2", 1.2))[Unit(1, "ffn")] == 0.0


def test_noisytune_perturbs_pretrained_weights_not_the_head():
    import torch
    from transformers import XLMRobertaConfig, XLMRobertaForSequenceClassification

    from fsf.policies import map_parameters

    model = XLMRobertaForSequenceClassification(
        XLMRobertaConfig(
            vocab_size=50,
            hidden_size=8,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=16,
            max_position_embeddings=20,
        )
    )
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    pmap = map_parameters(before, num_layers=2)
    cfg = PolicyConfig(name="noisytune", noise_lambda=0.15)
    pol = build_policy(cfg, cfg.sets.resolve(2))
    pol.prepare(model, pmap, torch.Generator().manual_seed(0))
    for name, p in model.named_parameters():
        delta = (p - before[name]).abs()
        if name.startswith("classifier"):
            assert torch.equal(p, before[name])
        elif p.numel() > 1 and before[name].std() > 0:
            bound = 0.15 / 2 * before[name].std() + 1e-7
            assert delta.max() <= bound and delta.max() > 0, name
    # a policy without noise leaves the weights alone
    df = build_policy(PolicyConfig(name="df"), cfg.sets.resolve(2))
    snapshot = {n: p.detach().clone() for n, p in model.named_parameters()}
    df.prepare(model, pmap, torch.Generator().manual_seed(0))
    assert all(torch.equal(p, snapshot[n]) for n, p in model.named_parameters())


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"name": "slowfast"}, "name"),
        ({"name": "fsf", "c1": 1.0}, "c1"),
        ({"name": "fs", "c1": -0.1}, "c1"),
        ({"name": "fsf", "c2": 1.0}, "c2"),
        ({"name": "ff", "c2": 0.5}, "c2"),
        ({"name": "fsf", "r": 0}, "r"),
        ({"name": "fsf", "window": 0}, "window"),
        ({"name": "fsf", "switch": "fraction", "switch_fraction": 1.5}, "switch_fraction"),
        ({"name": "fsf", "switch": "later"}, "switch"),
    ],
)
def test_bad_policy_configs_name_the_field(data, field):
    from pydantic import ValidationError

    with pytest.raises(ValidationError) as err:
        PolicyConfig(**data)
    assert field in {e["loc"][0] for e in err.value.errors()}


def test_knobs_unused_by_a_policy_are_not_checked():
    PolicyConfig(name="df", c1=5, c2=0.1)  # DF uses neither
    PolicyConfig(name="fsf", c2=0.5, policy_iv=False)


def test_registry_lists_names_on_unknown():
    from fsf.policies import policy_class

    with pytest.raises(FsfError, match="fsf, only-s1"):
        policy_class("nope")
