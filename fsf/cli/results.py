"""Results subcommands: `best`, `show`, `export`, `report`, `compact`.

`COMMANDS` holds them (`fsf best ...`; `register(subparsers)` adds them to any argparse
subparsers object, as fsf-sweep does); each parser's `handler` takes the parsed
`argparse.Namespace` and returns an exit code.
Bad input raises `ResultsUsageError` (a `fsf.errors.UsageError`, exit code 2). An answer that
had to leave out unreadable fragments is printed, the fragments are listed on stderr, and the
exit code is `SKIPPED_EXIT` (3), so that a script never takes a partial answer for a whole one
(`fsf.cli.results_common`). The tables `best` prints are `fsf.cli.results_tables`. Standalone:

    python -m fsf.cli.results best DIR --lang de --top 5 --format json
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from fsf.cli._base import Command, add_commands, add_common_arguments, dispatch, print_table

# What the commands share is fsf.cli.results_common, the tables of `best` are
# fsf.cli.results_tables; the names this module has always offered stay importable from it.
from fsf.cli.results_common import (
    FORMATS,
    STAGES,
    Problems,
    _dump,
    _read_stage,
    _sweep_dir,
    baseline_arg,
    check_format,
    check_stage,
    command,
    exit_code,
    read_warning_skipped,
    warn_skipped,
)
from fsf.cli.results_tables import (
    _budget,
    _pct,
    _per_language,
    _print_entries,
    _row,
    _vs,
    left_out_line,
)
from fsf.errors import os_reason
from fsf.results import ResultsError, ResultsWriteError
from fsf.results.compaction import compact
from fsf.results.exporting import check_target, export, flat, write_csv
from fsf.results.provenance import provenance_summary
from fsf.results.ranking import PerLanguage, Ranking, best, best_per_language, entry_run_config
from fsf.results.reader import Results, resolve_root
from fsf.results.selection import DEFAULT_RULE, RULES
from fsf.results.summarize import summary
from fsf.text import printable

__all__ = [
    "COMMANDS",
    "main",
    "register",
]


def _emit(res: Results, entry: dict[str, Any], path: str, rule: Any) -> None:
    import yaml

    from fsf.results.storage import write_bytes_atomic

    config = entry_run_config(res, entry)
    config["seed"] = entry["seeds"][0]
    header = (
        f"# fsf run config of configuration {printable(entry['trial_id'])} (policy "
        f"{printable(entry['policy'])}) of {printable(res.name)}, the best for "
        f"{printable(entry['language'])}\n"
        f"# {rule.describe(entry['language'] == 'target-mean')}\n"
        f"# seeds behind it: {entry['seeds']}; budget: {_budget(entry)} steps\n"
        "# run it: fsf-train --config THIS_FILE [--set seed=N]\n"
    )
    body = yaml.safe_dump(config, sort_keys=False)
    write_bytes_atomic(Path(path), (header + body).encode())
    print(f"wrote the run config of {printable(entry['trial_id'])} to {path}", file=sys.stderr)


def _best(args: argparse.Namespace) -> int:
    problems = Problems()
    sweep = problems.check(_sweep_dir, args)
    problems.check(check_format, args.format)
    problems.check(check_stage, args.stage)
    if args.select not in RULES:
        problems.found.append(
            f"unknown --select {args.select!r}; choose one of: {', '.join(RULES)}"
        )
    if args.per_language == (args.lang is not None):
        problems.found.append("pass exactly one of --lang L or --per-language")
    problems.folder(sweep)
    problems.report()
    assert sweep is not None
    res = _read_stage(sweep, args.stage)
    kw = {
        "task": args.task,
        "metric": args.metric,
        "select": args.select,
        "split": args.split,
        "baseline": baseline_arg(args.baseline),
    }
    answer: PerLanguage | Ranking
    if args.per_language:
        pl = best_per_language(res, **kw)
        entries, title, lines = _per_language(pl)
        data, answer = pl.to_dict(), pl
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


def _show(args: argparse.Namespace) -> int:
    problems = Problems()
    problems.check(check_format, args.format, ("table", "json"))
    problems.check(check_stage, args.stage)
    problems.folder(args.dir)
    problems.report()
    res = _read_stage(args.dir, args.stage)
    s = summary(res, task=args.task, select=args.select, baseline=baseline_arg(args.baseline))
    stack = provenance_summary(res)
    if args.format == "json":
        from fsf.results.summarize import policy_evp

        evp = policy_evp(_read_stage(args.dir, "search"), task=args.task)
        _dump({**s, "provenance": stack, "evp": evp})
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
    _print_evp(args)
    print(f"selection: {printable(s['selection']['description'])}")
    print(f"stage:     {printable(s['stage']['note'])}")
    for line in s["stage"].get("lines") or []:
        print(f"race:      {printable(line)}")
    _print_stack(stack)
    for n in s.get("notes", []):
        print(f"note: {printable(n)}")
    left = left_out_line(res.skipped)
    if left:
        print(f"left out:  {left}")
    return exit_code(res.skipped)


#: The trial counts `fsf show` prints the expected best at.
_EVP_N = (1, 2, 4, 8, 16, 32, 64)


def _print_evp(args: argparse.Namespace) -> None:
    """The search's expected best objective after n trials, per policy (Dodge et al. 2019)."""
    from fsf.results.summarize import policy_evp

    curves = [c for c in policy_evp(_read_stage(args.dir, "search"), task=args.task) if c["trials"]]
    if len(curves) < 1:
        return
    most = max(c["trials"] for c in curves)
    ns = [n for n in _EVP_N if n <= most] + ([most] if most not in _EVP_N else [])
    rows = []
    for c in curves:
        cells = []
        for n in ns:
            if n > c["trials_with_value"]:
                cells.append("-")
            else:
                cells.append(f"{100 * c['mean'][n - 1]:.1f} ± {100 * c['std'][n - 1]:.1f}")
        rows.append([c["policy"], c["trials"], *cells, c["task"]])
    metric = curves[0]["metric"]
    print_table(
        ["policy", "trials", *(f"n={n}" for n in ns), "task"],
        rows,
        title=f"search: expected best {metric} (x 100) after n trials, mean ± std over searches "
        "of that size drawn from the policy's trials (Dodge et al. 2019); compare policies at "
        "equal n, not by their single best trial",
    )


