"""The embedded benchmark's own properties, measured with DF only (issue 14's preconditions).

Reads a sweep of `sweeps/world.yaml` (DF at several peak learning rates x seeds, with the
per-step loss and per-layer CKA; it runs that sweep first when DIR holds no results) and
prints, per learning rate, source / target / gap (mean +- std over seeds) and every
language, then checks the properties the paper's analysis reports for XLM-R at DF's own best
learning rate, chosen the way a user would: by the sweep's objective, `dev_target_mean`
(target-language *dev* data), never test.

- source accuracy >= 0.85; mean target >= 5 points below it and more than 3x the seed std
  of the gap;
- the low-resource targets trail most (resource levels of `fsf.synthetic.world.RESOURCES`);
- the gap forms mostly early: at 30% of the steps the dev gap is at least half its final
  value (mean over seeds);
- forgetting is measurable: CKA of the encoder's layers to the pretrained model falls.

Scores are the final step's test scores (as the v1 lr table) and, beside them, the test
scores of the checkpoint chosen on source-language dev.

    python bench/bench_world.py DIR [--json FILE]      # DIR: a world sweep (run if empty)
    python bench/bench_world.py fsf-runs/real-df --levels real   # the real benchmark's DF grid
    python bench/bench_world.py --smoke                # a tiny sweep, checks the script runs
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
from _runs import checkpoint_scores, md_table, set_args, smoke_overrides

ROOT = Path(__file__).resolve().parents[1]
SPACE = ROOT / "sweeps" / "world.yaml"
EARLY = 0.3  # "the first ~30% of fine-tuning"


def _pm(values: list[float]) -> str:
    m = statistics.mean(values)
    s = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{100 * m:.1f} ± {100 * s:.1f}"


def run_sweep(out: Path, smoke: bool) -> None:
    """`fsf-sweep` on the world space into `out` (the real sweep path, Ray Tune included)."""
    cmd = [sys.executable, "-m", "fsf", "sweep", "--space", str(SPACE)]
    cmd += ["--storage-path", str(out.parent), "--name", out.name]
    if smoke:
        over = smoke_overrides(
            out.parent / "assets",
            8,
            **{"analysis.cka.every_steps": 4, "analysis.cka.probe_size": 4},
        )
        cmd += set_args(over)
    subprocess.run(cmd, check=True)


def _cka(sweep: Path) -> dict[float, dict[str, Any]]:
    """Per lr: CKA per layer (mean over languages and seeds) at the first and last step."""
    from fsf.analysis import cka_curves
    from fsf.results import read_results

    res = read_results(sweep)
    lr_of = {}
    for r in res.table.select(["trial_id", "lr"]).to_pylist():
        lr_of[r["trial_id"]] = r["lr"]
    curves = cka_curves(res)
    by_lr: dict[float, list] = defaultdict(list)
    for run in curves.runs:
        by_lr[lr_of[run.trial_id]].append(run)
    out = {}
    for lr, runs in by_lr.items():
        steps, layers, per_lang = curves.mean([(r.trial_id, r.seed) for r in runs])
        if not per_lang:
            continue
        mat = np.nanmean(np.stack(list(per_lang.values())), axis=0)  # layers x steps
        out[lr] = {
            "steps": steps.tolist(),
            "layers": layers.tolist(),
            "first": mat[:, 0].round(3).tolist(),
            "last": mat[:, -1].round(3).tolist(),
            "mean_over_layers": np.nanmean(mat, axis=0).round(3).tolist(),
        }
    return out


def analyse(data: dict[str, Any], levels: dict[str, str]) -> dict[str, Any]:
    """The lr table, DF's best lr by mean dev target (at the checkpoint), the checks."""
    by_lr: dict[float, list[dict]] = defaultdict(list)
    for r in data["runs"]:
        by_lr[r["lr"]].append(r)
    table = {}
    for lr, runs in sorted(by_lr.items()):
        src = runs[0]["source"]
        langs = sorted({lang for r in runs for lang in r["final"]} - {src})

        def stat(key: str, runs: list[dict] = runs, src: str = src, langs: list = langs) -> dict:
            s = [r[key][src] for r in runs]
            t = [statistics.mean(r[key][lang] for lang in langs) for r in runs]
            g = [a - b for a, b in zip(s, t, strict=True)]
            per = {lang: statistics.mean(r[key][lang] for r in runs) for lang in langs}
            return {"source": s, "target": t, "gap": g, "per_language": per}

        table[lr] = {
            "seeds": [r["seed"] for r in runs],
            "final": stat("final"),
            "checkpoint": stat("checkpoint"),
            "dev_target_mean": statistics.mean(r["dev_target_mean_ckpt"] for r in runs),
            "gap_dev_curve": np.nanmean([r["gap_dev"] for r in runs], axis=0).tolist(),
            "steps": runs[0]["steps"],
        }
    best_lr = max(table, key=lambda lr: table[lr]["dev_target_mean"])
    b = table[best_lr]["final"]
    gap_m = statistics.mean(b["gap"])
    gap_s = statistics.stdev(b["gap"]) if len(b["gap"]) > 1 else 0.0
    by_level: dict[str, list[float]] = defaultdict(list)
    for lang, v in b["per_language"].items():
        by_level[levels.get(lang, "?")].append(v)
    level_mean = {k: statistics.mean(v) for k, v in by_level.items()}
    steps = table[best_lr]["steps"]
    curve = table[best_lr]["gap_dev_curve"]
    early_step = EARLY * steps[-1]
    # the last evaluation at or before 30% of the steps (the first one if none is that early)
    at_early = curve[max([i for i, s in enumerate(steps) if s <= early_step], default=0)]
    order = [lv for lv in ("high", "mid", "low") if lv in level_mean]
    checks = {
        "source >= 0.85": statistics.mean(b["source"]) >= 0.85,
        "gap >= 5 points": gap_m >= 0.05,
        "gap > 3x its seed std": gap_m > 3 * gap_s,
        "low-resource targets trail most": all(
            level_mean[a] > level_mean[c] for a, c in itertools.pairwise(order)
        )
        and len(order) > 1,
        f"dev gap at {EARLY:.0%} of steps >= half the final dev gap": curve[-1] > 0
        and at_early >= 0.5 * curve[-1],
    }
    return {
        "table": {str(k): v for k, v in table.items()},
        "best_lr": best_lr,
        "gap": [gap_m, gap_s],
        "level_mean": level_mean,
        "gap_dev_at_early": at_early,
        "gap_dev_final": curve[-1],
        "checks": checks,
    }


