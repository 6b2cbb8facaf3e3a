"""One entry's answer under a selection rule, and the baseline it is compared with.

An *entry* is a target language, or the target mean. `Answer.of(evals, rule, entry)` holds
each run's checkpoint, the configurations' aggregated scores and their order; `compare`
gives the paired difference to a baseline configuration over shared seeds, and `entry_dict`
one configuration as a query's JSON entry. The baseline is the configurations whose recorded
run config matches the baseline's dotted keys (`baseline_of`, `baseline_mask`). `best`,
`best_per_language` and `top_configurations` (`fsf.results.ranking`), the summary and the
report all build their answers from these.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from fsf.results.cube import Aggregate, Evals, at
from fsf.results.frame import Frame
from fsf.results.reader import Results
from fsf.results.selection import SelectionRule
from fsf.results.stats import PairedDifference, paired_difference

__all__ = [
    "DEFAULT_BASELINE",
    "Answer",
    "baseline_mask",
    "baseline_of",
    "budget_text",
    "config_value",
]

#: What the baseline is when the sweep names none: plain fine-tuning.
DEFAULT_BASELINE: dict[str, Any] = {"policy.name": "df"}
_STATUS_ORDER = ("failed", "running", "stopped", "completed")


def _worst(statuses: set[str]) -> str:
    """The status that stands for a configuration's runs: the first of failed, running,
    stopped, completed among them (any other status after those)."""
    return next(s for s in (*_STATUS_ORDER, *sorted(statuses)) if s in statuses)


def _budget(trained: list[int], planned: list[int]) -> dict[str, Any]:
    """Steps trained and planned per run (planned < 0: unknown); `full`: every run trained
    all the steps it planned."""
    full = all(p >= 0 and t >= p for t, p in zip(trained, planned, strict=True))
    return {"trained": trained, "planned": planned, "full": full}


def budget_text(entry: Mapping[str, Any], stopped: str) -> str:
    """An entry's `budget` as text: the most steps any of its runs trained, over the most
    planned (`300/300`; `300` when no plan is known; `-` when nothing was trained), with
    `stopped` appended unless every run trained its whole plan."""
    b = entry.get("budget") or {}
    trained, planned = b.get("trained") or [], b.get("planned") or []
    if not trained:
        return "-"
    text = f"{max(trained)}/{max(planned)}" if planned and max(planned) >= 0 else str(max(trained))
    return text + ("" if b.get("full") else stopped)


# -- configuration lookups -------------------------------------------------------------------


def _run_config(fr: Frame, run: int) -> dict[str, Any]:
    """The full run config (`config_json`) of run `run`; cached."""
    cache = fr.results.cache.setdefault("run_config", {})
    if run not in cache:
        start = int(fr.results.cache["run_starts"][run])
        raw = fr.results.table["config_json"][start].as_py()
        try:
            cache[run] = json.loads(raw) if raw else {}
        except ValueError:
            cache[run] = {}
    return cache[run]


def config_value(config: Mapping[str, Any], key: str) -> Any:
    """The value at dotted `key` (`policy.name`) of a run config dict (KeyError if absent)."""
    node: Any = config
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            raise KeyError(key)
        node = node[part]
    return node


def _same(a: Any, b: Any) -> bool:
    if a == b or str(a) == str(b):
        return True
    try:
        return math.isclose(float(a), float(b), rel_tol=1e-12)
    except (TypeError, ValueError):
        return False


def _matches(fr: Frame, k: int, baseline: Mapping[str, Any]) -> bool:
    config = _run_config(fr, fr.configs[k]["runs"][0])
    try:
        return all(_same(config_value(config, key), v) for key, v in baseline.items())
    except KeyError:
        return False


def baseline_of(res: Results) -> dict[str, Any]:
    """The baseline a sweep compares against: sweep.json's `baseline`, else plain DF."""
    raw = res.sweep.get("baseline")
    return dict(raw) if isinstance(raw, Mapping) and raw else dict(DEFAULT_BASELINE)


