"""Results subcommands: `best`, `show`, `export`, `report`, `compact`.

`COMMANDS` holds them (`fsf best ...`; `register(subparsers)` adds them to any argparse
subparsers object, as fsf-sweep does); each parser's `handler` takes the parsed
`argparse.Namespace` and returns an exit code.
Bad input raises `ResultsUsageError` (a `fsf.errors.UsageError`, exit code 2). An answer that had to leave
out unreadable fragments is printed, the fragments are listed on stderr, and the exit code is
`SKIPPED_EXIT` (3), so that a script never takes a partial answer for a whole one. Standalone:

    python -m fsf.results.cli best DIR --lang de --top 5 --format json
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fsf._cli import Command, add_commands, add_common_arguments, dispatch, print_table
from fsf.errors import os_reason
from fsf.results._errors import ResultsError, ResultsUsageError, ResultsWriteError
from fsf.results.export import export, flat, write_csv
from fsf.results.ranking import best, best_per_language, entry_run_config
from fsf.results.reader import Results, SkippedFragment, compact, confirmation_of, read_results
from fsf.results.selection import DEFAULT_RULE, RULES
from fsf.results.summary import summary

__all__ = [
    "COMMANDS",
    "FORMATS",
    "SKIPPED_EXIT",
    "STAGES",
    "command",
    "exit_code",
    "main",
    "print_best_per_language",
    "register",
]

FORMATS = ("table", "json", "csv")
#: Which stage of a sweep a query answers from: `auto` = the confirmation when there is one.
STAGES = ("auto", "search", "confirm")
#: Exit code of a query answered without the rows of skipped (unreadable) fragments.
SKIPPED_EXIT = 3
#: Fragments skipped (and warned about) while the current command ran.
_SKIPPED: list[SkippedFragment] = []


def exit_code(skipped: Sequence[SkippedFragment] = ()) -> int:
    """0, or `SKIPPED_EXIT` when fragments were left out of the answer: `skipped`, or any the
    current command warned about (a search stage read before its confirmation)."""
    return SKIPPED_EXIT if skipped or _SKIPPED else 0


def command(fn: Any) -> Any:
    """A subcommand handler whose exit code counts only the fragments it skipped itself."""

    def handler(args: argparse.Namespace) -> int:
        _SKIPPED.clear()
        return int(fn(args))

    return handler


def _warn_skipped(skipped: list[SkippedFragment]) -> None:
    _SKIPPED.extend(skipped)
    if not skipped:
        return
    print(
        f"warning: {len(skipped)} fragment(s) skipped; their rows are NOT in these answers "
        f"(exit code {SKIPPED_EXIT}):",
        file=sys.stderr,
    )
    for s in skipped:
        print(f"  {s.reason}", file=sys.stderr)


def read_warning_skipped(path: str) -> Results:
    """`read_results(path)`, with every skipped fragment named on stderr (the commands of
    fsf-sweep that read results all use this)."""
    res = read_results(path)
    _warn_skipped(res.skipped)
    return res


def _read_stage(path: str, stage: str) -> Results:
    """The results a query answers from: the confirmation stage when there is one (`auto`,
    `confirm`), else the search."""
    if stage not in STAGES:
        raise ResultsUsageError(f"unknown --stage {stage!r}; choose one of: {', '.join(STAGES)}")
    res = read_warning_skipped(path)
    if stage == "search" or res.sweep.get("stage") == "confirm":
        return res
    confirmed = confirmation_of(res)
    if confirmed is None:
        if stage == "confirm":
            raise ResultsUsageError(
                f"{path} has no confirmation stage yet; run `fsf-sweep confirm {path}`"
            )
        return res
    _warn_skipped(confirmed.skipped)
    return confirmed


def _check_format(fmt: str, allowed: Sequence[str] = FORMATS) -> None:
    if fmt not in allowed:
        raise ResultsUsageError(f"unknown --format {fmt!r}; choose one of: {', '.join(allowed)}")


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


def _dump(obj: Any) -> None:
    print(json.dumps(obj, indent=2, allow_nan=False, default=str))


def _sweep_dir(args: argparse.Namespace) -> str:
    """`best DIR` (positional, as every results command) or the older `best --sweep DIR`."""
    given = [d for d in (args.dir, args.sweep) if d is not None]
    if not given:
        raise ResultsUsageError("give the sweep folder: fsf-sweep best DIR --lang L")
    if len(set(given)) > 1:
        raise ResultsUsageError(f"two sweep folders given ({given[0]} and --sweep {given[1]})")
    return given[0]


def _baseline_arg(pairs: list[str] | None) -> dict[str, Any] | None:
    """`--baseline policy.name=df` (repeatable) as a dict; None: the sweep's own."""
    if not pairs:
        return None
    import yaml

    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ResultsUsageError(f"--baseline {pair!r}: expected KEY=VALUE, e.g. policy.name=df")
        out[key.strip()] = yaml.safe_load(value)
    return out


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
    b = e.get("budget") or {}
    trained, planned = b.get("trained") or [], b.get("planned") or []
    if not trained:
        return "-"
    text = f"{max(trained)}/{max(planned)}" if planned and max(planned) >= 0 else str(max(trained))
    return text + ("" if b.get("full") else " stopped")


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


