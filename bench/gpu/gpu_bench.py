"""The GPU check (bench/gpu/run.sh runs it): fsf on one GPU, bf16, XLM-R-base shape.

Made for a single H200 with PyTorch and transformers but no DeepSpeed, Ray or Optuna and no
network, in <= 8 minutes. Everything runs through fsf's plain-PyTorch engine (`engine:
torch`, bf16 by autocast), which needs no DeepSpeed. Writes one JSON file of figures:

1. `real_size`: the fsf worker (DF, FSF; equal settings and fsf's defaults) vs
   `transformers.Trainer` (equal settings and its defaults), XLM-R-base shape with random
   weights, the XNLI-like synthetic batches of bench/bench_real_size.py (no download):
   samples/s, peak GPU memory, FSF/DF step time; and fsf's defaults at 8x the batch;
2. `mfu`: model FLOP utilisation of each run: 6 x non-embedding parameters x tokens + the
   attention matmuls (12 x layers x hidden x padded length per token, forward and
   backward), on the real (unpadded) tokens processed per second, against the chip's bf16
   dense peak `PEAK_TFLOPS` (below);
3. `tiny_sweep`: the embedded benchmark's sweep (`sweeps/policies-full.yaml`: DF, NoisyTune, FS,
   FF, FSF on the base config) at 20 steps each on the GPU, each trial writing its Parquet
   fragment as a sweep trial does, then `best_per_language` over them. Ray Tune and Optuna
   are not on that machine, so the trials run one after the other in this process (one
   configuration per policy, the space's defaults otherwise).

`--cpu --smoke`: the same on the CPU with a tiny model and a few steps (tested on CI).

    python bench/gpu/gpu_bench.py --out gpu.json [--cpu] [--smoke]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

#: NVIDIA H200 (SXM) datasheet: BF16 Tensor Core 1,979 TFLOPS "with sparsity"; dense is half.
PEAK_TFLOPS = 989.5
PEAK_SOURCE = "NVIDIA H200 SXM datasheet: BF16 Tensor Core 1,979 TFLOPS with sparsity / 2 (dense)"


def flops_per_token(cfg: dict[str, Any], padded_len: float) -> float:
    """Training FLOPs per token: 6 x non-embedding params (matmuls, forward + backward) + the
    attention score and value matmuls (2 x 2 x L x s x h forward, x3 with backward)."""
    h, inter, layers = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"]
    per_layer = 4 * h * h + 2 * h * inter  # q, k, v, o projections + the two FFN matmuls
    dense = layers * per_layer + h * h + 3 * h  # + the classification head (dense + out_proj)
    return 6 * dense + 12 * layers * h * padded_len


def _mean_tokens(data_dir: Path) -> float:
    """Mean tokens per training example (the pair plus its 4 special tokens, capped at 128)."""
    import bench_real_size as rs

    n = total = 0
    for line in (data_dir / rs.SOURCE / "train.jsonl").read_text().splitlines():
        row = json.loads(line)
        total += min(
            rs.MAX_LENGTH, len(row["premise"].split()) + len(row["hypothesis"].split()) + 4
        )
        n += 1
    return total / n


def real_size(args: argparse.Namespace, out: dict[str, Any]) -> None:
    import bench_real_size as rs

    model = "tiny" if args.smoke else "base"
    assets = rs.build_assets(args.workdir, model, args.batch * args.steps)
    spec = {
        "model": model, "model_dir": str(assets["model"]), "data_dir": str(assets["data"]),
        "workdir": str(args.workdir), "ranks": 1, "threads": os.cpu_count() or 1,
        "batch": args.batch, "steps": args.steps, "warmup_steps": args.warmup_steps,
        "device": args.device, "engine": "torch", "precision": args.precision,
        "label": model, "policy": "df",
    }  # fmt: skip
    runs = {
        "fsf_df": {**spec, "side": "fsf-df"},
        "trainer": {**spec, "side": "hf"},
        "fsf_fsf": {**spec, "side": "fsf-fsf", "policy": "fsf"},
        "trainer_defaults": {**spec, "side": "hf", "hf_default": True},
        "fsf_defaults": {**spec, "side": "fsf-df", "overrides": {"defaults": True}},
        # the word embedding updated by rows (CPU's default; dense on GPUs until measured)
        "fsf_defaults_embedding_rows": {
            **spec, "side": "fsf-df",
            "overrides": {"defaults": True, "optim.embedding_update": "rows"},
        },
        # XNLI's batch of 32 keeps an H200 mostly idle; a large batch shows what it can do
        f"fsf_defaults_batch{8 * args.batch}": {
            **spec, "side": "fsf-df", "overrides": {"defaults": True}, "batch": 8 * args.batch,
            "steps": max(2, args.steps // 2), "warmup_steps": max(1, args.warmup_steps // 2),
        },
    }  # fmt: skip
    res: dict[str, Any] = {}
    for name, s in runs.items():
        t0 = time.perf_counter()
        try:
            res[name] = rs.child(s)
        except BaseException as exc:  # report it and go on
            res[name] = {"error": f"{type(exc).__name__}: {str(exc)[-2000:]}"}
        res[name]["wall_s"] = time.perf_counter() - t0
        print(f"real_size {name}: {res[name]}", file=sys.stderr, flush=True)
    out["real_size"] = {"model": f"XLM-R-{model} shape, random weights", "setting": spec,
                        "runs": res}  # fmt: skip

    def sps(k: str) -> float | None:
        return res.get(k, {}).get("samples_per_s")

    ratios: dict[str, Any] = {}
    if sps("fsf_df") and sps("trainer"):
        ratios["fsf_over_trainer_equal"] = sps("fsf_df") / sps("trainer")
    if sps("fsf_defaults") and sps("trainer_defaults"):
        ratios["fsf_defaults_over_trainer_defaults"] = sps("fsf_defaults") / sps("trainer_defaults")
    if sps("fsf_defaults_embedding_rows") and sps("fsf_defaults"):
        ratios["embedding_rows_over_dense"] = sps("fsf_defaults_embedding_rows") / sps(
            "fsf_defaults"
        )
    if sps("fsf_df") and sps("fsf_fsf"):
        ratios["fsf_over_df_step_time"] = res["fsf_fsf"]["step_s"] / res["fsf_df"]["step_s"]
    out["ratios"] = ratios

    cfg = rs.model_config(model)
    tokens = _mean_tokens(assets["data"])
    # the padded length a batch is processed at: about the longest example of a batch; the
    # attention term uses the mean example length as a lower bound
    fpt = flops_per_token(cfg, tokens)
    out["mfu"] = {
        "peak_tflops_bf16_dense": PEAK_TFLOPS,
        "peak_source": PEAK_SOURCE,
        "mean_tokens_per_example": tokens,
        "flops_per_token": fpt,
        "note": "model FLOPs on real (unpadded) tokens; padding and the embedding lookups "
        "are not counted as useful work",
        "runs": {
            k: (v["samples_per_s"] * tokens * fpt / 1e12 / PEAK_TFLOPS)
            for k, v in res.items()
            if "samples_per_s" in v
        },
    }


def tiny_sweep(args: argparse.Namespace, out: dict[str, Any]) -> None:
    """The embedded sweep's policies at `--sweep-steps` steps, on this device, one after the
    other, written and queried as a sweep's results are."""
    import torch

    from fsf.config import apply_overrides
    from fsf.results import ParquetReporter, TrialInfo, best_per_language
    from fsf.sweep.space import load_space
    from fsf.train import train

    spec = load_space(ROOT / "sweeps" / "policies-full.yaml")
    base = spec.base_config().model_dump(mode="json")
    steps = args.sweep_steps
    over: list[tuple[str, Any]] = [
        ("optim.max_steps", steps), ("eval.every_steps", max(1, steps // 2)),
        ("device", args.device), ("engine", "torch"), ("deepspeed.precision", args.precision),
    ]  # fmt: skip
    if args.smoke:  # the path, not a figure: one evaluation of two languages (~7x less)
        over += [("task.max_train_examples", 64), ("task.max_eval_examples", 16)]
        over += [("target_langs", ["fr"]), ("eval.every_steps", steps), ("eval.at_start", False)]
    root = Path(args.workdir) / "tiny-sweep"
    results = root / "results"
    policies = ["df", "noisytune", "fs", "ff", "fsf"]
    trials = []
    torch.set_num_threads(os.cpu_count() or 1)
    t_all = time.perf_counter()
    for i, policy in enumerate(policies):
        from fsf.config import validate_run_config

        data = apply_overrides(base, [*over, ("policy.name", policy), ("name", f"t{i}")])
        data["output_dir"] = str(root / "runs")
        config = validate_run_config(data)
        info = TrialInfo(
            config, sweep="tiny-gpu", trial_id=f"t{i:03d}", params={"policy.name": policy}
        )
        writer = ParquetReporter(results, info)
        t0 = time.perf_counter()
        summary = train(config, writer)
        writer.finish("completed")
        final = summary.final
        trials.append({
            "policy": policy, "seconds": time.perf_counter() - t0,
            "dev_target_mean": final.target_mean("dev") if final else None,
        })  # fmt: skip
    total = time.perf_counter() - t_all
    t0 = time.perf_counter()
    per = best_per_language(results)
    out["tiny_sweep"] = {
        "steps": steps,
        "trials": trials,
        "wall_s": total,
        "query_s": time.perf_counter() - t0,
        "best_target_mean": per.target_mean["policy"] if per.target_mean else None,
        "note": "Ray Tune and Optuna are not installed there: the 5 policies of "
        "sweeps/policies-full.yaml run one after the other in one process",
    }


def environment(args: argparse.Namespace) -> dict[str, Any]:
    import torch
    import transformers

    env: dict[str, Any] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "device": args.device,
        "load_average": os.getloadavg(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }
    if args.device == "cuda":
        env["gpu"] = torch.cuda.get_device_name(0)
        env["gpu_memory_gib"] = torch.cuda.get_device_properties(0).total_memory / 2**30
    for mod in ("deepspeed", "ray", "optuna", "accelerate"):
        try:
            __import__(mod)
            env[mod] = "installed"
        except ImportError:
            env[mod] = "not installed"
    return env


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True, help="the JSON file of figures")
    p.add_argument("--cpu", action="store_true", help="run on the CPU (the fallback)")
    p.add_argument("--smoke", action="store_true", help="tiny model, a few steps")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--warmup-steps", type=int, default=20)
    p.add_argument("--sweep-steps", type=int, default=20)
    p.add_argument("--workdir", type=Path, default=None)
    p.add_argument("--only", nargs="+", choices=["real_size", "tiny_sweep"])
    args = p.parse_args(argv)
    args.device = "cpu" if args.cpu else "cuda"
    args.precision = "fp32" if args.cpu else "bf16"
    if args.smoke:
        args.batch, args.steps, args.warmup_steps, args.sweep_steps = 4, 3, 1, 2
    args.workdir = args.workdir or Path(tempfile.mkdtemp(prefix="fsf-gpu-"))
    args.workdir.mkdir(parents=True, exist_ok=True)
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            print(
                "error: no CUDA GPU visible; run with --cpu for the CPU fallback", file=sys.stderr
            )
            return 2
    out: dict[str, Any] = {"environment": environment(args), "errors": {}}
    t0 = time.perf_counter()
    for name, fn in (("real_size", real_size), ("tiny_sweep", tiny_sweep)):
        if args.only and name not in args.only:
            continue
        try:
            fn(args, out)
        except BaseException:  # one section failing must not lose the others
            out["errors"][name] = traceback.format_exc()[-4000:]
            print(out["errors"][name], file=sys.stderr)
        out["wall_s"] = time.perf_counter() - t0
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(out, indent=2, default=str))  # after every section
    print(json.dumps({k: out.get(k) for k in ("ratios", "mfu", "errors", "wall_s")}, indent=2,
                     default=str))  # fmt: skip
    return 1 if out["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
