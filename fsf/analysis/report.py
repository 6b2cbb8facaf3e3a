"""Sweep reports: report.md and a self-contained report.html with PNG plots.

`write_report(sweep_dir, out)` writes into `out` (default `<sweep_dir>/report/`; for a sweep
on an object store, `./report-<sweep name>/`). Every choice of a configuration or a
checkpoint follows one selection rule (`fsf.results.selection`; default: the sweep's own
objective on dev data), stated at the top of the report. The report leads with the answer
(of the confirmation stage, on fresh seeds, when the sweep has one): the winning
configuration's parameters, its scores per language, the baseline's and their difference
with its 95% interval, all in points (the metric x 100). Plots are grouped by stage and say
which stage they show.
- `gap.png`: source - target-mean gap over training steps, one panel per policy (its best
  configuration, mean over seeds, dev and test), P1 shaded from the recorded phase (per
  step where the runs recorded their loss: the shading ends at the switch);
- `languages[-confirm].png`: test score per language x policy (each policy's best
  configuration);
- `delta[-confirm].png`: the paired difference to the baseline per language x policy with
  its 95% interval, cells within noise (the interval contains 0) marked, each text black or
  white by its cell's luminance;
- `pareto.png`: source vs target-mean test score of every configuration, Pareto front drawn
  (descriptive: nothing is chosen on it);
- `importance.png`: Optuna parameter importances, when `optuna.db` holds a study with enough
  completed trials (otherwise the report says why it is missing), with a warning when they
  come from fewer than `FEW_TRIALS` trials;
- `report.md` (images referenced) and `report.html` (images embedded as data URIs).

The document is a list of blocks; the summary's tables as blocks, and their rendering to
Markdown and HTML, are `fsf.analysis._report_blocks`. The plots are drawn by
`fsf.analysis._report_plots`, the analyses' sections come from `fsf.analysis._report`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from fsf.analysis._report_blocks import _answer_blocks, _blocks_summary, _html, _md
from fsf.analysis._report_plots import (
    FEW_TRIALS,
    delta_heatmap,
    evp_plot,
    gap_plot,
    importance_plot,
    language_heatmap,
    pareto_plot,
)
from fsf.results import ResultsError, ResultsUsageError
from fsf.results.answer import Answer, baseline_mask, baseline_of
from fsf.results.cube import Evals, at, evals
from fsf.results.frame import Frame, frame
from fsf.results.ranking import best_per_language
from fsf.results.reader import Results, confirmation_of, load
from fsf.results.selection import SelectionRule, selection_rule
from fsf.results.storage import StoragePath, is_uri, write_bytes_atomic
from fsf.results.summarize import policy_evp, summary

__all__ = ["Report", "write_report"]


@dataclass
class Report:
    """What `write_report` wrote, and the notes it added (missing plots and why)."""

    markdown: Path
    html: Path
    images: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


# -- data for the plots ------------------------------------------------------------------------


def _curves(fr: Frame, k: int) -> dict[str, Any]:
    """Per step of configuration k: dev/test gap (mean, std over runs) and the P1 share."""
    runs = np.array(fr.configs[k]["runs"])
    mask = np.isin(fr.r, runs)
    out: dict[str, Any] = {}
    table = fr.results.table
    for split in ("dev", "test"):
        rows = fr.rows(mask, split)
        run, step, value, src = fr.r[rows], fr.step[rows], fr.value[rows], fr.is_source[rows]
        steps = np.unique(step)
        n_t = len(fr.target_languages(rows))
        gaps = np.full((len(runs), len(steps)), np.nan)
        si = np.searchsorted(steps, step)
        ri = np.searchsorted(np.sort(runs), run)
        order_runs = np.sort(runs)
        for i in range(len(order_runs)):
            for j in range(len(steps)):
                m = (ri == i) & (si == j)
                s_val, t_val = value[m & src], value[m & ~src]
                if len(s_val) and len(t_val) == n_t and n_t:
                    gaps[i, j] = s_val[0] - t_val.mean()
        out[split] = (steps, gaps)
        if split == "dev":
            phase = np.array(table["phase"].take(pa.array(rows)).to_pylist(), dtype=object)
            p1 = np.array(
                [np.mean(phase[step == s] == "P1") if (step == s).any() else 0.0 for s in steps]
            )
            out["phase"] = (steps, p1)
    return out


def _policy_best(E: Evals, rule: SelectionRule) -> dict[str, int]:
    """Per policy, its best configuration for the target mean under the rule."""
    ans = Answer.of(E, rule, None)
    out: dict[str, int] = {}
    for k in ans.order:
        out.setdefault(E.fr.configs[int(k)]["config"]["policy"], int(k))
    return dict(sorted(out.items()))


def _matrices(
    E: Evals, rule: SelectionRule, best_cfg: dict[str, int], baseline: int | None
) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(languages: source first; scores languages x policies; delta vs the baseline; its
    verdict: better, worse, within noise, untested; the 95% interval's low and high ends).
    Each language's checkpoints are chosen by the rule for that language; scores are means
    over distinct seeds."""
    langs = sorted(E.langs, key=lambda x: (x != E.fr.source_lang, x))
    pols = list(best_cfg)
    mat = np.full((len(langs), len(pols)), np.nan)
    delta = np.full_like(mat, np.nan)
    low, high = np.full_like(mat, np.nan), np.full_like(mat, np.nan)
    verdict = np.full(mat.shape, "", dtype=object)
    for i, name in enumerate(langs):
        ans = Answer.of(E, rule, E.lang(name))
        for j, p in enumerate(pols):
            k = best_cfg[p]
            if ans.agg.count[k]:
                mat[i, j] = ans.agg.report[k]
            cmp = ans.compare(k, baseline) if baseline is not None else None
            if cmp and not cmp.get("is_baseline") and cmp.get("mean") is not None:
                delta[i, j] = cmp["mean"]
                verdict[i, j] = cmp["verdict"]
                if cmp.get("ci_low") is not None:
                    low[i, j], high[i, j] = cmp["ci_low"], cmp["ci_high"]
    return langs, mat, delta, verdict, low, high


