"""Racing vs fixed confirmation: how often two runs of the default sweep reach the same
decision, and what each scheme spends on it.

Runs the default space (`sweeps/policies.yaml`, the embedded benchmark) `--repeats` times,
each repeat a real search (`fsf sweep --no-confirm`) confirmed twice, each scheme on its own
copy of the search folder (`fsf confirm`): `fixed` confirms the 2 best configurations and DF
on the same 3 fresh seeds (what the default space did before it raced); `race` is the
default space's own `confirm.race`. Sharing the search halves the cost and pairs the schemes:
within a repeat they differ only in how they confirm. A sweep's *decision* is what `fsf best
DIR --per-language` answers for the target mean: the winning configuration's policy and its
verdict against DF (better / worse / ~ noise, the paired 95% interval over the confirmed
seeds; `baseline` when DF itself wins). Printed per scheme: each sweep's decision, the
confirmation runs it spent and how its race stopped; then the share of pairs of sweeps that
agree on the winner's policy, on the verdict and on both, and the confirmation runs (and
optimizer steps) spent per decision. The same space searched twice often gives the
same candidates (the searcher's seed and the training seeds fix them), but not always: with 2
trials at a time TPE sees results in the order they finish. Without `--fresh-seeds` the
repeats show how far a sweep repeats itself; `--fresh-seeds` makes them independent
replications of the whole sweep: repeat r searches with searcher seed r on training seed
1000 r and confirms on seeds 100 + 1000 r, ... (repeat 0 is the space as shipped).

    python bench/bench_race.py [--out DIR] [--repeats 4] [--schemes fixed race] [--fresh-seeds]
                               [--space FILE] [--json FILE]
    python bench/bench_race.py --smoke
"""

from __future__ import annotations

import argparse
import copy
import itertools
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import _runs
import yaml
from _runs import md_table

ROOT = Path(__file__).resolve().parents[1]
SPACE = ROOT / "sweeps" / "policies.yaml"
SCHEMES = ("fixed", "race")
DEFAULT_RACE = {"first_round": 3, "per_round": 1, "max_seeds": 6}


def search_space(space: dict[str, Any], repeat: int, fresh: bool = False) -> dict[str, Any]:
    """The space of repeat `repeat`'s search (its confirmation is the space's race). With
    `fresh`, repeat r searches with searcher seed r and trains on seed 1000 r (repeat 0 is
    the space as shipped), so that the repeats replicate the whole sweep."""
    out = copy.deepcopy(space)
    out["name"] = f"race-bench-search-{repeat}"
    if fresh and repeat:
        search = out["search"]
        search["searcher_seed"] = search.get("searcher_seed", 0) + repeat
        search["seeds"] = [s + 1000 * repeat for s in search.get("seeds", [0])]
    confirm = dict(out.get("confirm") or {})
    confirm.pop("seeds", None)
    confirm["race"] = dict(confirm.get("race") or DEFAULT_RACE)
    out["confirm"] = confirm
    return out


def _fsf(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "fsf", *args], check=True)


def run_search(space: dict[str, Any], out: Path, extra: list[str]) -> Path:
    """Repeat's search stage, `fsf sweep --no-confirm` (resumed if an earlier call was
    interrupted; a finished search resumes to nothing)."""
    folder = out / space["name"]
    if (folder / "space.yaml").is_file():
        _fsf("resume", str(folder), "--no-confirm", "-q")
        return folder
    path = out / f"{space['name']}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(space, sort_keys=False))
    _fsf("sweep", "--space", str(path), "--storage-path", str(out), "--no-confirm", *extra)
    return folder


def run_confirmation(search: Path, scheme: str, repeat: int, fresh: bool) -> Path:
    """`scheme`'s confirmation of a copy of the search folder `search` (its own folder,
    `race-bench-<scheme>-<repeat>`): `fixed` on the race's first-round seeds, every
    configuration on each; `race` the space's race. With `fresh`, repeat r's seeds start
    1000 r higher. Skipped when that confirmation has finished."""
    folder = search.parent / f"race-bench-{scheme}-{repeat}"
    meta = folder / "confirm" / "sweep.json"
    if meta.is_file() and json.loads(meta.read_text()).get("finished"):
        return folder
    if not folder.exists():
        part = folder.with_name(folder.name + ".part")
        shutil.rmtree(part, ignore_errors=True)
        shutil.copytree(search, part, ignore=shutil.ignore_patterns("confirm"))
        part.rename(folder)  # whole or absent: an interrupted copy is made again
    space = yaml.safe_load((search / "space.yaml").read_text())
    race = space["confirm"]["race"]
    race["first_seed"] = race.get("first_seed", 100) + (1000 * repeat if fresh else 0)
    (folder / "space.yaml").write_text(yaml.safe_dump(space, sort_keys=False))
    if scheme == "fixed":
        seeds = [str(race["first_seed"] + i) for i in range(race.get("first_round", 3))]
        _fsf("confirm", str(folder), "--seeds", *seeds, "-q")
    else:
        _fsf("confirm", str(folder), "-q")
    return folder


def decision(folder: Path) -> dict[str, Any]:
    """What the sweep answered for the target mean, and what its confirmation spent."""
    from fsf.results import best_per_language, read_results

    confirm = folder / "confirm"
    res = read_results(confirm)
    answer = best_per_language(res).target_mean
    if answer is None:
        raise SystemExit(f"{confirm}: no answer for the target mean")
    vs = answer.get("vs_baseline") or {}
    verdict = "baseline" if vs.get("is_baseline") else vs.get("verdict", "untested")
    runs = res.table.select(["trial_id", "seed", "step"]).group_by(["trial_id", "seed"])
    steps = runs.aggregate([("step", "max")]).column("step_max").to_pylist()
    meta = json.loads((confirm / "sweep.json").read_text())
    race = meta.get("race") or {}
    d = vs.get("mean")
    return {
        "sweep": folder.name,
        "policy": answer["policy"],
        "params": answer["config"]["params"],
        "verdict": verdict,
        "diff": None if d is None else 100 * d,
        "ci": None if vs.get("ci_low") is None else [100 * vs["ci_low"], 100 * vs["ci_high"]],
        "seeds": answer["n_seeds"],
        "runs": len(steps),
        "steps": int(sum(steps)),
        "rounds": len(race.get("rounds") or []) or None,
        "stop": race.get("stop"),
    }


