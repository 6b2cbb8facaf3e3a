"""Gap curves: source score, target mean and gap over training, with the P1/P2 boundary.

For every run (trial x seed) of a results folder, at each evaluation step: the source score,
the mean over the target languages and their difference (the gap), on dev and test. The
P1/P2 boundary is *detected* from the run's recorded per-step training loss (rows with
split=train, metric=loss) by the paper's loss-trend rule, computed by the very tracker the
policies use (`fsf.policies.PhaseTracker`, mode `loss-trend`, with the run's `window`,
`threshold` and `sticky` unless overridden). The phase the run itself *recorded* is kept next
to it: for a loss-trend policy the two agree step for step; for a policy that switches at a
fixed step or fraction (or DF, which never switches) they can differ, and the detected one
says when the loss actually flattened.

Summary per run: the detected and recorded switch steps (first P2 step), the gap at the
start, at the switch and at the end, and how fast it grew in P1 and in P2 (points of the
metric x 100 per 100 steps, from the evaluations at or before the switch vs after it).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from fsf.policies.phase import PhaseTracker
from fsf.results.frame import frame, runs_of
from fsf.results.reader import Results, load
from fsf.results.schema import LOSS_METRIC, TRAIN_SPLIT

__all__ = ["GapCurves", "RunCurve", "detect_phases", "gap_curves"]

SPLITS = ("dev", "test")


def detect_phases(
    losses: list[float], window: int, threshold: float, sticky: bool = True
) -> tuple[list[str], list[float | None]]:
    """The phase (P1/P2) and loss trend phi of every step, from its per-step losses, by the
    paper's loss-trend rule (`PhaseTracker` in mode `loss-trend`)."""
    tracker = PhaseTracker("loss-trend", window=window, threshold=threshold, sticky=sticky)
    states = [tracker.update(x) for x in losses]
    return [s.phase for s in states], [s.phi for s in states]


def _first_p2(steps: np.ndarray | list[int], phases: list[Any]) -> int | None:
    for s, p in zip(steps, phases, strict=True):
        if p == "P2":
            return int(s)
    return None


@dataclass
class RunCurve:
    """One run's curves; arrays are per evaluation step (`steps`) or per training step."""

    trial_id: str
    seed: int
    policy: str
    params: dict[str, Any]
    status: str
    total_steps: int | None
    window: int
    threshold: float
    sticky: bool
    switch_mode: str | None
    steps: np.ndarray
    source: dict[str, np.ndarray]
    target_mean: dict[str, np.ndarray]
    recorded_phase: list[str | None]
    loss_steps: np.ndarray
    loss: np.ndarray
    recorded_step_phase: list[str | None]
    detected_phase: list[str] = field(default_factory=list)
    detected_phi: list[float | None] = field(default_factory=list)
    note: str | None = None

    def gap(self, split: str = "dev") -> np.ndarray:
        return self.source[split] - self.target_mean[split]

    @property
    def detected_switch(self) -> int | None:
        """The first step the loss-trend rule puts in P2 (None: never, or no loss curve)."""
        return _first_p2(self.loss_steps, self.detected_phase)

    @property
    def recorded_switch(self) -> int | None:
        """The first step the run recorded as P2 (per-step rows, else evaluation rows)."""
        if len(self.loss_steps) and any(p is not None for p in self.recorded_step_phase):
            return _first_p2(self.loss_steps, self.recorded_step_phase)
        return _first_p2(self.steps, self.recorded_phase)

    def detected_at_evaluations(self) -> list[str | None]:
        """The detected phase at each evaluation step (step 0: P1; None without a curve)."""
        if not len(self.loss_steps):
            return [None] * len(self.steps)
        by_step = dict(zip(self.loss_steps.tolist(), self.detected_phase, strict=True))
        by_step.setdefault(0, "P1")
        return [by_step.get(int(s)) for s in self.steps]

    def growth(self, split: str = "dev") -> dict[str, float | None]:
        """Gap (x100) at start, switch and end; growth per 100 steps in P1 and in P2.

        The switch is the detected one, else the recorded one; the gap at the switch is the
        last evaluation at or before it. Without any switch all growth is P1's."""
        gap, steps = self.gap(split) * 100, self.steps
        ok = np.isfinite(gap)
        gap, steps = gap[ok], steps[ok]
        out: dict[str, float | None] = dict.fromkeys(
            ("gap_start", "gap_switch", "gap_end", "growth_p1", "growth_p2")
        )
        if not len(gap):
            return out
        out["gap_start"], out["gap_end"] = float(gap[0]), float(gap[-1])
        switch = self.detected_switch
        if switch is None:
            switch = self.recorded_switch
        if switch is None:  # never left P1: all growth is P1's
            out["growth_p1"] = _slope(steps, gap)
            return out
        before = steps <= switch
        if before.any():
            last = np.flatnonzero(before)[-1]
            out["gap_switch"] = float(gap[last])
            out["growth_p1"] = _slope(steps[: last + 1], gap[: last + 1])
            out["growth_p2"] = _slope(steps[last:], gap[last:])
        return out


