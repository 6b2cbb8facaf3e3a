"""Queries over a results folder: best configurations per target language, summaries, export.

Every query accepts a `Results` (from `read_results`), a path to a sweep or results folder,
or an in-memory `pyarrow.Table` with the results schema. The rules (documented with the JSON
formats in docs/results.md):

- A *run* is one (trial_id, seed). A run whose status is `failed` is excluded and counted.
- Selection picks one evaluation step per run: `source-dev` (best source-language dev score,
  zero-shot honest), `all-dev` (best mean dev score over all languages; uses target dev
  data), `target-dev` (best dev score of the language itself: an ORACLE, flagged `oracle`).
  Ties go to the earlier step. The reported score is the `split` (test) score at that step;
  a run with no score for the language there is not ranked for it.
- A *configuration* is the runs that share the typed config columns and the sampled
  parameters except `seed`; its score is the mean over those runs (`std`: sample standard
  deviation, null for one run; `n_seeds`: runs averaged).
- Ranking: higher score first; ties: more seeds first, then the smaller `trial_id`.
"""

from __future__ import annotations

import csv
import math
import os
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from fsf.results._errors import ResultsError, ResultsUsageError, choices
from fsf.results._frame import SELECTIONS, Frame, argmax_first, frame, runs_of
from fsf.results.reader import Results, SkippedFragment, read_results
from fsf.results.storage import Location, StoragePath, location, write_bytes_atomic
from fsf.results.writer import atomic_write_table

__all__ = [
    "BEST_FORMAT",
    "ORACLE_SELECTIONS",
    "PER_LANGUAGE_FORMAT",
    "SELECTIONS",
    "SUMMARY_FORMAT",
    "TARGET_MEAN",
    "PerLanguage",
    "Ranking",
    "best",
    "best_per_language",
    "export",
    "load",
    "summary",
]

BEST_FORMAT = "fsf.best/1"
PER_LANGUAGE_FORMAT = "fsf.best-per-language/1"
SUMMARY_FORMAT = "fsf.summary/1"
#: Selection rules that look at the evaluated language's own dev data.
ORACLE_SELECTIONS = frozenset({"target-dev"})
#: The `language` of the entry ranking configurations by the mean over target languages.
TARGET_MEAN = "target-mean"
_STATUS_ORDER = ("failed", "running", "stopped", "completed")


def load(results: Results | str | os.PathLike[str] | pa.Table) -> Results:
    """`results` as a `Results`: read a folder, wrap a table, or return it unchanged."""
    if isinstance(results, Results):
        return results
    if isinstance(results, pa.Table):
        return Results.from_table(results)
    if isinstance(results, (str, os.PathLike, StoragePath)):
        return read_results(results)
    raise TypeError(f"expected Results, a folder path or a pyarrow.Table, got {type(results)}")


@dataclass
class Ranking:
    """Configurations ranked for one language (`best`); `to_dict()` is the JSON format."""

    language: str
    task: str
    metric: str
    selection: str
    oracle: bool
    split: str
    entries: list[dict[str, Any]]
    excluded: dict[str, int]
    skipped: list[SkippedFragment] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": BEST_FORMAT,
            "language": self.language,
            "task": self.task,
            "metric": self.metric,
            "selection": self.selection,
            "oracle": self.oracle,
            "split": self.split,
            "entries": self.entries,
            "excluded": self.excluded,
            "skipped_fragments": [s.to_dict() for s in self.skipped],
        }


@dataclass
class PerLanguage:
    """The best configuration of each target language, and of the target mean."""

    task: str
    metric: str
    selection: str
    oracle: bool
    split: str
    source_lang: str | None
    languages: list[dict[str, Any]]
    target_mean: dict[str, Any] | None
    excluded: dict[str, int]
    skipped: list[SkippedFragment] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": PER_LANGUAGE_FORMAT,
            "task": self.task,
            "metric": self.metric,
            "selection": self.selection,
            "oracle": self.oracle,
            "split": self.split,
            "source_lang": self.source_lang,
            "languages": self.languages,
            "target_mean": self.target_mean,
            "excluded": self.excluded,
            "skipped_fragments": [s.to_dict() for s in self.skipped],
        }


def _check_select(select: str, split: str) -> None:
    if select not in SELECTIONS:
        raise ResultsUsageError(
            f"unknown selection {select!r}; choose one of: {', '.join(SELECTIONS)}"
        )
    if split not in ("dev", "test"):
        raise ResultsUsageError(f"unknown split {split!r}; choose one of: dev, test")