def render(result: dict[str, Any], cka: dict[float, dict], levels: dict[str, str]) -> str:
    out = []
    table = {float(k): v for k, v in result["table"].items()}
    langs = sorted(next(iter(table.values()))["final"]["per_language"])
    langs.sort(key=lambda lang: ("high", "mid", "low").index(levels.get(lang, "low")))
    for where in ("final", "checkpoint"):
        rows = []
        for lr, v in table.items():
            s = v[where]
            mark = " (best by dev target)" if lr == result["best_lr"] else ""
            rows.append(
                [f"{lr:g}{mark}", _pm(s["source"]), _pm(s["target"]), _pm(s["gap"])]
                + [f"{100 * s['per_language'][lang]:.1f}" for lang in langs]
                + [f"{100 * v['dev_target_mean']:.1f}"]
            )
        title = (
            "DF, test scores at the last step"
            if where == "final"
            else "DF, test scores of the checkpoint chosen on source dev"
        )
        heads = ["peak lr", "source", "target mean", "gap"]
        heads += [f"{lang} ({levels.get(lang, '?')})" for lang in langs] + ["dev target"]
        out.append(md_table(heads, rows, title=title + f" (seeds: {v['seeds']})"))
    lr = result["best_lr"]
    out.append(
        f"\nDF's best peak lr by mean target-language dev accuracy: {lr:g}. Dev gap "
        f"{100 * result['gap_dev_at_early']:.1f} points at {EARLY:.0%} of the steps, "
        f"{100 * result['gap_dev_final']:.1f} at the end. Mean target accuracy by resource "
        "level: " + ", ".join(f"{k} {100 * v:.1f}" for k, v in result["level_mean"].items()) + "."
    )
    if lr in cka:
        c = cka[lr]
        out.append(
            f"CKA to the pretrained encoder at lr {lr:g} (mean over languages and seeds), "
            f"per layer 0..{c['layers'][-1]}: step {c['steps'][0]} {c['first']} -> step "
            f"{c['steps'][-1]} {c['last']}; mean over layers by step: {c['mean_over_layers']}"
        )
    out.append("\nchecks at DF's best lr:")
    for name, ok in result["checks"].items():
        out.append(f"  [{'ok' if ok else 'NOT MET'}] {name}")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("sweep", nargs="?", type=Path, help="a sweep of sweeps/world.yaml")
    p.add_argument("--json", type=Path, help="write the numbers here")
    p.add_argument("--smoke", action="store_true", help="a tiny sweep on a random model")
    p.add_argument(
        "--levels",
        choices=["synthetic", "real"],
        default="synthetic",
        help="resource levels: the embedded world's, or the real benchmark's (CC-100 sizes)",
    )
    args = p.parse_args(argv)
    if args.levels == "real":
        from fsf.real.intents import LANGUAGES, resource_level

        levels = {lang: resource_level(lang) for lang in LANGUAGES}
    else:
        from fsf.synthetic.world import RESOURCES

        levels = {lang: r.level for lang, r in RESOURCES.items()}
    with tempfile.TemporaryDirectory() as tmp:
        sweep = args.sweep
        if args.smoke:
            sweep = Path(tmp) / "world"
        if sweep is None:
            p.error("give a sweep folder (or --smoke)")
        if not (sweep / "results").is_dir():
            run_sweep(sweep, args.smoke)
        result = analyse({"runs": checkpoint_scores(sweep)}, levels)
        cka = _cka(sweep)
    print(render(result, cka, levels))
    if args.json:
        args.json.write_text(json.dumps(result | {"cka": cka}, indent=1, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
