"""Errors that fsf reports to users, and the helper that turns pydantic errors into them.

Every user-facing failure (a bad config, an unmappable model, a missing language) is an
`FsfError`. Command-line entry points catch it, print its message and exit non-zero, so a
user never sees a traceback from deep inside a library.
"""

from __future__ import annotations

import reprlib
from collections.abc import Iterable
from typing import Any

__all__ = [
    "ConfigError",
    "FsfError",
    "Problem",
    "UsageError",
    "clip",
    "format_problems",
    "os_reason",
    "problems_from_pydantic",
    "short_repr",
]

#: Longest rendering of a value in an error message (a hostile input can be huge).
VALUE_CHARS = 120
#: Longest message of one problem.
MESSAGE_CHARS = 600

_repr = reprlib.Repr()
_repr.maxstring = _repr.maxother = VALUE_CHARS // 2
_repr.maxlist = _repr.maxtuple = _repr.maxdict = _repr.maxset = _repr.maxfrozenset = 6
_repr.maxlevel = 3


def clip(text: str, limit: int = MESSAGE_CHARS) -> str:
    """`text` on one line, at most `limit` characters (the cut is marked)."""
    text = " ".join(str(text).split())
    if len(text) <= limit:
        return text
    return f"{text[: limit - 30]}... ({len(text) - limit + 30} more characters)"


def short_repr(value: Any, limit: int = VALUE_CHARS) -> str:
    """A bounded, one-line `repr` of `value`: nested and long containers are elided without
    walking them whole (a YAML alias bomb renders in microseconds)."""
    try:
        text = _repr.repr(value)
    except Exception:  # a value whose repr fails: name its type
        text = f"<{type(value).__name__}>"
    return clip(text, limit)


def os_reason(exc: BaseException) -> str:
    """Why an OS call failed, in a few words (`Permission denied`, `No space left on device`,
    `Read-only file system`), without the path (messages name the path themselves)."""
    strerror = getattr(exc, "strerror", None)
    if strerror:
        return str(strerror)
    lines = str(exc).strip().splitlines()
    return clip(lines[0], 300) if lines else type(exc).__name__


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
        got = f" (got {short_repr(self.value)})" if self.has_value else ""
        where = f"{clip(self.path, VALUE_CHARS)}: " if self.path else ""
        return f"{where}{clip(self.message)}{got}"

    def __repr__(self) -> str:
        return f"Problem({self!s})"


class ConfigError(FsfError):
    """A config with one or more problems; all of them are listed at once."""

    exit_code = 2

    def __init__(self, problems: Iterable[Problem], source: str | None = None):
        self.problems = list(problems)
        self.source = source
        super().__init__(format_problems(self.problems, source))


#: Problems listed in one message; the rest are counted.
MAX_LISTED = 50


def format_problems(problems: list[Problem], source: str | None = None) -> str:
    """One line for one problem (`FILE: path: message (got value)`), else a header and one
    line per problem."""
    head = f"{source}: " if source else ""
    n = len(problems)
    if n == 1:
        return f"{head}{problems[0]}"
    lines = [f"{head}config is not valid, found {n} problems:"]
    lines += [f"  - {p}" for p in problems[:MAX_LISTED]]
    if n > MAX_LISTED:
        lines.append(f"  ... and {n - MAX_LISTED} more")
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
