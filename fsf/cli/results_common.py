"""What the results commands share, with each other and with fsf-sweep's and the analysis
commands: reading a sweep with its skipped fragments named on stderr, the stage a query
answers from, the exit code that says a partial answer is partial, and the checks of the
flags they have in common (`--format`, `--baseline`, the sweep folder).

A command's exit code is `SKIPPED_EXIT` (3) when fragments were left out of its answer:
`command` wraps a handler so that the count starts afresh for each command, and
`warn_skipped` both names the fragments and counts them.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from fsf.results import ResultsUsageError
from fsf.results.fragment_reader import COMPACTED_DIR
from fsf.results.reader import Results, SkippedFragment, confirmation_of, read_results, resolve_root
from fsf.text import printable

_T = TypeVar("_T")

__all__ = [
    "FORMATS",
    "SKIPPED_EXIT",
    "STAGES",
    "Problems",
    "baseline_arg",
    "check_format",
    "check_stage",
    "command",
    "exit_code",
    "read_warning_skipped",
    "warn_skipped",
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


def warn_skipped(skipped: list[SkippedFragment]) -> None:
    """Name the `skipped` fragments on stderr, and count them toward the exit code of the
    command that is running."""
    _SKIPPED.extend(skipped)
    if not skipped:
        return
    print(
        f"warning: {len(skipped)} fragment(s) skipped; their rows are NOT in these answers "
        f"(exit code {SKIPPED_EXIT}):",
        file=sys.stderr,
    )
    for s in skipped:
        print(f"  {printable(s.reason)}", file=sys.stderr)


#: A folder of at least this many loose fragments, read in more than `_SLOW_READ_S`, gets a
#: note on stderr that compaction makes its queries faster.
COMPACT_HINT_FRAGMENTS = 500
_SLOW_READ_S = 1.0


def read_warning_skipped(path: str) -> Results:
    """`read_results(path)`, with every skipped fragment named on stderr (the commands of
    fsf-sweep that read results all use this), and a note when reading many loose fragments
    was slow."""
    t0 = time.perf_counter()
    res = read_results(path)
    seconds = time.perf_counter() - t0
    warn_skipped(res.skipped)
    loose = sum(not f.startswith(COMPACTED_DIR + "/") for f in res.fragments)
    if loose >= COMPACT_HINT_FRAGMENTS and seconds > _SLOW_READ_S:
        print(
            f"note: read {loose:,} fragments in {seconds:.1f} s; `fsf-sweep compact {path}` "
            "folds the finished runs into one file, which queries read several times faster",
            file=sys.stderr,
        )
    return res


def check_stage(stage: str) -> None:
    if stage not in STAGES:
        raise ResultsUsageError(f"unknown --stage {stage!r}; choose one of: {', '.join(STAGES)}")


def _read_stage(path: str, stage: str) -> Results:
    """The results a query answers from: the confirmation stage when there is one (`auto`,
    `confirm`), else the search."""
    check_stage(stage)
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
    warn_skipped(confirmed.skipped)
    return confirmed


class Problems:
    """The usage problems of one command line, reported together: `check` runs a check that
    raises `ResultsUsageError` and keeps its message; `report` raises one error (exit 2)
    listing every problem found, so a user fixes them in one go."""

    def __init__(self) -> None:
        self.found: list[str] = []

    def check(self, fn: Callable[..., _T], *args: Any) -> _T | None:
        try:
            return fn(*args)
        except ResultsUsageError as exc:
            self.found.append(str(exc))
            return None

    def folder(self, path: str | None) -> None:
        """That `path` is a sweep or results folder (checked before it is read)."""
        if path is not None:
            self.check(resolve_root, path)

    def report(self) -> None:
        """Raise the problems found, if any: one line for one, else one line each, as the
        config errors are listed (`fsf.errors.format_problems`)."""
        if len(self.found) == 1:
            raise ResultsUsageError(self.found[0])
        if self.found:
            lines = [f"the command line has {len(self.found)} problems:"]
            raise ResultsUsageError("\n".join(lines + [f"  - {m}" for m in self.found]))


def check_format(fmt: str, allowed: Sequence[str] = FORMATS) -> None:
    if fmt not in allowed:
        raise ResultsUsageError(f"unknown --format {fmt!r}; choose one of: {', '.join(allowed)}")


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


def baseline_arg(pairs: list[str] | None) -> dict[str, Any] | None:
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
