"""``fsf-synth`` (also ``fsf synth``): rebuild or inspect the embedded synthetic benchmark.

    fsf-synth build --out DIR [--seed S] [--steps N] [--data-only]
    fsf-synth info [--json]

Exit codes: 0 success, 1 the build ran but failed its validity check (no alignment),
2 bad input.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from fsf.cli._base import (
    Command,
    add_commands,
    add_common_arguments,
    configure,
    dispatch,
    progress_enabled,
)
from fsf.errors import UsageError, os_reason

__all__ = ["COMMANDS", "SUBCOMMANDS", "main"]


def _nonneg_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {value}")
    return value


def _pos_int(text: str) -> int:
    value = _nonneg_int(text)
    if value == 0:
        raise argparse.ArgumentTypeError("expected a positive integer, got 0")
    return value


def _build(args: argparse.Namespace) -> int:
    out: Path = args.out
    if out.exists() and not out.is_dir():  # checked before torch is imported
        raise UsageError(f"--out must be a directory, but {str(out)!r} is a file")
    from fsf.synthetic.build import build, check_out

    check_out(out)  # a folder that is not a build's is refused before anything is written
    from fsf.synthetic.pretrain import AlignmentError

    bar = None
    last_probe = ["-"]  # the latest raw topic probe of linked words, min over target languages
    progress: Callable[[int, int, dict], None] | None = None
    if not args.data_only and progress_enabled():
        from tqdm import tqdm

        def progress(step: int, total: int, info: dict) -> None:
            nonlocal bar
            if bar is None:
                bar = tqdm(total=total, desc="pretraining", unit="step", file=sys.stderr)
            if step > bar.total:
                bar.total = step  # alignment check extended the run
            bar.update(step - bar.n)
            if "probe" in info:
                last_probe[0] = f"{min(info['probe'].values()):.2f}"
            bar.set_postfix(
                loss=f"{info['loss']:.3f}", min_linked_probe=last_probe[0], refresh=False
            )

    try:
        manifest = build(
            out, seed=args.seed, steps=args.steps, data_only=args.data_only, progress=progress
        )
    except OSError as exc:  # an --out that cannot be written: bad input, as before (exit 2)
        where = exc.filename or out
        raise UsageError(f"cannot write {where}: {os_reason(exc)}") from exc
    except AlignmentError as exc:
        print(f"fsf-synth build: {exc}", file=sys.stderr)
        return 1
    finally:
        if bar is not None:
            bar.close()
    n = len(manifest["files"])
    what = "data" if args.data_only else "data, tokenizer and checkpoint"
    print(f"wrote {what} to {out}; manifest ({n} files): {out / 'manifest.json'}")
    if args.data_only and manifest["model"]:
        print(f"kept the existing checkpoint in {out / 'model'} (same seed and corpus)")
    elif manifest["model"]:
        m = manifest["model"]
        print(
            f"pretraining: {m['steps']} steps in {m['seconds']:.0f} s, raw topic probe "
            f"{_probe(m['topic_probe_raw'])}, linked words {_probe(m['topic_probe_linked'])}"
        )
    return 0


def _probe(values: dict[str, float]) -> str:
    return " ".join(f"{lang} {v:.2f}" for lang, v in values.items())


def _info(args: argparse.Namespace) -> int:
    from fsf.synthetic import assets_dir, data_dir, model_dir

    path = assets_dir() / "manifest.json"
    if not path.is_file():
        print(
            f"fsf-synth info: no shipped assets at {assets_dir()}; "
            "build them with `fsf-synth build --out <dir>`",
            file=sys.stderr,
        )
        return 1
    manifest = json.loads(path.read_text(encoding="utf-8"))
    if args.json:
        print(json.dumps(manifest, indent=1))
        return 0
    print(f"assets:   {assets_dir()}")
    print(f"model:    {model_dir()}")
    for task, spec in manifest["tasks"].items():
        default = "  (default)" if task == manifest["default_task"] else ""
        kind = spec.get("kind", "classification")
        what = {"tagging": f"tags={spec['num_labels']}", "qa": "extractive QA"}.get(
            kind, f"labels={spec['num_labels']}"
        )
        print(f"{task + ':':9} {data_dir(task)}  {what}{default}")
    print(
        f"seed {manifest['seed']}, generator version {manifest['generator_version']}, "
        f"languages {' '.join(manifest['languages'])} (source {manifest['source_language']}), "
        f"max_length {manifest['max_length']}"
    )
    if manifest["model"]:
        m = manifest["model"]
        c = m["pretrain_config"]
        print(
            f"checkpoint: {c['num_layers']} layers, hidden {c['hidden_size']}, {c['num_heads']} heads, "
            f"FFN {c['ffn_size']}; pretrained {m['steps']} steps, MLM loss {m['final_mlm_loss']}"
        )
        print(f"raw topic probe: {_probe(m['topic_probe_raw'])}")
        if "topic_probe_linked" in m:
            print(f"  linked words:   {_probe(m['topic_probe_linked'])}")
            print(f"  unlinked words: {_probe(m['topic_probe_unlinked'])}")
    print(f"{len(manifest['files'])} files with sha256 in {path}")
    return 0


def _build_args(b: argparse.ArgumentParser) -> None:
    b.add_argument("--out", type=Path, required=True, help="output folder (created if missing)")
    b.add_argument("--seed", type=_nonneg_int, default=0, help="world and training seed (0)")
    b.add_argument("--steps", type=_pos_int, default=None, help="pretraining steps (default 4000)")
    b.add_argument("--data-only", action="store_true", help="only the data and corpus (seconds)")
    # -q / --quiet (no progress bar, errors only) comes from add_common_arguments


def _info_args(i: argparse.ArgumentParser) -> None:
    i.add_argument("--json", action="store_true", help="print the whole manifest as JSON")


#: `fsf-synth build|info`.
SUBCOMMANDS: dict[str, Command] = {
    "build": Command("regenerate data, tokenizer and pretrained checkpoint", _build_args, _build),
    "info": Command("where the shipped assets are, and their manifest", _info_args, _info),
}


def _synth_args(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="command", required=True, metavar="{build,info}")
    add_commands(sub, SUBCOMMANDS)


#: `fsf synth build|info` (the same as `fsf-synth`).
COMMANDS: dict[str, Command] = {
    "synth": Command("rebuild or inspect the embedded synthetic benchmark", _synth_args),
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fsf-synth", description="Rebuild or inspect the embedded synthetic benchmark."
    )
    return add_common_arguments(configure(parser, COMMANDS["synth"]), "fsf-synth")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``fsf-synth``; returns the exit code."""
    return dispatch(_parser(), argv)  # exits 2 with a usage message on bad arguments


if __name__ == "__main__":
    raise SystemExit(main())
