"""`fsf-sweep`: run, validate, resume and query sweeps (each is also `fsf COMMAND`: fsf.cli).

fsf-sweep --space sweeps/policies.yaml [--name N] [--storage-path DIR|URI] [--address ADDR]
          [--num-trials N] [--max-concurrent N] [--set KEY=VALUE ...] [--resume] [--dry-run]
fsf-sweep validate --space FILE [--set KEY=VALUE ...]
fsf-sweep resume DIR
fsf-sweep confirm DIR [--top-k K] [--seeds S ...] [--baseline KEY=VALUE]
fsf-sweep best DIR --lang L | --per-language
fsf-sweep show DIR | export DIR --to FILE | report DIR | compact DIR
fsf-sweep probe --space FILE | probe DIR        (layer probes -> suggested weight sets)
fsf-sweep gap DIR | cka DIR                     (gap curves with P1/P2; forgetting by CKA)

Every command takes --version, -v (more log output) and -q (errors only, no progress bars).
Usage errors and refusals exit 2; a closed pipe (fsf-sweep best DIR | head) exits 0.
"""

# The probe command is fsf.cli.probe; the results and analysis commands are mounted
# from fsf.cli.results and fsf.cli.analysis. The epilog of `fsf-sweep --help` is the usage
# above, so what this module says about itself goes here.

from __future__ import annotations

import argparse
import sys

from fsf.cli._base import Command, add_commands, add_common_arguments, dispatch, progress_enabled
from fsf.cli.probe import _analyse_probe, _probe, _probe_args, _run_probe
from fsf.errors import UsageError
from fsf.text import printable

__all__ = ["COMMANDS", "main"]


def _add_run_args(p: argparse.ArgumentParser, required: bool) -> None:
    p.add_argument("--space", required=required, help="search-space YAML (see sweeps/)")
    p.add_argument("--name", help="sweep name (default: the space's `name`)")
    p.add_argument(
        "--storage-path",
        help="folder or URI (s3://, gs://, file://) holding sweeps; on a cluster, storage "
        "every node reaches (default: the space's storage.path)",
    )
    p.add_argument(
        "--address",
        help="Ray cluster to join, from one of its nodes: auto, or HEAD_IP:6379 "
        "(from outside, use ray job submit; see cluster/README.md)",
    )
    p.add_argument("--num-trials", type=int, help="override search.num_trials")
    p.add_argument("--max-concurrent", type=int, help="override search.max_concurrent")
    p.add_argument("--resume", action="store_true", help="continue an interrupted sweep")
    p.add_argument("--no-progress", action="store_true", help="no live progress bar")
    p.add_argument("--num-cpus", type=int, help="CPUs of the local Ray instance (default: all)")
    p.add_argument(
        "--base",
        metavar="FILE",
        help="run-config YAML merged into the space's base (e.g. a probe's policy-sets.yaml)",
    )
    _add_set(p)
    _add_no_confirm(p)
    p.add_argument(
        "--dry-run",
        nargs="?",
        const=5,
        type=int,
        metavar="N",
        help="print the first N (5) sampled configurations, the number of trials and the "
        "resources; start nothing, write nothing",
    )


def _add_set(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set a key of the space's base run config (repeatable, after --base), e.g. "
        "optim.max_steps=100; validated like the YAML",
    )


def _add_no_confirm(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--no-confirm",
        action="store_true",
        help="run the search only, not the space's confirmation stage (run it later with "
        "`fsf-sweep confirm DIR`)",
    )


def _sweep_args(p: argparse.ArgumentParser) -> None:
    _add_run_args(p, required=True)


def _validate_args(val: argparse.ArgumentParser) -> None:
    val.add_argument("--space", required=True)
    val.add_argument("--base", metavar="FILE", help="run-config YAML merged into the base")
    _add_set(val)


def _resume_args(res: argparse.ArgumentParser) -> None:
    res.add_argument("dir", help="the sweep folder: a path or a URI (s3://..., file:///...)")
    res.add_argument("--address")
    res.add_argument("--no-progress", action="store_true")
    res.add_argument("--num-cpus", type=int)
    _add_no_confirm(res)


