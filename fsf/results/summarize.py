"""A sweep at a glance: trials by status, the best configuration per objective, and the
policies compared, each policy by its best configuration under the selection rule."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from typing import Any

import numpy as np

from fsf.results._errors import ResultsError, ResultsUsageError, choices
from fsf.results.answer import Answer, _budget, _worst, baseline_mask, baseline_of
from fsf.results.cube import Evals, at, evals
from fsf.results.evp import expected_best
from fsf.results.frame import frame, runs_of
from fsf.results.ranking import _RESULTS, _stage
from fsf.results.reader import load
from fsf.results.selection import Objective, SelectionRule, objectives_of, selection_rule

__all__ = ["SUMMARY_FORMAT", "policy_evp", "summary"]

SUMMARY_FORMAT = "fsf.summary/2"
_SCALARS = ("source", "target_mean", "all_mean", "gap")


def _nan_none(x: float) -> float | None:
    return None if not np.isfinite(x) else float(x)


def _brief(E: Evals, ans: Answer, k: int) -> dict[str, Any]:
    c = E.fr.configs[k]
    runs = E.runs_of(ans.agg, k)
    return {
        "trial_id": c["trial_id"],
        "trial_ids": c["trial_ids"],
        "n_seeds": int(ans.agg.count[k]),
        "seeds": [E.fr.runs[i]["seed"] for i in runs],
        "budget": _budget([int(E.trained[i]) for i in runs], [int(E.planned[i]) for i in runs]),
        "policy": c["config"]["policy"],
        "config": c["config"],
    }


def _objective_best(E: Evals, sweep: Mapping[str, Any], o: Objective) -> dict[str, Any]:
    """The best configuration by one objective at the sweep's own checkpoints: the value
    Optuna received for it."""
    item: dict[str, Any] = {"metric": o.metric, "mode": o.mode, "task": E.fr.task}
    own = selection_rule("objective", sweep)
    sub = SelectionRule("objective", own.checkpoint, "objective", o, own.report)
    ans = Answer.of(E, sub, None)
    if not len(ans.order):
        return {**item, "value": None, "note": "no run has this value yet"}
    k = int(ans.order[0])
    return {**item, "value": float(ans.agg.select[k]), **_brief(E, ans, k)}


def _policies(E: Evals, rule: SelectionRule, matching: np.ndarray) -> list[dict[str, Any]]:
    fr = E.fr
    ans = Answer.of(E, rule, None)
    base = ans.baseline_config(matching)
    scal = {}  # per configuration, the scalars over the runs the ranking counted
    for split in ("test", "dev"):
        for kind in _SCALARS:
            per_run = at(E.scalar(split, kind), ans.ckpt)
            agg = E.aggregate(np.where(ans.agg.ok, 0.0, np.nan), per_run)
            scal[f"{split}_{kind}"] = agg.report
    by_policy: dict[str, list[int]] = {}
    for k, c in enumerate(fr.configs):
        by_policy.setdefault(c["config"]["policy"], []).append(k)
    out = []
    for policy, ks in sorted(by_policy.items()):
        mine = np.zeros(len(fr.configs), bool)
        mine[ks] = True
        hits = ans.order[mine[ans.order]]
        item: dict[str, Any] = {
            "policy": policy,
            "task": fr.task,
            "n_configs": len(ks),
            "n_runs": sum(len(fr.configs[j]["runs"]) for j in ks),
        }
        top = int(hits[0]) if len(hits) else None
        for name, values in scal.items():
            item[name] = None if top is None else _nan_none(values[top])
        item["selection_score"] = None if top is None else float(ans.agg.select[top])
        item["best"] = None if top is None else _brief(E, ans, top)
        item["vs_baseline"] = None if top is None else ans.compare(top, base)
        out.append(item)
    out.sort(
        key=lambda p: -(p["selection_score"] if p["selection_score"] is not None else -math.inf)
    )
    return out


def summary(
    results: _RESULTS,
    *,
    task: str | None = None,
    metric: str | None = None,
    select: str | None = None,
    baseline: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Trials by status, the best configuration per objective, and policies compared.

    A trial's status is the worst of its runs (failed, running, stopped, completed). Each
    objective of sweep.json (default: dev_target_mean, max) is valued per configuration at
    each run's checkpoint, mean over distinct seeds: the value Optuna received. Policies are
    compared by their best configuration under the rule (default `objective`), with test
    scores and the paired difference of the target mean against the baseline.
    """
    res = load(results)
    rule = selection_rule(select, res.sweep)
    base = dict(baseline) if baseline is not None else baseline_of(res)
    table = res.table
    runs = runs_of(res)[1] if table.num_rows else []
    by_trial: dict[str, set[str]] = {}
    for r in runs:
        by_trial.setdefault(r["trial_id"], set()).add(r["status"])
    tasks = sorted({r["task"] for r in runs if r["task"] is not None})
    if task is not None and task not in tasks:
        raise ResultsUsageError(f"unknown task {task!r}; choose one of: {choices(tasks)}")
    out: dict[str, Any] = {
        "format": SUMMARY_FORMAT,
        "name": res.name,
        "root": str(res.root) if res.root else None,
        "stage": _stage(res),
        "selection": rule.to_dict(),
        "baseline": base,
        "rows": table.num_rows,
        "fragments": len(res.fragments),
        "runs": {"total": len(runs), "by_status": dict(Counter(r["status"] for r in runs))},
        "trials": {
            "total": len(by_trial),
            "by_status": dict(Counter(_worst(s) for s in by_trial.values())),
        },
        "failures": [
            {"trial_id": r["trial_id"], "seed": r["seed"], "reason": r["failure_reason"]}
            for r in sorted(runs, key=lambda r: (r["trial_id"], r["seed"]))
            if r["status"] == "failed"
        ],
        "tasks": tasks,
        "objectives": [],
        "policies": [],
        "languages": {},
        "skipped_fragments": [s.to_dict() for s in res.skipped],
    }
    for t in [task] if task else tasks:
        try:
            fr = frame(res, t, metric)
        except ResultsError as exc:
            out.setdefault("notes", []).append(f"task {t}: {exc}")
            continue
        E = evals(fr)
        out["languages"][t] = {
            "source": fr.source_lang,
            "targets": [E.langs[i] for i in E.targets],
            "metric": fr.metric,
        }
        out["objectives"] += [_objective_best(E, res.sweep, o) for o in objectives_of(res.sweep)]
        out["policies"] += _policies(E, rule, baseline_mask(fr, base))
    return out


