"""The analyses' sections of the sweep report (`fsf.analysis.report.write_report` calls
`analysis_sections` once per task).

- Gap curves: for the best configuration of each policy, the P1/P2 boundary detected from the
  recorded loss (median over its runs; drawn on gap.png) next to the recorded one, and the gap
  at the start, the boundary and the end, with its growth per 100 steps in P1 and in P2.
- Forgetting: when the runs recorded CKA, a layers x steps heatmap per language for the best
  configuration of each policy (mean over its seeds), and the last step's CKA per layer.
- Layer probes: when the results hold probe runs, the chart and table of score changes and
  the suggested weight sets (rule thresholds from the sweep's space.yaml when readable).
"""

from __future__ import annotations

import statistics
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fsf.analysis.probe_spec import ProbeSpec, SetRule
from fsf.results import ResultsError
from fsf.results.frame import Frame
from fsf.results.reader import Results

__all__ = ["Sections", "analysis_sections"]


@dataclass
class Sections:
    """What the analyses add to a report: boundaries to draw on gap.png (policy -> step), the
    recorded phase per training step (policy -> (steps, share of runs in P1), from the loss
    rows: what gap.png shades), images (path, title, caption), Markdown/HTML blocks and notes."""

    boundaries: dict[str, float] = field(default_factory=dict)
    step_phases: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    images: list[tuple[Path, str, str]] = field(default_factory=list)
    blocks: list[tuple] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _median(values: list[Any]) -> float | int | None:
    vals = [v for v in values if v is not None]
    if not vals:
        return None
    m = statistics.median(vals)
    return int(m) if float(m).is_integer() else float(m)


def _mean(values: list[Any]) -> float | None:
    vals = [v for v in values if v is not None and np.isfinite(v)]
    return float(np.mean(vals)) if vals else None