def agreement(decisions: list[dict[str, Any]]) -> dict[str, Any]:
    """Shares of the pairs of sweeps that agree on the policy, the verdict and both."""
    pairs = list(itertools.combinations(decisions, 2))
    if not pairs:
        return {"pairs": 0}

    def share(same) -> float:  # type: ignore[no-untyped-def]
        return sum(1 for a, b in pairs if same(a, b)) / len(pairs)

    return {
        "pairs": len(pairs),
        "policy": share(lambda a, b: a["policy"] == b["policy"]),
        "verdict": share(lambda a, b: a["verdict"] == b["verdict"]),
        "both": share(lambda a, b: (a["policy"], a["verdict"]) == (b["policy"], b["verdict"])),
    }


def _ms(values: list[float]) -> str:
    if len(values) < 2:
        return f"{values[0]:.1f}" if values else "-"
    return f"{statistics.mean(values):.1f} ± {statistics.stdev(values):.1f}"


def tables(by_scheme: dict[str, list[dict[str, Any]]]) -> str:
    rows = []
    for scheme, ds in by_scheme.items():
        for d in ds:
            ci = "" if d["ci"] is None else f" [{d['ci'][0]:+.2f}, {d['ci'][1]:+.2f}]"
            diff = "-" if d["diff"] is None else f"{d['diff']:+.2f}{ci}"
            stop = d["stop"] or "-"
            rows.append(
                [scheme, d["sweep"], d["policy"], d["verdict"], diff, d["seeds"], d["runs"], stop]
            )
    each = md_table(
        ["scheme", "sweep", "winner", "verdict vs DF", "Δ [95% CI]", "seeds", "runs", "race"],
        rows,
        title="each sweep's decision (target mean, test; confirmation runs spent)",
    )
    summary = []
    for scheme, ds in by_scheme.items():
        a = agreement(ds)
        share = (
            (f"{a['policy']:.0%}", f"{a['verdict']:.0%}", f"{a['both']:.0%}")
            if a["pairs"]
            else ("-", "-", "-")
        )
        summary.append(
            [
                scheme,
                len(ds),
                a["pairs"],
                *share,
                _ms([d["runs"] for d in ds]),
                _ms([d["steps"] / 1000 for d in ds]),
            ]
        )
    agree = md_table(
        [
            "scheme",
            "sweeps",
            "pairs",
            "same winner policy",
            "same verdict",
            "same decision",
            "confirmation runs per decision",
            "k steps per decision",
        ],
        summary,
        title="agreement between runs of the default sweep, and what a decision costs",
    )
    return each + "\n\n" + agree


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=ROOT / "fsf-runs" / "race-bench")
    p.add_argument("--space", type=Path, default=SPACE)
    p.add_argument("--repeats", type=int, default=4, help="sweeps per scheme (>= 2)")
    p.add_argument("--schemes", nargs="+", default=list(SCHEMES), choices=SCHEMES)
    p.add_argument(
        "--fresh-seeds",
        action="store_true",
        help="each repeat searches and confirms on its own seeds (independent replications)",
    )
    p.add_argument("--json", type=Path, help="write every decision and the agreement here")
    p.add_argument("--smoke", action="store_true", help="tiny model and sizes; just completes")
    args = p.parse_args(argv)
    if args.repeats < 2:
        p.error("--repeats must be >= 2 (agreement is between pairs of sweeps)")
    space = yaml.safe_load(args.space.read_text())
    tmp = tempfile.TemporaryDirectory()
    extra: list[str] = []
    if args.smoke:
        args.out, args.repeats = Path(tmp.name) / "runs", 2
        over = _runs.smoke_overrides(Path(tmp.name) / "assets", steps=4)
        extra += _runs.set_args(over)
        search = space["search"]
        search["num_trials"], search["scheduler"] = 2, {"type": "none"}
        search["parameters"] = {"policy.name": {"type": "categorical", "values": ["fs"]}}
        search["searcher"] = "grid"
        space["confirm"] = {  # FS and DF on 2 seeds: one round (the path, not a finding)
            "top_k": 1,
            "baseline": {"policy.name": "df"},
            "race": {"first_round": 2, "per_round": 1, "max_seeds": 2},
        }
    extra += ["-q"]
    by_scheme: dict[str, list[dict[str, Any]]] = {s: [] for s in args.schemes}
    search = None
    for r in range(args.repeats):
        if search is None or not args.smoke:  # (smoke: one search serves both repeats)
            search = run_search(search_space(space, r, args.fresh_seeds), args.out, extra)
        for scheme in args.schemes:
            if args.smoke and r:  # (smoke: and one confirmation per scheme serves both)
                shutil.copytree(search.parent / f"race-bench-{scheme}-0",
                                search.parent / f"race-bench-{scheme}-{r}")  # fmt: skip
            folder = run_confirmation(search, scheme, r, args.fresh_seeds)
            by_scheme[scheme].append(decision(folder))
    print(tables(by_scheme))
    if args.json:
        data = {s: {"decisions": ds, "agreement": agreement(ds)} for s, ds in by_scheme.items()}
        args.json.write_text(json.dumps(data, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
