"""The selection kernel: every evaluation as one row of a dense score array, checkpoints
chosen per run, configurations scored over distinct seeds.

An *evaluation* is one (run, step). `Evals.score[e, s, l]` is the score of evaluation `e` on
split `s` (0 = dev, 1 = test) and language `l` (NaN: not evaluated). Everything a selection
rule asks for is a vector over evaluations computed from it (a language's score, the mean
over the target languages, ...), so checkpoint selection is one lexsort and configuration
scores are `np.bincount`s over runs. Python loops touch configurations only for the entries
that are returned.

Invariants the code relies on:
- `Evals.run` / `Evals.step` identify each evaluation once (rows of one evaluation are merged,
  wherever they are in the table);
- a run's checkpoint is the evaluation maximising the key, ties to the earliest step, NaN
  keys never chosen;
- a configuration counts each seed once (`Seeds.rep`): of several runs of one
  (configuration, seed), e.g. a repeat trained twice, the one with the most steps trained
  counts, then a completed one, then the smaller trial id; the others are `duplicates`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from fsf.results.frame import Frame, _np, no_hugepage_advice, split_masks, take_rows

__all__ = ["Aggregate", "Evals", "evals"]

DEV, TEST = 0, 1
_SPLIT = {"dev": DEV, "test": TEST}


@dataclass
class Evals:
    """Dense per-evaluation scores of one `Frame` (task, metric)."""

    fr: Frame
    langs: list[str]
    src: int  # index of the source language in `langs` (-1: none)
    targets: np.ndarray  # indices of the target languages
    run: np.ndarray  # per evaluation: its run
    step: np.ndarray  # per evaluation: its step
    score: np.ndarray  # (evaluations, 2, languages)
    loss: np.ndarray  # per evaluation: the mean training loss since the previous one
    trained: np.ndarray  # per run: the last step evaluated (-1: none)
    planned: np.ndarray  # per run: the planned optimizer steps (-1: unknown)
    rep: np.ndarray  # per run: counts for its configuration (one run per seed)
    duplicates: np.ndarray  # per configuration: runs left out as repeated seeds
    _ckpt: dict[tuple[str, int | None], np.ndarray] = field(default_factory=dict)

    # -- per-evaluation vectors ----------------------------------------------------------------

    def lang(self, name: str) -> int:
        return self.langs.index(name)

    def value(self, split: str, entry: int | None) -> np.ndarray:
        """The score of language `entry` (an index; None: the target mean) on `split`."""
        s = self.score[:, _SPLIT[split]]
        if entry is not None:
            return s[:, entry]
        return self.scalar(split, "target_mean")

    def scalar(self, split: str, kind: str) -> np.ndarray:
        """`source`, `target_mean`, `all_mean` or `gap` of `split` (NaN where a language of
        the mean is missing), as the worker's `Evaluation` computes them."""
        s = self.score[:, _SPLIT[split]]
        nan = np.full(len(self.run), np.nan)
        source = s[:, self.src] if self.src >= 0 else nan
        if kind == "source":
            return source
        with no_hugepage_advice():  # (a copy of the target columns: tens of MB)
            target = s[:, self.targets].mean(axis=1) if len(self.targets) else nan
        if kind == "target_mean":
            return target
        if kind == "gap":
            return source - target
        members = np.r_[[self.src] if self.src >= 0 else [], self.targets].astype(np.int64)
        with no_hugepage_advice():
            return s[:, members].mean(axis=1) if len(members) else nan

    def metric(self, name: str) -> np.ndarray:
        """An objective metric (`dev_target_mean`, `train_loss`, ...) per evaluation."""
        if name == "train_loss":
            return self.loss
        split, kind = name.split("_", 1)
        return self.scalar(split, kind)

    def data(self, what: str, entry: int | None) -> np.ndarray:
        """The score a rule's `source-dev` / `target-dev` / `all-dev` / `test` names, for
        an entry (a language index, or None for the target mean)."""
        if what == "source-dev":
            return self.scalar("dev", "source")
        if what == "all-dev":
            return self.scalar("dev", "all_mean")
        if what == "target-dev":
            return self.value("dev", entry)
        if what == "test":
            return self.value("test", entry)
        raise ValueError(f"unknown data {what!r}")

    # -- checkpoints ---------------------------------------------------------------------------

    def checkpoint(self, what: str, entry: int | None) -> np.ndarray:
        """Per run, the evaluation chosen as its checkpoint (-1: none); cached."""
        key = (what, None if what in ("source-dev", "all-dev") else entry)
        if key not in self._ckpt:
            value = self.data(what, entry)
            ok = np.flatnonzero(np.isfinite(value))
            out = np.full(len(self.fr.runs), -1, np.int64)
            if len(ok):
                order = ok[np.lexsort((self.step[ok], -value[ok], self.run[ok]))]
                first = np.r_[True, self.run[order][1:] != self.run[order][:-1]]
                out[self.run[order[first]]] = order[first]
            self._ckpt[key] = out
        return self._ckpt[key]

    # -- configurations ------------------------------------------------------------------------

    def aggregate(self, select: np.ndarray, report: np.ndarray) -> Aggregate:
        """Configuration means over their seed-representative runs of two per-run vectors
        (NaN: the run has no value); a run counts only where both are finite."""
        fr = self.fr
        ok = self.rep & np.isfinite(select) & np.isfinite(report)
        cfg = fr.cfg[ok]
        n_cfg = len(fr.configs)
        count = np.bincount(cfg, minlength=n_cfg)
        with np.errstate(invalid="ignore", divide="ignore"):
            sel = np.bincount(cfg, weights=select[ok], minlength=n_cfg) / count
            rep = np.bincount(cfg, weights=report[ok], minlength=n_cfg) / count
            dev2 = np.bincount(cfg, weights=(report[ok] - rep[cfg]) ** 2, minlength=n_cfg)
            std = np.where(count > 1, np.sqrt(dev2 / np.maximum(count - 1, 1)), np.nan)
        return Aggregate(ok, count, sel, rep, std)

    def order(self, agg: Aggregate, sign: float) -> np.ndarray:
        """Configurations with a score, best first: by `sign * select` mean, then more seeds,
        then the smaller trial id."""
        have = np.flatnonzero(agg.count > 0)
        keys = (self.fr.cfg_rank[have], -agg.count[have], -sign * agg.select[have])
        return have[np.lexsort(keys)]

    def runs_of(self, agg: Aggregate, k: int) -> list[int]:
        """The runs counted for configuration k, ordered by seed."""
        runs = [i for i in self.fr.configs[k]["runs"] if agg.ok[i]]
        return sorted(runs, key=lambda i: self.fr.runs[i]["seed"])


