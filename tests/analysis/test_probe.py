"""Layer probes: the generated grid, the worker-side re-init/freeze, the effects against the
baseline, the rule that derives the weight sets, and the policy config it writes."""

from __future__ import annotations

import itertools

import pytest
import torch
import yaml

from fsf.analysis.probe import (
    derive_weight_sets,
    probe_effects,
    probe_markdown,
    write_policy_config,
)
from fsf.analysis.probe_spec import ProbeSpec, SetRule
from fsf.config import ProbeConfig, validate_run_config
from fsf.errors import ConfigError
from fsf.results._errors import ResultsUsageError
from fsf.sweep.points import grid_points, trial_run_config
from fsf.sweep.probe import probe_space
from fsf.sweep.space import validate_space
from tests.analysis.helpers import config, evaluation, table


def _space(assets, tmp_path, probe=None, **search):
    data = {
        "name": "p",
        "base": {
            "model": {"name": str(assets["xlmr"])},
            "task": {"name": "pawsx", "dataset": str(assets["pawsx"])},
            "target_langs": ["de", "fr"],
            "policy": {"name": "df"},
            "optim": {"max_steps": 4, "batch_size": 8},
        },
        "search": {"seeds": [0, 1], **search},
        "storage": {"path": str(tmp_path)},
    }
    if probe is not None:
        data["probe"] = probe
    return validate_space(data)


def test_grid_is_baseline_plus_actions_x_parts_x_layers(assets, tmp_path):
    grid = probe_space(_space(assets, tmp_path))  # depth read from the model: 2 layers
    points = grid_points(grid)
    expected = [{"probe.action": "none"}] + [
        {"probe.action": a, "probe.layer": layer, "probe.part": p}
        for a, layer, p in itertools.product(
            ("reinit", "freeze"), (1, 2), ("all", "attention", "ffn")
        )
    ]
    key = lambda d: sorted(d.items())  # noqa: E731
    assert sorted(map(key, points)) == sorted(map(key, expected))
    assert len(points) * len(grid.search.seeds) == (2 * 3 * 2 + 1) * 2  # runs
    assert grid.search.searcher == "grid" and grid.search.scheduler.type == "none"
    assert grid.probe.num_layers == 2
    for point in points:  # every trial's run config is valid and carries its probe
        cfg = trial_run_config(grid, point, 1, "t")
        assert cfg.probe.action == point["probe.action"] and cfg.seed == 1
        if cfg.probe.action != "none":
            assert (cfg.probe.layer, cfg.probe.part) == (point["probe.layer"], point["probe.part"])
    again = validate_space(grid.model_dump(mode="json"))  # the saved space.yaml resumes
    assert grid_points(again) == points


def test_probe_section_narrows_the_grid_and_is_checked(assets, tmp_path):
    spec = _space(assets, tmp_path, {"layers": "2", "actions": ["reinit"], "parts": ["ffn"]})
    assert grid_points(probe_space(spec)) == [
        {"probe.action": "none"},
        {"probe.action": "reinit", "probe.layer": 2, "probe.part": "ffn"},
    ]
    with pytest.raises(ConfigError, match=r"within 1\.\.2"):
        probe_space(_space(assets, tmp_path, {"layers": "1-3"}))
    with pytest.raises(ConfigError) as err:
        validate_space(
            {
                "probe": {},
                "search": {
                    "parameters": {"optim.lr": {"type": "float", "low": 1e-4, "high": 1e-3}}
                },
            }
        )
    assert "gets its parameters from it" in str(err.value)
    with pytest.raises(ConfigError, match="distinct"):
        validate_space({"probe": {"parts": ["ffn", "ffn"]}})


def _model(assets):
    from transformers import AutoModelForSequenceClassification

    from fsf.policies import map_parameters

    model = AutoModelForSequenceClassification.from_pretrained(assets["bert"], num_labels=2)
    pm = map_parameters([n for n, _ in model.named_parameters()], None, 2)
    return model, pm


@pytest.mark.parametrize("part", ["all", "attention", "ffn"])
def test_reinit_changes_exactly_the_probed_weights(assets, part):
    from fsf.train._probe import apply_probe

    model, pm = _model(assets)
    with torch.no_grad():  # a "pretrained" model: no weight at its initial value
        for p in model.parameters():
            p.add_(0.3)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    names = apply_probe(
        model,
        pm,
        ProbeConfig(action="reinit", layer=2, part=part),
        torch.Generator().manual_seed(0),
    )
    kinds = {"all": {"attention", "ffn", "other"}, "attention": {"attention"}, "ffn": {"ffn"}}[part]
    want = {n for n, u in pm.units.items() if u.layer == 2 and u.kind in kinds}
    assert set(names) == want and want
    for n, p in model.named_parameters():
        changed = not torch.equal(p, before[n])
        assert changed == (n in want), n
        if n in want and "LayerNorm.weight" in n:
            assert torch.equal(p, torch.ones_like(p))
        if n in want and n.endswith("dense.weight"):
            assert 0.01 < p.std().item() < 0.03  # N(0, initializer_range = 0.02)


