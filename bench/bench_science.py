"""Science, tuned vs tuned: does a policy beat DF when both get the same search budget?

For every policy (DF, NoisyTune, FS, FF, FSF) one real `fsf-sweep` over the default space
(`sweeps/policies-full.yaml`, the embedded benchmark) with the policy fixed and the same budget:
`--trials` Optuna TPE trials over the peak learning rate and the policy's own knobs (c1, r,
c2, switch point, noise), ASHA, one seed, chosen on target-language dev data (the space's
objective). Each sweep then confirms its best configuration on the same fresh seeds at full
budget (the space's `confirm` stage, `top_k` 1). The answer comes from those confirmation
runs only, compared with DF's confirmed runs seed by seed (paired; 95% t interval; "~ noise"
when it contains 0). Test scores of the checkpoint chosen on source-language dev.

Printed: the paper's Table 2/4 analogue (source, target mean, gap, the paired difference to
DF), a per-language table of paired differences (its Table 3 analogue), and with
`--sensitivity` its Table 5 analogue (FSF's c1, c2 and r one at a time around FSF's tuned
configuration, on the same fresh seeds). A PNG shows the paired differences.

    python bench/bench_science.py [--out DIR] [--space FILE] [--trials 12] [--seeds 100 101 102 103 104]
                                  [--policies df fs ...] [--sensitivity] [--png FILE]
    python bench/bench_science.py --from FOLDER [FOLDER ...] [--title TEXT]
    python bench/bench_science.py --smoke

`--from` runs nothing: it prints the same tables from runs already made, every completed run
of the folders given (sweeps, or their `confirm/`) grouped by policy and paired with DF's
run of the same seed (e.g. DF and FSF at one lr on the same seeds, sweeps/real-intents-paired.yaml;
a seed's runs may come from several folders, as when a sweep was continued under a new name).
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import _runs
import yaml
from _runs import checkpoint_scores, md_table

ROOT = Path(__file__).resolve().parents[1]
SPACE = ROOT / "sweeps" / "policies-full.yaml"
POLICIES = ("df", "noisytune", "fs", "ff", "fsf")
SENSITIVITY = {"c1": [0.5, 0.1, 0.001], "c2": [5.0, 20.0], "r": [1.0, 4.0]}


def policy_space(space: dict[str, Any], policy: str, trials: int, seeds: list[int]) -> dict:
    """The default space with `policy` fixed: the lr and the policy's own knobs, `trials`
    trials, then its best configuration confirmed on `seeds`."""
    out = copy.deepcopy(space)
    out["name"] = f"science-{policy}"
    out["description"] = f"{policy}, tuned: lr and its own knobs ({trials} trials)"
    out["base"].setdefault("policy", {})["name"] = policy
    params = {}
    for key, p in space["search"]["parameters"].items():
        if key == "policy.name":
            continue
        when = dict(p.get("when", {}))
        names = when.pop("policy.name", None)
        if names is not None and policy not in names:
            continue
        q = {k: v for k, v in p.items() if k != "when"}
        if when:
            q["when"] = when
        params[key] = q
    changed = True
    while changed:  # a knob conditioned on a dropped one (switch_fraction on switch) goes too
        changed = False
        for key, q in list(params.items()):
            if any(cond not in params for cond in q.get("when", {})):
                del params[key]
                changed = True
    if "optim.lr" not in params:
        raise SystemExit("the space does not search optim.lr: a tuned-vs-tuned comparison needs it")
    out["search"]["parameters"] = params
    out["search"]["num_trials"] = trials
    out["confirm"] = {
        "top_k": 1,
        "seeds": seeds,
        "baseline": {"policy.name": policy},
        "predictions": False,
        "checkpoints": "none",
    }
    return out


def run_sweep(space: dict, out: Path, extra: list[str]) -> Path:
    folder = out / space["name"]
    if (folder / "confirm" / "results").is_dir() and (folder / "confirm" / "sweep.json").is_file():
        done = json.loads((folder / "confirm" / "sweep.json").read_text()).get("finished")
        if done:
            return folder
    path = out / f"{space['name']}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(space, sort_keys=False))
    cmd = [sys.executable, "-m", "fsf", "sweep", "--space", str(path)]
    cmd += ["--storage-path", str(out), *extra]
    if (folder / "tune").is_dir():
        cmd = [sys.executable, "-m", "fsf", "resume", str(folder)]
    subprocess.run(cmd, check=True)
    return folder


def per_seed(folder: Path) -> tuple[dict[int, dict[str, float]], dict[str, Any], str]:
    """Confirmed runs of the sweep's winner: seed -> test score per language (source-dev
    checkpoint), its parameters, the source language."""
    runs = checkpoint_scores(folder / "confirm")
    if not runs:
        raise SystemExit(f"{folder}/confirm has no runs")
    params = runs[0]["params"]
    return {r["seed"]: r["checkpoint"] for r in runs}, params, runs[0]["source"]


def per_policy(folders: list[Path], baseline: list[Path] | None = None) -> dict[str, tuple]:
    """Every completed run of `folders`, by policy: seed -> test score per language
    (source-dev checkpoint), the policy's parameters, the source language. A policy must
    hold one configuration (its parameters other than the seed agree), and each seed once.
    With `baseline`, DF (the row every policy pairs with) is the DF runs of those folders
    alone, and DF runs in `folders` are a row of their own, "df (--from)"."""
    out: dict[str, tuple] = {}

    def add(folder: Path, run: dict[str, Any], name: str) -> None:
        scores, params, _ = out.setdefault(name, ({}, run["params"], run["source"]))
        if run["params"] != params:
            raise SystemExit(
                f"{folder}: {name} runs with two configurations ({params} and "
                f"{run['params']}); --from pairs one configuration per policy"
            )
        if run["seed"] in scores:
            raise SystemExit(f"{folder}: {name} has seed {run['seed']} twice")
        scores[run["seed"]] = run["checkpoint"]

    for folder in baseline or []:
        for run in checkpoint_scores(folder):
            if run["policy"] == "df":
                add(folder, run, "df")
    if baseline and "df" not in out:
        raise SystemExit("--baseline-from: no DF run in those folders")
    for folder in folders:
        for run in checkpoint_scores(folder):
            name = run["policy"]
            add(folder, run, "df (--from)" if baseline and name == "df" else name)
    if "df" not in out:
        raise SystemExit("--from: no DF run in the folders (the baseline every policy pairs with)")
    return {"df": out.pop("df"), **dict(sorted(out.items()))}


def _tm(scores: dict[str, float], src: str) -> float:
    return statistics.mean(v for k, v in scores.items() if k != src)


def _pm(values: list[float]) -> str:
    m = statistics.mean(values)
    s = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{100 * m:.1f} ± {100 * s:.1f}"


def _diff(a: list[float], b: list[float], seeds: list[int]) -> tuple[str, Any]:
    from fsf.results import paired_difference

    d = paired_difference(a, b, seeds)
    if d.mean is None:
        return "-", d
    if d.ci is None:
        return f"{100 * d.mean:+.1f} (1 seed)", d
    lo, hi = d.ci
    verdict = "~ noise" if d.verdict == "within noise" else d.verdict
    return f"{100 * d.mean:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}] {verdict}", d


def _params(p: dict[str, Any]) -> str:
    short = {k.split(".")[-1]: v for k, v in p.items() if k != "policy.name"}
    return " ".join(
        f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in short.items()
    )


def tables(
    results: dict[str, tuple], trials: int, title: str | None = None
) -> tuple[str, str, dict]:
    df, _, src = results["df"]
    seeds = sorted(df)
    langs = sorted(k for k in df[seeds[0]] if k != src)
    rows, lang_rows, diffs = [], [], {}
    for name, (scores, params, _) in results.items():
        common = [s for s in seeds if s in scores]
        s_src = [scores[s][src] for s in common]
        s_tgt = [_tm(scores[s], src) for s in common]
        s_gap = [a - b for a, b in zip(s_src, s_tgt, strict=True)]
        b_tgt = [_tm(df[s], src) for s in common]
        b_src = [df[s][src] for s in common]
        if name == "df":
            dt, ds = "baseline", "-"
        else:
            dt, d = _diff(s_tgt, b_tgt, common)
            ds, _ = _diff(s_src, b_src, common)
            diffs[name] = {"target_mean": d}
        rows.append(
            [name, _pm(s_src), _pm(s_tgt), _pm(s_gap), dt, ds, len(common), _params(params)]
        )
        if name != "df":
            cells = []
            for lang in langs:
                text, d = _diff(
                    [scores[s][lang] for s in common], [df[s][lang] for s in common], common
                )
                diffs[name][lang] = d
                cells.append(text)
            lang_rows.append([name, *cells])
    main = md_table(
        ["policy", "source", "target mean", "gap", "Δ target vs DF [95% CI]", "Δ source vs DF",
         "seeds", "tuned configuration"],
        rows,
        title=(
            (title or f"each policy tuned with the same budget ({trials} TPE trials over lr "
             "and its own knobs, chosen on target dev), confirmed on fresh seeds")
            + f" (seeds {seeds}); test accuracy (points) of the source-dev checkpoint, "
            "mean ± std over seeds; Δ paired by seed"
        ),
    )  # fmt: skip
    per_lang = md_table(
        ["policy", *langs],
        lang_rows,
        title="paired difference to DF per target language (points, 95% CI)",
    )
    return main, per_lang, diffs


def write_json(diffs: dict[str, dict], path: Path) -> None:
    """The paired differences (points as fractions), with each one's p-value and seeds."""
    path.write_text(
        json.dumps(
            {
                n: {k: {"mean": d.mean, "ci": d.ci, "p": d.p, "seeds": d.seeds}
                    for k, d in v.items()}
                for n, v in diffs.items()
            },
            indent=1,
        )
    )  # fmt: skip


