"""`fsf-policy` (also `fsf policy`): see exactly what a policy does, iteration by iteration.

fsf-policy list
fsf-policy explain --policy fsf --layers 12 [--losses FILE] [--steps N] [--cka FILE]
                   [--set c1=0.1 --set sets.s1=1-8 ...] [--format json|table]
fsf-policy explain --run DIR --trial ID --seed S --layers 12    # replay a recorded run

Without --losses the loss follows an example curve, 0.35 + 0.75 * exp(-t / 60) at iteration t
(a fast fall, then a plateau; fsf.policies.explain.EXAMPLE_LOSS), and the loss-trend window
is 20, as in the shipped spaces (the paper's and PolicyConfig's default is 100:
--set window=100).
"""

from __future__ import annotations

import argparse
import json
import math
import sys

from fsf.cli._base import (
    Command,
    add_commands,
    add_common_arguments,
    configure,
    dispatch,
    print_table,
)
from fsf.config import apply_overrides, parse_overrides
from fsf.errors import ConfigError, Problem, os_reason, problems_from_pydantic
from fsf.policies.config import PolicyConfig
from fsf.policies.explain import EXAMPLE_LOSS, explain
from fsf.policies.registry import policy_class, policy_names
from fsf.policies.weight_sets import MAX_LAYERS
from fsf.text import InputTooLarge, read_limited

__all__ = ["COMMANDS", "EXPLAIN_WINDOW", "MAX_STEPS", "SUBCOMMANDS", "main"]

EXPLAIN_WINDOW = 20
"""`explain`'s loss-trend window unless --set window=N: the shipped spaces' value."""


def _explain_args(e: argparse.ArgumentParser) -> None:
    e.add_argument(
        "--policy", help="policy name (see `fsf-policy list`); default with --run: the run's"
    )
    e.add_argument(
        "--run",
        metavar="DIR",
        help="replay a recorded run: its policy settings, per-step losses and (policy_iv: cka) "
        "CKA curve, read from the results of the sweep or fsf-train folder DIR",
    )
    e.add_argument("--trial", help="with --run: the trial id (default: the only one)")
    e.add_argument("--seed", type=int, help="with --run: the seed (default: the only one)")
    e.add_argument("--layers", type=int, required=True, help="encoder depth L")
    e.add_argument(
        "--losses",
        help="file with one training loss per line (iteration 1, 2, ...); default: an example "
        "curve, 0.35 + 0.75 exp(-t/60)",
    )
    e.add_argument("--steps", type=int, help="iterations to show (default: number of losses)")
    e.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="policy setting, e.g. c1=0.1, switch=step, switch_step=50, sets.s1=1-8",
    )
    e.add_argument("--no-policy-iv", action="store_true", help="as on NER: Policy IV off")
    e.add_argument(
        "--cka",
        metavar="FILE",
        help="a recorded CKA curve of the V_II layers (lines 'step value', e.g. a run's cka_v2 "
        "rows): shows policy_iv: cka, c2 only while that curve is still falling",
    )
    e.add_argument("--format", choices=("json", "table"), default="table")


MAX_STEPS = 100_000
"""The most iterations `explain` replays (a table row and a JSON record each)."""
MAX_WORK = 100_000 * 24
"""The most iterations x layers `explain` replays (each layer is three units per record)."""
MAX_INPUT_BYTES = 16 * 2**20
"""The largest --losses or --cka file read."""


def _read_numbers(path: str, flag: str) -> list[str]:
    """The lines of a --losses / --cka file, read with a size limit."""
    try:
        data = read_limited(path, MAX_INPUT_BYTES, flag)
    except InputTooLarge as exc:
        raise ConfigError([Problem(flag, exc.reason, path, True)]) from None
    except OSError as exc:
        raise ConfigError([Problem(flag, f"cannot read: {os_reason(exc)}", path, True)]) from None
    try:
        return data.decode("utf-8").splitlines()
    except UnicodeDecodeError:
        raise ConfigError([Problem(flag, "not a text file (not UTF-8)", path, True)]) from None


def _read_losses(path: str) -> list[float]:
    lines = [item for line in _read_numbers(path, "--losses") for item in line.split()]
    if len(lines) > MAX_STEPS:
        raise ConfigError(
            [Problem("--losses", f"holds {len(lines):,} losses; at most {MAX_STEPS:,}", path, True)]
        )
    bad = []
    out = []
    for i, item in enumerate(lines, 1):
        try:
            value = float(item)
            if not math.isfinite(value):
                raise ValueError
            out.append(value)
        except ValueError:
            bad.append(Problem(f"--losses line {i}", "not a finite number", item, True))
    if bad:
        raise ConfigError(bad[:10])
    return out


