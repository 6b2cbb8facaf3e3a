"""Do the speed levers change the answer? Dev scores on the embedded benchmark, paired seeds.

For each lever (`optim.group_by_length`, `optim.adamw` fused / foreach, bf16 autocast on
CPU) and for fsf's defaults, the base config of `sweeps/policies-full.yaml` (the synthetic topic
task, the shipped 12-layer encoder, 300 steps, batch 32) is trained with the lever off (the
equal-settings reference: no grouping, torch's AdamW, fp32) and on, with the same
fine-tuning seeds, DF and FS policies. Reported per lever: the mean dev target and source accuracy at the last step and at the checkpoint
chosen by source dev, the paired difference (on - off) with its 95% t interval over the
seed pairs and the verdict (better / worse / within noise), and the runs' mean wall time (2
runs at a time, 1 torch thread each).

    python bench/bench_levers_accuracy.py [--seeds 0 1 2 3 4] [--only group_by_length] [--smoke]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import _runs
from _runs import md_table

from fsf.config import apply_overrides, validate_run_config
from fsf.results import paired_difference
from fsf.sweep.space import load_space

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = {"optim.group_by_length": False, "optim.adamw": "torch", "deepspeed.precision": "fp32"}
LEVERS: dict[str, dict[str, Any]] = {
    "group_by_length": {"optim.group_by_length": True},
    "AdamW fused": {"optim.adamw": "fused"},
    "AdamW foreach": {"optim.adamw": "foreach"},
    "bf16 autocast": {"deepspeed.precision": "bf16"},
    "fsf defaults": {
        "optim.group_by_length": None,
        "optim.adamw": None,
        "deepspeed.precision": None,
    },
}


def config(base: dict[str, Any], policy: str, seed: int, over: dict[str, Any]) -> Any:
    data = apply_overrides(base, [("policy.name", policy), ("seed", seed), *REFERENCE.items()])
    for key, value in over.items():
        if value is None:  # the field's default
            section, name = key.split(".", 1)
            data.get(section, {}).pop(name, None)
        else:
            data = apply_overrides(data, [(key, value)])
    return validate_run_config(data)


def _paired(on: list[float], off: list[float]) -> str:
    """Mean paired difference on - off (points), its 95% t interval and the verdict."""
    d = paired_difference(on, off)
    if d.ci is None:
        return f"{d.mean:+.2f} (1 seed)"
    verdict = "~ noise" if d.verdict == "within noise" else d.verdict
    return f"{d.mean:+.2f} [{d.ci[0]:+.2f}, {d.ci[1]:+.2f}] {verdict}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--policies", nargs="+", default=["df", "fs"])
    p.add_argument("--only", nargs="+", choices=list(LEVERS), help="these levers only")
    p.add_argument("--smoke", action="store_true")
    args = p.parse_args(argv)
    levers = {k: v for k, v in LEVERS.items() if not args.only or k in args.only}
    base = load_space(ROOT / "sweeps" / "policies-full.yaml").base_config().model_dump(mode="json")
    tmp = tempfile.TemporaryDirectory()
    base["output_dir"] = tmp.name
    if args.smoke:
        args.seeds, args.policies = [0, 1], ["df"]
        base = apply_overrides(base, [*_runs.smoke_assets(Path(tmp.name)).items(),
                                      ("optim.max_steps", 6), ("optim.batch_size", 8),
                                      ("eval.every_steps", 3)])  # fmt: skip
    jobs = []
    for policy in args.policies:
        for seed in args.seeds:
            jobs.append((f"{policy}|ref|{seed}", config(base, policy, seed, {})))
            for name, over in levers.items():
                jobs.append((f"{policy}|{name}|{seed}", config(base, policy, seed, over)))
    curves = {c.label: c for c in _runs.run_many(jobs, desc="lever runs")}
    rows = []
    for policy in args.policies:
        ref = [curves[f"{policy}|ref|{s}"] for s in args.seeds]
        ref_tgt = [r.final["dev_target_mean"] * 100 for r in ref]
        ref_ckpt = [r.best_dev["dev_target_mean"] * 100 for r in ref]
        for name in ("ref", *levers):
            runs = [curves[f"{policy}|{name}|{s}"] for s in args.seeds]
            tgt = [r.final["dev_target_mean"] * 100 for r in runs]
            ckpt = [r.best_dev["dev_target_mean"] * 100 for r in runs]
            src = [r.final["dev_source"] * 100 for r in runs]
            rows.append([
                policy, "reference (off)" if name == "ref" else name, statistics.mean(src),
                statistics.mean(tgt), statistics.mean(ckpt),
                "-" if name == "ref" else _paired(tgt, ref_tgt),
                "-" if name == "ref" else _paired(ckpt, ref_ckpt),
                statistics.mean(r.seconds for r in runs),
            ])  # fmt: skip
    print(md_table(
        ["policy", "setting", "src dev (last)", "tgt dev (last)", "tgt dev @ckpt",
         "Δ tgt last (paired, 95% CI)", "Δ tgt @ckpt (paired, 95% CI)", "s per run"],
        rows,
        title=f"speed levers on the embedded benchmark, seeds {args.seeds} (accuracy, points)",
    ))  # fmt: skip
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