def _codes(arr: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, list[str]]:
    enc = pc.dictionary_encode(arr)
    if isinstance(enc, pa.ChunkedArray):
        enc = enc.combine_chunks() if enc.num_chunks != 1 else enc.chunk(0)
    return enc.indices.to_numpy(zero_copy_only=False).astype(np.int64), enc.dictionary.to_pylist()


def _score_rows(fr: Frame, select: str, lang: str | None, split: str) -> tuple[np.ndarray, ...]:
    """(run, language code, value, step) of reported scores, and the language names."""
    if select == "target-dev" and lang is None:  # one selection per (run, language)
        idx = fr.rows(None, "dev")
        codes, names = _codes(fr.language.take(pa.array(idx)))
        pos = argmax_first([fr.r[idx], codes], fr.value[idx], fr.step[idx])
        sel = np.full((len(fr.runs), len(names)), -1, np.int64)
        sel[fr.r[idx][pos], codes[pos]] = fr.step[idx][pos]
        rows = fr.rows(None, split)
        found = pc.index_in(fr.language.take(pa.array(rows)), value_set=pa.array(names))
        code = pc.fill_null(found, -1).to_numpy(zero_copy_only=False).astype(np.int64)
        hit = code >= 0
        hit[hit] = fr.step[rows[hit]] == sel[fr.r[rows[hit]], code[hit]]
        rows, code = rows[hit], code[hit]
    else:
        key = {"source-dev": "source", "all-dev": "all", "target-dev": "lang"}[select]
        rows = fr.rows_at(key, lang, split)
        code, names = _codes(fr.language.take(pa.array(rows)))
        if lang is not None:
            keep = np.array([n == lang for n in names], bool)[code] if names else code < 0
            rows, code = rows[keep], np.zeros(int(keep.sum()), np.int64)
            names = [lang]
    return fr.r[rows], code, fr.value[rows], fr.step[rows], names


def _target_mean_rows(fr: Frame, select: str, split: str) -> tuple[Any, ...]:
    """Per run with every target language: (run, mean target score, step), and the targets.

    The target languages are the non-source languages scored at any run's selected step.
    """
    key = {"source-dev": "source", "all-dev": "all", "target-dev": "targets"}[select]
    rows = fr.rows_at(key, None, split)
    rows = rows[~fr.is_source[rows]]
    n = len(fr.runs)
    count = np.bincount(fr.r[rows], minlength=n)
    total = np.bincount(fr.r[rows], weights=fr.value[rows], minlength=n)
    step = np.full(n, -1, np.int64)
    step[fr.r[rows]] = fr.step[rows]
    targets = fr.target_languages(rows)
    ok = np.flatnonzero((count == len(targets)) & (count > 0))
    return ok, total[ok] / count[ok], step[ok], targets


def _aggregate(
    fr: Frame, run: np.ndarray, code: np.ndarray, value: np.ndarray, step: np.ndarray
) -> pa.Table:
    """Per (configuration, language code): mean, std, count and the runs and steps used."""
    order = np.argsort(run, kind="stable")  # runs in id order within each group
    t = pa.table(
        {
            "cfg": fr.cfg[run[order]],
            "code": code[order],
            "value": value[order],
            "run": run[order],
            "step": step[order],
        }
    )
    return t.group_by(["cfg", "code"], use_threads=False).aggregate(
        [
            ("value", "mean"),
            ("value", "stddev", pc.VarianceOptions(ddof=1)),
            ("value", "count"),
            ("run", "list"),
            ("step", "list"),
        ]
    )


def _ranked(fr: Frame, agg: pa.Table) -> np.ndarray:
    """Row order of `agg`: by language code, then the ranking rule."""
    score = agg["value_mean"].to_numpy()
    n = agg["value_count"].to_numpy()
    tie = fr.cfg_rank[agg["cfg"].to_numpy()]
    return np.lexsort((tie, -n, -score, agg["code"].to_numpy()))