def _slope(steps: np.ndarray, values: np.ndarray) -> float | None:
    """Change per 100 steps between the first and the last point (None for one point)."""
    if len(steps) < 2 or steps[-1] == steps[0]:
        return None
    return float((values[-1] - values[0]) / (steps[-1] - steps[0]) * 100)


def _nan_none(x: Any) -> Any:
    return None if isinstance(x, float) and not math.isfinite(x) else x


@dataclass
class GapCurves:
    """Gap curves of every usable run of one task (see the module docstring)."""

    task: str
    metric: str
    source_lang: str | None
    targets: dict[str, list[str]]
    runs: list[RunCurve]
    notes: list[str] = field(default_factory=list)

    def run(self, trial_id: str, seed: int) -> RunCurve:
        for r in self.runs:
            if r.trial_id == trial_id and r.seed == seed:
                return r
        raise KeyError(f"no run ({trial_id!r}, seed {seed})")

    def table(self) -> pa.Table:
        """One row per run, evaluation step and split: source, target_mean, gap, and the
        recorded and detected phase at that step."""
        cols: dict[str, list[Any]] = {
            k: []
            for k in (
                "trial_id",
                "seed",
                "policy",
                "step",
                "split",
                "source",
                "target_mean",
                "gap",
                "phase_recorded",
                "phase_detected",
            )
        }
        for r in self.runs:
            detected = r.detected_at_evaluations()
            for split in SPLITS:
                if split not in r.source:
                    continue
                gap = r.gap(split)
                for i, step in enumerate(r.steps.tolist()):
                    if not (math.isfinite(r.source[split][i]) or math.isfinite(gap[i])):
                        continue
                    cols["trial_id"].append(r.trial_id)
                    cols["seed"].append(r.seed)
                    cols["policy"].append(r.policy)
                    cols["step"].append(int(step))
                    cols["split"].append(split)
                    cols["source"].append(_nan_none(float(r.source[split][i])))
                    cols["target_mean"].append(_nan_none(float(r.target_mean[split][i])))
                    cols["gap"].append(_nan_none(float(gap[i])))
                    cols["phase_recorded"].append(r.recorded_phase[i])
                    cols["phase_detected"].append(detected[i])
        return pa.table(
            cols,
            schema=pa.schema(
                [
                    ("trial_id", pa.string()),
                    ("seed", pa.int64()),
                    ("policy", pa.string()),
                    ("step", pa.int64()),
                    ("split", pa.string()),
                    ("source", pa.float64()),
                    ("target_mean", pa.float64()),
                    ("gap", pa.float64()),
                    ("phase_recorded", pa.string()),
                    ("phase_detected", pa.string()),
                ]
            ),
        )

    def summary(self, split: str = "dev") -> list[dict[str, Any]]:
        """One dict per run: switch steps (detected, recorded) and the gap's growth."""
        out = []
        for r in self.runs:
            item: dict[str, Any] = {
                "trial_id": r.trial_id,
                "seed": r.seed,
                "policy": r.policy,
                "switch_mode": r.switch_mode,
                "window": r.window,
                "threshold": r.threshold,
                "total_steps": r.total_steps,
                "switch_detected": r.detected_switch,
                "switch_recorded": r.recorded_switch,
                "split": split,
            }
            item.update(r.growth(split))
            if r.note:
                item["note"] = r.note
            out.append(item)
        return out


