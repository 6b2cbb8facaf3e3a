"""`fsf-train` (also `fsf train`): one fine-tuning run with per-language evaluation.

    fsf-train [--config run.yaml] [--set key=value ...] [--no-progress]

Without --config it fine-tunes the tiny shipped encoder on the shipped synthetic benchmark.
Evaluation rows go to <output_dir>/<name>/results/ as Parquet; a table is printed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys

from fsf.cli._base import (
    Command,
    add_common_arguments,
    configure,
    dispatch,
    print_table,
    progress_enabled,
)
from fsf.config import RunConfig, load_run_config
from fsf.results.evaluation import Evaluation
from fsf.text import printable
from fsf.train.reporter import RunSummary

__all__ = ["COMMANDS", "main", "print_summary"]


def _train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="run config YAML (default: the embedded synthetic benchmark)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key, e.g. policy.name=fsf, optim.lr=1e-3",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")


def print_summary(summary: RunSummary, title: str = "") -> None:
    """Per-language table: final dev/test, and test at the two model-selection steps."""
    final = summary.final
    if final is None:
        print("no evaluation was made")
        return
    by_src, by_all = summary.checkpoint("source-dev"), summary.checkpoint("all-dev")
    cols: list[tuple[str, Evaluation | None, str]] = [
        (f"dev @ {final.step}", final, "dev"),
        (f"test @ {final.step}", final, "test"),
    ]
    if by_src is not None:
        cols.append(
            (
                f"test @ {by_src.step}\n(best en dev)".replace("en", final.source_lang, 1),
                by_src,
                "test",
            )
        )
    if by_all is not None:
        cols.append((f"test @ {by_all.step}\n(best all-dev, oracle)", by_all, "test"))
    shown = [(t, ev, split) for t, ev, split in cols if ev is not None and split in ev.scores]
    rows = []
    for lang in (final.source_lang, *final.target_langs):
        label = f"{lang} (source)" if lang == final.source_lang else lang
        rows.append([label, *(ev.score(split, lang) for _, ev, split in shown)])
    rows.append(["target mean", *(ev.target_mean(split) for _, ev, split in shown)])
    rows.append(["gap", *(ev.gap(split) for _, ev, split in shown)])
    print_table(["language", *(c[0] for c in shown)], rows, title=f"{title} {final.metric}".strip())


def _run(args: argparse.Namespace) -> int:
    from fsf.results import ParquetReporter, TrialInfo
    from fsf.results.writer import check_writable
    from fsf.train.device import run_provenance
    from fsf.train.worker import train

    config = load_run_config(args.config, args.set)
    if args.print_config:
        print(json.dumps(config.model_dump(mode="json"), indent=2))
        return 0
    root = check_writable(config.run_dir() / "results")  # fail now, not after training
    info = TrialInfo(config, node=socket.gethostname(), provenance=run_provenance(config))
    with ParquetReporter(root, info) as writer:  # finished: completed, or failed and raised
        summary = train(config, writer, progress=not args.no_progress and progress_enabled())
    _print_outcome(summary, config, writer.path)
    return 0


def _print_outcome(summary: RunSummary, config: RunConfig, path: object) -> None:
    """The table and where the rows went, once: under torchrun (or any launcher that sets
    RANK) only rank 0 prints."""
    if int(os.environ.get("RANK", "0")) != 0:
        return
    print_summary(summary, title=f"{config.name} [{config.policy.name}]")
    print(f"evaluation rows: {path}")
    for what, where in summary.artifacts.items():
        print(f"{what}: {printable(where)}")


#: `fsf train` (the same as `fsf-train`).
COMMANDS: dict[str, Command] = {
    "train": Command("one fine-tuning run with a per-language table", _train_args, _run),
}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fsf-train", description=__doc__.split("\n\n")[0])
    return add_common_arguments(configure(p, COMMANDS["train"]), "fsf-train")


def main(argv: list[str] | None = None) -> int:
    return dispatch(_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
