"""The selection kernel: every evaluation as one row of a dense score array, checkpoints
chosen per run, configurations scored over distinct seeds.

An *evaluation* is one (run, step). `Evals.score[e, s, l]` is the score of evaluation `e` on
split `s` (0 = dev, 1 = test) and language `l` (NaN: not evaluated). Everything a selection
rule asks for is a vector over evaluations computed from it (a language's score, the mean
over the target languages, ...), so checkpoint selection is one grouped arg-max and
configuration scores are `np.bincount`s over runs. Python loops touch configurations only for
the entries that are returned.

Invariants the code relies on:
- `Evals.run` / `Evals.step` identify each evaluation once (rows of one evaluation are merged,
  wherever they are in the table); an evaluation none of whose rows is usable (a failed run's,
  another metric's) has only NaN scores and a NaN loss: it is never a checkpoint and does
  not count in `trained`;
- a run's checkpoint is the evaluation maximising the key, ties to the earliest step, NaN
  keys never chosen (as `fsf.results.selection.CheckpointTracker` picks it while a run
  trains);
- a configuration counts each seed once (`Seeds.rep`): of several runs of one
  (configuration, seed), e.g. a repeat trained twice, the one with the most steps trained
  counts, then a completed one, then the smaller trial id; the others are `duplicates`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fsf.results.columns import argmax_first, filled_np, no_hugepage_advice, take_rows
from fsf.results.frame import Frame, cached_codes, split_masks
from fsf.results.selection import checkpoint_data

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
        target = self._mean_but_source(s) if len(self.targets) else nan
        if kind == "target_mean":
            return target
        if kind == "gap":
            return source - target
        members = np.r_[[self.src] if self.src >= 0 else [], self.targets].astype(np.int64)
        with no_hugepage_advice():
            return s[:, members].mean(axis=1) if len(members) else nan

    def _mean_but_source(self, s: np.ndarray) -> np.ndarray:
        """Mean over the languages other than the source, summed over the two slices on
        either side of it (no copy of the columns)."""
        if self.src < 0:
            return s.mean(axis=1)
        total = s[:, : self.src].sum(axis=1)
        total += s[:, self.src + 1 :].sum(axis=1)
        return total / len(self.targets)

    def metric(self, name: str) -> np.ndarray:
        """An objective metric (`dev_target_mean`, `train_loss`, ...) per evaluation."""
        if name == "train_loss":
            return self.loss
        split, kind = name.split("_", 1)
        return self.scalar(split, kind)

    def data(self, what: str, entry: int | None) -> np.ndarray:
        """The score a rule's `source-dev` / `target-dev` / `all-dev` / `test` names, for
        an entry (a language index, or None for the target mean): the vector form of
        `fsf.results.selection.checkpoint_score`."""
        split, kind = checkpoint_data(what)
        return self.scalar(split, kind) if kind is not None else self.value(split, entry)

    # -- checkpoints ---------------------------------------------------------------------------

    def checkpoint(self, what: str, entry: int | None) -> np.ndarray:
        """Per run, the evaluation chosen as its checkpoint (-1: none); cached."""
        key = (what, None if checkpoint_data(what)[1] is not None else entry)
        if key not in self._ckpt:
            value = self.data(what, entry)
            ok = np.flatnonzero(np.isfinite(value))
            out = np.full(len(self.fr.runs), -1, np.int64)
            if len(ok):  # NaN never becomes a checkpoint, so only finite values compete
                run = self.run[ok]
                # ties go to the earlier step, as CheckpointTracker decides while the run
                # trains: the step fsf reports is the step whose weights the worker kept
                best = ok[argmax_first([run], value[ok], self.step[ok])]
                out[self.run[best]] = best
            self._ckpt[key] = out
        return self._ckpt[key]

    # -- configurations ------------------------------------------------------------------------

    def aggregate(self, select: np.ndarray, report: np.ndarray) -> Aggregate:
        """Configuration means over their seed-representative runs of two per-run vectors
        (NaN: the run has no value); a run counts only where both are finite."""
        fr = self.fr
        # a run counts only where both values are finite, so that the mean a configuration is
        # chosen by and the mean it reports are over the same seeds
        ok = self.rep & np.isfinite(select) & np.isfinite(report)
        cfg = fr.cfg[ok]
        n_cfg = len(fr.configs)
        count = np.bincount(cfg, minlength=n_cfg)
        with np.errstate(invalid="ignore", divide="ignore"):
            sel = np.bincount(cfg, weights=select[ok], minlength=n_cfg) / count
            rep = np.bincount(cfg, weights=report[ok], minlength=n_cfg) / count
            dev2 = np.bincount(cfg, weights=(report[ok] - rep[cfg]) ** 2, minlength=n_cfg)
            # the sample std (n - 1): seeds are a sample of the seeds one could have run; one
            # seed has no spread to report, so NaN rather than 0
            std = np.where(count > 1, np.sqrt(dev2 / np.maximum(count - 1, 1)), np.nan)
        return Aggregate(ok, count, sel, rep, std)

    def order(self, agg: Aggregate, sign: float) -> np.ndarray:
        """Configurations with a score, best first: by `sign * select` mean, then more seeds,
        then the smaller trial id."""
        have = np.flatnonzero(agg.count > 0)
        # np.lexsort sorts by its last key first: the score, then the seeds, then trial id;
        # the trial id makes the order total, so two reads of one folder rank alike
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


def _codes(results: Any, column: str) -> tuple[np.ndarray, list[str]]:
    """(code per row, names) of a string column: codes index the sorted names, -1 is null.
    From the column's `cached_codes` (first-appearance codes), once per results."""
    key = ("codes", column)
    if key not in results.cache:
        first, seen = cached_codes(results, column)
        names = sorted(x for x in seen if x is not None)
        rank = {x: i for i, x in enumerate(names)}
        lut = np.array([rank.get(x, -1) for x in seen] + [-1], np.int64)
        results.cache[key] = (lut[first], names)  # -1 (null) indexes the appended -1
    return results.cache[key]