def _print_entries(
    first: str, rows: list[list[Any]], title: str, answer: Any, lines: list[str]
) -> None:
    print_table([first, *_HEAD, "policy", "params"], rows, title=title)
    stage = answer.stage
    base = ", ".join(f"{k}={v}" for k, v in answer.baseline.items())
    print(f"stage:     {stage['note']}")
    for line in lines:
        print(line)
    print(
        f"scores:    {answer.metric} x 100 on {answer.split}; 'chosen by': the mean selection "
        f"score; vs baseline ({base}, chosen by the same rule): paired difference over shared "
        "seeds, 95% t-interval ('~ noise': it contains 0)"
    )
    ex = answer.excluded
    print(
        f"excluded:  {ex['failed_runs']} failed run(s) of {ex['failed_trials']} trial(s); "
        f"{ex['duplicate_runs']} repeated (configuration, seed) run(s) counted once; "
        f"{ex['runs_without_score']} run(s) without a score here"
    )


def _emit(res: Results, entry: dict[str, Any], path: str, rule: Any) -> None:
    import yaml

    from fsf.results.storage import write_bytes_atomic

    config = entry_run_config(res, entry)
    config["seed"] = entry["seeds"][0]
    header = (
        f"# fsf run config of configuration {entry['trial_id']} (policy {entry['policy']}) of "
        f"{res.name}, the best for {entry['language']}\n"
        f"# {rule.describe(entry['language'] == 'target-mean')}\n"
        f"# seeds behind it: {entry['seeds']}; budget: {_budget(entry)} steps\n"
        "# run it: fsf-train --config THIS_FILE [--set seed=N]\n"
    )
    body = yaml.safe_dump(config, sort_keys=False)
    write_bytes_atomic(Path(path), (header + body).encode())
    print(f"wrote the run config of {entry['trial_id']} to {path}", file=sys.stderr)


def _best(args: argparse.Namespace) -> int:
    sweep = _sweep_dir(args)
    _check_format(args.format)
    if args.select not in RULES:
        raise ResultsUsageError(
            f"unknown --select {args.select!r}; choose one of: {', '.join(RULES)}"
        )
    if args.per_language == (args.lang is not None):
        raise ResultsUsageError("pass exactly one of --lang L or --per-language")
    res = _read_stage(sweep, args.stage)
    kw = {
        "task": args.task,
        "metric": args.metric,
        "select": args.select,
        "split": args.split,
        "baseline": _baseline_arg(args.baseline),
    }
    if args.per_language:
        pl = best_per_language(res, **kw)
        entries = [*pl.languages, *([pl.target_mean] if pl.target_mean else [])]
        data, answer = pl.to_dict(), pl
        title = f"best configuration per target language: {pl.task} {pl.metric} ({pl.split})"
        lines = [
            f"languages: {pl.rule.describe(target_mean=False)}",
            f"mean:      {pl.rule.describe(target_mean=True)}",
        ]
        emit = pl.target_mean
    else:
        rk = best(res, args.lang, top=args.top, **kw)
        entries, data, answer = rk.entries, rk.to_dict(), rk
        title = f"best configurations for {rk.language}: {rk.task} {rk.metric} ({rk.split})"
        lines = [f"selection: {rk.rule.describe(target_mean=rk.language == 'target-mean')}"]
        emit = rk.entries[0] if rk.entries else None
    if answer.oracle:
        title = f"ORACLE (chosen on test data) -- {title}"
    if args.emit_config:
        if emit is None:
            raise ResultsError("no configuration to emit: nothing is ranked here yet")
        _emit(res, emit, args.emit_config, answer.rule)
    if args.format == "json":
        _dump(data)
    elif args.format == "csv":
        write_csv([flat(e) for e in entries], sys.stdout)
    else:
        first = "language" if args.per_language else "rank"
        rows = [_row(e["language"] if args.per_language else e["rank"], e) for e in entries]
        _print_entries(first, rows, title, answer, lines)
    return exit_code(res.skipped)


