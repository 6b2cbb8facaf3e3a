"""Best configurations per target language, under a selection rule, against a baseline.

Every query accepts a `Results` (from `read_results`), a path to a sweep or results folder,
or an in-memory `pyarrow.Table` with the results schema. The rules (docs/results.md):

- A *run* is one (trial_id, seed); failed runs are excluded and counted.
- A *configuration* is the runs sharing the typed config columns and the sampled parameters
  except `seed`. It counts each seed once: a (configuration, seed) trained twice is one run
  (the one with the most steps trained; the other is counted in `duplicates`).
- A `SelectionRule` (`fsf.results.selection`) picks each run's checkpoint and the score that
  ranks configurations; the reported score is the `report` split (test) at the checkpoint.
  The default rule `objective` ranks by the sweep's objective (what Optuna optimised) for the
  target mean and by each language's own dev score for a language; nothing is ranked on test
  unless the `oracle-test` rule is named.
- Scores are means over distinct seeds; `std` is the sample std (null for one seed).
- Ranking: better selection score first; ties: more seeds, then the smaller trial id.
- Each entry is compared with the best *baseline* configuration (default: `policy.name: df`,
  chosen by the same rule for the same language) on the seeds both have: the paired
  difference, its 95% t-interval and p-value (`fsf.results.stats`).

One entry's answer (`Answer`: checkpoints, scores, order, comparison with the baseline) and
which configurations are the baseline are `fsf.results.answer`; here they are assembled into
the queries' answers.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import numpy as np
import pyarrow as pa

from fsf.results._errors import ResultsUsageError, choices

# Answer, the baseline and config_value live in fsf.results.answer; they stay importable from
# here, where they were first published.
from fsf.results.answer import Answer, baseline_mask, baseline_of
from fsf.results.cube import Evals, evals
from fsf.results.frame import Frame, frame
from fsf.results.race import CANDIDATE_TRIAL, race_lines
from fsf.results.reader import Results, SkippedFragment, load
from fsf.results.selection import SelectionRule, selection_rule

__all__ = [
    "BEST_FORMAT",
    "PER_LANGUAGE_FORMAT",
    "TARGET_MEAN",
    "PerLanguage",
    "Ranking",
    "best",
    "best_per_language",
    "entry_run_config",
    "run_objectives",
    "top_configurations",
]

BEST_FORMAT = "fsf.best/2"
PER_LANGUAGE_FORMAT = "fsf.best-per-language/2"
#: The `language` of the entry for the mean over the target languages.
TARGET_MEAN = "target-mean"
_RESULTS: TypeAlias = Results | str | os.PathLike[str] | pa.Table


def _stage(res: Results) -> dict[str, Any]:
    """Which stage of a sweep the results are (search, or the confirmation on fresh seeds)."""
    sweep = res.sweep
    if sweep.get("stage") == "confirm":
        race = sweep.get("race")
        if sweep.get("scheme") == "race" or race:
            return _race_stage(sweep, race or {})
        return {
            "name": "confirm",
            "scheme": "fixed",
            "seeds": sweep.get("seeds"),
            "note": "confirmation stage: the candidates chosen in the search, re-run at full "
            f"budget on fresh seeds {sweep.get('seeds')}; the answer comes from these runs only",
        }
    return {
        "name": "search",
        "note": "search stage: configurations were chosen on dev scores of these same runs, so "
        "the winner's score is optimistic (winner's curse); confirm it on fresh seeds "
        "(`confirm:` in the space, or `fsf-sweep confirm DIR`)",
    }


def _race_stage(sweep: Mapping[str, Any], race: Mapping[str, Any]) -> dict[str, Any]:
    """A racing confirmation's stage: the seeds each candidate got, which round dropped which
    candidate and why, and why the race stopped (`fsf.results.race.race_lines`)."""
    candidates = sweep.get("candidates") or []
    names = {}
    for c in candidates:
        tid = c.get(CANDIDATE_TRIAL)
        if tid:
            role = "baseline" if c.get("role") == "baseline" else f"search #{c.get('rank')}"
            names[tid] = f"{c.get('policy')}, {role}"
    rounds = race.get("rounds") or []
    seeds_of: dict[str, int] = {}
    for r in rounds:
        for tid in [*(r.get("alive") or []), *(r.get("dropped") or {})]:
            seeds_of[tid] = len(r.get("seed_list") or [])
    base = next((c for c in candidates if "baseline" in str(c.get("role"))), None)
    if base and base.get(CANDIDATE_TRIAL) and rounds:
        seeds_of[base[CANDIDATE_TRIAL]] = len(rounds[-1].get("seed_list") or [])
    stop = race.get("stop")
    note = (
        "confirmation stage, a race: the candidates chosen in the search and the baseline "
        "re-run at full budget on fresh seeds added in rounds; after each round a candidate a "
        "paired test (Holm-corrected) finds worse than the best on the objective (dev data) "
        "is dropped; the answer comes from these runs only"
    )
    return {
        "name": "confirm",
        "scheme": "race",
        "seeds": sweep.get("seeds"),
        "race": {
            "rounds": rounds,
            "stop": stop,
            "decision": race.get("decision"),
            "seeds_per_candidate": seeds_of,
        },
        "note": note + ("" if stop else " (the race has not stopped: `fsf confirm DIR`)"),
        "lines": [
            "seeds per configuration: "
            + (", ".join(f"{t} ({names.get(t, '?')}) {n}" for t, n in seeds_of.items()) or "-"),
            *race_lines(race, names),
        ],
    }


class _ByRule:
    """What an answer's selection rule says about it: chosen on test data (`oracle`), and
    the split its scores are from (`split`)."""

    rule: SelectionRule

    @property
    def oracle(self) -> bool:
        return self.rule.oracle

    @property
    def split(self) -> str:
        return self.rule.report


@dataclass
class Ranking(_ByRule):
    """Configurations ranked for one language (`best`); `to_dict()` is the JSON format."""

    language: str
    task: str
    metric: str
    rule: SelectionRule
    entries: list[dict[str, Any]]
    excluded: dict[str, int]
    baseline: dict[str, Any]
    stage: dict[str, Any]
    skipped: list[SkippedFragment] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": BEST_FORMAT,
            "language": self.language,
            "task": self.task,
            "metric": self.metric,
            "selection": self.rule.to_dict(),
            "oracle": self.oracle,
            "split": self.split,
            "stage": self.stage,
            "baseline": self.baseline,
            "entries": self.entries,
            "excluded": self.excluded,
            "skipped_fragments": [s.to_dict() for s in self.skipped],
        }


@dataclass
class PerLanguage(_ByRule):
    """The best configuration of each target language, and of the target mean."""

    task: str
    metric: str
    rule: SelectionRule
    source_lang: str | None
    languages: list[dict[str, Any]]
    target_mean: dict[str, Any] | None
    excluded: dict[str, int]
    baseline: dict[str, Any]
    stage: dict[str, Any]
    skipped: list[SkippedFragment] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": PER_LANGUAGE_FORMAT,
            "task": self.task,
            "metric": self.metric,
            "selection": self.rule.to_dict(),
            "oracle": self.oracle,
            "split": self.split,
            "stage": self.stage,
            "source_lang": self.source_lang,
            "baseline": self.baseline,
            "languages": self.languages,
            "target_mean": self.target_mean,
            "excluded": self.excluded,
            "skipped_fragments": [s.to_dict() for s in self.skipped],
        }


def _link_search(res: Results, entries: list[dict[str, Any]]) -> None:
    """In a confirmation, tell each entry where its configuration came from in the search
    (`search`: its trial and rank there, and its role: candidate or baseline)."""
    candidates = res.sweep.get("candidates") if res.sweep.get("stage") == "confirm" else None
    if not candidates:
        return
    # matched by parameters, not trial id: a confirmation re-runs a candidate under new trial
    # ids, and its parameters are all that the two stages share
    by_params = {json.dumps(c["params"], sort_keys=True, default=str): c for c in candidates}
    for e in entries:
        c = by_params.get(json.dumps(e["config"]["params"], sort_keys=True, default=str))
        if c is not None:
            e["search"] = {
                "trial_id": c.get("trial_id"),
                "rank": c.get("rank"),
                "role": c.get("role"),
                "selection_score": c.get("selection_score"),
            }


def _frame_and_rule(
    results: _RESULTS, task: str | None, metric: str | None, select: str | None, split: str
) -> tuple[Results, Frame, Evals, SelectionRule]:
    res = load(results)
    rule = selection_rule(select, res.sweep, report=split)
    fr = frame(res, task, metric)
    return res, fr, evals(fr), rule


def _excluded(fr: Frame, E: Evals, counted: np.ndarray) -> dict[str, int]:
    """Why runs are not in the answer, counted so that an answer says what it left out (a
    reader cannot tell a sweep of 3 seeds from one of 5 with 2 failed otherwise)."""
    usable = int((fr.cfg >= 0).sum())
    return {
        "failed_runs": fr.failed_runs,
        "failed_trials": fr.failed_trials,
        "duplicate_runs": int(E.duplicates.sum()),
        "runs_without_score": usable - int(E.duplicates.sum()) - int(counted.sum()),
    }


def _with_baseline(
    ans: Answer, entries: list[dict[str, Any]], ks: list[int], matching: np.ndarray
) -> None:
    b = ans.baseline_config(matching)
    for e, k in zip(entries, ks, strict=True):
        e["vs_baseline"] = ans.compare(k, b)


def best(
    results: _RESULTS,
    lang: str,
    *,
    task: str | None = None,
    metric: str | None = None,
    select: str | None = None,
    top: int = 1,
    split: str = "test",
    baseline: Mapping[str, Any] | None = None,
) -> Ranking:
    """The `top` configurations for language `lang` (or `target-mean`) under the rule
    `select` (default `objective`; see the module docstring).

    Raises `ResultsUsageError` for an unknown language (listing the available ones), task,
    metric or rule, and `ResultsError` when there are no results.
    """
    if top < 1:
        raise ResultsUsageError(f"top must be >= 1, got {top}")
    res, fr, E, rule = _frame_and_rule(results, task, metric, select, split)
    if lang == TARGET_MEAN:
        entry = None
    elif lang in E.langs:
        entry = E.lang(lang)
    else:
        raise ResultsUsageError(
            f"unknown language {lang!r} for task {fr.task!r}; available: "
            f"{choices([*E.langs, TARGET_MEAN])}"
        )
    base = dict(baseline) if baseline is not None else baseline_of(res)
    ans = Answer.of(E, rule, entry)
    ks = [int(k) for k in ans.order[:top]]
    entries = [ans.entry_dict(k, i + 1, lang) for i, k in enumerate(ks)]
    _with_baseline(ans, entries, ks, baseline_mask(fr, base))
    _link_search(res, entries)
    return Ranking(
        language=lang,
        task=fr.task,
        metric=fr.metric,
        rule=rule,
        entries=entries,
        excluded=_excluded(fr, E, ans.agg.ok),
        baseline=base,
        stage=_stage(res),
        skipped=list(res.skipped),
    )


def best_per_language(
    results: _RESULTS,
    *,
    task: str | None = None,
    metric: str | None = None,
    select: str | None = None,
    split: str = "test",
    baseline: Mapping[str, Any] | None = None,
) -> PerLanguage:
    """The best configuration of every target language and of the target mean (the mean
    over all target languages at the checkpoint; a run lacking one is not ranked for it)."""
    res, fr, E, rule = _frame_and_rule(results, task, metric, select, split)
    base = dict(baseline) if baseline is not None else baseline_of(res)
    matching = baseline_mask(fr, base)
    langs = []
    counted = np.zeros(len(fr.runs), bool)
    for li in E.targets:
        # each language chooses its own checkpoint per run (the rule's score for that
        # language), so one configuration's runs may count for one language and not another
        ans = Answer.of(E, rule, int(li))
        counted |= ans.agg.ok
        if len(ans.order):
            k = int(ans.order[0])
            e = ans.entry_dict(k, 1, E.langs[li])
            _with_baseline(ans, [e], [k], matching)
            langs.append(e)
    ans = Answer.of(E, rule, None)
    mean_entry = None
    if len(ans.order):
        k = int(ans.order[0])
        mean_entry = ans.entry_dict(k, 1, TARGET_MEAN)
        mean_entry["languages"] = [E.langs[i] for i in E.targets]
        _with_baseline(ans, [mean_entry], [k], matching)
    _link_search(res, [*langs, *([mean_entry] if mean_entry else [])])
    return PerLanguage(
        task=fr.task,
        metric=fr.metric,
        rule=rule,
        source_lang=fr.source_lang,
        languages=sorted(langs, key=lambda e: e["language"]),
        target_mean=mean_entry,
        excluded=_excluded(fr, E, counted | ans.agg.ok),
        baseline=base,
        stage=_stage(res),
        skipped=list(res.skipped),
    )


def top_configurations(
    results: _RESULTS,
    k: int,
    *,
    task: str | None = None,
    metric: str | None = None,
    select: str | None = None,
    baseline: Mapping[str, Any] | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """The `k` best configurations for the target mean under the rule (default: the sweep's
    objective), and the best baseline configuration (None if no configuration matches).

    Each is `{"params": sampled parameters, "trial_id", "trial_ids", "selection_score",
    "n_seeds", "policy", "rank"}`: what a confirmation stage re-runs.
    """
    res, fr, E, rule = _frame_and_rule(results, task, metric, select, "dev")
    if rule.oracle:
        raise ResultsUsageError("a confirmation stage never chooses on test data")
    base = dict(baseline) if baseline is not None else baseline_of(res)
    ans = Answer.of(E, rule, None)

    def brief(c: int, rank: int) -> dict[str, Any]:
        cfg = fr.configs[c]
        return {
            "rank": rank,
            "params": cfg["config"]["params"],
            "trial_id": cfg["trial_id"],
            "trial_ids": cfg["trial_ids"],
            "selection_score": float(ans.agg.select[c]),
            "n_seeds": int(ans.agg.count[c]),
            "policy": cfg["config"]["policy"],
        }

    top = [brief(int(c), i + 1) for i, c in enumerate(ans.order[:k])]
    b = ans.baseline_config(baseline_mask(fr, base))
    rank = int(np.flatnonzero(ans.order == b)[0]) + 1 if b is not None else None
    return top, (brief(b, rank) if b is not None and rank is not None else None)


def run_objectives(
    results: _RESULTS,
    *,
    task: str | None = None,
    metric: str | None = None,
    select: str | None = None,
) -> list[dict[str, Any]]:
    """Every counted run's selection value (default: the sweep's objective) at its checkpoint,
    with its configuration's parameters and its seed: what a racing confirmation compares
    seed by seed (`fsf.results.race`). Never test data."""
    _, fr, E, rule = _frame_and_rule(results, task, metric, select, "dev")
    if rule.oracle:
        raise ResultsUsageError("a confirmation stage never chooses on test data")
    ans = Answer.of(E, rule, None)
    assert ans.selection is not None
    out = []
    for cfg in fr.configs:
        for i in cfg["runs"]:
            if ans.agg.ok[i]:
                run = fr.runs[i]
                out.append(
                    {
                        "params": cfg["config"]["params"],
                        "seed": run["seed"],
                        "trial_id": run["trial_id"],
                        "value": float(ans.selection[i]),
                    }
                )
    return out


def entry_run_config(results: _RESULTS, entry: Mapping[str, Any]) -> dict[str, Any]:
    """The full run config (as recorded) of an entry's first run: what `fsf-train --config`
    needs to train that configuration again."""
    import pyarrow.compute as pc

    res = load(results)
    table = res.table
    mask = pc.and_(
        pc.equal(table["trial_id"], entry["run_trials"][0]),
        pc.equal(table["seed"], entry["seeds"][0]),
    )
    rows = table.filter(mask)["config_json"].drop_null()
    if not len(rows):
        raise ResultsUsageError(f"trial {entry['run_trials'][0]} has no recorded run config")
    return json.loads(rows[0].as_py())
