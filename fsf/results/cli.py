"""Results subcommands: `best`, `show`, `export`, `report`, `compact`.

`register(subparsers)` adds them to any argparse subparsers object (fsf-sweep mounts them);
each sets `func` and `handler` (the same function) taking the parsed `argparse.Namespace` and
returning an exit code.
Bad input raises `ResultsUsageError` (an `FsfError`, exit code 2). An answer that had to leave
out unreadable fragments is printed, the fragments are listed on stderr, and the exit code is
`SKIPPED_EXIT` (3), so that a script never takes a partial answer for a whole one. Standalone:

    python -m fsf.results.cli best --sweep DIR --lang de --top 5 --format json
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fsf._cli import print_table, run_main
from fsf.errors import os_reason
from fsf.results._errors import ResultsError, ResultsUsageError, ResultsWriteError
from fsf.results.query import SELECTIONS, best, best_per_language, export, flat, summary, write_csv
from fsf.results.reader import Results, SkippedFragment, compact, read_results

__all__ = ["FORMATS", "SKIPPED_EXIT", "exit_code", "main", "print_best_per_language", "register"]

FORMATS = ("table", "json", "csv")
#: Exit code of a query answered without the rows of skipped (unreadable) fragments.
SKIPPED_EXIT = 3


def exit_code(skipped: Sequence[SkippedFragment]) -> int:
    """0, or `SKIPPED_EXIT` when fragments were left out of the answer."""
    return SKIPPED_EXIT if skipped else 0


def _warn_skipped(skipped: list[SkippedFragment]) -> None:
    if not skipped:
        return
    print(
        f"warning: {len(skipped)} fragment(s) skipped; their rows are NOT in these answers "
        f"(exit code {SKIPPED_EXIT}):",
        file=sys.stderr,
    )
    for s in skipped:
        print(f"  {s.reason}", file=sys.stderr)


def _read(path: str) -> Results:
    res = read_results(path)
    _warn_skipped(res.skipped)
    return res


def _check_format(fmt: str, allowed: Sequence[str] = FORMATS) -> None:
    if fmt not in allowed:
        raise ResultsUsageError(f"unknown --format {fmt!r}; choose one of: {', '.join(allowed)}")


def _params(entry: dict[str, Any]) -> str:
    p = entry["config"].get("params") or {}
    return " ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in p.items())


def _dump(obj: Any) -> None:
    print(json.dumps(obj, indent=2, allow_nan=False, default=str))


def _best(args: argparse.Namespace) -> int:
    _check_format(args.format)
    if args.select not in SELECTIONS:
        raise ResultsUsageError(
            f"unknown --select {args.select!r}; choose one of: {', '.join(SELECTIONS)}"
        )
    if args.per_language == (args.lang is not None):
        raise ResultsUsageError("pass exactly one of --lang L or --per-language")
    res = _read(args.sweep)
    kw = {"task": args.task, "metric": args.metric, "select": args.select, "split": args.split}
    if args.per_language:
        pl = best_per_language(res, **kw)
        entries = [*pl.languages, *([pl.target_mean] if pl.target_mean else [])]
        data, oracle, excluded = pl.to_dict(), pl.oracle, pl.excluded
        title = f"best configuration per target language: {pl.task} {pl.metric} ({pl.split})"
    else:
        rk = best(res, args.lang, top=args.top, **kw)
        entries, data, oracle, excluded = rk.entries, rk.to_dict(), rk.oracle, rk.excluded
        title = f"best configurations for {rk.language}: {rk.task} {rk.metric} ({rk.split})"
    if args.format == "json":
        _dump(data)
    elif args.format == "csv":
        write_csv([flat(e) for e in entries], sys.stdout)
    else:
        sel = f"selection {args.select}" + (
            " -- ORACLE: steps chosen on the evaluated language's own dev data" if oracle else ""
        )
        rows = [
            [
                e["language"] if args.per_language else e["rank"],
                e["score"],
                e["std"],
                e["n_seeds"],
                e["step"],
                e["trial_id"],
                e["policy"],
                _params(e),
            ]
            for e in entries
        ]
        first = "language" if args.per_language else "rank"
        print_table(
            [first, "score", "std", "seeds", "step", "trial", "policy", "params"],
            rows,
            title=f"{title}; {sel}",
        )
        print(
            f"excluded: {excluded['failed_runs']} failed run(s) of "
            f"{excluded['failed_trials']} trial(s); {excluded['runs_without_score']} run(s) "
            "without a score here"
        )
    return exit_code(res.skipped)


def print_best_per_language(path: str | Path, *, select: str = "source-dev") -> None:
    """Print the best configuration of each target language (used after a sweep finishes).

    Prints a note instead when there is nothing to rank yet (or several tasks: see `best`).
    """
    try:
        res = _read(str(path))
        pl = best_per_language(res, select=select)
    except ResultsError as exc:
        print(f"note: no per-language table: {exc}")
        return
    entries = [*pl.languages, *([pl.target_mean] if pl.target_mean else [])]
    print_table(
        ["language", "score", "std", "seeds", "step", "trial", "policy", "params"],
        [
            [
                e["language"],
                e["score"],
                e["std"],
                e["n_seeds"],
                e["step"],
                e["trial_id"],
                e["policy"],
                _params(e),
            ]
            for e in entries
        ],
        title=f"best configuration per target language: {pl.task} {pl.metric} ({pl.split}); "
        f"selection {select}",
    )


def _show(args: argparse.Namespace) -> int:
    _check_format(args.format, ("table", "json"))
    res = _read(args.dir)
    s = summary(res, task=args.task)
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
        title=f"{s['name']}: {s['rows']:,} rows in {s['fragments']} fragments",
    )
    if s["objectives"]:
        print_table(
            ["objective", "mode", "value", "trial", "policy", "seeds", "task"],
            [
                [
                    o["metric"],
                    o["mode"],
                    o.get("value"),
                    o.get("trial_id"),
                    o.get("policy"),
                    o.get("n_seeds"),
                    o["task"],
                ]
                for o in s["objectives"]
            ],
            title="best per objective (source-dev selected steps)",
        )
    if s["policies"]:
        print_table(
            ["policy", "configs", "runs", "target mean", "source", "gap", "best trial", "task"],
            [
                [
                    p["policy"],
                    p["n_configs"],
                    p["n_runs"],
                    p["test_target_mean"],
                    p["test_source"],
                    p["test_gap"],
                    (p["best"] or {}).get("trial_id"),
                    p["task"],
                ]
                for p in s["policies"]
            ],
            title="policies compared: best configuration of each (test split)",
        )
    for n in s.get("notes", []):
        print(f"note: {n}")
    return exit_code(res.skipped)


def _export(args: argparse.Namespace) -> int:
    res = _read(args.dir)
    try:
        path = export(res, args.to)
    except OSError as exc:
        raise ResultsWriteError(
            f"cannot write {exc.filename or args.to}: {os_reason(exc)}"
        ) from exc
    print(f"wrote {res.table.num_rows:,} rows to {path}")
    return exit_code(res.skipped)


def _report(args: argparse.Namespace) -> int:
    from fsf.results.report import write_report

    res = _read(args.dir)
    try:
        rep = write_report(res, args.out, task=args.task)
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


def register(subparsers: Any) -> None:
    """Add `best`, `show`, `export`, `report` and `compact` to an argparse subparsers object."""
    b = subparsers.add_parser("best", help="best configurations for a target language")
    b.add_argument("--sweep", required=True, metavar="DIR", help="sweep or results folder")
    b.add_argument("--lang", help="target language to rank configurations for")
    b.add_argument("--per-language", action="store_true", help="best for every language")
    b.add_argument("--task", help="task (required when the results hold several)")
    b.add_argument("--metric", help="metric (default: the task's primary metric)")
    b.add_argument(
        "--select",
        default="source-dev",
        metavar="|".join(SELECTIONS),
        help="which evaluation step of a run counts (target-dev is an oracle)",
    )
    b.add_argument("--split", default="test", metavar="test|dev", help="split of the score")
    b.add_argument("--top", type=int, default=1, help="configurations to list (with --lang)")
    b.add_argument("--format", default="table", metavar="|".join(FORMATS))
    b.set_defaults(func=_best, handler=_best)
    s = subparsers.add_parser("show", help="trials by status, best per objective, policies")
    s.add_argument("dir", metavar="DIR")
    s.add_argument("--task")
    s.add_argument("--format", default="table", metavar="table|json")
    s.set_defaults(func=_show, handler=_show)
    e = subparsers.add_parser("export", help="all validated rows to one .parquet or .csv file")
    e.add_argument("dir", metavar="DIR")
    e.add_argument("--to", required=True, metavar="FILE", help="FILE.parquet or FILE.csv")
    e.set_defaults(func=_export, handler=_export)
    r = subparsers.add_parser("report", help="report.md, report.html and PNG plots")
    r.add_argument("dir", metavar="DIR")
    r.add_argument(
        "--out", metavar="DIR", help="local output folder (default: DIR/report, or ./report-NAME)"
    )
    r.add_argument("--task")
    r.set_defaults(func=_report, handler=_report)
    c = subparsers.add_parser("compact", help="fold finished runs' fragments into one file")
    c.add_argument("dir", metavar="DIR")
    c.add_argument("--min-fragments", type=int, default=2)
    c.set_defaults(func=_compact, handler=_compact)


def main(argv: list[str] | None = None) -> int:
    """`python -m fsf.results.cli SUBCOMMAND ...` (the same subcommands as fsf-sweep's)."""
    parser = argparse.ArgumentParser(prog="python -m fsf.results.cli", description=__doc__)
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return run_main(lambda: args.func(args))


if __name__ == "__main__":
    sys.exit(main())
