"""What every fsf console script shares: `--version`, `-v` / `-q`, clean errors and exit
codes, a quiet end on a closed pipe, tables.

A command is a `Command`: its one-line help, a function adding its arguments to a parser and
the handler (`args -> exit code`) that `set_defaults(handler=...)` stores on the parser.
Every command-line module exposes its commands as a `COMMANDS` name -> `Command` map; a
console script builds its parser from them (`add_commands`, `configure`), calls
`add_common_arguments(parser, prog)` once (it reaches every subcommand's parser too, so
`fsf-sweep best DIR -q` works as well as `fsf-sweep -q best DIR`), and `dispatch(parser,
argv)` parses and runs `args.handler(args)` under `run_main`:

* an `FsfError` becomes one line (or a list of config problems) on stderr and its exit code
  (2 for usage errors, bad configs and refusals; argparse's own usage errors exit 2 too);
* a closed stdout (`fsf-sweep best DIR | head`) ends the command quietly with exit 0;
* Ctrl-C exits 130 with one line;
* `-q` leaves only errors on stderr and turns progress bars off; `-v` / `-vv` show fsf's
  INFO / DEBUG log records. Results (tables, JSON) always go to stdout, everything else
  (logs, progress, warnings, library chatter) to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fsf.errors import FsfError, clip, os_reason
from fsf.text import printable

__all__ = [
    "Command",
    "add_commands",
    "add_common_arguments",
    "configure",
    "configure_verbosity",
    "dispatch",
    "print_table",
    "progress_enabled",
    "run_main",
    "verbosity",
    "version_string",
]


def version_string(prog: str) -> str:
    """`<prog> (fsf <version>)`, from the installed distribution when there is one."""
    try:
        from importlib.metadata import version

        v = version("fsf")
    except Exception:  # not installed (a source checkout on sys.path)
        from fsf import __version__ as v
    return f"{prog} (fsf {v})"


def _subparsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    out = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):  # aliases map to one parser
                out += [sub, *_subparsers(sub)]
    return out


def _add_verbosity(parser: argparse.ArgumentParser, top: bool) -> None:
    # on subcommands the defaults are SUPPRESS: a flag given before the subcommand survives
    default: Any = {} if top else {"default": argparse.SUPPRESS}
    have = parser._option_string_actions
    if "-v" not in have and "--verbose" not in have:
        parser.add_argument(
            "-v",
            "--verbose",
            action="count",
            help="more log output on stderr (-vv: debug)",
            **({"default": 0} if top else default),
        )
    if "-q" not in have and "--quiet" not in have:
        parser.add_argument(
            "-q",
            "--quiet",
            action="store_true",
            help="only errors on stderr, no progress bars",
            **default,
        )


def _add_version(parser: argparse.ArgumentParser, prog: str) -> None:
    if "--version" not in parser._option_string_actions:
        parser.add_argument("--version", action="version", version=version_string(prog))


def add_common_arguments(parser: argparse.ArgumentParser, prog: str) -> argparse.ArgumentParser:
    """`--version`, `-v` and `-q` on the command and every subcommand; call once the
    subcommands are added. Returns `parser`."""
    _add_version(parser, prog)
    _add_verbosity(parser, top=True)
    for sub in _subparsers(parser):
        _add_version(sub, prog)
        _add_verbosity(sub, top=False)
    return parser


Handler = Callable[[argparse.Namespace], int]


@dataclass(frozen=True)
class Command:
    """One command of fsf's command line.

    `add_arguments(parser)` adds the command's arguments (or its own subcommands, each
    configured with `add_commands`) to `parser`; `handler(args)` runs it and returns the exit
    code (None for a command whose subcommands carry the handlers). Bad usage raises
    `fsf.errors.UsageError` (exit 2)."""

    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    handler: Handler | None = None


def configure(parser: argparse.ArgumentParser, command: Command) -> argparse.ArgumentParser:
    """`command`'s arguments on `parser`, and its handler as `parser`'s default. Returns
    `parser`."""
    command.add_arguments(parser)
    if command.handler is not None:
        parser.set_defaults(handler=command.handler)
    return parser


def add_commands(
    subparsers: Any, commands: Mapping[str, Command], names: Mapping[str, str] | None = None
) -> None:
    """One subcommand per entry of `commands` (an argparse subparsers object), named by
    `names[name]` where given (fsf-sweep calls `sweep` `run`)."""
    for name, command in commands.items():
        sub = subparsers.add_parser(
            (names or {}).get(name, name), help=command.help, description=command.help
        )
        configure(sub, command)


def dispatch(parser: argparse.ArgumentParser, argv: Sequence[str] | None = None) -> int:
    """Parse `argv` with `parser` and run the chosen handler under `run_main` (argparse's own
    usage errors exit 2 before it runs)."""
    args = parser.parse_args(argv)
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:  # a parser without a default command; argparse says what is missing
        parser.error("give a command")
    return run_main(lambda: int(handler(args)), args)


def verbosity(args: argparse.Namespace | None) -> int:
    """-1 with `-q`, else the number of `-v` (0 by default)."""
    if args is None:
        return 0
    if getattr(args, "quiet", False):
        return -1
    return int(getattr(args, "verbose", 0) or 0)


class _StderrHandler(logging.Handler):
    """Writes to the *current* sys.stderr (pytest and redirections replace it)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            print(printable(self.format(record), keep_newlines=True), file=sys.stderr)
        except Exception:
            self.handleError(record)