def _build(fr: Frame) -> Evals:
    # Every step is one vectorised pass over the rows, with no copies of the row arrays
    # when the rows of each evaluation are together (as the writer leaves them).
    is_dev, is_test = split_masks(fr.results)
    scored = is_test | is_dev  # rows that score an evaluation
    scored &= np.isfinite(fr.value)
    if not fr.all_ok:
        scored &= fr.ok[fr.r] if fr.lengths is None else np.repeat(fr.ok, fr.lengths)
    if not fr.one_metric:
        scored &= fr.is_metric
    lang, names = _codes(fr.results, "language")
    langs = list(names)
    run, step, value, test = fr.r, fr.step, fr.value, is_test
    starts, lengths, order = _evaluations(run, step)
    if order is not None:  # evaluations split over the table: put each one's rows together
        run, step, value, test = run[order], step[order], value[order], test[order]
        lang, scored = lang[order], scored[order]
    n_e, n_l = len(starts), len(langs)
    valid = np.logical_or.reduceat(scored, starts) if n_e else np.zeros(0, bool)
    # flat position of (evaluation, split, language) in `cells`; rows that score nothing
    # (not scored, or no language) write the extra last cell
    cells = np.full(n_e * 2 * n_l + 1, np.nan)
    flat = np.repeat(np.arange(0, n_e * 2 * n_l, 2 * n_l, dtype=np.int64), lengths)
    np.add(flat, lang, out=flat)
    np.add(flat, n_l, out=flat, where=test)
    skip = ~scored
    skip |= lang < 0
    np.copyto(flat, len(cells) - 1, where=skip)
    cells[flat] = value
    score = cells[:-1].reshape(n_e, 2, n_l)
    present = ~np.isnan(score).all(axis=(0, 1))  # languages with a score
    if not present.all():
        score = score[:, :, present]
        langs = [x for x, p in zip(langs, present, strict=True) if p]
        n_l = len(langs)
    # the first scored row of each evaluation (its training loss): mostly its first row, so
    # advancing only the evaluations whose current row is unscored costs a pass or two, not
    # a per-row search
    first = starts.copy()
    todo = np.flatnonzero(valid & ~scored[starts])
    while len(todo):
        first[todo] += 1
        todo = todo[~scored[first[todo]]]
    if order is not None:
        first = order[first]
    loss = np.full(n_e, np.nan)
    if n_e:
        loss[valid] = filled_np(take_rows(fr.results.table["train_loss"], first[valid]), np.nan)
    run_e, step_e = run[starts], step[starts]
    n_runs = len(fr.runs)
    trained = np.full(n_runs, -1, np.int64)
    np.maximum.at(trained, run_e[valid], step_e[valid])
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
        loss=loss,
        trained=trained,
        planned=planned.astype(np.int64),
        rep=rep,
        duplicates=dup,
    )


def _evaluations(
    run: np.ndarray, step: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(first row of each evaluation, its number of rows, order). The writer keeps an
    evaluation's rows together, so evaluations start wherever (run, step) changes and `order`
    is None. If an evaluation turns out to be split over the table, `order` is the stable
    sort of the rows by (run, step), and the first rows and counts are those of the rows in
    that order."""
    n = len(run)
    if n == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), None
    change = np.empty(n, bool)
    change[0] = True
    np.not_equal(run[1:], run[:-1], out=change[1:])
    change[1:] |= step[1:] != step[:-1]
    starts = np.flatnonzero(change)
    # (run, step) packed into one integer (step + 1: a null step reads as -1, see Frame), so
    # that "already grouped" is one comparison of neighbours and the rare regrouping one
    # stable argsort
    width = int(step.max()) + 2
    key = run[starts].astype(np.int64) * width + (step[starts] + 1)
    order = None
    if not (key[1:] > key[:-1]).all() and len(np.unique(key)) != len(starts):
        full = run.astype(np.int64) * width + (step + 1)
        order = np.argsort(full, kind="stable")
        full = full[order]
        change[1:] = full[1:] != full[:-1]
        starts = np.flatnonzero(change)
    return starts, np.diff(np.append(starts, n)), order


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
    # the run that trained furthest says most about the seed; a completed run beats one
    # stopped at the same step; the trial id only makes the choice the same on every read
    ka = (-int(trained[i]), a["status"] != "completed", a["trial_id"])
    kb = (-int(trained[j]), b["status"] != "completed", b["trial_id"])
    return ka < kb