def print_best_per_language(path: str | Path, *, select: str | None = None) -> None:
    """Print the answer of a sweep (used after a sweep finishes): the best configuration of
    each target language, from the confirmation stage when there is one.

    Prints a note instead when there is nothing to rank yet (or several tasks: see `best`).
    """
    try:
        res = _read_stage(str(path), "auto")
        pl = best_per_language(res, select=select)
    except ResultsError as exc:
        print(f"note: no per-language table: {exc}")
        return
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
    entries = [*pl.languages, *([pl.target_mean] if pl.target_mean else [])]
    title = f"best configuration per target language: {pl.task} {pl.metric} ({pl.split})"
    _print_entries(
        "language",
        [_row(e["language"], e) for e in entries],
        title,
        pl,
        [
            f"languages: {pl.rule.describe(target_mean=False)}",
            f"mean:      {pl.rule.describe(target_mean=True)}",
        ],
    )


def _show(args: argparse.Namespace) -> int:
    _check_format(args.format, ("table", "json"))
    res = _read_stage(args.dir, args.stage)
    s = summary(res, task=args.task, select=args.select, baseline=_baseline_arg(args.baseline))
    if args.format == "json":
        _dump(s)
        return exit_code(res.skipped)
    statuses = sorted(set(s["runs"]["by_status"]) | set(s["trials"]["by_status"]))
    print_table(
        ["", "total", *statuses],
        [
            [
                "trials",
                s["trials"]["total"],
                *(s["trials"]["by_status"].get(x, 0) for x in statuses),
            ],
            ["runs", s["runs"]["total"], *(s["runs"]["by_status"].get(x, 0) for x in statuses)],
        ],
        title=f"{s['name']} ({s['stage']['name']} stage): {s['rows']:,} rows in "
        f"{s['fragments']} fragments",
    )
    if s["objectives"]:
        print_table(
            ["objective", "mode", "value", "trial", "policy", "seeds", "budget", "task"],
            [
                [
                    o["metric"],
                    o["mode"],
                    o.get("value"),
                    o.get("trial_id"),
                    o.get("policy"),
                    o.get("n_seeds"),
                    _budget(o),
                    o["task"],
                ]
                for o in s["objectives"]
            ],
            title="best per objective (the value Optuna received: the objective at each run's "
            "checkpoint, mean over distinct seeds)",
        )
    if s["policies"]:
        print_table(
            [
                "policy",
                "configs",
                "runs",
                "target mean",
                "source",
                "gap",
                "seeds",
                "vs baseline [95% CI]",
                "best trial",
                "task",
            ],
            [
                [
                    p["policy"],
                    p["n_configs"],
                    p["n_runs"],
                    _pct(p["test_target_mean"]),
                    _pct(p["test_source"]),
                    _pct(p["test_gap"]),
                    (p["best"] or {}).get("n_seeds"),
                    _vs(p["vs_baseline"]),
                    (p["best"] or {}).get("trial_id"),
                    p["task"],
                ]
                for p in s["policies"]
            ],
            title="policies compared: each by its best configuration (test scores x 100)",
        )
    print(f"selection: {s['selection']['description']}")
    print(f"stage:     {s['stage']['note']}")
    for n in s.get("notes", []):
        print(f"note: {n}")
    return exit_code(res.skipped)


def _export(args: argparse.Namespace) -> int:
    res = read_warning_skipped(args.dir)
    try:
        path = export(res, args.to)
    except OSError as exc:
        raise ResultsWriteError(
            f"cannot write {exc.filename or args.to}: {os_reason(exc)}"
        ) from exc
    print(f"wrote {res.table.num_rows:,} rows to {path}")
    print(
        "every evaluation of every run, nothing selected; fsf's answers (which rule chose which "
        "configuration) come from `fsf-sweep best`, and docs/results.md gives SQL that "
        "reproduces them from these rows"
    )
    return exit_code(res.skipped)


def _report(args: argparse.Namespace) -> int:
    from fsf.analysis.report import write_report

    res = read_warning_skipped(args.dir)
    try:
        rep = write_report(res, args.out, task=args.task, select=args.select)
    except OSError as exc:
        where = exc.filename or args.out or "the report folder"
        raise ResultsWriteError(
            f"cannot write the report to {where}: {os_reason(exc)}; pass --out DIR, a folder "
            "you can write"
        ) from exc
    print(f"wrote {rep.markdown} and {rep.html} ({len(rep.images)} plots)")
    for n in rep.notes:
        print(f"note: {n}")
    return exit_code(res.skipped)