@dataclass
class Aggregate:
    """Per-configuration means of a selection and a reported value (see `Evals.aggregate`)."""

    ok: np.ndarray  # per run: counted
    count: np.ndarray  # per configuration: distinct seeds counted
    select: np.ndarray  # per configuration: mean of the selection value
    report: np.ndarray  # per configuration: mean of the reported value
    std: np.ndarray  # per configuration: sample std of the reported value (NaN for one run)


def at(per_eval: np.ndarray, ckpt: np.ndarray) -> np.ndarray:
    """Per run, `per_eval` at the run's checkpoint (NaN: no checkpoint)."""
    out = np.full(len(ckpt), np.nan)
    has = ckpt >= 0
    out[has] = per_eval[ckpt[has]]
    return out


def evals(fr: Frame) -> Evals:
    """The `Evals` of a frame; cached on its results."""
    key = ("evals", fr.task, fr.metric)
    cache = fr.results.cache
    if key not in cache:
        with no_hugepage_advice():
            cache[key] = _build(fr)
    return cache[key]


def _codes(results: Any, column: str) -> tuple[np.ndarray, list[Any]]:
    """(code per row, names) of a string column, dictionary-encoded once per results."""
    key = ("codes", column)
    if key not in results.cache:
        enc = pc.dictionary_encode(results.table[column])
        if isinstance(enc, pa.ChunkedArray):
            enc = enc.combine_chunks() if enc.num_chunks != 1 else enc.chunk(0)
        codes = _np(enc.indices, -1).astype(np.int64, copy=False)
        results.cache[key] = (codes, enc.dictionary.to_pylist())
    return results.cache[key]


