"""`policy_iv: cka`: c2 only while the V_II layers' CKA to the pretrained model is falling.

The rule is checked on recorded CKA curves (the trend, the policy, `fsf-policy explain`);
tests/train/test_policy_iv_cka.py runs it inside the DeepSpeed engine.
"""

import json

import pytest
from pydantic import ValidationError

from fsf.cli.policies import main
from fsf.policies import CkaTrend, PhaseState, PolicyConfig, Unit, build_policy, explain

V2 = Unit(12, "attention")


def test_trend_needs_a_window_of_measurements_then_compares_its_ends():
    t = CkaTrend(window=3, min_drop=0.01)
    assert t.update(0, 1.0) is None and t.update(20, 0.9) is None  # too few to tell
    assert t.update(40, 0.85) is True  # 1.0 -> 0.85 over the window
    assert t.update(60, 0.845) is True  # 0.9 -> 0.845
    assert t.update(80, 0.845) is False  # 0.85 -> 0.845: dropped by less than min_drop
    assert t.update(100, 0.9) is False  # rising
    assert t.update(120, 0.5) is True  # falling again: the rule follows the curve
    assert t.update(140, float("nan")) is None  # CKA undefined: no claim


def test_trend_rejects_a_window_below_two():
    with pytest.raises(ValueError, match="window"):
        CkaTrend(window=1)


@pytest.mark.parametrize(
    ("phase", "falling", "k"),
    [("P1", True, 1.0), ("P2", True, 10.0), ("P2", None, 10.0), ("P2", False, 1.0)],
)
def test_rule_iv_applies_in_p2_only_while_cka_falls(phase, falling, k):
    cfg = PolicyConfig(name="fsf", policy_iv="cka")
    pol = build_policy(cfg, cfg.sets.resolve(12))
    mult = pol.multipliers(PhaseState(50, phase, 0.5, cka_falling=falling))
    assert mult[V2] == k
    assert mult[Unit(11, "ffn")] == 1.0  # V_I outside V_II: never fast
    # Policies I and II do not depend on the CKA
    on = build_policy(PolicyConfig(name="fsf", policy_iv=True), cfg.sets.resolve(12))
    ref = on.multipliers(PhaseState(50, phase, 0.5))
    v2 = {Unit(11, "attention"), V2}
    assert {u: v for u, v in mult.items() if u not in v2} == {
        u: v for u, v in ref.items() if u not in v2
    }


def test_policy_iv_on_ignores_the_curve_and_off_never_speeds_up():
    sets = PolicyConfig().sets.resolve(12)
    state = PhaseState(50, "P2", 0.5, cka_falling=False)
    assert build_policy(PolicyConfig(name="fsf", policy_iv=True), sets).multipliers(state)[V2] == 10
    assert build_policy(PolicyConfig(name="ff", policy_iv=False), sets).multipliers(state)[V2] == 1


def test_config_accepts_cka_and_validates_its_knobs():
    cfg = PolicyConfig.model_validate({"name": "fsf", "policy_iv": "cka", "cka": {"window": 4}})
    assert cfg.policy_iv == "cka" and cfg.cka.window == 4 and cfg.cka.every_steps == 20
    with pytest.raises(ValidationError) as err:
        PolicyConfig.model_validate(
            {"name": "fsf", "policy_iv": "sometimes", "cka": {"window": 1, "probe_size": 1}}
        )
    text = str(err.value)
    assert "policy_iv" in text and "window" in text and "probe_size" in text  # all at once


def _recorded_curve() -> list[tuple[int, float]]:
    # falls until step 100, then flat: c2 should stop once the flat part fills the window
    return [(s, max(1.0 - 0.002 * s, 0.8)) for s in range(0, 201, 20)]


def test_explain_replays_a_recorded_curve():
    cfg = PolicyConfig(name="fsf", policy_iv="cka", window=20, threshold=0.1)
    recs = explain(cfg, 12, steps=200, cka=_recorded_curve())
    by_step = {r["step"]: r for r in recs}
    assert by_step[39]["cka_falling"] is None  # two measurements (0, 20) so far
    assert by_step[40]["cka_falling"] is True  # 0, 20, 40: falling
    assert by_step[120]["cka_falling"] is True  # 80, 100, 120: 0.84 -> 0.8
    assert by_step[140]["cka_falling"] is False  # 0.8 from step 100 on: the window is flat
    p2 = [r for r in recs if r["phase"] == "P2"]
    assert p2, "the example loss reaches P2"
    for r in p2:
        want = 10.0 if r["cka_falling"] is not False else 1.0
        assert r["layers"][11]["attention"] == want


def test_explain_cli_reads_the_curve_and_reports_bad_lines(capsys, tmp_path):
    f = tmp_path / "cka.txt"
    f.write_text("# step value\n" + "\n".join(f"{s} {v}" for s, v in _recorded_curve()) + "\n")
    code = main(["explain", "--policy", "fsf", "--layers", "12", "--steps", "200", "--cka", str(f)])
    out = capsys.readouterr().out
    assert code == 0 and "CKA V_II" in out and "Policy IV while the CKA of V_II fell" in out
    code = main(
        ["explain", "--policy", "fsf", "--layers", "12", "--steps", "200", "--cka", str(f),
         "--format", "json"]
    )  # fmt: skip
    recs = json.loads(capsys.readouterr().out)
    assert recs[159]["cka_falling"] is False and recs[159]["layers"][11]["attention"] == 1.0
    bad = tmp_path / "bad.txt"
    bad.write_text("0 1.0\nten 0.9\n")
    code = main(
        ["explain", "--policy", "fsf", "--layers", "12", "--steps", "20", "--cka", str(bad)]
    )
    err = capsys.readouterr().err
    assert code == 2 and "--cka line 2" in err and "Traceback" not in err