def plot(diffs: dict[str, dict], path: Path, title: str | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(diffs)
    keys = list(next(iter(diffs.values())))
    fig, ax = plt.subplots(figsize=(1.2 * len(keys) + 3, 3.6))
    width = 0.8 / max(1, len(names))
    for i, name in enumerate(names):
        xs, ms, lo, hi = [], [], [], []
        for j, k in enumerate(keys):
            d = diffs[name][k]
            if d.mean is None:
                continue
            xs.append(j + (i - (len(names) - 1) / 2) * width)
            ms.append(100 * d.mean)
            a, b = d.ci if d.ci else (d.mean, d.mean)
            lo.append(100 * (d.mean - a))
            hi.append(100 * (b - d.mean))
        ax.errorbar(xs, ms, yerr=[lo, hi], fmt="o", capsize=3, label=name)
    ax.axhline(0, color="0.4", lw=0.8)
    ax.set_xticks(range(len(keys)), keys)
    ax.set_ylabel("Δ vs DF (test acc, points)")
    ax.set_title(title or "tuned vs tuned: paired difference to DF on fresh seeds, 95% CI")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def sensitivity(fsf_folder: Path, seeds: list[int], smoke_over: dict) -> str:
    """FSF's Table 5 analogue: one knob at a time around FSF's tuned configuration."""
    from fsf.config import apply_overrides
    from fsf.sweep.points import trial_run_config
    from fsf.sweep.space import load_space

    spec = load_space(fsf_folder / "space.yaml")
    if smoke_over:
        spec = spec.model_copy(
            update={"base": apply_overrides(spec.base, list(smoke_over.items()))}
        )
    scores, params, src = per_seed(fsf_folder)
    jobs = []
    for knob, values in SENSITIVITY.items():
        for v in values:
            p = {**params, f"policy.{knob}": v}
            for s in seeds:
                jobs.append((f"{knob}={v:g}", trial_run_config(spec, p, s, f"{knob}{v:g}-{s}")))
    curves = _runs.run_many(jobs, desc="sensitivity runs")
    rows = [["tuned FSF", _pm([_tm(scores[s], src) for s in seeds]), "-", _params(params)]]
    by: dict[str, dict[int, float]] = {}
    for c in curves:
        by.setdefault(c.label, {})[c.seed] = c.best_dev["test_target_mean"]
    for label, vals in by.items():
        common = [s for s in seeds if s in vals]
        text, _ = _diff([vals[s] for s in common], [_tm(scores[s], src) for s in common], common)
        rows.append([label, _pm([vals[s] for s in common]), text, ""])
    return md_table(
        ["FSF with", "target mean", "Δ vs tuned FSF [95% CI]", "tuned configuration"],
        rows,
        title=f"FSF sensitivity around its tuned configuration (one knob at a time), seeds {seeds}",
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=ROOT / "fsf-runs" / "science")
    p.add_argument(
        "--space",
        type=Path,
        default=SPACE,
        help="the space whose base and knobs every policy gets (sweeps/policies-full.yaml)",
    )
    p.add_argument("--trials", type=int, default=12, help="search trials per policy")
    p.add_argument("--seeds", nargs="+", type=int, default=[100, 101, 102, 103, 104])
    p.add_argument("--policies", nargs="+", default=list(POLICIES), choices=POLICIES)
    p.add_argument("--sensitivity", action="store_true", help="also FSF's Table 5 analogue")
    p.add_argument("--png", type=Path, default=ROOT / "docs" / "img" / "bench_science.png")
    p.add_argument("--json", type=Path, help="write the paired differences here")
    p.add_argument("--smoke", action="store_true", help="tiny model and sizes; just completes")
    p.add_argument(
        "--from",
        dest="folders",
        nargs="+",
        type=Path,
        help="run nothing: the tables from these folders' runs, by policy, paired with DF",
    )
    p.add_argument("--title", help="with --from: what the runs are (the table's title)")
    p.add_argument(
        "--baseline-from",
        nargs="+",
        type=Path,
        help="with --from: DF from these folders' runs only (e.g. DF at another lr, on the "
        "same seeds); DF runs in the --from folders become a row of their own",
    )
    args = p.parse_args(argv)
    if args.folders:
        grouped = per_policy(args.folders, args.baseline_from)
        main_table, lang_table, diffs = tables(grouped, 0, args.title or "")
        print(main_table, "", lang_table, sep="\n")
        if diffs:
            plot(diffs, args.png, args.title)
            print(f"\nfigure: {args.png}")
        if args.json:
            write_json(diffs, args.json)
        return 0
    if "df" not in args.policies:
        p.error("--policies must include df (the baseline)")
    space = yaml.safe_load(args.space.read_text())
    tmp = tempfile.TemporaryDirectory()
    extra: list[str] = []
    smoke_over: dict[str, Any] = {}
    if args.smoke:
        args.out, args.trials, args.seeds = Path(tmp.name) / "runs", 2, [100, 101]
        args.policies = ["df", "fsf"]  # two sweeps show the whole path; five take minutes
        extra.append("-q")
        args.png = Path(tmp.name) / "science.png"
        smoke_over = _runs.smoke_overrides(Path(tmp.name) / "assets")
        extra += _runs.set_args(smoke_over)
        space["search"]["scheduler"] = {"type": "none"}
        for knob in list(SENSITIVITY):  # one knob at one value: the path, 2 runs not 6
            if knob != "c1":
                del SENSITIVITY[knob]
        del SENSITIVITY["c1"][1:]
    results = {}
    for name in args.policies:
        folder = run_sweep(policy_space(space, name, args.trials, args.seeds), args.out, extra)
        results[name] = per_seed(folder)
    main_table, lang_table, diffs = tables(results, args.trials)
    print(main_table)
    print()
    print(lang_table)
    if diffs:
        plot(diffs, args.png)
        print(f"\nfigure: {args.png}")
    if args.sensitivity and "fsf" in results:
        print()
        print(sensitivity(args.out / "science-fsf", args.seeds, smoke_over))
    if args.json:
        write_json(diffs, args.json)
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
