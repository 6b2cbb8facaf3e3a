"""Shared helpers of the console scripts: clean errors and exit codes, tables."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Any

from fsf.errors import FsfError

__all__ = ["print_table", "run_main"]


def run_main(fn: Callable[[], int]) -> int:
    """Run a CLI body: an `FsfError` becomes a message on stderr and its exit code."""
    try:
        return fn()
    except FsfError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def print_table(
    headers: Sequence[str], rows: Sequence[Sequence[Any]], title: str | None = None
) -> None:
    """A readable table on stdout (rich, plain text when not a terminal)."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for i, h in enumerate(headers):
        table.add_column(h, justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*(_fmt(v) for v in row))
    Console(width=max(100, 16 * len(headers))).print(table)


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) >= 1e-3 or value == 0 else f"{value:.2e}"
    return str(value)