def _build(fr: Frame) -> Evals:
    # Every step here is one vectorised pass over the rows; the order matters for speed only
    # (string columns are compared once each, gathers are skipped when every row is kept).
    table = fr.results.table
    is_dev, is_test = split_masks(fr.results)
    mask = is_test | is_dev
    mask &= np.isfinite(fr.value)
    if not fr.all_ok:
        mask &= fr.ok[fr.r]
    if not fr.one_metric:
        mask &= _np(pc.equal(table["metric"], fr.metric), False)
    rows = np.flatnonzero(mask)
    lang_codes, names = _codes(fr.results, "language")
    every = len(rows) == len(mask)
    if every:  # every row is an evaluation score: no copies
        run, step, value, test, codes = fr.r, fr.step, fr.value, is_test, lang_codes
    else:  # (boolean indexing copies faster than gathering by `rows`)
        run, step, value = fr.r[mask], fr.step[mask], fr.value[mask]
        test, codes = is_test[mask], lang_codes[mask]
    seen = np.flatnonzero(np.bincount(codes + 1, minlength=len(names) + 1)[1:])
    langs = sorted({names[c] for c in seen} - {None})
    n_l = len(langs)
    remap = np.array([langs.index(x) if x in langs else -1 for x in names] + [-1], np.int64)
    lang = remap[codes]  # a null language (code -1) maps to the appended -1
    eid, starts = _evaluation_ids(run, step)
    n_e = len(starts)
    score = np.full((n_e, 2, n_l), np.nan)
    # flat position of (evaluation, split, language) in `score`; rows without a known
    # language are left out
    flat = np.multiply(eid, 2 * n_l)
    np.add(flat, lang, out=flat)
    np.add(flat, n_l, out=flat, where=test)
    good = lang >= 0
    if good.all():
        score.reshape(-1)[flat] = value
    else:
        score.reshape(-1)[flat[good]] = value[good]
    first = starts if every else rows[starts]
    loss = _np(take_rows(table["train_loss"], first), np.nan) if n_e else np.zeros(0)
    run_e, step_e = run[starts], step[starts]
    n_runs = len(fr.runs)
    trained = np.full(n_runs, -1, np.int64)
    np.maximum.at(trained, run_e, step_e)
    planned = np.array([r["total_steps"] if r["total_steps"] is not None else -1 for r in fr.runs])
    src = langs.index(fr.source_lang) if fr.source_lang in langs else -1
    targets = np.array([i for i in range(n_l) if i != src], np.int64)
    rep, dup = _representatives(fr, trained)
    return Evals(
        fr=fr,
        langs=langs,
        src=src,
        targets=targets,
        run=run_e,
        step=step_e,
        score=score,
        loss=loss.astype(np.float64),
        trained=trained,
        planned=planned.astype(np.int64),
        rep=rep,
        duplicates=dup,
    )


def _evaluation_ids(run: np.ndarray, step: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(evaluation id per row, a row of each evaluation). The writer keeps an evaluation's
    rows together, so ids come from where (run, step) changes; if an evaluation turns out to
    be split over the table, hash instead."""
    n = len(run)
    if n == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    change = np.r_[True, (run[1:] != run[:-1]) | (step[1:] != step[:-1])]
    starts = np.flatnonzero(change)
    key = run[starts].astype(np.int64) * (int(step.max()) + 2) + (step[starts] + 1)
    if len(np.unique(key)) == len(starts):
        lengths = np.diff(np.append(starts, n))
        return np.repeat(np.arange(len(starts), dtype=np.int64), lengths), starts
    full = run.astype(np.int64) * (int(step.max()) + 2) + (step + 1)
    _, first, inverse = np.unique(full, return_index=True, return_inverse=True)
    return inverse.astype(np.int64), first


def _representatives(fr: Frame, trained: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per run, whether it counts for its configuration; per configuration, the runs left
    out because their seed was already counted."""
    rep = np.zeros(len(fr.runs), bool)
    dup = np.zeros(len(fr.configs), np.int64)
    for k, c in enumerate(fr.configs):
        chosen: dict[Any, int] = {}
        for i in c["runs"]:
            seed = fr.runs[i]["seed"]
            j = chosen.get(seed)
            if j is None or _prefer(fr, trained, i, j):
                chosen[seed] = i
        rep[list(chosen.values())] = True
        dup[k] = len(c["runs"]) - len(chosen)
    return rep, dup


def _prefer(fr: Frame, trained: np.ndarray, i: int, j: int) -> bool:
    """Run i counts instead of run j (same configuration and seed)."""
    a, b = fr.runs[i], fr.runs[j]
    ka = (-int(trained[i]), a["status"] != "completed", a["trial_id"])
    kb = (-int(trained[j]), b["status"] != "completed", b["trial_id"])
    return ka < kb
