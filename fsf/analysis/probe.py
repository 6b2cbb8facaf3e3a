"""Layer probes: what re-initialising or freezing one part of one layer does to the scores,
and the weight sets (S_I, S_II, V_I, V_II) those effects suggest for the model.

A probe sweep (`fsf-sweep probe`, run by `fsf.sweep.probe`) trains the model once per
(action, part, layer) and seed, with `probe.action/part/layer` set in the run config, plus a
no-probe baseline with the same seeds. `probe_effects` reads its results: for each run the
source score and the target mean at its last evaluation, and for each probe the change
against the baseline *paired by seed* (mean over seeds and its standard error).

`derive_weight_sets` turns the effects into weight sets with this rule (`SetRule`; the
defaults in parentheses). Drops are in the metric's units (0.01 = 1 point of accuracy):

1. A layer *hurts* when re-initialising the whole layer lowers the target mean by more than
   `s1_drop` (0.01), and (with 2+ seeds) by at least `min_z` (2) standard errors.
2. S_I = layers 1..b1, b1 = the deepest hurting layer below the top layer. V_I = the layers
   above b1 (b1+1..L). If no layer below the top hurts, nothing can be derived and the
   depth-scaled defaults are kept (with a note).
3. S_II's kind (s2_kinds) is the part, FFN or attention, whose re-initialisation lowers the
   target mean more in total over S_I (ties: FFN, the paper's). S_II = layers 1..b2 of that
   kind, b2 = the deepest layer of S_I whose part re-init drop is at least `s2_share` (0.5)
   of the largest such drop in S_I. No drop at all: S_II is empty.
4. V_II = the layers of V_I, kinds `v2_kinds` (attention, the paper's choice: a probe says
   which weights hold knowledge, not which ones benefit from a faster learning rate).

Freezing is measured and shown (the paper found freezing one of layers 1-4 slightly helps),
but does not enter the rule. The paper's own sets for XLM-R (12 layers) are S_I = 1-10,
S_II = FFN of 1-4, V_I = V_II's layers = 11-12.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import yaml

from fsf.analysis.probe_spec import ACTIONS, PARTS, SetRule
from fsf.atomic import write_atomic
from fsf.policies.weight_sets import LayerRange, WeightSetsConfig, default_ranges
from fsf.results import ResultsUsageError
from fsf.results.frame import frame
from fsf.results.reader import Results, load

__all__ = [
    "ProbeEffects",
    "derive_weight_sets",
    "probe_effects",
    "write_policy_config",
]


@dataclass
class ProbeEffects:
    """Scores of the baseline and of every probe, and their changes paired by seed.

    `baseline`: {"source", "target_mean", "n"} (means over seeds). `entries`: one dict per
    (action, part, layer) with the probe's mean scores, `d_source` / `d_target` (mean paired
    change), `se_source` / `se_target` (standard error; None for one seed) and `n` (seeds).
    """

    task: str
    metric: str
    split: str
    num_layers: int
    seeds: list[int]
    baseline: dict[str, Any]
    entries: list[dict[str, Any]]
    notes: list[str] = field(default_factory=list)

    def get(self, action: str, part: str, layer: int) -> dict[str, Any] | None:
        for e in self.entries:
            if (e["action"], e["part"], e["layer"]) == (action, part, layer):
                return e
        return None

    def table(self) -> pa.Table:
        return pa.Table.from_pylist(self.entries)


def _probe_of(config_json: str | None) -> tuple[str, int | None, str]:
    try:
        cfg = json.loads(config_json) if config_json else {}
    except ValueError:
        cfg = {}
    p = cfg.get("probe") if isinstance(cfg, dict) else None
    if not isinstance(p, dict):
        return "none", None, "all"
    return str(p.get("action", "none")), p.get("layer"), str(p.get("part", "all"))


def probe_effects(
    results: Results | str | os.PathLike[str] | pa.Table,
    *,
    split: str = "dev",
    task: str | None = None,
    metric: str | None = None,
    num_layers: int | None = None,
) -> ProbeEffects:
    """Read a probe sweep's results (see the module docstring).

    Raises `ResultsUsageError` (exit 2) when the results hold no probe runs or no baseline.
    """
    if split not in ("dev", "test"):
        raise ResultsUsageError(f"unknown split {split!r}; choose one of: dev, test")
    res = load(results)
    fr = frame(res, task, metric)
    table = fr.results.table
    idx = fr.rows(None, split)
    if not len(idx):
        raise ResultsUsageError(f"no {split} scores in the results")
    run, step, value, src = fr.r[idx], fr.step[idx], fr.value[idx], fr.is_source[idx]
    n_runs = len(fr.runs)
    last = np.full(n_runs, -1, np.int64)
    np.maximum.at(last, run, step)
    at = step == last[run]
    n_targets = len(fr.target_languages(idx))
    source = np.full(n_runs, np.nan)
    source[run[at & src]] = value[at & src]
    count = np.bincount(run[at & ~src], minlength=n_runs)
    total = np.bincount(run[at & ~src], weights=value[at & ~src], minlength=n_runs)
    with np.errstate(invalid="ignore", divide="ignore"):
        target = np.where((count == n_targets) & (count > 0), total / count, np.nan)
    _, first = np.unique(fr.r, return_index=True)
    cfg_json = table["config_json"].take(pa.array(first)).to_pylist()
    final = table["is_final"].to_numpy(zero_copy_only=False)
    finals = np.zeros(n_runs, bool)
    finals[fr.r[final.astype(bool)]] = True
    groups: dict[tuple[str, str, int], dict[int, list[tuple[float, float]]]] = {}
    base: dict[int, list[tuple[float, float]]] = {}
    unfinished = 0
    for i in range(n_runs):
        if not fr.ok[i] or not (math.isfinite(source[i]) and math.isfinite(target[i])):
            continue
        unfinished += int(not finals[i])
        action, layer, part = _probe_of(cfg_json[i])
        seed = int(fr.runs[i]["seed"])
        pair = (float(source[i]), float(target[i]))
        if action == "none":
            base.setdefault(seed, []).append(pair)
        elif layer is not None:
            groups.setdefault((action, part, int(layer)), {}).setdefault(seed, []).append(pair)
    if not groups:
        raise ResultsUsageError(
            "the results hold no probe runs (runs with probe.action reinit or freeze); run "
            "`fsf-sweep probe --space FILE` first"
        )
    if not base:
        raise ResultsUsageError(
            "the results hold probe runs but no baseline run (probe.action: none) to compare "
            "them with"
        )
    base_seed = {s: np.mean(v, axis=0) for s, v in base.items()}
    entries = []
    order: tuple[dict[str, int], dict[str, int]] = (
        {a: k for k, a in enumerate(ACTIONS)},
        {p: k for k, p in enumerate(PARTS)},
    )
    for (action, part, layer), per_seed in sorted(
        groups.items(),
        key=lambda kv: (order[0].get(kv[0][0], 9), order[1].get(kv[0][1], 9), kv[0][2]),
    ):
        seeds = sorted(set(per_seed) & set(base_seed))
        scores = np.array([np.mean(per_seed[s], axis=0) for s in sorted(per_seed)])
        diffs = np.array([np.mean(per_seed[s], axis=0) - base_seed[s] for s in seeds])
        entry: dict[str, Any] = {
            "action": action,
            "part": part,
            "layer": layer,
            "n": len(seeds),
            "source": float(scores[:, 0].mean()),
            "target_mean": float(scores[:, 1].mean()),
            "d_source": float(diffs[:, 0].mean()) if len(seeds) else None,
            "d_target": float(diffs[:, 1].mean()) if len(seeds) else None,
            "se_source": _se(diffs[:, 0]) if len(seeds) else None,
            "se_target": _se(diffs[:, 1]) if len(seeds) else None,
        }
        entries.append(entry)
    depth = num_layers or max(e["layer"] for e in entries)
    notes = []
    if unfinished:
        notes.append(f"{unfinished} run(s) did not reach their final step; their last one is used")
    all_seeds = sorted({s for g in groups.values() for s in g} | set(base))
    return ProbeEffects(
        task=fr.task,
        metric=fr.metric,
        split=split,
        num_layers=depth,
        seeds=all_seeds,
        baseline={
            "source": float(np.mean([v[0] for v in base_seed.values()])),
            "target_mean": float(np.mean([v[1] for v in base_seed.values()])),
            "n": len(base_seed),
        },
        entries=entries,
        notes=notes,
    )


def _se(x: np.ndarray) -> float | None:
    return float(x.std(ddof=1) / math.sqrt(len(x))) if len(x) > 1 else None


def _hurts(entry: dict[str, Any] | None, rule: SetRule) -> bool:
    if entry is None or entry["d_target"] is None:
        return False
    drop = -entry["d_target"]
    if drop <= rule.s1_drop:
        return False
    se = entry["se_target"]
    return se is None or drop >= rule.min_z * se


def _drop(entry: dict[str, Any] | None) -> float:
    if entry is None or entry["d_target"] is None:
        return 0.0
    return max(0.0, -entry["d_target"])


def derive_weight_sets(
    effects: ProbeEffects, rule: SetRule | None = None, num_layers: int | None = None
) -> tuple[WeightSetsConfig, list[str]]:
    """The weight sets the probe effects suggest, and the reasons, one line per decision."""
    rule = rule or SetRule()
    depth = num_layers or effects.num_layers
    why: list[str] = []
    d = lambda v: f"{v * 100:+.1f}"  # noqa: E731
    probed = sorted(
        {e["layer"] for e in effects.entries if (e["action"], e["part"]) == ("reinit", "all")}
    )
    if not probed:
        why.append(
            "no whole-layer re-initialisation was probed (probe.actions needs reinit and "
            "probe.parts needs all): nothing derived; the depth-scaled defaults are kept"
        )
        return WeightSetsConfig(), why
    hurting = [layer for layer in probed if _hurts(effects.get("reinit", "all", layer), rule)]
    for layer in probed:
        e = effects.get("reinit", "all", layer)
        assert e is not None
        se = "" if e["se_target"] is None else f" ± {e['se_target'] * 100:.1f}"
        why.append(
            f"layer {layer}: re-init changes the target mean by {d(e['d_target'])}{se} points"
            f" -> {'hurts' if layer in hurting else 'does not hurt'}"
        )
    below_top = [layer for layer in hurting if layer < depth or depth == 1]
    if not below_top:
        defaults = default_ranges(depth)
        why.append(
            f"no layer below the top hurts by more than {rule.s1_drop * 100:.1f} points: "
            "nothing derived; the depth-scaled defaults are kept "
            + ", ".join(f"{k}={v or 'none'}" for k, v in defaults.items())
        )
        return WeightSetsConfig(), why
    b1 = max(below_top)
    s1 = LayerRange(first=1, last=b1)
    v1 = LayerRange(first=b1 + 1, last=depth) if b1 < depth else None
    why.append(f"S_I = layers 1-{b1} (the deepest hurting layer below the top is {b1})")
    why.append(f"V_I = {'layers ' + str(v1) if v1 else 'empty'} (the layers above S_I)")
    parts = [
        effects.get("reinit", part, layer)
        for part in ("ffn", "attention")
        for layer in range(1, b1 + 1)
    ]
    if all(e is None for e in parts):  # not measured is not "no drop": keep the default
        default = default_ranges(depth)["S_II"]
        s2 = LayerRange(first=1, last=min(default.last, b1)) if default else None
        why.append(
            "S_II not derived: no attention or FFN re-initialisation of an S_I layer was "
            "probed (probe.parts needs attention and ffn); the depth-scaled default is kept, "
            f"ffn of {'layers ' + str(s2) if s2 else 'no layer'}"
        )
        return _sets(s1, s2, v1, "ffn", rule, depth, why)
    totals = {
        kind: sum(_drop(effects.get("reinit", kind, layer)) for layer in range(1, b1 + 1))
        for kind in ("ffn", "attention")
    }
    kind = "ffn" if totals["ffn"] >= totals["attention"] else "attention"
    why.append(
        f"S_II kind = {kind} (total target drop over S_I when re-initialised: FFN "
        f"{totals['ffn'] * 100:.1f}, attention {totals['attention'] * 100:.1f} points)"
    )
    drops = {layer: _drop(effects.get("reinit", kind, layer)) for layer in range(1, b1 + 1)}
    top = max(drops.values(), default=0.0)
    if top <= 0:
        s2 = None
        why.append(f"S_II = empty (re-initialising the {kind} of no S_I layer lowers the score)")
    else:
        b2 = max(layer for layer, v in drops.items() if v >= rule.s2_share * top)
        s2 = LayerRange(first=1, last=b2)
        why.append(
            f"S_II = {kind} of layers 1-{b2} (deepest S_I layer whose {kind} re-init drop is "
            f">= {rule.s2_share:.0%} of the largest, {top * 100:.1f} points)"
        )
    return _sets(s1, s2, v1, kind, rule, depth, why)


def _sets(
    s1: LayerRange,
    s2: LayerRange | None,
    v1: LayerRange | None,
    kind: str,
    rule: SetRule,
    depth: int,
    why: list[str],
) -> tuple[WeightSetsConfig, list[str]]:
    """V_II from the rule's kinds over V_I's layers, and the sets as one config."""
    why.append(
        f"V_II = {'/'.join(rule.v2_kinds)} of {'layers ' + str(v1) if v1 else 'no layer'} "
        "(kinds from the rule, not from the probes)"
    )
    sets = WeightSetsConfig(
        s1=s1,
        s2=s2,
        v1=v1,
        v2=v1,
        s2_kinds=(kind,),
        v2_kinds=tuple(rule.v2_kinds),
    )
    sets.resolve(depth)  # the ranges lie within 1..L by construction; checked anyway
    return sets, why


def sets_dict(sets: WeightSetsConfig) -> dict[str, Any]:
    """The `policy.sets` mapping as it goes into YAML (ranges as 'a-b' or 'none')."""

    def rng(v: Any) -> str:
        return "default" if v == "default" else "none" if v is None else str(v)

    return {
        "s1": rng(sets.s1),
        "s2": rng(sets.s2),
        "v1": rng(sets.v1),
        "v2": rng(sets.v2),
        "s2_kinds": list(sets.s2_kinds),
        "v2_kinds": list(sets.v2_kinds),
    }


def write_policy_config(
    sets: WeightSetsConfig,
    path: str | os.PathLike[str],
    *,
    reasons: list[str] | None = None,
    source: str = "",
) -> Path:
    """Write `{policy: {sets: ...}}` as YAML with the derivation as comments.

    The file is a valid run config (`fsf-train --config FILE`), and its `policy.sets` block
    can be merged into a space's `base` (`fsf-sweep run --space S --base FILE`).
    """
    path = Path(path)
    lines = ["# Weight sets suggested by layer probes (fsf-sweep probe)."]
    if source:
        lines.append(f"# From: {source}")
    lines.append("# Rule: docs/analysis.md#layer-probes; decisions:")
    lines += [f"#   {r}" for r in reasons or []]
    lines.append("# Use: fsf-train --config THIS_FILE, or fsf-sweep run --space S --base THIS_FILE")
    body = yaml.safe_dump({"policy": {"sets": sets_dict(sets)}}, sort_keys=False)
    return write_atomic(path, "\n".join(lines) + "\n" + body)


def _cell(e: dict[str, Any] | None) -> str:
    if e is None or e["d_target"] is None:
        return "-"
    se = "" if e["se_target"] is None else f" ± {e['se_target'] * 100:.1f}"
    return f"{e['d_source'] * 100:+.1f} / {e['d_target'] * 100:+.1f}{se}"


def probe_markdown(
    effects: ProbeEffects, sets: WeightSetsConfig | None = None, reasons: list[str] | None = None
) -> str:
    """The probe results as Markdown: the baseline, a layers x (action, part) table of score
    changes (like the paper's Tables 1 and 6), and the suggested sets with their reasons."""
    b = effects.baseline
    combos = [
        (a, p)
        for a in ACTIONS
        for p in PARTS
        if any((e["action"], e["part"]) == (a, p) for e in effects.entries)
    ]
    layers = sorted({e["layer"] for e in effects.entries})
    lines = [
        f"# Layer probes: {effects.task}, {effects.metric} on {effects.split}",
        "",
        f"Baseline (no probe, {b['n']} seed(s)): source {b['source'] * 100:.1f}, target mean "
        f"{b['target_mean'] * 100:.1f}. Each cell: change of the source score / change of the "
        "target mean against the baseline, in points (x100), paired by seed, at the last "
        "evaluation; ± the standard error of the target change over seeds.",
        "",
        "| layer | " + " | ".join(f"{a} {p}" for a, p in combos) + " |",
        "|---|" + "---|" * len(combos),
    ]
    for layer in layers:
        cells = [_cell(effects.get(a, p, layer)) for a, p in combos]
        lines.append(f"| {layer} | " + " | ".join(cells) + " |")
    if sets is not None:
        lines += ["", "## Suggested weight sets", ""]
        desc = sets.resolve(effects.num_layers).describe()
        lines += [f"- {k}: {v}" for k, v in desc.items()]
        lines += ["", "Why:", ""] + [f"- {r}" for r in reasons or []]
        lines += [
            "",
            "```yaml",
            yaml.safe_dump({"policy": {"sets": sets_dict(sets)}}, sort_keys=False).rstrip(),
            "```",
        ]
    for n in effects.notes:
        lines += ["", f"Note: {n}"]
    return "\n".join(lines) + "\n"