def _stage_label(res: Results, stage: str) -> str:
    """What a plot of `stage` says it shows: `search stage` or `confirmation, seeds ...`."""
    if stage == "search":
        return "search stage"
    seeds = res.sweep.get("seeds") or []
    return f"confirmation, fresh seeds {', '.join(map(str, seeds))}" if seeds else "confirmation"


def _task_plots(
    res: Results, t: str, rule: SelectionRule, out: Path, suffix: str, stage: str
) -> tuple[list[tuple[Path, str, str]], Any, dict[str, int]]:
    """The per-task plots of one stage, each titled with its stage; returns (images, the
    analyses' sections or None, each policy's best configuration)."""
    from fsf.analysis._report import analysis_sections

    fr = frame(res, t, None)
    E = evals(fr)
    best_cfg = _policy_best(E, rule)
    base_ans = Answer.of(E, rule, None)
    baseline = base_ans.baseline_config(baseline_mask(fr, baseline_of(res)))
    images: list[tuple[Path, str, str]] = []
    extra = None
    how = rule.describe()
    label = _stage_label(res, stage)
    if stage == "search":
        # a search that evaluated dev alone (search.splits, eval.splits) has no test score to
        # rank configurations by, yet its curves and CKA are worth drawing: a policy without
        # one is drawn by its best configuration under the same rule reporting dev
        drawn = {**_policy_best(E, replace(rule, report="dev")), **best_cfg}
        extra = analysis_sections(res, fr, drawn, out, suffix)
        curves = {p: _curves(fr, k) for p, k in drawn.items()}
        for p, c in curves.items():
            c["step_phase"] = extra.step_phases.get(p)
        if curves:
            path = out / f"gap{suffix}.png"
            gap_plot(curves, path, task=t, metric=fr.metric, boundaries=extra.boundaries)
            images.append(
                (
                    path,
                    "Gap over training (search stage)",
                    "Source - target-mean gap over training steps, best configuration of each "
                    f"policy ({how}; mean over seeds; band: +-1 std). Shaded: phase P1 as "
                    "recorded by the runs, step by step where the runs recorded their training "
                    "loss (it ends at the first step in P2), else up to the last evaluation in "
                    "P1 (hatched: the switch lies between two evaluations); dotted line: the "
                    "P1/P2 boundary detected from the recorded training loss by the paper's "
                    "loss-trend rule (median over the runs).",
                )
            )
    langs, mat, delta, sig, low, high = _matrices(E, rule, best_cfg, baseline)
    pols = list(best_cfg)
    tag = "" if stage == "search" else "-confirm"
    if len(langs) and len(pols):
        path = out / f"languages{suffix}{tag}.png"
        language_heatmap(
            langs, pols, mat, path, task=t, metric=fr.metric, source=fr.source_lang, stage=label
        )
        images.append(
            (
                path,
                f"Scores per language ({label})",
                f"Test score x 100 per language and policy, each policy by its best "
                f"configuration ({how}).",
            )
        )
    if baseline is not None and np.isfinite(delta).any():
        path = out / f"delta{suffix}{tag}.png"
        name = fr.configs[baseline]["config"]["policy"]
        delta_heatmap(
            langs, pols, delta, sig, path, task=t, metric=fr.metric, baseline=name,
            low=low, high=high, stage=label,
        )  # fmt: skip
        images.append(
            (
                path,
                f"Difference to the baseline per language ({label})",
                f"Test score minus the baseline's ({name}, its best configuration), x 100, "
                "paired over shared seeds, with its 95% interval in brackets. Coloured: the "
                "interval excludes 0; grey '~': it contains 0 (within noise); grey '?': one "
                "shared seed, no interval.",
            )
        )
    if stage == "search":
        ckpt = base_ans.ckpt
        per = {k: at(E.scalar("test", k), ckpt) for k in ("source", "target_mean")}
        src = E.aggregate(per["source"], per["source"]).report
        tgt = E.aggregate(per["target_mean"], per["target_mean"]).report
        ok = np.isfinite(src) & np.isfinite(tgt)
        if ok.any():
            path = out / f"pareto{suffix}.png"
            policies = [fr.configs[k]["config"]["policy"] for k in np.flatnonzero(ok)]
            pareto_plot(src[ok], tgt[ok], policies, path, task=t, metric=fr.metric)
            images.append(
                (
                    path,
                    "Source vs target mean (search stage)",
                    "Each point is a configuration (mean over seeds, test split, at each run's "
                    "checkpoint); the line is the Pareto front. Descriptive only: nothing is "
                    "chosen on these test scores.",
                )
            )
    return images, extra, best_cfg