def policy_evp(results: _RESULTS, *, task: str | None = None) -> list[dict[str, Any]]:
    """Per policy, the expected best value of the sweep's (first) objective after n trials,
    n = 1..its trials (Dodge et al. 2019; `fsf.results.evp`): from each trial's objective
    value as Optuna received it (the objective at each run's checkpoint, mean over seeds; a
    trial ASHA stopped counts with the value it stopped at). Read it from the search stage:
    the confirmation runs a chosen few, not a search."""
    res = load(results)
    own = selection_rule("objective", res.sweep)
    objective = objectives_of(res.sweep)[0]
    rule = SelectionRule("objective", own.checkpoint, "objective", objective, own.report)
    runs = runs_of(res)[1] if res.table.num_rows else []
    tasks = [task] if task else sorted({r["task"] for r in runs if r["task"] is not None})
    out = []
    for t in tasks:
        try:
            fr = frame(res, t, None)
        except ResultsError:
            continue
        ans = Answer.of(evals(fr), rule, None)
        # the objective alone: a run counts when it has one, whatever the reported split
        # holds (a search with `search.splits: [dev]` has no test scores)
        assert ans.selection is not None
        agg = ans.E.aggregate(ans.selection, ans.selection)
        by_policy: dict[str, list[float]] = {}
        for k, c in enumerate(fr.configs):
            value = float(agg.select[k]) if agg.count[k] > 0 else math.nan
            # a configuration drawn again (answered from the study) was a trial of the search
            by_policy.setdefault(c["config"]["policy"], []).extend([value] * len(c["trial_ids"]))
        for policy, values in sorted(by_policy.items()):
            curve = expected_best(values, objective.mode)
            out.append(
                {
                    "policy": policy,
                    "task": t,
                    "metric": objective.metric,
                    "mode": objective.mode,
                    "trials": len(values),
                    "trials_with_value": curve.trials,
                    "n": curve.n,
                    "mean": curve.mean,
                    "std": curve.std,
                }
            )
    return out