def _n_runs(n: int) -> str:
    return f"{n} run" if n == 1 else f"{n} runs"


def _print_stack(stack: dict) -> None:
    """What the driver and the runs ran with (`provenance_summary`)."""
    if stack["driver"]:
        print(f"driver:    {stack['driver']}")
    for group in stack["runs"]:
        print(f"runs:      {_n_runs(group['runs'])} with {group['stack']}")
    if stack["unrecorded"]:
        print(f"runs:      {_n_runs(stack['unrecorded'])} recorded no versions")
    if not stack["agree"]:
        print(
            "note: the runs ran with different versions or devices (above); compare them with care"
        )


def _export(args: argparse.Namespace) -> int:
    problems = Problems()
    problems.check(check_stage, args.stage)
    where = problems.check(resolve_root, args.dir)
    if where is not None:  # before anything is read: a target among the results is refused
        problems.check(check_target, args.to, where[1] or where[0])
    problems.report()
    res = _read_stage(args.dir, args.stage)
    try:
        path = export(res, args.to)
    except OSError as exc:
        raise ResultsWriteError(
            f"cannot write {exc.filename or args.to}: {os_reason(exc)}"
        ) from exc
    stage = "confirmation" if res.sweep.get("stage") == "confirm" else "search"
    print(f"wrote {res.table.num_rows:,} rows of the {stage} stage ({res.root}) to {path}")
    print(
        "every evaluation of every run of the stage `fsf best` answers from (--stage to "
        "choose), validated, nothing selected; fsf's answers (which rule chose which "
        "configuration) come from `fsf best`, and docs/results.md gives SQL that reproduces "
        "them from these rows"
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
        print(f"note: {printable(n)}")
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
    warn_skipped(rep.skipped)
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
    _add_stage(
        p,
        "answer from the search or the confirmation stage (default: the confirmation when "
        "the sweep has one)",
    )


def _add_stage(p: argparse.ArgumentParser, help: str) -> None:
    p.add_argument("--stage", default="auto", metavar="|".join(STAGES), help=help)


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
    e.add_argument(
        "--to",
        required=True,
        metavar="FILE",
        help="FILE.parquet or FILE.csv, outside the sweep folder",
    )
    _add_stage(
        e,
        "the rows of the search or the confirmation stage (default: those `best` answers "
        "from: the confirmation when the sweep has one)",
    )


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
    """`python -m fsf.cli.results SUBCOMMAND ...` (the same subcommands as fsf-sweep's)."""
    parser = argparse.ArgumentParser(prog="python -m fsf.cli.results", description=__doc__)
    register(parser.add_subparsers(dest="command", required=True))
    return dispatch(add_common_arguments(parser, "python -m fsf.cli.results"), argv)


if __name__ == "__main__":
    sys.exit(main())