def _entry(
    fr: Frame, agg: pa.Table, i: int, language: str, rank: int, select: str, split: str
) -> dict[str, Any]:
    cfg = fr.configs[int(agg["cfg"][i].as_py())]
    pairs = sorted(
        zip(agg["run_list"][i].as_py(), agg["step_list"][i].as_py(), strict=True),
        key=lambda p: (fr.runs[p[0]]["seed"], fr.runs[p[0]]["trial_id"]),
    )
    runs = [fr.runs[p[0]] for p in pairs]
    statuses = {r["status"] for r in runs}
    std = agg["value_stddev"][i].as_py()
    return {
        "rank": rank,
        "language": language,
        "is_source": language == fr.source_lang,
        "score": agg["value_mean"][i].as_py(),
        "std": None if std is None or math.isnan(std) else std,
        "n_seeds": len(runs),
        "metric": fr.metric,
        "split": split,
        "selection": select,
        "oracle": select in ORACLE_SELECTIONS,
        "task": fr.task,
        "trial_id": cfg["trial_id"],
        "trial_ids": cfg["trial_ids"],
        "seeds": [r["seed"] for r in runs],
        "steps": [int(p[1]) for p in pairs],
        "step": int(pairs[0][1]),
        "policy": cfg["config"]["policy"],
        "status": next(s for s in (*_STATUS_ORDER, *sorted(statuses)) if s in statuses),
        "config": cfg["config"],
    }


def _excluded(fr: Frame, ranked_runs: int) -> dict[str, int]:
    usable = int((fr.cfg >= 0).sum())
    return {
        "failed_runs": fr.failed_runs,
        "failed_trials": fr.failed_trials,
        "runs_without_score": usable - ranked_runs,
    }


def _unknown_language(fr: Frame, lang: str) -> None:
    known = fr.languages()
    if lang not in known:
        raise ResultsUsageError(
            f"unknown language {lang!r} for task {fr.task!r}; available: {choices(known)}"
        )


def best(
    results: Results | str | os.PathLike[str] | pa.Table,
    lang: str,
    *,
    task: str | None = None,
    metric: str | None = None,
    select: str = "source-dev",
    top: int = 1,
    split: str = "test",
) -> Ranking:
    """The `top` configurations for language `lang` (see the module docstring for the rules).

    Raises `ResultsUsageError` for an unknown language (listing the available ones), task,
    metric or selection rule, and `ResultsError` when there are no results.
    """
    _check_select(select, split)
    if top < 1:
        raise ResultsUsageError(f"top must be >= 1, got {top}")
    res = load(results)
    fr = frame(res, task, metric)
    _unknown_language(fr, lang)
    run, code, value, step, _ = _score_rows(fr, select, lang, split)
    agg = _aggregate(fr, run, code, value, step)
    order = _ranked(fr, agg)[:top]
    entries = [_entry(fr, agg, int(i), lang, k + 1, select, split) for k, i in enumerate(order)]
    return Ranking(
        language=lang,
        task=fr.task,
        metric=fr.metric,
        selection=select,
        oracle=select in ORACLE_SELECTIONS,
        split=split,
        entries=entries,
        excluded=_excluded(fr, len(np.unique(run))),
        skipped=list(res.skipped),
    )


def best_per_language(
    results: Results | str | os.PathLike[str] | pa.Table,
    *,
    task: str | None = None,
    metric: str | None = None,
    select: str = "source-dev",
    split: str = "test",
) -> PerLanguage:
    """The best configuration of every target language, and the best for the target mean.

    The target mean of a run is the mean over all target languages of the task at its
    selected step (with `target-dev`: the step with the best mean target dev score, an
    oracle); a run lacking one of them is not ranked for the mean.
    """
    _check_select(select, split)
    res = load(results)
    fr = frame(res, task, metric)
    trun, tval, tstep, tlangs = _target_mean_rows(fr, select, split)
    targets = set(tlangs)
    run, code, value, step, names = _score_rows(fr, select, None, split)
    agg = _aggregate(fr, run, code, value, step)
    order = _ranked(fr, agg)
    codes = agg["code"].to_numpy()[order]
    first = np.ones(len(order), bool)
    first[1:] = codes[1:] != codes[:-1]
    langs = []
    for i in order[first]:
        name = names[int(agg["code"][int(i)].as_py())]
        if name in targets:
            langs.append(_entry(fr, agg, int(i), name, 1, select, split))
    langs.sort(key=lambda e: e["language"])
    tagg = _aggregate(fr, trun, np.zeros(len(trun), np.int64), tval, tstep)
    torder = _ranked(fr, tagg)
    mean_entry = None
    if len(torder):
        mean_entry = _entry(fr, tagg, int(torder[0]), TARGET_MEAN, 1, select, split)
        mean_entry["languages"] = sorted(targets)
    return PerLanguage(
        task=fr.task,
        metric=fr.metric,
        selection=select,
        oracle=select in ORACLE_SELECTIONS,
        split=split,
        source_lang=fr.source_lang,
        languages=langs,
        target_mean=mean_entry,
        excluded=_excluded(fr, len(np.unique(run))),
        skipped=list(res.skipped),
    )