def test_freeze_and_bad_layers(assets):
    from fsf.train._probe import apply_probe

    model, pm = _model(assets)
    names = apply_probe(
        model, pm, ProbeConfig(action="freeze", layer=1, part="ffn"), torch.Generator()
    )
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert frozen == set(names) and all(pm.units[n].kind == "ffn" for n in names)
    assert apply_probe(model, pm, ProbeConfig(), torch.Generator()) == []
    with pytest.raises(ConfigError, match=r"probe\.layer"):
        apply_probe(model, pm, ProbeConfig(action="reinit", layer=3), torch.Generator())
    with pytest.raises(ConfigError, match=r"needs probe\.layer"):
        validate_run_config({"probe": {"action": "freeze"}})


# A 6-layer model: whole-layer re-init hurts layers 1-4 (-5 points) and 5 (-3), not 6;
# FFN re-init hurts 1-2 (-4) more than 3-4 (-1); attention hurts a little (-1); freezing
# helps a little. Baseline: source 80, targets 70 / 60. Three seeds with small noise.
def _effect(action: str, part: str, layer: int) -> float:
    if action == "freeze":
        return 0.005
    if part == "all":
        return -0.05 if layer <= 4 else -0.03 if layer == 5 else 0.0
    if part == "ffn":
        return -0.04 if layer <= 2 else -0.01 if layer <= 4 else 0.0
    return -0.01 if layer <= 5 else 0.0


def _probe_results(effect=_effect, layers=range(1, 7)):
    runs = []
    for seed in (0, 1, 2):
        noise = 0.001 * (seed - 1)
        probes = [("none", None, "all")] + [
            (a, layer, p)
            for a in ("reinit", "freeze")
            for p in ("all", "attention", "ffn")
            for layer in layers
        ]
        for action, layer, part in probes:
            d = 0.0 if action == "none" else effect(action, part, layer)
            trial = f"{action}-{part}-{layer}"
            probe = {"action": action, "layer": layer, "part": part}
            cfg = config(trial, seed, probe=probe)
            ev = evaluation(10, 10, 0.80 + noise + d / 2, 0.70 + noise + d, 0.60 + noise + d)
            runs.append((cfg, [evaluation(0, 10, 0.3, 0.3, 0.3), ev]))
    return table(runs)


def test_effects_are_paired_against_the_baseline():
    eff = probe_effects(_probe_results())
    assert eff.baseline == pytest.approx({"source": 0.80, "target_mean": 0.65, "n": 3})
    assert len(eff.entries) == 2 * 3 * 6 and eff.num_layers == 6 and eff.seeds == [0, 1, 2]
    e = eff.get("reinit", "all", 2)
    assert e["d_target"] == pytest.approx(-0.05) and e["d_source"] == pytest.approx(-0.025)
    assert e["se_target"] == pytest.approx(0.0, abs=1e-9) and e["n"] == 3
    assert eff.get("freeze", "ffn", 1)["d_target"] == pytest.approx(0.005)


def test_rule_derives_the_sets_and_writes_a_loadable_policy_config(tmp_path):
    eff = probe_effects(_probe_results())
    sets, why = derive_weight_sets(eff, SetRule())
    assert (str(sets.s1), str(sets.s2), str(sets.v1), str(sets.v2)) == ("1-5", "1-2", "6", "6")
    assert sets.s2_kinds == ("ffn",) and sets.v2_kinds == ("attention",)
    assert any("S_I = layers 1-5" in w for w in why)
    path = write_policy_config(sets, tmp_path / "sets.yaml", reasons=why, source="toy")
    cfg = validate_run_config(yaml.safe_load(path.read_text()))  # what fsf-train --config does
    resolved = cfg.policy.sets.resolve(6).describe()
    assert resolved == {
        "S_I": "all weights of layers 1-5",
        "S_II": "ffn of layers 1-2",
        "V_I": "all weights of layers 6",
        "V_II": "attention of layers 6",
    }
    md = probe_markdown(eff, sets, why)
    assert "| 2 | -2.5 / -5.0" in md and "s1: 1-5" in md
    # a stricter threshold: only the -5 point layers hurt -> S_I = 1-4, V_I = 5-6
    sets4, _ = derive_weight_sets(eff, SetRule(s1_drop=0.04))
    assert (str(sets4.s1), str(sets4.v1)) == ("1-4", "5-6")