def write_report(
    results: Results | str | os.PathLike[str] | pa.Table,
    out: str | os.PathLike[str] | None = None,
    *,
    task: str | None = None,
    select: str | None = None,
) -> Report:
    """Write report.md, report.html and the PNGs into `out` (default `<sweep>/report`).

    For a sweep with a confirmation stage (`<sweep>/confirm/`), the report leads with the
    confirmed answer and keeps the search's tables and plots below it."""
    import matplotlib

    matplotlib.use("Agg")
    res = load(results)
    if out is None:
        base = res.sweep_dir or res.root
        if base is None:
            raise ValueError("pass `out` for results that do not come from a folder")
        if isinstance(base, StoragePath):  # a sweep on s3://...: the report is made here
            local = base.fs.type_name == "local"
            out = Path(base.path) / "report" if local else Path(f"report-{res.name}")
        else:
            out = base / "report"
    if is_uri(os.fspath(out)):
        raise ResultsUsageError(f"--out {out}: write the report to a local folder")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rule = selection_rule(select, res.sweep)
    stages = [("search", res)]
    confirmed = confirmation_of(res)
    if confirmed is not None:
        stages.insert(0, ("confirm", confirmed))
    notes: list[str] = []
    images: dict[str, list[tuple[Path, str, str]]] = {stage: [] for stage, _ in stages}
    blocks: list[tuple] = [("h", 1, f"Sweep report: {res.name}")]
    s = summary(res, task=task, select=select)
    blocks.append(
        (
            "p",
            f"Generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC} from "
            f"{res.root or 'an in-memory table'}: {s['rows']:,} rows in "
            f"{s['fragments']} fragments. Selection: {rule.describe()}.",
        )
    )
    if rule.oracle:
        blocks.append(("p", "**Warning:** ORACLE: this report chooses on test data."))
    answer: list[tuple] = []  # the answer leads: blocks of the first stage, filled below
    body: list[tuple] = []
    analysis_blocks: list[tuple] = []
    for stage, sres in stages:
        if sres.skipped:
            blocks.append(
                (
                    "p",
                    f"**Warning:** {len(sres.skipped)} fragment(s) of the {stage} stage were "
                    "skipped (unreadable, or set aside: rows that break the schema's meaning) "
                    "and are not in any number below:",
                )
            )
            blocks.append(
                ("table", ["fragment", "reason"], [[k.path, k.reason] for k in sres.skipped])
            )
        ss = s if stage == "search" else summary(sres, task=task, select=select)
        srule = selection_rule(select, sres.sweep)
        title = "confirmation on fresh seeds" if stage == "confirm" else "search"
        per = []
        for t in [task] if task else ss["tasks"]:
            try:
                pl = best_per_language(sres, task=t, select=select)
            except ResultsUsageError:
                raise
            except ResultsError as exc:
                notes.append(f"{stage} stage, task {t}: {exc}")
                continue
            per.append(pl)
            if stage == stages[0][0]:
                answer += _answer_blocks(
                    sres, pl, task=t, select=select, stage_title=f"{title}, task {t}"
                )
            suffix = "" if len(ss["tasks"]) == 1 else f"-{t}"
            imgs, extra, _ = _task_plots(sres, t, srule, out, suffix, stage)
            images[stage] += imgs
            if extra is not None:
                analysis_blocks += extra.blocks
                notes += extra.notes
                images[stage] += extra.images
        body += _blocks_summary(ss, per, title)
        notes += [f"{stage} stage: {n}" for n in ss.get("notes", [])]
    blocks += answer + body + analysis_blocks
    for t in [task] if task else s["tasks"]:
        curves = [c for c in policy_evp(res, task=t) if c["trials"]]
        if curves:
            suffix = "" if len(s["tasks"]) == 1 else f"-{t}"
            evp_plot(curves, out / f"evp{suffix}.png")
            images["search"].append(
                (
                    out / f"evp{suffix}.png",
                    f"Expected best objective vs trials, per policy (search stage, {t})",
                    "Expected validation performance (Dodge et al. 2019): the best "
                    f"{curves[0]['metric']} a search of n trials of each policy should expect "
                    "(band: +-1 std), from the search's own trials (the number in the legend; "
                    "a trial ASHA stopped counts with the value it stopped at). Compare "
                    "policies at equal n, next to the confirmed differences above.",
                )
            )
    info: dict[str, Any] = {}
    note = importance_plot(res, out / "importance.png", info)
    if note is None:
        caption = (
            "Optuna parameter importances of the search (PED-ANOVA over the completed trials "
            "the sweep trained; repeats answered from the study are left out). A "
            "conditional parameter is assessed over the trials where its condition held "
            "(n: how many)."
        )
        if info.get("trials", 0) < FEW_TRIALS:
            caption += (
                f" **Warning:** from only {info.get('trials')} trained trials: with so few, "
                "which parameter matters is mostly noise (a rough hint, not a finding; "
                f"{FEW_TRIALS} or more make it steadier)."
            )
        images["search"].append(
            (out / "importance.png", "Parameter importances (search stage)", caption)
        )
    else:
        notes.append(note)
    for stage, _ in stages:
        if not images[stage]:
            continue
        words = "confirmation on fresh seeds" if stage == "confirm" else "search stage"
        blocks.append(("h", 2, f"Plots: {words}"))
        for path, title, caption in images[stage]:
            blocks.append(("h", 3, title))
            blocks.append(("img", path, title))
            blocks.append(("p", caption))
    for n in notes:
        blocks.append(("p", f"**Note:** {n}"))
    md, ht = out / "report.md", out / "report.html"
    write_bytes_atomic(md, _md(blocks).encode())
    write_bytes_atomic(ht, _html(blocks, f"Sweep report: {res.name}").encode())
    return Report(md, ht, [p for imgs in images.values() for p, _, _ in imgs], notes)
