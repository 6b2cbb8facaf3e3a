"""Shared helpers of the console scripts: clean errors and exit codes, tables."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Any

from fsf.errors import FsfError, clip, os_reason

__all__ = ["print_table", "run_main"]


def run_main(fn: Callable[[], int]) -> int:
    """Run a CLI body: an `FsfError` becomes a message on stderr and its exit code.

    An `OSError` that no layer turned into an `FsfError` (a folder that cannot be written, a
    full disk) is an environment failure: one line naming the file and the reason, exit 1,
    never a traceback."""
    try:
        return fn()
    except FsfError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:
        where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
        print(f"error: {where}{os_reason(exc)}", file=sys.stderr)
        return 1
    except MemoryError:
        print("error: out of memory", file=sys.stderr)
        return 1
    except RecursionError as exc:
        print(f"error: input nested too deeply ({clip(str(exc), 200)})", file=sys.stderr)
        return 2
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
