"""`fsf-sweep probe`: layer probes, from a space to the suggested weight sets.

    fsf-sweep probe --space FILE     run the probe grid (re-init / freeze each layer part),
                                     then analyse it
    fsf-sweep probe DIR [--out DIR]  analyse an existing probe sweep again

A space with a `probe` section run as a sweep (`fsf-sweep run --space FILE`) also comes here
(`_run_probe`), and so does resuming one (`_analyse_probe`). The probe grid and its analysis
are `fsf.sweep.probe` and `fsf.analysis.probe`; this module parses, runs and prints.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from fsf.cli._base import progress_enabled
from fsf.errors import UsageError
from fsf.text import printable

__all__: list[str] = []


def _probe_args(pr: argparse.ArgumentParser) -> None:
    what = pr.add_mutually_exclusive_group(required=True)
    what.add_argument("--space", help="space YAML (base, search seeds/resources, probe section)")
    what.add_argument("dir", nargs="?", metavar="DIR", help="analyse an existing probe sweep again")
    what.add_argument("--sweep", metavar="DIR", help=argparse.SUPPRESS)  # the older spelling
    pr.add_argument("--name", help="sweep name (default: the space's `name`)")
    pr.add_argument("--storage-path", help="folder holding sweeps")
    pr.add_argument("--address", help="Ray cluster to join")
    pr.add_argument("--max-concurrent", type=int, help="override search.max_concurrent")
    pr.add_argument("--num-cpus", type=int, help="CPUs of the local Ray instance")
    pr.add_argument("--no-progress", action="store_true")
    pr.add_argument("--out", metavar="DIR", help="with DIR: output folder (DIR/probe)")


def _run_probe(spec, args: argparse.Namespace) -> int:
    from fsf.sweep.probe import run_probe

    if args.max_concurrent is not None and args.max_concurrent < 1:
        raise UsageError(f"--max-concurrent must be >= 1, got {args.max_concurrent}")
    outcome = run_probe(
        spec,
        name=args.name,
        storage_path=args.storage_path,
        address=args.address,
        max_concurrent=args.max_concurrent,
        progress=progress_enabled(args),
        num_cpus=args.num_cpus,
    )
    done = ", ".join(f"{v} {k}" for k, v in sorted(outcome.statuses.items()))
    print(f"\nprobe sweep finished ({printable(done)})")
    for trial_id, reason in sorted(outcome.errors.items()):
        print(f"  trial {printable(trial_id)} failed: {printable(reason)}")
    _print_probe(outcome.outputs, outcome.reasons)
    return 0


def _print_probe(outputs: dict, reasons: list[str]) -> None:
    print("suggested weight sets:")
    for r in reasons:
        print(f"  {printable(r)}")
    for what, path in outputs.items():
        print(f"{what + ':':8} {path}")


def _analyse_probe(sweep_dir, spec, out: Path) -> None:
    from fsf.cli.results_common import read_warning_skipped
    from fsf.sweep.probe import write_probe_outputs

    assert spec.probe is not None
    outputs, reasons = write_probe_outputs(
        read_warning_skipped(str(sweep_dir)),
        spec.probe,
        out,
        num_layers=spec.probe.num_layers,
        source=str(sweep_dir),
    )
    _print_probe(outputs, reasons)


def _probe(args: argparse.Namespace) -> int:
    from fsf.sweep.space import load_space

    if args.space:
        from fsf.sweep.probe import ProbeSpec

        spec = load_space(args.space)
        if spec.probe is None:
            spec = spec.model_copy(update={"probe": ProbeSpec()})
        return _run_probe(spec, args)
    if args.dir and args.sweep and args.dir != args.sweep:
        raise UsageError(f"two sweep folders given ({args.dir} and --sweep {args.sweep})")
    sweep_dir = Path(args.dir or args.sweep)
    space = sweep_dir / "space.yaml"
    if not space.is_file():
        raise UsageError(f"{sweep_dir} is not a sweep folder (no space.yaml)")
    spec = load_space(space)
    if spec.probe is None:
        raise UsageError(
            f"{sweep_dir} is not a probe sweep (its space has no probe section); run "
            "`fsf-sweep probe --space FILE` first"
        )
    _analyse_probe(sweep_dir, spec, Path(args.out) if args.out else sweep_dir / "probe")
    return 0
