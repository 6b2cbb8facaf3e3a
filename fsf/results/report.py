"""Sweep reports: report.md and a self-contained report.html with PNG plots.

`write_report(sweep_dir, out)` writes into `out` (default `<sweep_dir>/report/`; for a sweep
on an object store, `./report-<sweep name>/`):
- `gap.png`: source - target-mean gap over training steps, one panel per policy (its best
  configuration, mean over seeds, dev and test), P1 shaded from the recorded `phase` column;
- `languages.png`: test score per language x policy (best configuration per policy);
- `pareto.png`: source vs target-mean test score of every configuration, Pareto front drawn;
- `importance.png`: Optuna parameter importances, when `optuna.db` holds a study with enough
  completed trials (otherwise the report says why it is missing);
- `report.md` (images referenced) and `report.html` (images embedded as data URIs).
All scores use the source-dev selected step of each run (zero-shot honest).
"""

from __future__ import annotations

import base64
import html
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from fsf.results._errors import ResultsUsageError
from fsf.results._frame import Frame, frame
from fsf.results._plots import gap_plot, importance_plot, language_heatmap, pareto_plot
from fsf.results.query import (
    best_per_language,
    config_values,
    load,
    policy_best,
    summary,
)
from fsf.results.reader import Results
from fsf.results.storage import StoragePath, is_uri

__all__ = ["Report", "write_report"]


@dataclass
class Report:
    """What `write_report` wrote, and the notes it added (missing plots and why)."""

    markdown: Path
    html: Path
    images: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


# -- document blocks, rendered to Markdown and to HTML ---------------------------------------


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4f}" if np.isfinite(v) else "-"
    return str(v)


def _md(blocks: list[tuple]) -> str:
    out = []
    for b in blocks:
        if b[0] == "h":
            out.append("#" * b[1] + " " + b[2])
        elif b[0] == "p":
            out.append(b[1])
        elif b[0] == "table":
            head, rows = b[1], b[2]
            out.append("| " + " | ".join(head) + " |")
            out.append("|" + "|".join("---" for _ in head) + "|")
            out += ["| " + " | ".join(_fmt(v).replace("|", "\\|") for v in r) + " |" for r in rows]
        elif b[0] == "img":
            out.append(f"![{b[2]}]({b[1].name})")
        out.append("")
    return "\n".join(out)


_CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:3px 8px;
text-align:right}td:first-child,th:first-child{text-align:left}th{background:#f3f3f3}
img{max-width:100%;border:1px solid #eee}.note{color:#8a5300}"""


def _html(blocks: list[tuple], title: str) -> str:
    out = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
        f"</title><style>{_CSS}</style></head><body>"
    ]
    for b in blocks:
        if b[0] == "h":
            out.append(f"<h{b[1]}>{html.escape(b[2])}</h{b[1]}>")
        elif b[0] == "p":
            cls = " class='note'" if b[1].startswith(("**Note", "**Warning")) else ""
            text = html.escape(b[1].replace("**", ""))
            out.append(f"<p{cls}>{text}</p>")
        elif b[0] == "table":
            head = "".join(f"<th>{html.escape(h)}</th>" for h in b[1])
            rows = "".join(
                "<tr>" + "".join(f"<td>{html.escape(_fmt(v))}</td>" for v in r) + "</tr>"
                for r in b[2]
            )
            out.append(f"<table><tr>{head}</tr>{rows}</table>")
        elif b[0] == "img":
            data = base64.b64encode(b[1].read_bytes()).decode()
            out.append(f"<p><img alt='{html.escape(b[2])}' src='data:image/png;base64,{data}'></p>")
    out.append("</body></html>")
    return "\n".join(out)


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


def _blocks_summary(s: dict[str, Any], per: list[Any]) -> list[tuple]:
    blocks: list[tuple] = []
    runs, trials = s["runs"], s["trials"]
    statuses = sorted(set(runs["by_status"]) | set(trials["by_status"]))
    blocks.append(("h", 2, "Trials"))
    blocks.append(
        (
            "table",
            ["", "total", *statuses],
            [
                ["trials", trials["total"], *(trials["by_status"].get(x, 0) for x in statuses)],
                [
                    "runs (trial x seed)",
                    runs["total"],
                    *(runs["by_status"].get(x, 0) for x in statuses),
                ],
            ],
        )
    )
    if s["failures"]:
        blocks.append(("p", "Failed runs (excluded from every ranking):"))
        blocks.append(
            (
                "table",
                ["trial", "seed", "reason"],
                [[f["trial_id"], f["seed"], f["reason"]] for f in s["failures"][:20]],
            )
        )
    if s["objectives"]:
        blocks.append(("h", 2, "Best configuration per objective"))
        blocks.append(
            (
                "table",
                ["task", "objective", "mode", "value", "trial", "policy", "seeds"],
                [
                    [
                        o["task"],
                        o["metric"],
                        o["mode"],
                        o.get("value"),
                        o.get("trial_id"),
                        o.get("policy"),
                        o.get("n_seeds"),
                    ]
                    for o in s["objectives"]
                ],
            )
        )
    if s["policies"]:
        blocks.append(("h", 2, "Policies compared (best configuration of each, test split)"))
        blocks.append(
            (
                "table",
                [
                    "task",
                    "policy",
                    "configs",
                    "runs",
                    "target mean",
                    "source",
                    "gap",
                    "all mean",
                    "best trial",
                ],
                [
                    [
                        p["task"],
                        p["policy"],
                        p["n_configs"],
                        p["n_runs"],
                        p["test_target_mean"],
                        p["test_source"],
                        p["test_gap"],
                        p["test_all_mean"],
                        (p["best"] or {}).get("trial_id"),
                    ]
                    for p in s["policies"]
                ],
            )
        )
    for pl in per:
        blocks.append(("h", 2, f"Best configuration per target language ({pl.task})"))
        blocks.append(
            (
                "p",
                f"Selection: {pl.selection} (zero-shot honest); scores: {pl.metric}"
                f" on {pl.split}, mean over seeds.",
            )
        )
        rows = [
            [
                e["language"],
                e["score"],
                e["std"],
                e["n_seeds"],
                e["trial_id"],
                e["policy"],
                e["step"],
            ]
            for e in pl.languages
        ]
        if pl.target_mean:
            e = pl.target_mean
            rows.append(
                [
                    "target mean",
                    e["score"],
                    e["std"],
                    e["n_seeds"],
                    e["trial_id"],
                    e["policy"],
                    e["step"],
                ]
            )
        blocks.append(
            ("table", ["language", "score", "std", "seeds", "trial", "policy", "step"], rows)
        )
    return blocks


def write_report(
    results: Results | str | os.PathLike[str] | pa.Table,
    out: str | os.PathLike[str] | None = None,
    *,
    task: str | None = None,
) -> Report:
    """Write report.md, report.html and the PNGs into `out` (default `<sweep>/report`)."""
    import matplotlib

    from fsf.analysis._report import analysis_sections

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
    notes: list[str] = []
    images: list[tuple[Path, str, str]] = []
    analysis_blocks: list[tuple] = []  # gap boundaries, CKA, probes (fsf.analysis)
    s = summary(res, task=task)
    per = []
    for t in [task] if task else s["tasks"]:
        fr = frame(res, t, None)
        per.append(best_per_language(res, task=t))
        vals = config_values(fr)
        best_cfg = {p: k for p, k in policy_best(fr, vals).items() if k is not None}
        suffix = "" if len(s["tasks"]) == 1 else f"-{t}"
        extra = analysis_sections(res, fr, best_cfg, out, suffix)
        analysis_blocks += extra.blocks
        notes += extra.notes
        curves = {p: _curves(fr, k) for p, k in best_cfg.items()}
        if curves:
            path = out / f"gap{suffix}.png"
            gap_plot(curves, path, task=t, metric=fr.metric, boundaries=extra.boundaries)
            images.append(
                (
                    path,
                    "Gap over training",
                    "Source - target-mean gap over training "
                    "steps, best configuration of each policy (mean over seeds; band: "
                    "+-1 std). Shaded: phase P1 as recorded by the runs; dotted line: the "
                    "P1/P2 boundary detected from the recorded training loss by the paper's "
                    "loss-trend rule (median over the runs).",
                )
            )
        langs, mat, pols = _language_matrix(fr, best_cfg)
        if len(langs) and len(pols):
            path = out / f"languages{suffix}.png"
            language_heatmap(
                langs, pols, mat, path, task=t, metric=fr.metric, source=fr.source_lang
            )
            images.append(
                (
                    path,
                    "Scores per language",
                    "Test score per language and policy "
                    "(best configuration of each policy by test target mean).",
                )
            )
        src, tgt = vals["test_source"], vals["test_target_mean"]
        ok = np.isfinite(src) & np.isfinite(tgt)
        if ok.any():
            path = out / f"pareto{suffix}.png"
            policies = [fr.configs[k]["config"]["policy"] for k in np.flatnonzero(ok)]
            pareto_plot(src[ok], tgt[ok], policies, path, task=t, metric=fr.metric)
            images.append(
                (
                    path,
                    "Source vs target mean",
                    "Each point is a configuration "
                    "(mean over seeds, test split); the line is the Pareto front.",
                )
            )
        images += extra.images
    note = importance_plot(res, out / "importance.png")
    if note is None:
        images.append(
            (
                out / "importance.png",
                "Parameter importances",
                "Optuna parameter importances per objective (optuna's default evaluator, "
                "oriented so that a high importance means the parameter drives a better "
                "objective).",
            )
        )
    else:
        notes.append(note)
    blocks: list[tuple] = [("h", 1, f"Sweep report: {res.name}")]
    blocks.append(
        (
            "p",
            f"Generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC} from "
            f"{res.root or 'an in-memory table'}: {s['rows']:,} rows in "
            f"{s['fragments']} fragments.",
        )
    )
    if res.skipped:
        blocks.append(
            (
                "p",
                f"**Warning:** {len(res.skipped)} fragment(s) were skipped and are "
                "not in any number below:",
            )
        )
        blocks.append(("table", ["fragment", "reason"], [[k.path, k.reason] for k in res.skipped]))
    blocks += _blocks_summary(s, per)
    blocks += analysis_blocks
    blocks.append(("h", 2, "Plots"))
    for path, title, caption in images:
        blocks.append(("h", 3, title))
        blocks.append(("img", path, title))
        blocks.append(("p", caption))
    for n in notes + s.get("notes", []):
        blocks.append(("p", f"**Note:** {n}"))
    md, ht = out / "report.md", out / "report.html"
    md.write_text(_md(blocks))
    ht.write_text(_html(blocks, f"Sweep report: {res.name}"))
    return Report(md, ht, [p for p, _, _ in images], notes)


def _language_matrix(fr: Frame, best_cfg: dict[str, int]) -> tuple[list[str], Any, list[str]]:
    """(languages: source first, then targets; matrix languages x policies; policies)."""
    from fsf.results.query import _aggregate, _score_rows

    run, code, value, step, names = _score_rows(fr, "source-dev", None, "test")
    agg = _aggregate(fr, run, code, value, step)
    cfg, codes = agg["cfg"].to_numpy(), agg["code"].to_numpy()
    score = agg["value_mean"].to_numpy()
    langs = sorted(names, key=lambda x: (x != fr.source_lang, x))
    pols = list(best_cfg)
    mat = np.full((len(langs), len(pols)), np.nan)
    index = {n: i for i, n in enumerate(langs)}
    for j, p in enumerate(pols):
        for c, s in zip(codes[cfg == best_cfg[p]], score[cfg == best_cfg[p]], strict=True):
            mat[index[names[c]], j] = s
    return langs, mat, pols
