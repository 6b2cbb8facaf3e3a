"""The report as blocks, and the blocks as Markdown and as HTML.

A block is a tuple: `("h", level, text)`, `("p", text)` (a text starting with `**Note` or
`**Warning` is set apart in HTML), `("table", head, rows)` or `("img", path, title)`.
`write_report` (`fsf.analysis.report`) collects them, `_blocks_summary` gives the summary's
tables of one stage, and `_md` / `_html` render the same list to report.md and to a
self-contained report.html (images embedded as data URIs).
"""

from __future__ import annotations

import base64
import html
from typing import Any

import numpy as np

from fsf.results.answer import budget_text
from fsf.text import printable

__all__: list[str] = []

#: Scores and differences in the report are points: the metric x 100 (a fraction as stored).
UNIT = "x 100"


def _pts(x: float | None) -> str:
    """A score in points (x100, 2 decimals); '-' when there is none."""
    return "-" if x is None or not np.isfinite(x) else f"{100 * x:.2f}"


def _params_text(entry: dict[str, Any]) -> str:
    """The configuration's sampled parameters, `key=value`, short floats."""
    params = (entry.get("config") or {}).get("params") or {}
    items = [
        f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
        for k, v in sorted(params.items())
        if k not in ("policy", "policy.name")  # the policy is named on its own
    ]
    return ", ".join(items) or "no other sampled parameter"


def _ci(v: dict[str, Any] | None) -> str:
    """A difference to the baseline in points with its interval: +1.23 [+0.10, +2.40]."""
    if v is None:
        return "MISSING"
    if v.get("is_baseline"):
        return "(is the baseline)"
    if v.get("mean") is None:
        return "MISSING (no shared seed)"
    d = f"{100 * v['mean']:+.2f}"
    if v.get("ci_low") is None:
        return f"{d} (1 shared seed: no interval)"
    return f"{d} [{100 * v['ci_low']:+.2f}, {100 * v['ci_high']:+.2f}]"


def _answer_blocks(
    res: Any, pl: Any, *, task: str | None, select: str | None, stage_title: str
) -> list[tuple]:
    """The report's opening: the winning configuration (the target mean's answer) with its
    parameters, and per language its score, the baseline's and their difference with the
    95% interval, all in points; warnings where the answer is weak."""
    from fsf.results.ranking import best

    w = pl.target_mean
    if w is None:
        return [("h", 2, f"The answer ({stage_title})"), ("p", "**Warning:** no configuration "
                 "has a score for the target mean yet: there is no answer.")]  # fmt: skip
    base = ", ".join(f"{k}={v}" for k, v in pl.baseline.items())
    search = w.get("search") or {}
    found = f"; the search's #{search['rank']}, trial {search['trial_id']}" if search else ""
    blocks: list[tuple] = [("h", 2, f"The answer ({stage_title})")]
    blocks.append(
        (
            "p",
            f"**Winner** (the mean over the target languages, {pl.rule.describe(True)}): "
            f"policy **{w['policy']}** with {_params_text(w)} (trial {w['trial_id']}{found}), "
            f"{w['n_seeds']} seed(s) {w['seeds']}, budget {budget_text(w, ' (stopped)')}.",
        )
    )
    rows = []
    missing = []
    langs = [*pl.languages]
    order = ["target-mean", *(e["language"] for e in langs)]
    if pl.source_lang:
        order.append(pl.source_lang)
    for lang in order:
        if lang == "target-mean":
            e = w
        else:
            rk = best(res, lang, task=task, select=select, top=10**6, baseline=pl.baseline)
            e = next((x for x in rk.entries if x["trial_id"] == w["trial_id"]), None)
        if e is None:
            rows.append([lang, "-", "-", "-", "-", "-", "-"])
            continue
        v = e.get("vs_baseline")
        if v is None or (not v.get("is_baseline") and v.get("mean") is None):
            missing.append(lang)
        score = _pts(e["score"]) + (f" ± {_pts(e['std'])}" if e.get("std") is not None else "")
        rows.append(
            [
                f"{lang} (source)" if lang == pl.source_lang else lang,
                score,
                _pts((v or {}).get("baseline_score")) if v and not v.get("is_baseline") else "-",
                _ci(v),
                f"{v['p']:.2g}" if v and v.get("p") is not None else "-",
                (v or {}).get("verdict", "-") if v and not v.get("is_baseline") else "-",
                e["n_seeds"],
            ]
        )
    blocks.append(
        (
            "table",
            [
                "language",
                f"winner ({pl.metric} {UNIT}, ± std)",
                f"baseline ({UNIT})",
                f"difference ({UNIT}) [95% CI]",
                "p",
                "verdict",
                "seeds",
            ],
            rows,
        )
    )
    blocks.append(
        (
            "p",
            f"All scores are test {pl.metric} {UNIT} (points), mean over distinct seeds at each "
            f"run's checkpoint; differences are to the baseline ({base}, its best "
            "configuration, chosen by the same rule), paired over shared seeds, with the 95% "
            "Student-t interval (within noise when it contains 0). The best configuration of "
            "each language on its own is in the per-language table below.",
        )
    )
    if missing:
        blocks.append(
            (
                "p",
                f"**Warning:** no comparison with the baseline for {', '.join(missing)}: no "
                f"configuration matching {base} has a score there on seeds the winner has "
                "(did its runs fail?). The difference is MISSING, not zero.",
            )
        )
    return blocks


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4f}" if np.isfinite(v) else "-"
    return str(v)