def test_rule_with_attention_dominant_and_with_nothing_hurting():
    def attn(action, part, layer):
        return (
            {"all": -0.05, "attention": -0.04 if layer == 1 else -0.015, "ffn": -0.005}[part]
            if action == "reinit" and layer < 6
            else 0.0
        )

    sets, _ = derive_weight_sets(probe_effects(_probe_results(attn)))
    assert sets.s2_kinds == ("attention",) and (str(sets.s1), str(sets.s2)) == ("1-5", "1")
    flat, why = derive_weight_sets(probe_effects(_probe_results(lambda *a: 0.0)))
    assert flat.s1 == "default" and "nothing derived" in why[-1]


def test_without_part_probes_s2_is_the_default_not_empty():
    """Probing whole layers only (`parts: [all]`) measures no attention or FFN re-init: S_II
    is then not derived (the depth-scaled default, capped at S_I), and the reason says it
    was not measured instead of 'no layer's FFN lowers the score'."""
    tab = _probe_results(layers=range(1, 13))
    eff = probe_effects(tab)
    eff.entries = [e for e in eff.entries if e["part"] == "all"]
    sets, why = derive_weight_sets(eff)
    assert (str(sets.s1), str(sets.s2), str(sets.v1)) == ("1-5", "1-4", "6-12")
    assert sets.s2_kinds == ("ffn",)
    assert any(w.startswith("S_II not derived: no attention or FFN") for w in why)
    assert not any("lowers the score" in w for w in why)
    # S_I shallower than the default S_II: the default is capped at S_I
    eff.entries = [e for e in eff.entries if e["layer"] != 5 or e["action"] != "reinit"]
    for e in eff.entries:
        if e["action"] == "reinit" and e["layer"] in (3, 4):
            e["d_target"] = 0.0
    sets, _ = derive_weight_sets(eff)
    assert (str(sets.s1), str(sets.s2)) == ("1-2", "1-2")


def test_noise_keeps_a_layer_out_of_s1():
    """A drop larger than s1_drop but within 2 standard errors does not count."""
    tab = _probe_results()
    eff = probe_effects(tab)
    e = eff.get("reinit", "all", 5)
    e["se_target"] = 0.02  # -3 points is then 1.5 standard errors
    sets, _ = derive_weight_sets(eff)
    assert str(sets.s1) == "1-4"


def test_no_probe_runs_is_a_usage_error():
    plain = table([(config("a"), [evaluation(0, 4, 0.5, 0.4, 0.3)])])
    with pytest.raises(ResultsUsageError, match="no probe runs"):
        probe_effects(plain)
    with pytest.raises(ResultsUsageError, match="no baseline"):
        probe_effects(
            table(
                [
                    (
                        config("a", probe={"action": "reinit", "layer": 1}),
                        [evaluation(0, 4, 0.5, 0.4, 0.3)],
                    )
                ]
            )
        )
    assert ProbeSpec().layer_list(3) == [1, 2, 3]


def test_shipped_probe_space_covers_the_embedded_encoder():
    from pathlib import Path

    from fsf.sweep.space import load_space

    grid = probe_space(load_space(Path(__file__).parents[2] / "sweeps" / "probe.yaml"))
    assert grid.probe.num_layers == 12  # read from the shipped model's config
    assert len(grid_points(grid)) == 1 + 1 * 3 * 12  # baseline + re-init of 3 parts x 12


def test_rule_recovers_the_papers_sets_from_paper_shaped_effects():
    """12 layers: re-init hurts layers 1-10 (most 1-4, through their FFN), not 11-12."""

    def paper(action, part, layer):
        if action != "reinit" or layer > 10:
            return 0.0
        return {
            "all": -0.04 if layer <= 4 else -0.02,
            "ffn": -0.03 if layer <= 4 else -0.005,
            "attention": -0.01 if layer <= 4 else -0.005,
        }[part]

    sets, _ = derive_weight_sets(probe_effects(_probe_results(paper, range(1, 13))))
    assert sets.resolve(12).describe() == {
        "S_I": "all weights of layers 1-10",
        "S_II": "ffn of layers 1-4",
        "V_I": "all weights of layers 11-12",
        "V_II": "attention of layers 11-12",
    }
