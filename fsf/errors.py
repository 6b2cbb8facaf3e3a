"""Errors that fsf reports to users, and the helper that turns pydantic errors into them.

Every user-facing failure (a bad config, an unmappable model, a missing language) is an
`FsfError`. Command-line entry points catch it, print its message and exit non-zero, so a
user never sees a traceback from deep inside a library.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = [
    "ConfigError",
    "FsfError",
    "Problem",
    "UsageError",
    "format_problems",
    "problems_from_pydantic",
]


class FsfError(Exception):
    """A problem the user can fix; its message says what and how."""

    exit_code: int = 1


class UsageError(FsfError):
    """A command used the wrong way, or a refusal (a folder that already holds a sweep):
    exit code 2, as argparse's own usage errors."""

    exit_code = 2


class Problem:
    """One problem in a config: where it is, what was received, what to do."""

    def __init__(self, path: str, message: str, value: Any = None, has_value: bool = False):
        self.path = path
        self.message = message
        self.value = value
        self.has_value = has_value

    def __str__(self) -> str:
        got = f" (got {self.value!r})" if self.has_value else ""
        where = self.path or "<root>"
        return f"{where}: {self.message}{got}"

    def __repr__(self) -> str:
        return f"Problem({self!s})"


class ConfigError(FsfError):
    """A config with one or more problems; all of them are listed at once."""

    exit_code = 2

    def __init__(self, problems: Iterable[Problem], source: str | None = None):
        self.problems = list(problems)
        self.source = source
        super().__init__(format_problems(self.problems, source))


def format_problems(problems: list[Problem], source: str | None = None) -> str:
    head = f"{source}: " if source else ""
    n = len(problems)
    lines = [f"{head}config is not valid, found {n} problem{'s' if n != 1 else ''}:"]
    lines += [f"  - {p}" for p in problems]
    return "\n".join(lines)


def _loc_to_path(loc: tuple[Any, ...], prefix: str = "") -> str:
    parts: list[str] = [prefix] if prefix else []
    for item in loc:
        if isinstance(item, int):
            if parts:
                parts[-1] = f"{parts[-1]}[{item}]"
            else:
                parts.append(f"[{item}]")
        elif (isinstance(item, str) and item.startswith("function-")) or item in (
            "tagged-union",
            "union",
        ):
            continue
        else:
            parts.append(str(item))
    return ".".join(parts)


def problems_from_pydantic(exc: Any, prefix: str = "") -> list[Problem]:
    """Convert a `pydantic.ValidationError` into problems naming the field path and value."""
    problems = []
    for err in exc.errors(include_url=False):
        msg = err["msg"]
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        if err["type"] == "extra_forbidden":
            msg = "unknown key; remove it or check its spelling"
        has_value = err["type"] not in ("missing",)
        problems.append(
            Problem(_loc_to_path(tuple(err["loc"]), prefix), msg, err.get("input"), has_value)
        )
    return problems
