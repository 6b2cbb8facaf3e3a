"""The answers of `best`, and of a sweep that has just finished, as terminal tables: one row
per configuration (score, spread, seeds, the comparison with the baseline, what chose it,
its budget and parameters), and the lines under the table that say how it was chosen.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from fsf.cli._base import print_table
from fsf.cli.results_common import SKIPPED_EXIT, _read_stage
from fsf.results import ResultsError
from fsf.results.answer import budget_text
from fsf.results.ranking import PerLanguage, best, best_per_language
from fsf.results.reader import SkippedFragment
from fsf.text import printable

__all__ = ["left_out_line", "print_best_per_language", "without_baseline"]


def _params(entry: dict[str, Any]) -> str:
    """The sampled parameters, short: the policy name (its own column) left out, `policy.`
    dropped from the other keys."""
    p = entry["config"].get("params") or {}
    items = [
        (k.removeprefix("policy."), v) for k, v in p.items() if k not in ("policy.name", "policy")
    ]
    text = " ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in items)
    search = entry.get("search")
    if search and search.get("trial_id"):
        rank = f" #{search['rank']}" if search.get("rank") else ""
        text += f" (search {search['trial_id']}{rank})"
    return text or "-"


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.2f}"


def _vs(v: dict[str, Any] | None) -> str:
    """The comparison with the baseline, x100: +1.23 [+0.10, +2.40] better."""
    if v is None:
        return "-"
    if v.get("is_baseline"):
        return "baseline"
    if v.get("mean") is None:
        return "no shared seeds"
    d = f"{100 * v['mean']:+.2f}"
    if v.get("ci_low") is None:
        return f"{d} (n=1, untested)"
    verdict = "~ noise" if v["verdict"] == "within noise" else v["verdict"]
    return f"{d} [{100 * v['ci_low']:+.2f}, {100 * v['ci_high']:+.2f}] {verdict}"


def _budget(e: dict[str, Any]) -> str:
    """The budget column: `trained/planned` steps, ` stopped` when a run stopped early."""
    return budget_text(e, " stopped")


_HEAD = ["score", "std", "seeds", "vs baseline [95% CI]", "chosen by", "budget", "trial"]


def _row(first: Any, e: dict[str, Any]) -> list[Any]:
    return [
        first,
        _pct(e["score"]),
        _pct(e["std"]),
        e["n_seeds"],
        _vs(e.get("vs_baseline")),
        _pct(e["selection_score"]),
        _budget(e),
        e["trial_id"],
        e["policy"],
        _params(e),
    ]


def without_baseline(entries: list[dict[str, Any]], label: str = "language") -> list[str]:
    """The entries (their `label`) that lack a comparison with the baseline: no baseline
    configuration has a score for them, or it shares no seed with them."""
    out = []
    for e in entries:
        v = e.get("vs_baseline")
        if v is None or (not v.get("is_baseline") and v.get("mean") is None):
            out.append(str(e[label]))
    return out


def _baseline_line(entries: list[dict[str, Any]], answer: Any, label: str) -> str | None:
    missing = without_baseline(entries, label)
    if not missing:
        return None
    base = ", ".join(f"{k}={v}" for k, v in answer.baseline.items())
    which = "every row" if len(missing) == len(entries) else ", ".join(missing)
    return (
        f"MISSING for {which}: no configuration matching {base} has a score there on seeds "
        "it shares (did its runs fail? see 'excluded'), so there is no difference to the "
        "baseline to give"
    )


def _print_entries(
    first: str,
    rows: list[list[Any]],
    title: str,
    answer: Any,
    lines: list[str],
    *,
    race: bool = True,
) -> None:
    print_table([first, *_HEAD, "policy", "params"], rows, title=title)
    entries = getattr(answer, "entries", None)
    if entries is None:
        entries = [*answer.languages, *([answer.target_mean] if answer.target_mean else [])]
    missing = _baseline_line(entries, answer, "rank" if first == "rank" else "language")
    if missing:
        print(f"baseline:  {missing}")
    stage = answer.stage
    base = printable(", ".join(f"{k}={v}" for k, v in answer.baseline.items()))
    print(f"stage:     {printable(stage['note'])}")
    for line in (stage.get("lines") or []) if race else []:
        print(f"race:      {printable(line)}")
    for line in lines:
        print(printable(line))
    print(
        f"scores:    {answer.metric} x 100 on {answer.split}; 'chosen by': the mean selection "
        f"score; vs baseline ({base}, chosen by the same rule): paired difference over shared "
        "seeds, 95% t-interval ('~ noise': it contains 0)"
    )
    hint = None
    if answer.split == "test" and stage.get("name") == "search":
        hint = (
            "a search that evaluates dev alone, `search.splits: [dev]`, leaves test to its "
            "confirmation: `fsf best DIR`, or `fsf confirm DIR` first"
        )
    print(f"excluded:  {_excluded_line(answer.excluded, hint)}")
    left = left_out_line(getattr(answer, "skipped", []))
    if left:
        print(f"left out:  {left}")


def _excluded_line(ex: dict[str, int], without_score_hint: str | None = None) -> str:
    """What the answer left out, naming only what there is (and, for runs without a score,
    `without_score_hint`: why that may be)."""
    parts = []
    if ex["failed_runs"]:
        parts.append(f"{ex['failed_runs']} failed run(s) of {ex['failed_trials']} trial(s)")
    if ex["duplicate_runs"]:
        parts.append(f"{ex['duplicate_runs']} repeated (configuration, seed) run(s) counted once")
    if ex["runs_without_score"]:
        why = f" ({without_score_hint})" if without_score_hint else ""
        parts.append(f"{ex['runs_without_score']} run(s) without a score here{why}")
    return "; ".join(parts) or "no run (none failed, repeated a seed or lacks a score)"


_KINDS = {
    "invalid": "set aside (rows that break the schema's meaning)",
    "unreadable": "unreadable",
    "leftover": "left by an interrupted compaction",
}


def left_out_line(skipped: list[SkippedFragment]) -> str | None:
    """How many fragments an answer left out and why, by kind (None when none were)."""
    if not skipped:
        return None
    kinds = Counter(s.kind for s in skipped)
    why = ", ".join(f"{n} {_KINDS.get(k, k)}" for k, n in sorted(kinds.items()))
    return (
        f"{len(skipped)} fragment(s): {why}; their rows are in no number above (each is named "
        f"on stderr; exit code {SKIPPED_EXIT})"
    )


def _per_language(pl: PerLanguage) -> tuple[list[dict[str, Any]], str, list[str]]:
    """The rows of a `best --per-language` table (each language, then the target mean), its
    title, and the lines under it that say how each was chosen."""
    entries = [*pl.languages, *([pl.target_mean] if pl.target_mean else [])]
    title = f"best configuration per target language: {pl.task} {pl.metric} ({pl.split})"
    lines = [
        f"languages: {pl.rule.describe(target_mean=False)}",
        f"mean:      {pl.rule.describe(target_mean=True)}",
    ]
    return entries, title, lines


def print_best_per_language(path: str | Path, *, select: str | None = None) -> list[str]:
    """Print the answer of a sweep (used after a sweep finishes): the best configuration of
    each target language, from the confirmation stage when there is one. Returns the
    entries of a confirmation's answer that lack their comparison with the baseline
    (`without_baseline`: the confirmation trains the baseline, so a missing comparison is a
    failure; a search that never ran the baseline just says so under its table).

    Prints a note instead when there is nothing to rank yet (or several tasks: see `best`).
    """
    try:
        res = _read_stage(str(path), "auto")
        pl = best_per_language(res, select=select)
    except ResultsError as exc:
        print(f"note: no per-language table: {printable(exc)}")
        return []
    if res.sweep.get("stage") == "confirm":
        n = len(res.sweep.get("candidates") or []) or 100
        rk = best(res, "target-mean", select=select, top=n)
        _print_entries(
            "rank",
            [_row(e["rank"], e) for e in rk.entries],
            f"confirmed configurations, by {rk.rule.configuration_data(True)}: "
            f"{rk.task} target-mean {rk.metric} ({rk.split})",
            rk,
            [f"selection: {rk.rule.describe(target_mean=True)}"],
        )
        print()
    entries, title, lines = _per_language(pl)
    rows = [_row(e["language"], e) for e in entries]
    # a race's rounds were printed under the confirmed configurations
    _print_entries("language", rows, title, pl, lines, race=res.sweep.get("stage") != "confirm")
    return without_baseline(entries) if res.sweep.get("stage") == "confirm" else []