def gap_curves(
    results: Results | str | os.PathLike[str] | pa.Table,
    *,
    task: str | None = None,
    metric: str | None = None,
    window: int | None = None,
    threshold: float | None = None,
) -> GapCurves:
    """Gap curves of every run that is not failed (see the module docstring).

    `window` / `threshold` override each run's own loss-trend settings for the detection.
    Raises `ResultsUsageError` for an unknown task or metric, `ResultsError` without results.
    """
    if window is not None and window < 1:
        from fsf.results import ResultsUsageError

        raise ResultsUsageError(f"window must be >= 1, got {window}")
    res = load(results)
    fr = frame(res, task, metric)
    n = len(fr.runs)
    per_split: dict[str, tuple[Any, ...]] = {}
    targets: dict[str, list[str]] = {}
    phase_col = fr.results.table["phase"]
    recorded: dict[tuple[int, int], str | None] = {}
    eval_steps: dict[int, set[int]] = {}
    for split in SPLITS:
        idx = fr.rows(None, split)
        if not len(idx):
            continue
        targets[split] = fr.target_languages(idx)
        idx = idx[np.argsort(fr.r[idx], kind="stable")]  # grouped by run
        run, step, value, src = fr.r[idx], fr.step[idx], fr.value[idx], fr.is_source[idx]
        bounds = np.searchsorted(run, np.arange(n + 1))
        per_split[split] = (bounds, step, value, src, len(targets[split]))
        phases = phase_col.take(pa.array(idx)).to_pylist()
        for ri, si, ph in zip(run.tolist(), step.tolist(), phases, strict=True):
            recorded.setdefault((ri, si), ph)
            eval_steps.setdefault(ri, set()).add(si)
    config_json = _config_json(fr.results)
    losses = _loss_rows(res)
    curves = []
    notes = []
    for i in range(n):
        if not fr.ok[i]:
            continue
        info = fr.runs[i]
        steps = sorted(eval_steps.get(i, ()))
        if not steps:
            continue
        steps_arr = np.array(steps, np.int64)
        pos = {s: j for j, s in enumerate(steps)}
        source, target = {}, {}
        for split, (bounds, step, value, src, n_t) in per_split.items():
            m = slice(bounds[i], bounds[i + 1])
            s_arr = np.full(len(steps), np.nan)
            t_sum = np.zeros(len(steps))
            t_cnt = np.zeros(len(steps), np.int64)
            for st, v, is_s in zip(
                step[m].tolist(), value[m].tolist(), src[m].tolist(), strict=True
            ):
                if is_s:
                    s_arr[pos[st]] = v
                else:
                    t_sum[pos[st]] += v
                    t_cnt[pos[st]] += 1
            with np.errstate(invalid="ignore", divide="ignore"):
                t_arr = np.where((t_cnt == n_t) & (t_cnt > 0), t_sum / np.maximum(t_cnt, 1), np.nan)
            source[split], target[split] = s_arr, t_arr
        cfg = config_json.get((info["trial_id"], info["seed"]), {})
        pol = cfg.get("policy", {}) if isinstance(cfg.get("policy"), dict) else {}
        w = int(window if window is not None else (info["window"] or pol.get("window") or 100))
        th = float(threshold if threshold is not None else _or(info["threshold"], 0.1))
        sticky = bool(pol.get("sticky", True))
        l_steps, l_vals, l_phase = losses.get((info["trial_id"], info["seed"]), ([], [], []))
        curve = RunCurve(
            trial_id=info["trial_id"],
            seed=int(info["seed"]),
            policy=info["policy"],
            params=fr.configs[fr.cfg[i]]["config"]["params"] if fr.cfg[i] >= 0 else {},
            status=info["status"],
            total_steps=_total(cfg),
            window=w,
            threshold=th,
            sticky=sticky,
            switch_mode=info["switch_mode"],
            steps=steps_arr,
            source=source,
            target_mean=target,
            recorded_phase=[recorded.get((i, s)) for s in steps],
            loss_steps=np.array(l_steps, np.int64),
            loss=np.array(l_vals, np.float64),
            recorded_step_phase=list(l_phase),
        )
        if not l_steps:
            curve.note = "no per-step training loss recorded (analysis.loss_curve off?)"
        elif l_steps != list(range(1, len(l_steps) + 1)):
            curve.note = "the recorded loss curve has gaps; no phase detected"
        else:
            curve.detected_phase, curve.detected_phi = detect_phases(l_vals, w, th, sticky)
        curves.append(curve)
    missing = sum(1 for c in curves if not len(c.loss_steps))
    if missing:
        notes.append(
            f"{missing} of {len(curves)} run(s) have no per-step training loss on record, so "
            "no P1/P2 boundary is detected for them (only their recorded phase is shown)"
        )
    return GapCurves(fr.task, fr.metric, fr.source_lang, targets, curves, notes)


def _or(x: Any, default: Any) -> Any:
    return default if x is None or (isinstance(x, float) and math.isnan(x)) else x


def _total(cfg: dict[str, Any]) -> int | None:
    optim = cfg.get("optim") if isinstance(cfg.get("optim"), dict) else {}
    steps = optim.get("max_steps") if optim else None
    return int(steps) if isinstance(steps, int) else None


def _config_json(res: Results) -> dict[tuple[str, int], dict[str, Any]]:
    """(trial_id, seed) -> the run config (parsed `config_json` of the run's first row)."""
    r, runs, _ = runs_of(res)
    if not len(r):
        return {}
    _, first = np.unique(r, return_index=True)
    raw = res.table["config_json"].take(pa.array(first)).to_pylist()
    out = {}
    for run, text in zip(runs, raw, strict=True):
        try:
            cfg = json.loads(text) if text else {}
        except ValueError:
            cfg = {}
        out[(run["trial_id"], run["seed"])] = cfg if isinstance(cfg, dict) else {}
    return out


def _loss_rows(res: Results) -> dict[tuple[str, int], tuple[list[int], list[float], list[Any]]]:
    """(trial_id, seed) -> (steps, losses, recorded phases) of the per-step loss rows."""
    table = res.table
    mask = pc.and_(pc.equal(table["split"], TRAIN_SPLIT), pc.equal(table["metric"], LOSS_METRIC))
    rows = table.filter(pc.fill_null(mask, False)).select(
        ["trial_id", "seed", "step", "value", "phase"]
    )
    if not rows.num_rows:
        return {}
    rows = rows.sort_by([("trial_id", "ascending"), ("seed", "ascending"), ("step", "ascending")])
    out: dict[tuple[str, int], tuple[list[int], list[float], list[Any]]] = {}
    for t, s, st, v, ph in zip(
        *(rows[c].to_pylist() for c in ("trial_id", "seed", "step", "value", "phase")),
        strict=True,
    ):
        steps, vals, phases = out.setdefault((t, s), ([], [], []))
        steps.append(st)
        vals.append(v)
        phases.append(ph)
    return out
