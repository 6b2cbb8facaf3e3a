"""Errors of the results readers and queries (all `FsfError`s, so CLIs print them cleanly)."""

from __future__ import annotations

from collections.abc import Iterable

from fsf.errors import FsfError, UsageError

__all__ = ["ResultsError", "ResultsUsageError", "ResultsWriteError", "choices"]


class ResultsError(FsfError):
    """Results that cannot answer the question (none yet, every fragment unreadable, ...)."""

    exit_code = 1


class ResultsWriteError(ResultsError):
    """Results that could not be written (a read-only folder, a full disk, an unreachable
    store); the message names the file and the reason. Nothing half-written is left."""

    exit_code = 1


class ResultsUsageError(ResultsError, UsageError):
    """A bad argument: a missing folder, an unknown language, task, metric or format. A
    `fsf.errors.UsageError` (exit code 2) that is also a `ResultsError`, so that code catching
    either sees it."""

    exit_code = 2


def choices(values: Iterable[object], limit: int = 40) -> str:
    """`a, b, c` (sorted, at most `limit` names) for 'choose one of: ...' messages."""
    names = sorted({str(v) for v in values})
    if not names:
        return "(none)"
    more = f", ... ({len(names) - limit} more)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more
