"""The vectorised core of the queries: runs, configurations, step selection, score lookup.

A *run* is one (trial_id, seed); a *configuration* is a set of runs that differ only in the
seed. Everything per row is a pyarrow compute kernel or a numpy array operation; Python
loops only touch runs and configurations (thousands), never rows (millions).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from fsf.results._errors import ResultsError, ResultsUsageError, choices
from fsf.results.columns import (
    column_np,
    filled_np,
    first_codes,
    no_hugepage_advice,
    run_index,
    take_rows,
)
from fsf.results.reader import Results
from fsf.results.schema import EVAL_SPLITS

__all__ = [
    "CONFIG_COLUMNS",
    "Frame",
    "cached_codes",
    "eval_results",
    "frame",
    "split_masks",
]

#: Typed columns that identify a configuration (with `params_json` minus any `seed`).
CONFIG_COLUMNS = (
    "task",
    "dataset",
    "model",
    "source_lang",
    "policy",
    "c1",
    "c2",
    "r",
    "window",
    "threshold",
    "switch_mode",
    "switch_point",
    "policy_iv",
    "lr",
    "batch_size",
    "few_shot_m",
    "zero_stage",
)
_RUN_COLUMNS = (
    "trial_id",
    "seed",
    "status",
    "failure_reason",
    "primary_metric",
    "params_json",
    "total_steps",
)


def cached_codes(results: Results, column: str) -> tuple[np.ndarray, list[Any]]:
    """`first_codes` of a column of `results`; cached (the reader leaves those it computed
    while validating the rows)."""
    key = ("first_codes", column)
    if key not in results.cache:
        results.cache[key] = first_codes(results.table[column])
    return results.cache[key]


def parse_params(raw: str | None) -> dict[str, Any]:
    """The sampled parameters of `params_json` as a dict (unparsable text kept as `_raw`)."""
    try:
        params = json.loads(raw) if raw else {}
    except ValueError:
        return {"_raw": raw}
    return params if isinstance(params, dict) else {"_value": params}


def _params_key(raw: str | None) -> str:
    """`params_json` without its `seed` key, canonical (the writer already sorts keys)."""
    if raw is None or '"seed"' not in raw:
        return raw or "{}"
    params = parse_params(raw)
    params.pop("seed", None)
    return json.dumps(params, sort_keys=True, default=str)


@dataclass
class Frame:
    """Per-row arrays of one (task, metric) slice of the results, plus run/config tables."""

    results: Results
    task: str
    metric: str
    source_lang: str | None
    r: np.ndarray  # run id per row
    ok: np.ndarray  # per run: of this task and not failed
    all_ok: bool
    lengths: np.ndarray | None  # rows per run when each run's rows are contiguous
    one_metric: bool  # every row has `metric` (no need to compare it)
    is_metric: np.ndarray  # per row: the metric is `metric` (null: False)
    step: np.ndarray
    value: np.ndarray
    is_source: np.ndarray
    runs: list[dict[str, Any]]  # per run: trial_id, seed, status, failure_reason, config
    cfg: np.ndarray  # config id per run (-1: not in this slice or failed)
    configs: list[dict[str, Any]]  # per config: config, trial_ids, trial_id, policy
    cfg_rank: np.ndarray  # tie-break order of each config (by representative trial_id)
    failed_runs: int
    failed_trials: int
    _languages: list[str] | None = None

    @property
    def language(self) -> pa.ChunkedArray:
        return self.results.table["language"]

    # -- rows ---------------------------------------------------------------------------------

    def rows(self, mask: np.ndarray | None, split: str) -> np.ndarray:
        """Positions of usable rows of `split` and this metric where `mask` (None: all).

        Usable: the run is of this task and not failed, the value is finite.
        """
        idx = np.arange(len(self.r)) if mask is None else np.flatnonzero(mask)
        keep = np.isfinite(self.value[idx])
        if not self.all_ok:
            keep &= self.ok[self.r[idx]]
        keep &= split_masks(self.results)[EVAL_SPLITS.index(split)][idx]
        if not self.one_metric:
            keep &= self.is_metric[idx]
        return idx[keep]

    def target_languages(self, rows: np.ndarray) -> list[str]:
        """The non-source languages among `rows` (row positions), sorted."""
        idx = rows[~self.is_source[rows]]
        langs = pc.unique(self.language.take(pa.array(idx))).to_pylist()
        return sorted(x for x in langs if x is not None)

    def languages(self) -> list[str]:
        """Every language with a usable score, sorted."""
        if self._languages is None:
            rows = self.rows(None, "dev"), self.rows(None, "test")
            langs = pc.unique(self.language.take(pa.array(np.concatenate(rows)))).to_pylist()
            self._languages = sorted(x for x in langs if x is not None)
        return self._languages


def runs_of(results: Results) -> tuple[np.ndarray, list[dict[str, Any]], pa.Table]:
    """(run id per row, one dict per run, the runs' columns as a table); cached."""
    if "runs" not in results.cache:
        table = results.table
        # the reader leaves the index it computed while validating the rows (same table)
        r, starts, lengths = results.cache.pop("run_index", None) or run_index(table)
        cols = take_rows(table.select(list(_RUN_COLUMNS + CONFIG_COLUMNS)), starts)
        results.cache["runs"] = (r, cols.to_pylist(), cols)
        results.cache["run_lengths"] = lengths
        results.cache["run_starts"] = starts
    return results.cache["runs"]


def _equal_to(value: str) -> Callable[[Any], Any]:
    """`c -> c == value`, element-wise (a closure per value, as column_np calls it per chunk)."""
    return lambda c: pc.equal(c, value)


def split_masks(results: Results) -> tuple[np.ndarray, np.ndarray]:
    """(split == dev, split == test) per row, as numpy booleans (null: False); cached."""
    if "split_masks" not in results.cache:
        split = results.table["split"]
        results.cache["split_masks"] = tuple(
            column_np(split, False, bool, _equal_to(name)) for name in EVAL_SPLITS
        )
    return results.cache["split_masks"]


def eval_results(results: Results) -> Results:
    """`results` restricted to evaluation rows: split dev or test, or no split (the row a run
    that failed before its first evaluation leaves). Analysis rows (split train, cka) are
    left out. Returns `results` itself when it has no other rows; cached."""
    if "eval_results" not in results.cache:
        is_dev, is_test = split_masks(results)
        keep = is_dev | is_test
        split = results.table["split"]
        if split.null_count:
            keep |= filled_np(pc.is_null(split), False)  # a failed run's row without a split
        if keep.all():
            view = results
        else:
            view = dataclasses.replace(results, table=results.table.filter(keep), cache={})
            view.cache["split_masks"] = (is_dev[keep], is_test[keep])
            for key, value in results.cache.items():  # codes the reader left: the same rows
                if isinstance(key, tuple) and key[0] == "first_codes":
                    view.cache[key] = (value[0][keep], value[1])
        results.cache["eval_results"] = view
    return results.cache["eval_results"]


def frame(results: Results, task: str | None, metric: str | None) -> Frame:
    """The `Frame` of one task and metric (defaults: the only task; its primary metric),
    over the evaluation rows only (see `eval_results`)."""
    key = ("frame", task, metric)
    if key in results.cache:
        return results.cache[key]
    with no_hugepage_advice():
        return _frame(results, task, metric, key)


def _frame(results: Results, task: str | None, metric: str | None, key: Any) -> Frame:
    outer, results = results, eval_results(results)
    table = results.table
    if table.num_rows == 0:
        where = results.root or "the table"
        raise ResultsError(f"no results in {where} yet (no readable evaluation rows)")
    r, runs, run_table = runs_of(results)
    runs = [dict(x) for x in runs]
    tasks = sorted({x["task"] for x in runs if x["task"] is not None})
    if task is None:
        if len(tasks) > 1:
            raise ResultsUsageError(
                f"the results hold several tasks ({choices(tasks)}); choose one with --task"
            )
        task = tasks[0] if tasks else ""
    elif task not in tasks:
        raise ResultsUsageError(f"unknown task {task!r}; choose one of: {choices(tasks)}")
    in_task = np.array([x["task"] == task for x in runs], bool)
    failed = np.array([x["status"] == "failed" for x in runs], bool)
    ok = in_task & ~failed
    metric_col = table["metric"]
    if metric is None:
        prim = sorted(
            {x["primary_metric"] for x, t in zip(runs, in_task, strict=True) if t} - {None}
        )
        if len(prim) != 1:
            raise ResultsUsageError(
                f"task {task!r} has {'no' if not prim else 'several'} primary metrics "
                f"({choices(prim)}); choose one with --metric"
            )
        metric = prim[0]
    if ("first_codes", "metric") in results.cache:  # left by the reader: no pass over text
        codes, names = results.cache["first_codes", "metric"]
        is_metric = codes == (names.index(metric) if metric in names else -2)
    else:
        is_metric = column_np(metric_col, False, bool, lambda c: pc.equal(c, metric))
    if not is_metric.any():
        known = [m for m in pc.unique(metric_col).to_pylist() if m is not None]
        raise ResultsUsageError(f"unknown metric {metric!r}; choose one of: {choices(known)}")
    value = column_np(table["value"], np.nan, np.float64)
    srcs = sorted({x["source_lang"] for x, t in zip(runs, ok, strict=True) if t} - {None})
    fr = Frame(
        results=results,
        task=task,
        metric=metric,
        source_lang=srcs[0] if len(srcs) == 1 else None,
        r=r,
        ok=ok,
        all_ok=bool(ok.all()),
        lengths=results.cache["run_lengths"],
        one_metric=bool(is_metric.all()),
        is_metric=is_metric,
        step=column_np(table["step"], -1, np.int64),
        value=value,
        is_source=column_np(table["is_source"], False, bool),
        runs=runs,
        cfg=np.full(len(runs), -1, np.int64),
        configs=[],
        cfg_rank=np.zeros(0, np.int64),
        failed_runs=int((in_task & failed).sum()),
        failed_trials=len(
            {x["trial_id"] for x, f in zip(runs, in_task & failed, strict=True) if f}
        ),
    )
    _group_configs(fr, ok, run_table)
    outer.cache[key] = fr
    return fr


def _group_configs(fr: Frame, ok: np.ndarray, run_table: pa.Table) -> None:
    """Assign each usable run a configuration (same typed config and params except seed)."""
    ids: dict[tuple[Any, ...], int] = {}
    columns = []
    for c in CONFIG_COLUMNS:
        col = run_table[c]
        if pa.types.is_floating(col.type):  # NaN -> null, so that NaN configs group together
            col = pc.if_else(pc.is_nan(col), pa.scalar(None, col.type), col)
        columns.append(col.to_pylist())
    columns.append([_params_key(p) for p in run_table["params_json"].to_pylist()])
    for i, key in enumerate(zip(*columns, strict=True)):
        if not ok[i]:
            continue
        run = fr.runs[i]
        cid = ids.setdefault(key, len(ids))
        if cid == len(fr.configs):
            config = dict(zip(CONFIG_COLUMNS, key, strict=False))
            config["params"] = parse_params(run["params_json"])
            config["params"].pop("seed", None)
            fr.configs.append({"config": config, "runs": []})
        fr.configs[cid]["runs"].append(i)
        fr.cfg[i] = cid
    for entry in fr.configs:
        entry["runs"].sort(key=lambda i: (fr.runs[i]["seed"], fr.runs[i]["trial_id"]))
        entry["trial_ids"] = sorted({fr.runs[i]["trial_id"] for i in entry["runs"]})
        entry["trial_id"] = entry["trial_ids"][0]
    order = sorted(range(len(fr.configs)), key=lambda k: fr.configs[k]["trial_id"])
    fr.cfg_rank = np.empty(len(order), np.int64)
    fr.cfg_rank[order] = np.arange(len(order))