# -- summary ---------------------------------------------------------------------------------

_SCALARS = ("source", "target_mean", "all_mean", "gap")


def run_scalars(fr: Frame, key: str, split: str) -> dict[str, np.ndarray]:
    """Per run at its selected step: source, target mean, all mean, gap (NaN if missing)."""
    rows = fr.rows_at(key, None, split)
    n = len(fr.runs)
    run, value, src = fr.r[rows], fr.value[rows], fr.is_source[rows]
    source = np.full(n, np.nan)
    source[run[src]] = value[src]
    count = np.bincount(run[~src], minlength=n)
    total = np.bincount(run[~src], weights=value[~src], minlength=n)
    complete = (count == len(fr.target_languages(rows))) & (count > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        target = np.where(complete, total / count, np.nan)
        all_mean = np.where(complete, (total + source) / (count + 1), np.nan)
    return {"source": source, "target_mean": target, "all_mean": all_mean, "gap": source - target}


def config_means(fr: Frame, per_run: np.ndarray) -> np.ndarray:
    """Per configuration, the mean of `per_run` over its runs with a finite value."""
    out = np.full(len(fr.configs), np.nan)
    for k, c in enumerate(fr.configs):
        vals = per_run[c["runs"]]
        vals = vals[np.isfinite(vals)]
        if len(vals):
            out[k] = vals.mean()
    return out


def _objectives(sweep: dict[str, Any]) -> list[dict[str, Any]]:
    raw = sweep.get("objective") or [{"metric": "dev_target_mean", "mode": "max"}]
    if isinstance(raw, (str, dict)):
        raw = [raw]
    out = []
    for o in raw:
        o = {"metric": o, "mode": "max"} if isinstance(o, str) else dict(o)
        out.append({"metric": str(o.get("metric")), "mode": str(o.get("mode", "max"))})
    return out


def _pick(fr: Frame, values: np.ndarray, mode: str) -> int | None:
    finite = np.flatnonzero(np.isfinite(values))
    if not len(finite):
        return None
    sign = -1.0 if mode == "max" else 1.0
    n = np.array([len(fr.configs[k]["runs"]) for k in finite])
    order = np.lexsort((fr.cfg_rank[finite], -n, sign * values[finite]))
    return int(finite[order[0]])


def _config_brief(fr: Frame, k: int) -> dict[str, Any]:
    c = fr.configs[k]
    return {
        "trial_id": c["trial_id"],
        "trial_ids": c["trial_ids"],
        "n_seeds": len(c["runs"]),
        "policy": c["config"]["policy"],
        "config": c["config"],
    }


def config_values(fr: Frame) -> dict[str, np.ndarray]:
    """Per configuration, `{split}_{source|target_mean|all_mean|gap}` (source-dev steps)."""
    scal = {s: run_scalars(fr, "source", s) for s in ("dev", "test")}
    return {
        f"{split}_{name}": config_means(fr, arr)
        for split, d in scal.items()
        for name, arr in d.items()
    }


def policy_best(fr: Frame, cfg_vals: dict[str, np.ndarray]) -> dict[str, int | None]:
    """Per policy, its configuration with the best test target mean (None: no score yet)."""
    by_policy: dict[str, list[int]] = {}
    for k, c in enumerate(fr.configs):
        by_policy.setdefault(c["config"]["policy"], []).append(k)
    out = {}
    for policy, ks in sorted(by_policy.items()):
        sub = np.full(len(fr.configs), np.nan)
        sub[ks] = cfg_vals["test_target_mean"][ks]
        out[policy] = _pick(fr, sub, "max")
    return out


def _task_summary(fr: Frame, sweep: dict[str, Any]) -> tuple[list[dict], list[dict]]:
    cfg_vals = config_values(fr)
    objectives = []
    for o in _objectives(sweep):
        item: dict[str, Any] = {**o, "task": fr.task, "selection": "source-dev"}
        if o["metric"] not in cfg_vals or o["mode"] not in ("max", "min"):
            item.update(
                value=None,
                note=f"not computable from results (known: {', '.join(cfg_vals)}; mode max|min)",
            )
        elif (k := _pick(fr, cfg_vals[o["metric"]], o["mode"])) is None:
            item.update(value=None, note="no run has this value yet")
        else:
            item.update(value=float(cfg_vals[o["metric"]][k]), **_config_brief(fr, k))
        objectives.append(item)
    policies = []
    for policy, k in policy_best(fr, cfg_vals).items():
        ks = [j for j, c in enumerate(fr.configs) if c["config"]["policy"] == policy]
        item = {
            "policy": policy,
            "task": fr.task,
            "n_configs": len(ks),
            "n_runs": sum(len(fr.configs[j]["runs"]) for j in ks),
        }
        for name in (*(f"test_{s}" for s in _SCALARS), *(f"dev_{s}" for s in _SCALARS)):
            item[name] = None if k is None else _nan_none(cfg_vals[name][k])
        item["best"] = None if k is None else _config_brief(fr, k)
        policies.append(item)
    policies.sort(
        key=lambda p: -(p["test_target_mean"] if p["test_target_mean"] is not None else -math.inf)
    )
    return objectives, policies


def _nan_none(x: float) -> float | None:
    return None if not np.isfinite(x) else float(x)


def _worst(statuses: set[str]) -> str:
    return next(s for s in (*_STATUS_ORDER, *sorted(statuses)) if s in statuses)


def summary(
    results: Results | str | os.PathLike[str] | pa.Table,
    *,
    task: str | None = None,
    metric: str | None = None,
) -> dict[str, Any]:
    """Trials by status, the best configuration per objective, and policies compared.

    A trial's status is the worst of its runs (failed, running, stopped, completed).
    Objectives come from sweep.json (default: dev_target_mean, max) and are valued per
    configuration at each run's source-dev-selected step. Policies are compared by their
    best configuration on the test target mean (source-dev selection).
    """
    res = load(results)
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
        "rows": table.num_rows,
        "fragments": len(res.fragments),
        "runs": {"total": len(runs), "by_status": dict(Counter(r["status"] for r in runs))},
        "trials": {
            "total": len(by_trial),
            "by_status": dict(Counter(_worst(s) for s in by_trial.values())),
        },
        "failures": [
            {"trial_id": r["trial_id"], "seed": r["seed"], "reason": r["failure_reason"]}
            for r in runs
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
        out["languages"][t] = {
            "source": fr.source_lang,
            "targets": [x for x in fr.languages() if x != fr.source_lang],
            "metric": fr.metric,
        }
        objectives, policies = _task_summary(fr, res.sweep)
        out["objectives"] += objectives
        out["policies"] += policies
    return out


def export(
    results: Results | str | os.PathLike[str] | pa.Table, path: str | Path | StoragePath
) -> Location:
    """Write every validated row to `path` (.parquet or .csv; a local path or a URI),
    atomically; return the path."""
    path = location(path)
    suffix = path.suffix.lower()
    if suffix not in (".parquet", ".csv"):
        raise ResultsUsageError(
            f"cannot export to {path.name!r}: the file name must end in .parquet or .csv"
        )
    table = load(results).table
    if suffix == ".parquet":
        return atomic_write_table(table, path)
    import pyarrow.csv as pacsv

    if isinstance(path, StoragePath):
        sink = pa.BufferOutputStream()
        pacsv.write_csv(table, sink, pacsv.WriteOptions(quoting_style="needed"))
        write_bytes_atomic(path, sink.getvalue().to_pybytes())
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".tmp-{uuid.uuid4().hex}-{path.name}.part"
    try:
        pacsv.write_csv(table, tmp, pacsv.WriteOptions(quoting_style="needed"))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def flat(entry: dict[str, Any]) -> dict[str, Any]:
    """An entry as one flat CSV row: config columns prefixed `config.`, lists as JSON."""
    import json

    out: dict[str, Any] = {}
    for k, v in entry.items():
        if k == "config":
            for ck, cv in v.items():
                out[f"config.{ck}"] = json.dumps(cv, sort_keys=True) if ck == "params" else cv
        elif isinstance(v, (list, dict)):
            out[k] = json.dumps(v)
        else:
            out[k] = v
    return out


def write_csv(rows: list[dict[str, Any]], fh: Any) -> None:
    """Write flat rows (see `flat`) as CSV with the union of their keys as header."""
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    w = csv.DictWriter(fh, fieldnames=keys, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