def _mean_curves(curves: list[Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(steps, source, target mean) on the dev split, mean over runs on their common steps."""
    steps = sorted(set.intersection(*(set(c.steps.tolist()) for c in curves)))
    src, tgt = [], []
    for c in curves:
        idx = np.searchsorted(c.steps, steps)
        src.append(c.source.get("dev", np.full(len(c.steps), np.nan))[idx])
        tgt.append(c.target_mean.get("dev", np.full(len(c.steps), np.nan))[idx])
    with warnings.catch_warnings():  # all-NaN cells stay NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.array(steps), np.nanmean(src, axis=0), np.nanmean(tgt, axis=0)


def _step_phases(curves: list[Any]) -> tuple[np.ndarray, np.ndarray] | None:
    """(steps, share of the runs in P1 at each) from the runs' per-step recorded phase (None
    when no run recorded one)."""
    per_step: dict[int, list[bool]] = {}
    for c in curves:
        for step, phase in zip(c.loss_steps.tolist(), c.recorded_step_phase, strict=True):
            if phase is not None:
                per_step.setdefault(int(step), []).append(phase == "P1")
    if not per_step:
        return None
    steps = np.array(sorted(per_step), np.int64)
    return steps, np.array([np.mean(per_step[s]) for s in steps.tolist()])


def _gap_section(
    res: Results, fr: Frame, best_cfg: dict[str, int], out: Path, suffix: str, sec: Sections
) -> None:
    from fsf.analysis.gap import gap_curves
    from fsf.analysis.plots import score_curves

    gc = gap_curves(res, task=fr.task, metric=fr.metric)
    by_run = {(c.trial_id, c.seed): c for c in gc.runs}
    rows = []
    panels: dict[str, dict[str, Any]] = {}
    for policy, k in best_cfg.items():
        runs = [fr.runs[i] for i in fr.configs[k]["runs"]]
        curves = [
            by_run[(r["trial_id"], r["seed"])] for r in runs if (r["trial_id"], r["seed"]) in by_run
        ]
        if not curves:
            continue
        detected = _median([c.detected_switch for c in curves])
        recorded = _median([c.recorded_switch for c in curves])
        if detected is not None:
            sec.boundaries[policy] = detected
        phased = _step_phases(curves)
        if phased is not None:
            sec.step_phases[policy] = phased
        steps, source, target = _mean_curves(curves)
        if len(steps) and np.isfinite(source).any():
            panels[policy] = {"steps": steps, "source": source, "target": target}
            panels[policy]["boundary"] = detected
        growth = [c.growth("dev") for c in curves]
        rows.append(
            [
                policy,
                len(curves),
                curves[0].switch_mode,
                detected,
                recorded,
                *(
                    _mean([g[key] for g in growth])
                    for key in ("gap_start", "gap_switch", "gap_end")
                ),
                *(_mean([g[key] for g in growth]) for key in ("growth_p1", "growth_p2")),
            ]
        )
    if not rows:
        return
    if panels:
        path = out / f"curves{suffix}.png"
        score_curves(panels, path, task=fr.task, metric=fr.metric)
        sec.images.append(
            (
                path,
                "Source and target mean over training (search stage)",
                "Dev score of the source language and mean over the target languages (left "
                "axis), and their gap (right axis), best configuration of each policy, mean over "
                "its seeds; dashed: the P1/P2 boundary detected from the recorded loss.",
            )
        )
    sec.blocks.append(("h", 2, f"Gap curves and the P1/P2 boundary ({fr.task})"))
    sec.blocks.append(
        (
            "p",
            "Best configuration of each policy, dev split, mean over its runs. Boundary: the "
            "first P2 step (median over runs), detected from the recorded per-step training "
            "loss by the paper's loss-trend rule (window and threshold of the run), and as the "
            "run recorded it (differs for step/fraction switches). Gap in points (x100); "
            "growth in points per 100 steps before and after the detected boundary. Per run: "
            "`fsf-sweep gap DIR`.",
        )
    )
    sec.blocks.append(
        (
            "table",
            [
                "policy",
                "runs",
                "switch mode",
                "boundary (detected)",
                "boundary (recorded)",
                "gap start",
                "gap at boundary",
                "gap end",
                "growth in P1",
                "growth in P2",
            ],
            rows,
        )
    )
    sec.notes += gc.notes


def _cka_section(
    res: Results, fr: Frame, best_cfg: dict[str, int], out: Path, suffix: str, sec: Sections
) -> None:
    from fsf.analysis.forgetting import cka_curves
    from fsf.analysis.plots import cka_heatmaps

    cc = cka_curves(res, task=fr.task)
    if not cc.runs:
        return
    have = {(r.trial_id, r.seed) for r in cc.runs}
    panels = {}
    for policy, k in best_cfg.items():
        runs = [(fr.runs[i]["trial_id"], fr.runs[i]["seed"]) for i in fr.configs[k]["runs"]]
        runs = [r for r in runs if r in have]
        if runs:
            steps, layers, data = cc.mean(runs)
            if len(steps) and data:
                panels[policy] = (steps, layers, data)
    if not panels:
        return
    path = out / f"cka{suffix}.png"
    cka_heatmaps(panels, path, title=f"{fr.task}: per-layer CKA with the pretrained model")
    sec.images.append(
        (
            path,
            "Forgetting: CKA with the pretrained model (search stage)",
            "Linear CKA between the pretrained and the trained model's hidden states on a fixed "
            "probe batch per language, per layer (0 = embeddings) and step; best configuration "
            "of each policy, mean over its seeds. 1 = unchanged; lower = more forgetting.",
        )
    )
    layer_ids = sorted({int(v) for _, lay, _ in panels.values() for v in lay})
    rows = []
    for policy, (steps, lay, data) in panels.items():
        with warnings.catch_warnings():  # all-NaN cells stay NaN
            warnings.simplefilter("ignore", RuntimeWarning)
            mean = np.nanmean(np.stack(list(data.values())), axis=0)[:, -1]
        per_layer = dict(zip(lay.tolist(), mean.tolist(), strict=True))
        rows.append([policy, int(steps[-1]), *(per_layer.get(x) for x in layer_ids)])
    sec.blocks.append(("h", 2, f"Forgetting by CKA ({fr.task})"))
    sec.blocks.append(
        ("p", "CKA at the last recorded step, mean over languages (`fsf-sweep cka DIR`).")
    )
    sec.blocks.append(("table", ["policy", "step", *(f"layer {x}" for x in layers)], rows))


def _probe_rule(res: Results) -> ProbeSpec:
    sweep_dir = res.sweep_dir
    if isinstance(sweep_dir, Path) and (sweep_dir / "space.yaml").is_file():
        import yaml

        try:
            data = yaml.safe_load((sweep_dir / "space.yaml").read_text()) or {}
            if isinstance(data, dict) and isinstance(data.get("probe"), dict):
                return ProbeSpec.model_validate(data["probe"])
        except Exception:  # a foreign or broken space file: the default rule
            pass
    return ProbeSpec(rule=SetRule())


def _probe_section(res: Results, fr: Frame, out: Path, suffix: str, sec: Sections) -> None:
    from fsf.analysis.plots import probe_plot
    from fsf.analysis.probe import derive_weight_sets, probe_effects, sets_dict

    spec = _probe_rule(res)
    try:
        effects = probe_effects(
            res, split=spec.rule.split, task=fr.task, metric=fr.metric, num_layers=spec.num_layers
        )
    except ResultsError:
        return
    sets, reasons = derive_weight_sets(effects, spec.rule)
    path = out / f"probe{suffix}.png"
    probe_plot(effects, path, s1_drop=spec.rule.s1_drop)
    sec.images.append(
        (
            path,
            "Layer probes (search stage)",
            "Change of the source score and of the target mean against the no-probe baseline "
            "when one part of one layer is re-initialised or frozen before fine-tuning (paired "
            "by seed; bars: mean, whiskers: standard error).",
        )
    )
    sec.blocks.append(("h", 2, f"Layer probes ({fr.task})"))
    b = effects.baseline
    sec.blocks.append(
        (
            "p",
            f"Baseline: source {b['source'] * 100:.1f}, target mean {b['target_mean'] * 100:.1f} "
            f"({b['n']} seeds, {effects.split}). Cells: change of source / target mean in "
            "points, paired by seed.",
        )
    )
    from fsf.analysis.probe import _cell
    from fsf.analysis.probe_spec import ACTIONS, PARTS

    combos = [
        (a, p)
        for a in ACTIONS
        for p in PARTS
        if any((e["action"], e["part"]) == (a, p) for e in effects.entries)
    ]
    layers = sorted({e["layer"] for e in effects.entries})
    sec.blocks.append(
        (
            "table",
            ["layer", *(f"{a} {p}" for a, p in combos)],
            [[layer, *(_cell(effects.get(a, p, layer)) for a, p in combos)] for layer in layers],
        )
    )
    d = sets_dict(sets)
    sec.blocks.append(
        (
            "p",
            "Suggested weight sets (`fsf-sweep probe --sweep DIR` writes them as "
            f"policy-sets.yaml): s1={d['s1']}, s2={d['s2']} ({'/'.join(d['s2_kinds'])}), "
            f"v1={d['v1']}, v2={d['v2']} ({'/'.join(d['v2_kinds'])}).",
        )
    )
    sec.blocks.append(("table", ["decision"], [[r] for r in reasons]))
    sec.notes += effects.notes


def analysis_sections(
    res: Results, fr: Frame, best_cfg: dict[str, int], out: Path, suffix: str = ""
) -> Sections:
    """Compute and plot the analyses of one task for the report (see the module docstring)."""
    sec = Sections()
    _gap_section(res, fr, best_cfg, out, suffix, sec)
    _cka_section(res, fr, best_cfg, out, suffix, sec)
    _probe_section(res, fr, out, suffix, sec)
    return sec