def _compact(args: argparse.Namespace) -> int:
    rep = compact(args.dir, min_fragments=args.min_fragments)
    if rep.written:
        print(f"compacted {len(rep.compacted)} fragment(s), {rep.rows:,} rows, into {rep.written}")
    else:
        print("nothing to compact (too few fragments of finished runs)")
    if rep.running:
        print(f"left {len(rep.running)} fragment(s) of running trials in place")
    if rep.removed_leftovers:
        print(f"removed {len(rep.removed_leftovers)} leftover(s) of an interrupted compaction")
    _warn_skipped(rep.skipped)
    return exit_code(rep.skipped)


def _add_selection(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--select",
        default=DEFAULT_RULE,
        metavar="|".join(RULES),
        help="selection rule: which data choose the configuration and each run's checkpoint "
        "(default objective: the sweep's own objective on dev data; oracle-test chooses on "
        "test data and is labelled ORACLE)",
    )
    p.add_argument(
        "--baseline",
        action="append",
        metavar="KEY=VALUE",
        help="the configuration to compare against (repeatable; default: the sweep's "
        "confirm.baseline, else policy.name=df)",
    )
    p.add_argument(
        "--stage",
        default="auto",
        metavar="|".join(STAGES),
        help="answer from the search or the confirmation stage (default: the confirmation "
        "when the sweep has one)",
    )


def _best_args(b: argparse.ArgumentParser) -> None:
    b.add_argument("dir", nargs="?", metavar="DIR", help="sweep or results folder")
    b.add_argument("--sweep", metavar="DIR", help=argparse.SUPPRESS)  # the older spelling
    b.add_argument("--lang", help="target language (or target-mean) to rank configurations for")
    b.add_argument("--per-language", action="store_true", help="best for every language")
    b.add_argument("--task", help="task (required when the results hold several)")
    b.add_argument("--metric", help="metric (default: the task's primary metric)")
    _add_selection(b)
    b.add_argument("--split", default="test", metavar="test|dev", help="split reported")
    b.add_argument("--top", type=int, default=1, help="configurations to list (with --lang)")
    b.add_argument("--format", default="table", metavar="|".join(FORMATS))
    b.add_argument(
        "--emit-config",
        metavar="FILE",
        help="write the run config of the best configuration (--lang: rank 1; --per-language: "
        "the target mean's) for fsf-train --config FILE",
    )


def _show_args(s: argparse.ArgumentParser) -> None:
    s.add_argument("dir", metavar="DIR")
    s.add_argument("--task")
    _add_selection(s)
    s.add_argument("--format", default="table", metavar="table|json")


def _export_args(e: argparse.ArgumentParser) -> None:
    e.add_argument("dir", metavar="DIR")
    e.add_argument("--to", required=True, metavar="FILE", help="FILE.parquet or FILE.csv")


def _report_args(r: argparse.ArgumentParser) -> None:
    r.add_argument("dir", metavar="DIR")
    r.add_argument(
        "--out", metavar="DIR", help="local output folder (default: DIR/report, or ./report-NAME)"
    )
    r.add_argument("--task")
    r.add_argument(
        "--select",
        default=DEFAULT_RULE,
        metavar="|".join(RULES),
        help="selection rule (default objective; see `best --help`)",
    )


def _compact_args(c: argparse.ArgumentParser) -> None:
    c.add_argument("dir", metavar="DIR")
    c.add_argument("--min-fragments", type=int, default=2)


#: The results commands (fsf best|show|export|report|compact; fsf-sweep mounts them too).
COMMANDS: dict[str, Command] = {
    "best": Command("best configurations for a target language", _best_args, command(_best)),
    "show": Command("trials by status, best per objective, policies", _show_args, command(_show)),
    "export": Command(
        "all validated rows to one .parquet or .csv file", _export_args, command(_export)
    ),
    "report": Command("report.md, report.html and PNG plots", _report_args, command(_report)),
    "compact": Command(
        "fold finished runs' fragments into one file", _compact_args, command(_compact)
    ),
}


def register(subparsers: Any) -> None:
    """Add `best`, `show`, `export`, `report` and `compact` to an argparse subparsers object."""
    add_commands(subparsers, COMMANDS)


def main(argv: list[str] | None = None) -> int:
    """`python -m fsf.results.cli SUBCOMMAND ...` (the same subcommands as fsf-sweep's)."""
    parser = argparse.ArgumentParser(prog="python -m fsf.results.cli", description=__doc__)
    register(parser.add_subparsers(dest="command", required=True))
    return dispatch(add_common_arguments(parser, "python -m fsf.results.cli"), argv)


if __name__ == "__main__":
    sys.exit(main())