def configure_verbosity(level: int) -> None:
    """fsf's log records on stderr: WARNING by default, ERROR with -q (progress bars off:
    `FSF_NO_PROGRESS=1`), INFO with -v, DEBUG with -vv."""
    logger = logging.getLogger("fsf")
    if not any(isinstance(h, _StderrHandler) for h in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
    logger.setLevel(
        {-1: logging.ERROR, 0: logging.WARNING, 1: logging.INFO}.get(level, logging.DEBUG)
    )
    logger.propagate = False
    if level < 0:
        os.environ["FSF_NO_PROGRESS"] = "1"
        os.environ.setdefault("TQDM_DISABLE", "1")


def progress_enabled(args: argparse.Namespace | None = None) -> bool:
    """False once `-q` was given (or FSF_NO_PROGRESS=1 is set), or when `args` (a command's
    parsed arguments) has `--no-progress`."""
    if args is not None and getattr(args, "no_progress", False):
        return False
    return os.environ.get("FSF_NO_PROGRESS", "") not in ("1", "true")


def _stdout_closed() -> None:
    """The reader of stdout went away: point stdout at /dev/null so that the interpreter's
    final flush does not raise again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # stdout is not a real file (pytest)
        pass


def _show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: Any = None,
    line: str | None = None,
) -> None:
    """`warnings.showwarning` with control characters escaped: a library's warning can
    quote result data (matplotlib names a label's missing glyph, ESC included)."""
    text = warnings.formatwarning(message, category, filename, lineno, line)
    with contextlib.suppress(OSError, ValueError):  # stderr closed: nowhere to warn
        (file or sys.stderr).write(printable(text, keep_newlines=True))


def run_main(fn: Callable[[], int], args: argparse.Namespace | None = None) -> int:
    """Run a CLI body: `-v`/`-q` from `args` applied, an `FsfError` becomes a message on
    stderr and its exit code, a closed pipe exits 0 quietly, Ctrl-C exits 130. Errors, log
    records and warnings reach stderr with their control characters escaped."""
    configure_verbosity(verbosity(args))
    warnings.showwarning = _show_warning
    try:
        code = fn()
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's exit
        return code
    except BrokenPipeError:
        _stdout_closed()
        return 0
    except FsfError as exc:
        print(f"error: {printable(exc, keep_newlines=True)}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:
        where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
        print(f"error: {printable(where)}{printable(os_reason(exc))}", file=sys.stderr)
        return 1
    except MemoryError:
        print("error: out of memory", file=sys.stderr)
        return 1
    except RecursionError as exc:
        print(f"error: input nested too deeply ({printable(clip(str(exc), 200))})", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def print_table(
    headers: Sequence[str], rows: Sequence[Sequence[Any]], title: str | None = None
) -> None:
    """A readable table on stdout (rich, plain text when not a terminal). Every title,
    header and cell is shown as text: rich markup (`[bold]`) and control characters (an
    escape sequence in a policy or language name) are escaped, never interpreted."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    def text(value: str) -> str:  # a header's line break is layout, anything else is text
        return escape(printable(value, keep_newlines=True))

    # escaped: a title "run [fsf]" or a value "[0.1, 0.2]" is text, not rich markup
    table = Table(title=text(title) if title else title, title_justify="left")
    for i, h in enumerate(headers):
        table.add_column(text(h), justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*(escape(printable(_fmt(v))) for v in row))
    Console(width=max(100, 16 * len(headers)), file=sys.stdout).print(table)


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) >= 1e-3 or value == 0 else f"{value:.2e}"
    return str(value)
