"""Analysis subcommands of `fsf-sweep`: `gap` and `cka` (the probe command is fsf.sweep's).

    fsf-sweep gap DIR [--split dev|test] [--curves] [--window W] [--threshold T]
                      [--task T] [--metric M] [--format table|json|csv]
    fsf-sweep cka DIR [--all-steps] [--task T] [--format table|json|csv]

`COMMANDS` holds them (`fsf gap ...`); `register(subparsers)` adds them to an argparse
subparsers object; bad input raises `ResultsUsageError` (a `fsf.errors.UsageError`, exit 2).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any

from fsf.cli._base import Command, add_commands, print_table
from fsf.cli.results_common import FORMATS, check_format, command, exit_code, read_warning_skipped
from fsf.results import ResultsError, ResultsUsageError
from fsf.results.exporting import write_csv
from fsf.text import printable

__all__ = ["COMMANDS", "register"]


def _clean(v: Any) -> Any:
    return None if isinstance(v, float) and not math.isfinite(v) else v


def _emit(rows: list[dict[str, Any]], fmt: str, title: str) -> None:
    if fmt == "json":
        print(json.dumps([{k: _clean(v) for k, v in r.items()} for r in rows], indent=2))
    elif fmt == "csv":
        write_csv(rows, sys.stdout)
    else:
        keys: list[str] = []
        for r in rows:
            keys += [k for k in r if k not in keys]
        print_table(keys, [[_clean(r.get(k)) for k in keys] for r in rows], title=title)


def _gap(args: argparse.Namespace) -> int:
    from fsf.analysis.gap import gap_curves

    check_format(args.format)
    if args.split not in ("dev", "test"):
        raise ResultsUsageError(f"unknown --split {args.split!r}; choose one of: dev, test")
    if args.threshold is not None and not math.isfinite(args.threshold):
        raise ResultsUsageError(f"--threshold must be a number, got {args.threshold}")
    res = read_warning_skipped(args.dir)
    gc = gap_curves(
        res,
        task=args.task,
        metric=args.metric,
        window=args.window,
        threshold=args.threshold,
    )
    if args.curves:
        rows = [r for r in gc.table().to_pylist() if r["split"] == args.split]
        title = f"gap curves: {gc.task} {gc.metric} ({args.split}); phases recorded vs detected"
    else:
        rows = gc.summary(args.split)
        title = (
            f"P1/P2 boundary and gap growth per run: {gc.task} {gc.metric} ({args.split}); "
            "gap in points (x100), growth per 100 steps"
        )
    _emit(rows, args.format, title)
    if args.format == "table":
        for n in gc.notes:
            print(f"note: {printable(n)}")
    return exit_code(res.skipped)


def _cka(args: argparse.Namespace) -> int:
    from fsf.analysis.forgetting import cka_curves

    check_format(args.format)
    res = read_warning_skipped(args.dir)
    curves = cka_curves(res, task=args.task)
    if not curves.runs:
        raise ResultsError(
            f"{args.dir}: no CKA rows; runs record them with analysis.cka.every_steps > 0"
        )
    if args.all_steps:
        rows = curves.table().to_pylist()
        title = "CKA with the pretrained model, every recorded step"
    else:
        rows = []
        for r in curves.runs:
            for lang, mat in sorted(r.values.items()):
                row: dict[str, Any] = {
                    "trial_id": r.trial_id,
                    "seed": r.seed,
                    "policy": r.policy,
                    "language": lang,
                    "step": int(r.steps[-1]),
                }
                for li, layer in enumerate(r.layers.tolist()):
                    row[f"layer {layer}"] = _clean(float(mat[li, -1]))
                rows.append(row)
        title = "CKA with the pretrained model at the last recorded step (layer 0 = embeddings)"
    _emit(rows, args.format, title)
    return exit_code(res.skipped)


def _gap_args(g: argparse.ArgumentParser) -> None:
    g.add_argument("dir", metavar="DIR", help="sweep, run or results folder")
    g.add_argument("--split", default="dev", metavar="dev|test")
    g.add_argument("--curves", action="store_true", help="every evaluation step, not a summary")
    g.add_argument("--window", type=int, help="loss-trend window (default: each run's own)")
    g.add_argument("--threshold", type=float, help="loss-trend threshold (default: the run's)")
    g.add_argument("--task")
    g.add_argument("--metric")
    g.add_argument("--format", default="table", metavar="|".join(FORMATS))


def _cka_args(c: argparse.ArgumentParser) -> None:
    c.add_argument("dir", metavar="DIR", help="sweep, run or results folder")
    c.add_argument("--all-steps", action="store_true", help="every recorded step (long table)")
    c.add_argument("--task")
    c.add_argument("--format", default="table", metavar="|".join(FORMATS))


#: The analysis commands (fsf gap|cka; fsf-sweep mounts them too).
COMMANDS: dict[str, Command] = {
    "gap": Command(
        "source, target mean and gap over steps; P1/P2 boundary from the loss",
        _gap_args,
        command(_gap),
    ),
    "cka": Command(
        "per-layer CKA with the pretrained model (forgetting)", _cka_args, command(_cka)
    ),
}


def register(subparsers: Any) -> None:
    """Add `gap` and `cka` to an argparse subparsers object."""
    add_commands(subparsers, COMMANDS)
