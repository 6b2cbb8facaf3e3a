"""Science: DF, NoisyTune, FS, FF and FSF on the embedded benchmark, and FSF's sensitivity.

Every run is the real fsf worker on the base config of `sweeps/policies.yaml` (the synthetic
topic task, the shipped 6-layer encoder, lr 2e-3, 300 steps, batch 32, evaluation every 50
steps), with the paper's defaults (c1 = 0.01, c2 = 10, r = 3) and several fine-tuning seeds.
Reported per policy (mean +- std over seeds, at the last step): source accuracy, mean target
accuracy and gap (source - mean target) on test, the gap on dev, the gap of the checkpoint
selected by source dev accuracy, and the paired difference to DF (same seed) of the mean
target accuracy. Then the paper's sensitivity study (its Table 5): c1, c2 and r varied one
at a time around the FSF defaults. A PNG shows both.

    python bench/bench_science.py [--seeds 0 1 2 3 4] [--sens-seeds 0 1 2] [--png FILE]
    python bench/bench_science.py --smoke
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import _runs
from _runs import Curve, md_table, mean_std

from fsf.config import apply_overrides
from fsf.sweep.space import load_space, trial_run_config

ROOT = Path(__file__).resolve().parents[1]
POLICIES = ("df", "noisytune", "fs", "ff", "fsf")
DEFAULTS = {"c1": 0.01, "c2": 10.0, "r": 3.0}
SENSITIVITY = {
    "c1": [0.5, 0.1, 0.01, 0.001, 0.0],
    "c2": [5.0, 10.0, 15.0, 20.0, 100.0],
    "r": [1.0, 2.0, 3.0, 4.0],
}


def _pm(values: list[float], scale: float = 100.0) -> str:
    m, s = mean_std(values)
    return f"{m * scale:.1f} ± {s * scale:.1f}"


def _spec(smoke_root: Path | None) -> Any:
    spec = load_space(ROOT / "sweeps" / "policies.yaml")
    if smoke_root is None:
        return spec
    base = apply_overrides(
        spec.base,
        [(k, v) for k, v in _runs.smoke_assets(smoke_root).items()]
        + [("optim.max_steps", 6), ("optim.batch_size", 8), ("eval.every_steps", 3)],
    )
    return spec.model_copy(update={"base": base})


def policy_table(curves: dict[str, list[Curve]]) -> list[list[Any]]:
    df = {c.seed: c for c in curves["df"]}
    rows = []
    for name, runs in curves.items():
        f = [c.final for c in runs]
        paired = [c.final["test_target_mean"] - df[c.seed].final["test_target_mean"] for c in runs]
        rows.append(
            [
                name,
                _pm([x["test_source"] for x in f]),
                _pm([x["test_target_mean"] for x in f]),
                _pm([x["test_gap"] for x in f]),
                _pm([x["dev_gap"] for x in f]),
                _pm([c.best_dev["test_gap"] for c in runs]),
                "-" if name == "df" else _pm(paired),
                sum(p > 0 for p in paired) if name != "df" else "-",
            ]
        )
    return rows


def sensitivity_table(sens: dict[tuple[str, float], list[Curve]]) -> list[list[Any]]:
    rows = []
    for (param, value), runs in sens.items():
        f = [c.final for c in runs]
        rows.append(
            [
                f"{param} = {value:g}" + (" (default)" if DEFAULTS[param] == value else ""),
                _pm([x["test_source"] for x in f]),
                _pm([x["test_target_mean"] for x in f]),
                _pm([x["test_gap"] for x in f]),
                _pm([x["dev_target_mean"] for x in f]),
            ]
        )
    return rows


def plot(
    curves: dict[str, list[Curve]], sens: dict[tuple[str, float], list[Curve]], path: Path
) -> None:
    """Top row: mean target accuracy; bottom row: gap. Left: the policies (one dot per
    seed, mean +- std); then FSF's sensitivity to c1, c2 and r."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(
        2,
        4,
        figsize=(15, 6),
        sharex="col",
        sharey="row",
        gridspec_kw={"width_ratios": [1.4, 1, 1, 1]},
    )
    rows = (
        ("test_target_mean", "mean target acc (test, %)"),
        ("test_gap", "gap src - tgt (test, points)"),
    )
    groups: list[tuple[str, list[str], list[list[Curve]]]] = [
        ("policy (paper defaults)", list(curves), list(curves.values()))
    ]
    for param in SENSITIVITY:
        values = [v for (p, v) in sens if p == param]
        groups.append(
            (f"FSF, {param} (others at defaults)", [f"{v:g}" for v in values],
             [sens[(param, v)] for v in values])
        )  # fmt: skip
    for r, (metric, ylabel) in enumerate(rows):
        for c, (xlabel, ticks, runs) in enumerate(groups):
            ax = axes[r][c]
            for x, group in enumerate(runs):
                vals = [g.final[metric] * 100 for g in group]
                ax.scatter([x] * len(vals), vals, s=10, color="0.6", zorder=2)
                m, s = mean_std(vals)
                ax.errorbar(x, m, yerr=s, fmt="o", color="tab:blue" if r == 0 else "tab:red",
                            capsize=4, zorder=3)  # fmt: skip
            ax.set_xticks(range(len(ticks)), ticks)
            ax.grid(axis="y", alpha=0.3)
            if r == 1:
                ax.set_xlabel(xlabel)
            if c == 0:
                ax.set_ylabel(ylabel)
    n = len(next(iter(curves.values())))
    m = len(next(iter(sens.values())))
    fig.suptitle(
        f"Embedded benchmark (synthetic topic, 300 steps): policies over {n} seeds, "
        f"sensitivity over {m} seeds; dots = seeds, markers = mean ± std"
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _load_json(path: Path) -> list[Curve]:
    out = []
    for d in json.loads(path.read_text()):
        c = Curve(d["label"], d["seed"], {int(k): v for k, v in d["points"].items()}, d["langs"])
        best = max(sorted(c.points), key=lambda s: c.points[s].get("dev_source", -1.0))
        c.best_dev_step = d.get("best_dev_step", best)
        c.seconds = d.get("seconds", 0.0)
        out.append(c)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    p.add_argument("--sens-seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--no-sensitivity", action="store_true")
    p.add_argument("--workers", type=int, default=2, help="parallel runs (1 torch thread each)")
    p.add_argument("--png", type=Path, default=ROOT / "docs" / "img" / "bench_science.png")
    p.add_argument("--json", type=Path, default=None, help="write every run's curve here")
    p.add_argument(
        "--from-json", type=Path, default=None, help="tables and figure from a --json file"
    )
    p.add_argument("--smoke", action="store_true", help="tiny model and sizes; just completes")
    args = p.parse_args(argv)
    tmp = tempfile.TemporaryDirectory()
    smoke_root = None
    if args.smoke:
        smoke_root = Path(tmp.name)
        args.seeds, args.sens_seeds = [0], [0]
        for values in SENSITIVITY.values():
            del values[2:]
        args.png = smoke_root / "science.png"
    spec = _spec(smoke_root)
    sens_seeds = [] if args.no_sensitivity else args.sens_seeds
    jobs: list[tuple[str, Any]] = []
    for name in POLICIES:
        jobs += [
            (name, trial_run_config(spec, {"policy.name": name}, s, f"{name}-{s}"))
            for s in args.seeds
        ]
    sens_keys = [(param, v) for param, vals in SENSITIVITY.items() for v in vals]
    for param, value in sens_keys:
        params = {"policy.name": "fsf", f"policy.{param}": value}
        for s in sens_seeds:
            if DEFAULTS[param] == value and s in args.seeds:
                continue  # the FSF run at the defaults: reused
            jobs.append(
                (f"{param}={value:g}", trial_run_config(spec, params, s, f"{param}{value:g}-{s}"))
            )
    if args.from_json:
        results = _load_json(args.from_json)
    else:
        results = _runs.run_many(jobs, workers=args.workers, desc="science runs")
    curves: dict[str, list[Curve]] = {name: [] for name in POLICIES}
    by_label: dict[str, list[Curve]] = {}
    for c in results:
        by_label.setdefault(c.label, []).append(c)
    for name in POLICIES:
        curves[name] = by_label[name]
    sens: dict[tuple[str, float], list[Curve]] = {}
    if sens_seeds:
        for param, value in sens_keys:
            runs = list(by_label.get(f"{param}={value:g}", []))
            if DEFAULTS[param] == value:
                runs += [c for c in curves["fsf"] if c.seed in sens_seeds]
            sens[(param, value)] = sorted(runs, key=lambda c: c.seed)

    base = spec.base_config()
    print(
        md_table(
            [
                "policy",
                "src test",
                "tgt test",
                "gap test",
                "gap dev",
                "gap test @best src dev",
                "Δ tgt vs DF (paired)",
                "seeds tgt > DF",
            ],
            policy_table(curves),
            title=(
                f"policies at paper defaults (c1 {DEFAULTS['c1']}, c2 {DEFAULTS['c2']:g}, r "
                f"{DEFAULTS['r']:g}); {base.task.dataset}, lr {base.optim.lr:g}, "
                f"{base.optim.max_steps} steps; accuracy points, mean ± std over seeds "
                f"{args.seeds}; last step unless stated"
            ),
        )
    )
    if sens:
        print()
        print(
            md_table(
                ["FSF with", "src test", "tgt test", "gap test", "tgt dev"],
                sensitivity_table(sens),
                title=f"FSF sensitivity (one knob at a time), seeds {sens_seeds}",
            )
        )
        plot(curves, sens, args.png)
        print(f"figure: {args.png}")
    seconds = sum(c.seconds for c in results)
    print(f"{len(results)} runs, {seconds:.0f} s of run time in all")
    if args.json:
        args.json.write_text(
            json.dumps(
                [
                    {
                        "label": c.label,
                        "seed": c.seed,
                        "points": c.points,
                        "langs": c.final_langs,
                        "best_dev_step": c.best_dev_step,
                        "seconds": c.seconds,
                    }
                    for c in results
                ]
            )
        )
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