def _md(blocks: list[tuple]) -> str:
    """The blocks as Markdown; every text is `printable` (a value holding an escape sequence
    or a line break cannot reach a terminal that shows the file, nor break a table)."""

    def cell(v: Any) -> str:
        return printable(_fmt(v)).replace("|", "\\|")

    out = []
    for b in blocks:
        if b[0] == "h":
            out.append("#" * b[1] + " " + printable(b[2]))
        elif b[0] == "p":
            out.append(printable(b[1], keep_newlines=True))
        elif b[0] == "table":
            head, rows = b[1], b[2]
            out.append("| " + " | ".join(cell(h) for h in head) + " |")
            out.append("|" + "|".join("---" for _ in head) + "|")
            out += ["| " + " | ".join(cell(v) for v in r) + " |" for r in rows]
        elif b[0] == "img":
            out.append(f"![{printable(b[2])}]({b[1].name})")
        out.append("")
    return "\n".join(out)


_CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:3px 8px;
text-align:right}td:first-child,th:first-child{text-align:left}th{background:#f3f3f3}
img{max-width:100%;border:1px solid #eee}.note{color:#8a5300}"""


def _html(blocks: list[tuple], title: str) -> str:
    def esc(text: str) -> str:
        return html.escape(printable(text, keep_newlines=True))

    out = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{esc(title)}"
        f"</title><style>{_CSS}</style></head><body>"
    ]
    for b in blocks:
        if b[0] == "h":
            out.append(f"<h{b[1]}>{esc(b[2])}</h{b[1]}>")
        elif b[0] == "p":
            cls = " class='note'" if b[1].startswith(("**Note", "**Warning")) else ""
            text = esc(b[1].replace("**", ""))
            out.append(f"<p{cls}>{text}</p>")
        elif b[0] == "table":
            head = "".join(f"<th>{esc(h)}</th>" for h in b[1])
            rows = "".join(
                "<tr>" + "".join(f"<td>{esc(_fmt(v))}</td>" for v in r) + "</tr>" for r in b[2]
            )
            out.append(f"<table><tr>{head}</tr>{rows}</table>")
        elif b[0] == "img":
            data = base64.b64encode(b[1].read_bytes()).decode()
            out.append(f"<p><img alt='{esc(b[2])}' src='data:image/png;base64,{data}'></p>")
    out.append("</body></html>")
    return "\n".join(out)


def _delta(v: dict[str, Any] | None) -> str:
    """A comparison with the baseline in words: +1.23 [+0.10, +2.40] p=0.03 better."""
    if v is None:
        return "no baseline"
    if v.get("is_baseline"):
        return "(baseline)"
    if v.get("mean") is None:
        return "no shared seeds"
    d = f"{100 * v['mean']:+.2f}"
    if v.get("ci_low") is None:
        return f"{d} (1 seed: untested)"
    return (
        f"{d} [{100 * v['ci_low']:+.2f}, {100 * v['ci_high']:+.2f}] p={v['p']:.2g} "
        f"{v['verdict']} (n={v['n']})"
    )


def _blocks_summary(s: dict[str, Any], per: list[Any], stage_title: str) -> list[tuple]:
    """One stage's summary `s` (`fsf.results.summarize`) and best configurations per language
    (`per`, one `PerLanguage` per task) as blocks: trials and runs by status, failed runs, the
    best configuration per objective, the policies compared, the best per target language."""
    blocks: list[tuple] = []
    runs, trials = s["runs"], s["trials"]
    statuses = sorted(set(runs["by_status"]) | set(trials["by_status"]))
    blocks.append(("h", 2, f"Trials ({stage_title})"))
    blocks.append(("p", s["stage"]["note"] + "."))
    if s["stage"].get("lines"):  # a race: its seeds per configuration, rounds and stop
        blocks.append(("table", ["the race"], [[line] for line in s["stage"]["lines"]]))
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
        blocks.append(("h", 2, f"Best configuration per objective ({stage_title})"))
        blocks.append(
            (
                "p",
                "Each objective is the value Optuna received: the objective metric at each "
                f"run's checkpoint, mean over distinct seeds (scores {UNIT}, losses as "
                "recorded).",
            )
        )
        blocks.append(
            (
                "table",
                ["task", "objective", "mode", "value", "trial", "policy", "seeds", "budget"],
                [
                    [
                        o["task"],
                        o["metric"],
                        o["mode"],
                        _objective(o["metric"], o.get("value")),
                        o.get("trial_id"),
                        o.get("policy"),
                        o.get("n_seeds"),
                        budget_text(o, " (stopped)"),
                    ]
                    for o in s["objectives"]
                ],
            )
        )
    if s["policies"]:
        rule = s["selection"]
        blocks.append(("h", 2, f"Policies compared ({stage_title})"))
        blocks.append(
            (
                "p",
                f"Each policy by its best configuration: {rule['description']}. Test "
                f"scores {UNIT}. Delta: target-mean test score minus the baseline's "
                f"({_baseline_words(s['baseline'])}), x100, paired over shared seeds, "
                "95% t-interval.",
            )
        )
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
                    "seeds",
                    "vs baseline",
                    "best trial",
                ],
                [
                    [
                        p["task"],
                        p["policy"],
                        p["n_configs"],
                        p["n_runs"],
                        _pts(p["test_target_mean"]),
                        _pts(p["test_source"]),
                        _pts(p["test_gap"]),
                        (p["best"] or {}).get("n_seeds"),
                        _delta(p["vs_baseline"]),
                        (p["best"] or {}).get("trial_id"),
                    ]
                    for p in s["policies"]
                ],
            )
        )
    for pl in per:
        blocks.append(
            ("h", 2, f"Best configuration per target language ({pl.task}, {stage_title})")
        )
        blocks.append(
            (
                "p",
                f"{pl.rule.describe(target_mean=False)}; target mean: "
                f"configuration by {pl.rule.configuration_data(True)}. Test scores {UNIT}; "
                "vs baseline: paired difference over shared seeds, 95% t-interval.",
            )
        )
        rows = []
        for e in [*pl.languages, *([pl.target_mean] if pl.target_mean else [])]:
            rows.append(
                [
                    e["language"],
                    _pts(e["score"]),
                    _pts(e["std"]),
                    e["n_seeds"],
                    _delta(e.get("vs_baseline")),
                    e["trial_id"],
                    e["policy"],
                    _params_text(e),
                    budget_text(e, " (stopped)"),
                ]
            )
        blocks.append(
            (
                "table",
                [
                    "language",
                    "score",
                    "std",
                    "seeds",
                    "vs baseline",
                    "trial",
                    "policy",
                    "parameters",
                    "budget",
                ],
                rows,
            )
        )
    return blocks


def _objective(metric: str, value: Any) -> Any:
    """An objective's value in the report's unit: scores in points, losses as recorded."""
    if isinstance(value, float) and "loss" not in metric:
        return _pts(value)
    return value


def _baseline_words(baseline: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in baseline.items())
