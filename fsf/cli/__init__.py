"""`fsf`: one command for everything fsf does, `fsf COMMAND [options]` (also `python -m fsf`).

    fsf sweep --space sweeps/policies.yaml        run a sweep (= fsf-sweep --space ...)
    fsf best DIR --per-language                   the best configuration per target language
    fsf train --set policy.name=fsf               one training run (= fsf-train)
    fsf policy explain --policy fsf --layers 12 --steps 400

`COMMANDS` maps each command to the module that defines it (its `COMMANDS` map of
`fsf.cli._base.Command`s); only the module of the command given is imported, so `fsf best` loads
neither torch nor Ray. The older console scripts stay as aliases with the same flags:
`fsf-sweep` (sweep is `fsf-sweep run` or no subcommand; validate, resume, confirm, best, show,
export, report, compact, gap, cka, probe), `fsf-train`, `fsf-policy`, `fsf-synth`, and
`python -m fsf.cluster`.

Every command takes --version, -v (more log output) and -q (errors only, no progress bars).
Usage errors and refusals exit 2; a closed pipe (fsf best DIR | head) exits 0.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from fsf.cli._base import Command, add_commands, add_common_arguments, dispatch

__all__ = ["COMMANDS", "build_parser", "command", "main"]

#: Each `fsf` command -> the module whose `COMMANDS` defines it (imported only when needed).
COMMANDS: dict[str, str] = {
    "sweep": "fsf.cli.sweep",
    "validate": "fsf.cli.sweep",
    "resume": "fsf.cli.sweep",
    "confirm": "fsf.cli.sweep",
    "best": "fsf.cli.results",
    "show": "fsf.cli.results",
    "export": "fsf.cli.results",
    "report": "fsf.cli.results",
    "compact": "fsf.cli.results",
    "gap": "fsf.cli.analysis",
    "cka": "fsf.cli.analysis",
    "probe": "fsf.cli.sweep",
    "train": "fsf.cli.train",
    "policy": "fsf.cli.policies",
    "synth": "fsf.cli.synthetic",
    "data": "fsf.cli.real",
    "cluster": "fsf.cli.cluster",
}

_HELP_FLAGS = ("-h", "--help")
_DESCRIPTION = "Fine-tuning Slow and Fast, swept at scale: one command for every fsf tool."
_EPILOG = """examples:
  fsf sweep --space sweeps/policies.yaml      run a sweep
  fsf best DIR --per-language                 the best configuration per target language
  fsf train --set policy.name=fsf             one training run with a per-language table
  fsf policy explain --policy fsf --layers 12 --steps 400

`fsf COMMAND --help` lists a command's options. The older scripts are aliases with the same
flags: fsf-sweep (no subcommand or `run` = sweep; and validate ... probe), fsf-train,
fsf-policy, fsf-synth, python -m fsf.cluster.
Every command takes --version, -v (more log output) and -q (errors only, no progress bars);
usage errors and refusals exit 2; a closed pipe (fsf best DIR | head) exits 0."""


def command(name: str) -> Command:
    """The `Command` behind `fsf NAME` (imports its module)."""
    return importlib.import_module(COMMANDS[name]).COMMANDS[name]


def _chosen(argv: Sequence[str]) -> str | None:
    """The command `argv` names: its first word (fsf's own options take no value), or None
    for `fsf --help` and the like (every command is then loaded, for the list)."""
    for arg in argv:
        if arg in _HELP_FLAGS:
            return None
        if not arg.startswith("-"):
            return arg
    return None


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The `fsf` parser, with the arguments of the command `argv` names (every command's when
    it names none, for `fsf --help`). The other commands are listed but not loaded."""
    argv = sys.argv[1:] if argv is None else list(argv)
    name = _chosen(argv)
    load_all = name is None and any(a in _HELP_FLAGS for a in argv)
    parser = argparse.ArgumentParser(
        prog="fsf",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=_EPILOG,
    )
    sub = parser.add_subparsers(dest="fsf_command", metavar="COMMAND", required=True)
    for cmd in COMMANDS:
        if load_all or cmd == name:
            add_commands(sub, {cmd: command(cmd)})
        else:  # not parsed in this call: listed (argparse's choices), not imported
            sub.add_parser(cmd)
    return add_common_arguments(parser, "fsf")


def main(argv: Sequence[str] | None = None) -> int:
    """`fsf COMMAND ...`; returns the exit code."""
    return dispatch(build_parser(argv), argv)


if __name__ == "__main__":
    sys.exit(main())