def _read_cka(path: str) -> list[tuple[int, float]]:
    lines = _read_numbers(path, "--cka")
    bad, out = [], []
    for i, line in enumerate(lines, 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = line.replace(",", " ").split()
        try:
            if len(parts) != 2:
                raise ValueError
            step, value = int(parts[0]), float(parts[1])
            if not (0 <= step <= MAX_STEPS and math.isfinite(value)):
                raise ValueError
            out.append((step, value))
        except ValueError:
            bad.append(
                Problem(
                    f"--cka line {i}",
                    f"expected 'step value' (a step in 0..{MAX_STEPS:,}, a finite value)",
                    line.strip(),
                    True,
                )
            )
    if bad:
        raise ConfigError(bad[:10])
    if not out:
        raise ConfigError([Problem("--cka", "holds no 'step value' line", path, True)])
    return out


def _recorded(args: argparse.Namespace) -> tuple[dict, list[float], list[tuple[int, float]]]:
    """The policy settings, per-step losses and cka_v2 curve of one run of `--run DIR`."""
    import pyarrow.compute as pc

    from fsf.results import read_results
    from fsf.results.schema import CKA_SPLIT, CKA_V2_METRIC, LOSS_METRIC, TRAIN_SPLIT

    t = read_results(args.run).table
    runs = sorted({(r["trial_id"], r["seed"]) for r in t.select(["trial_id", "seed"]).to_pylist()})
    chosen = [
        (trial, seed)
        for trial, seed in runs
        if (args.trial is None or trial == args.trial) and (args.seed is None or seed == args.seed)
    ]
    if len(chosen) != 1:
        listed = ", ".join(f"{trial} seed {seed}" for trial, seed in runs[:20]) or "none"
        what = "no run matches" if not chosen else f"{len(chosen)} runs match"
        raise ConfigError(
            [Problem("--trial/--seed", f"{what} in {args.run}; runs: {listed}", None)]
        )
    trial, seed = chosen[0]
    mine = t.filter(pc.and_(pc.equal(t["trial_id"], trial), pc.equal(t["seed"], seed)))
    config = json.loads(mine["config_json"][0].as_py())["policy"]

    def curve(split: str, metric: str) -> list[tuple[int, float]]:
        rows = mine.filter(
            pc.and_(pc.equal(mine["split"], split), pc.equal(mine["metric"], metric))
        )
        return sorted(
            dict(zip(rows["step"].to_pylist(), rows["value"].to_pylist(), strict=True)).items()
        )

    losses = [v for _, v in curve(TRAIN_SPLIT, LOSS_METRIC)]
    if not losses:
        raise ConfigError(
            [Problem("--run", f"run {trial} seed {seed} recorded no per-step loss "
                     "(analysis.loss_curve was off): nothing to replay", args.run, True)]
        )  # fmt: skip
    return config, losses, curve(CKA_SPLIT, CKA_V2_METRIC)


def _explain(args: argparse.Namespace) -> int:
    recorded = _recorded(args) if args.run else None
    if recorded is not None:
        if args.losses or args.cka:
            raise ConfigError(
                [Problem("--run", "replaces --losses and --cka; give one or the other")]
            )
        args.policy = args.policy or recorded[0]["name"]
    problems = []
    if args.policy is None:
        problems.append(Problem("--policy", "give a policy name, or --run DIR to replay a run"))
    if not 1 <= args.layers <= MAX_LAYERS:
        problems.append(Problem("--layers", f"must be in 1..{MAX_LAYERS:,}", args.layers, True))
    if args.steps is not None and not 1 <= args.steps <= MAX_STEPS:
        problems.append(Problem("--steps", f"must be in 1..{MAX_STEPS:,}", args.steps, True))
    if args.losses is None and args.steps is None and recorded is None:
        problems.append(Problem("--steps", "give --losses FILE, --steps N, or both"))
    data = {"name": args.policy, "window": EXPLAIN_WINDOW}
    if recorded is not None:  # the run's own settings; --set still changes them
        data = {**recorded[0], "name": args.policy}
    overrides = [(k.removeprefix("policy."), v) for k, v in parse_overrides(args.set)]
    data = apply_overrides(data, overrides)
    from pydantic import ValidationError

    config = None
    try:
        config = PolicyConfig.model_validate(data)
    except ValidationError as exc:
        problems += problems_from_pydantic(exc, "policy")
    losses = _read_losses(args.losses) if args.losses else None
    if recorded is not None:
        losses = recorded[1]
    if losses is not None and args.steps is not None and args.steps > len(losses):
        problems.append(
            Problem(
                "--steps", f"exceeds the {len(losses)} losses in {args.losses}", args.steps, True
            )
        )
    total = args.steps if args.steps is not None else len(losses or [])
    if not problems and total > MAX_STEPS:  # a recorded run longer than explain replays
        problems.append(
            Problem("--steps", f"the run has {total:,} losses; give --steps N <= {MAX_STEPS:,}")
        )
    if not problems and total * args.layers > MAX_WORK:
        problems.append(
            Problem(
                "--steps",
                f"{total:,} iterations x {args.layers} layers: at most {MAX_WORK:,} "
                "(e.g. 100,000 iterations of 24 layers); give fewer --steps",
                total,
                True,
            )
        )
    if problems:
        raise ConfigError(problems)
    assert config is not None
    cka = _read_cka(args.cka) if args.cka else None
    if recorded is not None and recorded[2]:
        cka = recorded[2]
    iv: bool | str = not args.no_policy_iv and ("cka" if cka is not None else True)
    if config.policy_iv is None:
        config = config.model_copy(update={"policy_iv": iv})
    records = explain(config, args.layers, losses, args.steps, cka=cka)
    if args.format == "json":
        json.dump(
            [{k: v for k, v in r.items() if k != "set_multipliers"} for r in records], sys.stdout
        )
        sys.stdout.write("\n")
        return 0
    described = config.sets.resolve(args.layers).describe()
    described["S_I"] += " (outside S_II)"
    described["V_I"] += " (outside V_II)"
    _print_records(records, described)
    loss = f"the losses in {args.losses}" if args.losses else f"loss = {EXAMPLE_LOSS}"
    if recorded is not None:
        loss = f"the recorded losses of {args.run}"
    rule = (
        f"loss-trend window {config.window}, threshold {config.threshold}"
        if config.switch == "loss-trend"
        else f"switch={config.switch}"
    )
    iv_rule = {
        False: "Policy IV off",
        True: "Policy IV on",
        "cka": f"Policy IV while the CKA of V_II fell by > {config.cka.min_drop} over the last "
        f"{config.cka.window} measurements"
        + (" (the recorded curve)" if cka is not None else " (no curve given: c2 throughout P2)"),
    }[config.policy_iv if config.policy_iv is not None else True]
    print(f"{loss}; {rule}; {iv_rule}")
    return 0


def _print_records(records: list[dict], sets: dict[str, str]) -> None:
    """One row per run of iterations whose multipliers agree to 2 decimals (K of S_II moves
    a little at every step in P2), showing the run's last K and phi; one column per weight
    set, and with a recorded CKA curve whether it was still falling. `--format json` has
    every step's exact values."""
    with_cka = any(rec.get("cka_falling") is not None for rec in records)
    rows: list[list] = []
    prev = None
    for rec in records:
        k = rec["set_multipliers"]
        exact = [k[s] for s in _SET_COLUMNS]
        falling = rec.get("cka_falling")
        cka = ["-" if falling is None else ("yes" if falling else "no")] if with_cka else []
        key = (rec["phase"], *cka, *(None if v is None else round(v, 2) for v in exact))
        phi = "-" if rec["phi"] is None else f"{rec['phi']:.3f}"
        if key == prev:
            rows[-1][0] = f"{rows[-1][0].split('-')[0]}-{rec['step']}"
            rows[-1][2] = phi
            rows[-1][3 + len(cka) :] = exact
            continue
        rows.append([str(rec["step"]), rec["phase"], phi, *cka, *exact])
        prev = key
    headers = ["steps", "phase", "phi (last)"] + (["CKA V_II\nfalling"] if with_cka else [])
    headers += [f"{s}\n{sets[s]}" if s in sets else s for s in _SET_COLUMNS]
    print_table(
        headers,
        rows,
        title="learning-rate multipliers K per weight set (steps whose K agree to 2 decimals "
        "share a row, which shows the last step's)",
    )


_SET_COLUMNS = ("S_I", "S_II", "V_I", "V_II", "embeddings", "head")


def _list(args: argparse.Namespace) -> int:
    for name in policy_names():
        doc = (policy_class(name).__doc__ or "").strip().splitlines()[0]
        print(f"{name:10s} {doc}")
    return 0


def _no_args(p: argparse.ArgumentParser) -> None:
    pass


#: `fsf-policy list|explain`.
SUBCOMMANDS: dict[str, Command] = {
    "list": Command("the registered policies", _no_args, _list),
    "explain": Command("multipliers per iteration", _explain_args, _explain),
}


def _policy_args(p: argparse.ArgumentParser) -> None:
    add_commands(p.add_subparsers(dest="command", required=True), SUBCOMMANDS)


#: `fsf policy list|explain` (the same as `fsf-policy`).
COMMANDS: dict[str, Command] = {
    "policy": Command("list the policies; explain one's multipliers step by step", _policy_args),
}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fsf-policy", description=__doc__.split("\n\n")[0])
    return add_common_arguments(configure(p, COMMANDS["policy"]), "fsf-policy")


def main(argv: list[str] | None = None) -> int:
    return dispatch(_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