def _confirm_args(con: argparse.ArgumentParser) -> None:
    con.add_argument("dir")
    con.add_argument("--top-k", type=int, help="configurations to confirm (space: confirm.top_k)")
    con.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        help="fresh seeds for the fixed scheme, every configuration on each (space: "
        "confirm.seeds, default 100-102; given, it replaces the space's confirm.race)",
    )
    con.add_argument(
        "--baseline",
        action="append",
        metavar="KEY=VALUE",
        help="run-config key and value of the baseline (repeatable; default policy.name=df)",
    )
    con.add_argument("--address")
    con.add_argument("--no-progress", action="store_true")
    con.add_argument("--num-cpus", type=int)


def _parser() -> argparse.ArgumentParser:
    from fsf.cli import analysis as analysis_cli
    from fsf.cli import results as results_cli

    p = argparse.ArgumentParser(
        prog="fsf-sweep",
        description="Search FSF policies with Ray Tune + Optuna; query the results.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    _add_run_args(p, required=False)
    p.set_defaults(handler=_default)  # no subcommand: `fsf-sweep --space FILE` runs a sweep
    sub = p.add_subparsers(dest="command")
    own = {k: v for k, v in COMMANDS.items() if k != "probe"}
    add_commands(sub, own, names={"sweep": "run"})
    add_commands(sub, results_cli.COMMANDS)
    add_commands(sub, analysis_cli.COMMANDS)
    add_commands(sub, {"probe": COMMANDS["probe"]})
    return add_common_arguments(p, "fsf-sweep")


def _default(args: argparse.Namespace) -> int:
    """`fsf-sweep [--space FILE ...]` without a subcommand: a sweep, if a space is given."""
    if not args.space:
        _parser().print_usage(sys.stderr)
        raise UsageError("give --space FILE (e.g. sweeps/policies.yaml)")
    return _run(args)


def _validate(args: argparse.Namespace) -> int:
    from fsf.sweep.space import load_space_with

    spec = load_space_with(args.space, args.base, args.set)
    _check_resources(spec, args.space)
    n = len(spec.search.parameters)
    print(
        f"{args.space}: valid ({n} parameters, searcher {spec.search.searcher}; model "
        "and data checked where they are local)"
    )
    return 0


def _run(args: argparse.Namespace) -> int:
    from fsf.sweep.address import check_address
    from fsf.sweep.plan import MAX_DRY_RUN
    from fsf.sweep.space import load_space_with
    from fsf.sweep.tune import run_sweep

    problems = []
    if args.num_trials is not None and args.num_trials < 1:
        problems.append(f"--num-trials must be >= 1, got {args.num_trials}")
    if args.max_concurrent is not None and args.max_concurrent < 1:
        problems.append(f"--max-concurrent must be >= 1, got {args.max_concurrent}")
    if args.resume:
        problems += [
            f"{flag} cannot change a resumed sweep (it keeps the settings it started with)"
            for flag, value in (
                ("--num-trials", args.num_trials),
                ("--max-concurrent", args.max_concurrent),
                ("--base", args.base),
                ("--set", args.set or None),
            )
            if value is not None
        ]
    if args.dry_run is not None and not 1 <= args.dry_run <= MAX_DRY_RUN:
        problems.append(f"--dry-run N must be in 1..{MAX_DRY_RUN:,}, got {args.dry_run}")
    if problems:
        raise UsageError("; ".join(problems))
    check_address(args.address, args.num_cpus)  # before the space's model and data are read
    spec = load_space_with(args.space, args.base, args.set)
    if not args.resume:
        _check_resources(spec, args.space)
    if args.dry_run is not None:
        from fsf.sweep.plan import print_plan

        return print_plan(
            spec,
            args.dry_run,
            name=args.name,
            storage_path=args.storage_path,
            num_trials=args.num_trials,
            max_concurrent=args.max_concurrent,
            resume=args.resume,
        )
    if spec.probe is not None:
        if args.num_trials is not None or args.resume:
            raise UsageError("a probe space runs its whole grid: drop --num-trials / --resume")
        return _run_probe(spec, args)
    outcome = run_sweep(
        spec,
        name=args.name,
        storage_path=args.storage_path,
        address=args.address,
        num_trials=args.num_trials,
        max_concurrent=args.max_concurrent,
        resume=args.resume,
        progress=progress_enabled(args),
        num_cpus=args.num_cpus,
        confirm=not args.no_confirm,
    )
    return _finish(outcome)


def _finish(outcome) -> int:
    """Print how the sweep ended; exit 1 when every trial failed or a failure could not be
    recorded in the results (so that nothing fails silently)."""
    from fsf.cli.results_tables import print_best_per_language

    done = ", ".join(f"{v} {k}" for k, v in sorted(outcome.statuses.items()))
    print(f"\nsweep finished: {outcome.num_trials} trials ({printable(done)})")
    for trial_id, reason in sorted(outcome.errors.items()):
        unrecorded = " [NOT recorded in the results]" if trial_id in outcome.unrecorded else ""
        print(f"  trial {printable(trial_id)} failed: {printable(reason)}{unrecorded}")
    for note in outcome.notes:
        print(f"note: {printable(note)}")
    if outcome.confirm is not None:
        _print_confirm(outcome.confirm)
    missing: list[str] = []
    if outcome.results_dir.exists():
        missing = print_best_per_language(outcome.sweep_dir)
    print(f"results: {outcome.results_dir}")
    for line in _artifact_lines(outcome.sweep_dir):
        print(line)
    print(f"query:   fsf-sweep best {outcome.sweep_dir} --per-language")
    print(f"report:  fsf-sweep report {outcome.sweep_dir}")
    code = 0
    if outcome.unrecorded:
        print(
            f"error: {len(outcome.unrecorded)} failed trial(s) could not record their failure "
            f"in {outcome.results_dir} (see above); `fsf-sweep show` cannot list them. Fix the "
            "folder (permissions, free space): `fsf-sweep resume` then runs the trials that had "
            "not finished (these stay failed)",
            file=sys.stderr,
        )
        code = 1
    if outcome.all_failed:
        print(
            f"error: every trial of the sweep failed ({outcome.num_trials}); see the reasons above",
            file=sys.stderr,
        )
        code = 1
    elif missing:
        _no_baseline(missing)
        code = 1
    return code


def _artifact_lines(sweep_dir, shown: int = 4) -> list[str]:
    """Where the sweep's runs left checkpoints and XTREME prediction files
    (`<stage>/runs/<trial>/seed-<s>/checkpoint|predictions`, the confirmation's first)."""
    found: dict[str, list] = {"checkpoint": [], "predictions": []}
    for stage in (sweep_dir / "confirm", sweep_dir):
        runs = stage / "runs"
        try:
            trials = sorted(runs.iterdir(), key=str) if runs.is_dir() else []
            for trial in trials:
                for seed in sorted(trial.iterdir(), key=str) if trial.is_dir() else []:
                    for kind, paths in found.items():
                        if (seed / kind).is_dir():
                            paths.append(seed / kind)
        except OSError:  # an unreadable folder: nothing to point at
            continue
    lines = []
    for kind, label in (("checkpoint", "checkpoints:"), ("predictions", "predictions:")):
        paths = found[kind]
        for i, path in enumerate(paths[:shown]):
            lines.append(f"{label if i == 0 else '':<13}{path}")
        if len(paths) > shown:
            lines.append(f"{'':<13}... and {len(paths) - shown} more in the same layout")
    return lines


def _no_baseline(missing: list[str]) -> None:
    print(
        f"error: the sweep's answer has no comparison with the baseline for "
        f"{', '.join(missing)} (see 'baseline:' above); run the baseline again "
        "(`fsf-sweep confirm DIR` retries a confirmation's failed trials)",
        file=sys.stderr,
    )


def _sweep_folder(command: str, text: str):
    """The sweep folder a command names: a local path (a `file://` URI is the local path it
    names) or a URI on other storage (s3://bucket/sweeps/NAME)."""
    from urllib.parse import unquote, urlsplit

    from fsf.results.storage import location

    parts = urlsplit(text)
    if parts.scheme == "file" and parts.netloc in ("", "localhost") and not parts.query:
        text = unquote(parts.path) or "/"
    try:
        return location(text)
    except ValueError as exc:
        raise UsageError(f"{command}: {exc}") from None


def _resume(args: argparse.Namespace) -> int:
    from fsf.sweep.space import load_space
    from fsf.sweep.tune import run_sweep

    sweep_dir = _sweep_folder("resume", args.dir)
    space = sweep_dir / "space.yaml"
    if not space.is_file():
        raise UsageError(f"{sweep_dir} is not a sweep folder (no space.yaml)")
    spec = load_space(str(space))
    outcome = run_sweep(
        spec,
        name=sweep_dir.resolve().name,
        storage_path=str(sweep_dir.resolve().parent),
        address=args.address,
        resume=True,
        progress=progress_enabled(args),
        num_cpus=args.num_cpus,
        confirm=not args.no_confirm,
    )
    code = _finish(outcome)
    if spec.probe is not None:
        from fsf.sweep.probe import output_dir

        _analyse_probe(outcome.sweep_dir, spec, output_dir(outcome.sweep_dir, spec.name))
    return code


def _check_resources(spec, source: str) -> None:
    """The model and data the space names, checked before anything trains (exit 2)."""
    from fsf.errors import ConfigError
    from fsf.sweep.space import check_resources

    problems = check_resources(spec)
    if problems:
        raise ConfigError(problems, source)


def _print_confirm(c) -> None:
    if c.already_done:
        print(f"confirmation: already done ({c.confirm_dir})")
        return
    done = ", ".join(f"{v} {k}" for k, v in sorted(c.statuses.items()))
    how = f"{len(c.candidates)} configurations on fresh seeds"
    if c.race is not None:
        rounds = len(c.race.get("rounds") or [])
        how += f", a race of {rounds} round{'s' if rounds != 1 else ''}"
        how += f": {c.race['stop']}" if c.race.get("stop") else " (not finished)"
    print(f"confirmation finished: {c.num_trials} runs ({printable(done)}); {printable(how)}")
    for trial_id, reason in sorted(c.errors.items()):
        print(f"  trial {printable(trial_id)} failed: {printable(reason)}")
    for trial_id, reasons in sorted(c.retried.items()):
        print(
            f"note: confirmation trial {printable(trial_id)} was run again after: "
            f"{printable('; '.join(reasons))}"
        )
    if c.resumed:
        print(f"note: confirmation {printable(c.resumed)}")


def _confirm(args: argparse.Namespace) -> int:
    from fsf.cli.results_common import baseline_arg
    from fsf.cli.results_tables import print_best_per_language
    from fsf.sweep.confirm import confirm_spec, run_confirm
    from fsf.sweep.space import load_space

    sweep_dir = _sweep_folder("confirm", args.dir).resolve()
    space = sweep_dir / "space.yaml"
    if not space.is_file():
        raise UsageError(f"{sweep_dir} is not a sweep folder (no space.yaml)")
    spec = load_space(str(space))
    if spec.probe is not None:
        raise UsageError(f"{sweep_dir} is a probe sweep; it has no configurations to confirm")
    baseline = baseline_arg(args.baseline)
    confirm = confirm_spec(spec, top_k=args.top_k, seeds=args.seeds, baseline=baseline)
    outcome = run_confirm(
        spec,
        sweep_dir,
        confirm=confirm,
        address=args.address,
        progress=progress_enabled(args),
        num_cpus=args.num_cpus,
    )
    _print_confirm(outcome)
    missing = print_best_per_language(sweep_dir)
    print(f"results: {outcome.results_dir}")
    for line in _artifact_lines(sweep_dir):
        print(line)
    if missing:
        _no_baseline(missing)
        return 1
    return 0


#: The sweep commands (fsf sweep|validate|resume|confirm|probe); fsf-sweep calls `sweep` `run`.
COMMANDS: dict[str, Command] = {
    "sweep": Command(
        "run a sweep from a space file (fsf-sweep's default command)", _sweep_args, _run
    ),
    "validate": Command(
        "check a space file; exit 2 listing every problem", _validate_args, _validate
    ),
    "resume": Command("continue the interrupted sweep in DIR", _resume_args, _resume),
    "confirm": Command(
        "re-run the best configurations and the baseline on fresh seeds (full budget)",
        _confirm_args,
        _confirm,
    ),
    "probe": Command(
        "layer probes: re-init/freeze each layer part; suggest weight sets",
        _probe_args,
        _probe,
    ),
}


def main(argv: list[str] | None = None) -> int:
    """`fsf-sweep`: the sweep, results and analysis commands; no subcommand runs a sweep."""
    return dispatch(_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