def baseline_mask(fr: Frame, baseline: Mapping[str, Any]) -> np.ndarray:
    """Per configuration of `fr`: whether it matches the baseline's dotted keys."""
    return np.array([_matches(fr, k, baseline) for k in range(len(fr.configs))], bool)


# -- one entry (a language or the target mean) ----------------------------------------------


@dataclass
class Answer:
    """Checkpoints, configuration scores and their order for one entry (a language, or the
    target mean) under a selection rule: what `best`, the summary and the report all read.
    Build it with `Answer.of(evals, rule, entry)`."""

    E: Evals
    rule: SelectionRule
    entry: int | None  # language index; None: the target mean
    ckpt: np.ndarray
    report: np.ndarray  # per run: the reported score at its checkpoint
    agg: Aggregate
    order: np.ndarray
    selection: np.ndarray | None = None  # per run: the selection value at its checkpoint

    @classmethod
    def of(cls, E: Evals, rule: SelectionRule, entry: int | None) -> Answer:
        ckpt = E.checkpoint(rule.checkpoint, entry)
        sign = 1.0
        if rule.configuration == "objective":
            if entry is None:
                per_eval = E.metric(rule.objective.metric)
                sign = rule.objective.sign
            else:
                per_eval = E.value("dev", entry)
        else:
            per_eval = E.data(rule.configuration, entry)
        report = at(E.value(rule.report, entry), ckpt)
        selection = at(per_eval, ckpt)
        agg = E.aggregate(selection, report)
        return cls(E, rule, entry, ckpt, report, agg, E.order(agg, sign), selection)

    def seed_values(self, k: int) -> dict[int, float]:
        return {
            self.E.fr.runs[i]["seed"]: float(self.report[i]) for i in self.E.runs_of(self.agg, k)
        }

    def baseline_config(self, matching: np.ndarray) -> int | None:
        hits = self.order[matching[self.order]]
        return int(hits[0]) if len(hits) else None

    def compare(self, k: int, b: int | None) -> dict[str, Any] | None:
        if b is None:
            return None
        if k == b:
            return {"is_baseline": True, "trial_id": self.E.fr.configs[b]["trial_id"]}
        mine, theirs = self.seed_values(k), self.seed_values(b)
        shared = sorted(set(mine) & set(theirs))
        diff: PairedDifference = paired_difference(
            [mine[s] for s in shared], [theirs[s] for s in shared], shared
        )
        return {
            "is_baseline": False,
            "trial_id": self.E.fr.configs[b]["trial_id"],
            "baseline_score": float(self.agg.report[b]),
            **diff.to_dict(),
        }

    def entry_dict(self, k: int, rank: int, language: str) -> dict[str, Any]:
        E, fr, agg = self.E, self.E.fr, self.agg
        cfg = fr.configs[k]
        runs = E.runs_of(agg, k)
        statuses = {fr.runs[i]["status"] for i in runs}
        steps = [int(E.step[self.ckpt[i]]) for i in runs]
        budget = _budget([int(E.trained[i]) for i in runs], [int(E.planned[i]) for i in runs])
        std = float(agg.std[k])
        return {
            "rank": rank,
            "language": language,
            "is_source": language == fr.source_lang,
            "score": float(agg.report[k]),
            "std": None if math.isnan(std) else std,
            "n_seeds": int(agg.count[k]),
            "selection_score": float(agg.select[k]),
            "chosen_by": self.rule.configuration_data(self.entry is None),
            "metric": fr.metric,
            "split": self.rule.report,
            "selection": self.rule.name,
            "oracle": self.rule.oracle,
            "task": fr.task,
            "trial_id": cfg["trial_id"],
            "trial_ids": cfg["trial_ids"],
            "seeds": [fr.runs[i]["seed"] for i in runs],
            "run_trials": [fr.runs[i]["trial_id"] for i in runs],
            "steps": steps,
            "step": steps[0],
            "budget": budget,
            "stopped": "stopped" in statuses or not budget["full"],
            "duplicates": int(E.duplicates[k]),
            "policy": cfg["config"]["policy"],
            "status": _worst(statuses),
            "config": cfg["config"],
        }
