"""Real-size training: XLM-R-base and -large-shaped encoders, the fsf worker vs `Trainer`.

The encoders are built from the exact `XLMRobertaConfig` of the hub checkpoints
(`bench/data/xlmr_configs.json`; 278 M and 560 M parameters, 250,002-token vocabulary) with
random weights, saved once under `--workdir` (no download). The examples are token-id
sequences with XNLI's length distribution (below), written as an XNLI-shaped dataset
(`premise`, `hypothesis`, 3 labels) whose words are the ids themselves (`w17 w90321 ...`): a
word-level tokenizer over the id strings maps them back one to one (no sentencepiece model).
Both sides read the same files, train the same weights on the same examples with the same
global batch, AdamW settings (lr 2e-5, weight decay 0.01 except biases and LayerNorms,
gradient clipping 1.0, 10% linear warm-up then linear decay) and dynamic padding:

* `fsf-df`, `fsf-fsf`: `fsf.train.train` with policy DF or FSF (DeepSpeed ZeRO-0 on one
  rank; ZeRO-2 on two);
* `hf`: `transformers.Trainer` at equal settings (`optim="adamw_torch"`, no length
  grouping); on two ranks with the same DeepSpeed ZeRO-2 config;
* `hf-default` (`--levers`): `Trainer` as a user gets it (its default optimizer,
  `adamw_torch_fused` with torch >= 2.8; no length grouping).

Two ranks run through Ray Train's `TorchTrainer` (gloo, 1 CPU and 1 torch thread each); one
rank uses every core (`--threads`). Each run is its own process; a step's time is taken on
rank 0 from step `--warmup-steps` to the last step (fsf: the clock of its lr schedule call,
which runs once per step after the backward pass; `Trainer`: `on_step_end`), with no
evaluation inside the span (fsf evaluates 2 examples at the last step only). Peak RSS is the
`ru_maxrss` of each rank's process. The sides alternate (their order reverses from one
model/rank setting to the next).

XNLI's length distribution. Without the data here, lengths are drawn from log-normals whose
means come from the XNLI dataset card (English train: 74,444,026 bytes of Arrow data for
392,702 examples, about 174 characters of premise + hypothesis per example after the label
and offsets) at ~4.5 characters per XLM-R sentencepiece token for English, split 2:1 between
premise and hypothesis as in MultiNLI (premises average about twice the hypothesis' words):
premise ~ LogNormal(mean 26, sigma 0.55), hypothesis ~ LogNormal(mean 13, sigma 0.45),
plus the 4 special tokens of a pair, truncated at 128 tokens (XTREME's XNLI setting). The
mean is 43 tokens; the spread and tail are assumed, not measured.

Sizes: on 2 shared CPU cores a step of XLM-R-large at batch 8 takes ~10-15 s, so the default
(`--batch 8 --steps 6 --warmup-steps 2`: 4 timed steps) runs base and large on one rank and
base on two (large on two ranks needs ~15 GB, more than this 24 GB machine can spare beside
other jobs) in about 15 minutes. `--levers` measures each speed lever alone on XLM-R-base,
one rank (docs/benchmarks.md).

    python bench/bench_real_size.py [--models base large] [--ranks 1 2] [--levers] [--smoke]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("DS_ACCELERATOR", "cpu")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

HERE = Path(__file__).resolve().parent
CONFIGS = HERE / "data" / "xlmr_configs.json"
LR, WEIGHT_DECAY, WARMUP_RATIO, GRAD_CLIP, MAX_LENGTH = 2e-5, 0.01, 0.1, 1.0, 128
SOURCE, TARGET = "en", "de"
#: XNLI-like lengths in XLM-R tokens (see the module docstring)
PREMISE_MEAN, PREMISE_SIGMA, HYP_MEAN, HYP_SIGMA = 26.0, 0.55, 13.0, 0.45

#: the speed levers of `--levers`: run-config overrides of the fsf side (each alone)
LEVERS: dict[str, dict[str, Any]] = {
    "fsf (equal settings)": {},
    "+ group_by_length": {"optim.group_by_length": True},
    "+ AdamW foreach": {"optim.adamw": "foreach"},
    "+ AdamW fused": {"optim.adamw": "fused", "optim.embedding_update": "dense"},
    "+ AdamW fused + embedding rows": {"optim.adamw": "fused", "optim.embedding_update": "rows"},
    "+ DeepSpeed CPU Adam": {"optim.adamw": "deepspeed-cpu"},
    "+ bf16 autocast": {"deepspeed.precision": "bf16"},
    "eager attention (not SDPA)": {"attention": "eager"},
    "fsf defaults (dense embedding)": {"defaults": True, "optim.embedding_update": "dense"},
    "fsf defaults": {"defaults": True},
    "fsf defaults + bf16 autocast": {"defaults": True, "deepspeed.precision": "bf16"},
}


# ----------------------------------------------------------------------------- assets


def model_config(name: str) -> dict[str, Any]:
    return json.loads(CONFIGS.read_text())[name]


def build_assets(root: Path, model: str, n_train: int, seed: int = 0) -> dict[str, Path]:
    """The random-weight model folder (with its word-level tokenizer) and the dataset; kept
    under `root` and reused when already there."""
    cfg = model_config(model)
    mdir = root / f"xlmr-{model}"
    if not (mdir / "config.json").exists():
        _save_model(mdir, cfg, seed)
    data = root / f"xnli-like-{cfg['vocab_size']}-{n_train}"
    if not (data / SOURCE / "train.jsonl").exists():
        _write_data(data, cfg["vocab_size"], n_train, seed)
    return {"model": mdir, "data": data}


def _save_model(path: Path, cfg: dict[str, Any], seed: int) -> None:
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import (
        PreTrainedTokenizerFast,
        XLMRobertaConfig,
        XLMRobertaForSequenceClassification,
    )

    tmp = path.with_name(path.name + ".tmp")
    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
    vocab.update({f"w{i}": i for i in range(4, cfg["vocab_size"] - 1)})
    vocab["<mask>"] = cfg["vocab_size"] - 1  # as in XLM-R: the last id
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[("<s>", 0), ("</s>", 2)]
    )  # fmt: skip
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", cls_token="<s>",
        sep_token="</s>", pad_token="<pad>", unk_token="<unk>", mask_token="<mask>",
        model_max_length=cfg["max_position_embeddings"] - 2,
    )  # fmt: skip
    fast.save_pretrained(str(tmp))
    torch.manual_seed(seed)
    xcfg = XLMRobertaConfig(**{k: v for k, v in cfg.items() if k != "model_type"}, num_labels=3)
    XLMRobertaForSequenceClassification(xcfg).save_pretrained(str(tmp))
    tmp.replace(path)


def xnli_lengths(rng: random.Random) -> tuple[int, int]:
    """(premise, hypothesis) tokens of one example (module docstring: where they come from)."""

    def draw(mean: float, sigma: float) -> int:
        return max(1, round(rng.lognormvariate(math.log(mean) - sigma**2 / 2, sigma)))

    return draw(PREMISE_MEAN, PREMISE_SIGMA), draw(HYP_MEAN, HYP_SIGMA)


def _write_data(root: Path, vocab: int, n_train: int, seed: int) -> None:
    rng = random.Random(seed)
    tmp = root.with_name(root.name + ".tmp")

    def text(n: int) -> str:
        return " ".join(f"w{rng.randrange(4, vocab - 1)}" for _ in range(n))

    for lang in (SOURCE, TARGET):
        (tmp / lang).mkdir(parents=True, exist_ok=True)
        for split, n in (("train", n_train if lang == SOURCE else 4), ("validation", 4)):
            rows = []
            for _ in range(n):
                p, h = xnli_lengths(rng)
                rows.append({"premise": text(p), "hypothesis": text(h), "label": rng.randrange(3)})
            (tmp / lang / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    tmp.replace(root)


# ----------------------------------------------------------------------------- one run


def run_config(spec: dict[str, Any]) -> Any:
    from fsf.config import apply_overrides, validate_run_config

    data = {
        "model": {"name": spec["model_dir"], "max_length": MAX_LENGTH},
        "task": {
            "name": "xnli",
            "dataset": str(Path(spec["data_dir"]) / "{lang}" / "{split}.jsonl"),
            "max_eval_examples": 1,
        },
        "source_lang": SOURCE,
        "target_langs": [TARGET],
        "policy": {"name": spec["policy"]},
        "optim": {
            "lr": LR,
            "batch_size": spec["batch"],
            "max_steps": spec["steps"],
            "warmup_ratio": WARMUP_RATIO,
            "weight_decay": WEIGHT_DECAY,
            "grad_clip": GRAD_CLIP,
            "group_by_length": False,
            "adamw": "torch",
        },
        "eval": {"every_steps": spec["steps"], "at_start": False, "splits": ["dev"]},
        "analysis": {"loss_curve": False},
        "deepspeed": {"zero_stage": 2 if spec["ranks"] > 1 else 0, "precision": spec["precision"]},
        "device": spec["device"],
        "engine": spec["engine"],
        "output_dir": str(Path(spec["workdir"]) / "runs"),
    }
    over = dict(spec.get("overrides", {}))
    if over.pop("defaults", False):  # fsf's own defaults for the speed settings
        for key in ("group_by_length", "adamw"):
            del data["optim"][key]
        del data["deepspeed"]["precision"]
    over.pop("attention", None)
    return validate_run_config(apply_overrides(data, list(over.items())))


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _attention(spec: dict[str, Any]) -> None:
    """`--levers`' eager-attention run: every model load asks for eager attention."""
    impl = spec.get("overrides", {}).get("attention")
    if not impl:
        return
    from transformers import AutoModelForSequenceClassification

    original = AutoModelForSequenceClassification.from_pretrained.__func__

    def load(cls, *args, **kwargs):  # type: ignore[no-untyped-def]
        kwargs.setdefault("attn_implementation", impl)
        return original(cls, *args, **kwargs)

    AutoModelForSequenceClassification.from_pretrained = classmethod(load)  # type: ignore[method-assign]


def _stamps_fsf() -> dict[int, float]:
    """Record when each optimizer step's lr is computed (once per step, after backward)."""
    import fsf.train.worker as worker

    stamps: dict[int, float] = {}
    original = worker.scheduled_lr_factor

    def stamped(step: int, warmup: int, total: int) -> float:
        stamps[step] = time.perf_counter()
        return original(step, warmup, total)

    worker.scheduled_lr_factor = stamped
    return stamps


def fsf_rank(spec: dict[str, Any]) -> dict[str, Any]:
    """One rank of an fsf run (the whole run on one rank)."""
    import torch

    torch.set_num_threads(spec["threads"])
    _attention(spec)
    from fsf.train import train

    stamps = _stamps_fsf()
    config = run_config(spec)
    t0 = time.perf_counter()
    train(config, all_ranks_report=False)
    total = time.perf_counter() - t0
    return _timing(spec, stamps, total)


def _timing(spec: dict[str, Any], stamps: dict[int, float], total: float) -> dict[str, Any]:
    span = stamps[spec["steps"]] - stamps[spec["warmup_steps"]]
    steps = spec["steps"] - spec["warmup_steps"]
    out = {
        "step_s": span / steps,
        "samples_per_s": steps * spec["batch"] / span,
        "end_to_end_s": total,
        "peak_rss_mb": _peak_rss_mb(),
    }
    try:
        import torch

        if torch.cuda.is_available() and spec["device"] == "cuda":
            out["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
    except Exception:  # pragma: no cover
        pass
    return out


def hf_rank(spec: dict[str, Any]) -> dict[str, Any]:
    """One rank of a `transformers.Trainer` run on the same encoded examples."""
    import torch
    import transformers
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
        TrainerCallback,
        TrainingArguments,
    )

    from fsf.tasks import build_task

    torch.set_num_threads(spec["threads"])
    _attention(spec)
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    config = run_config(spec)
    stamps: dict[int, float] = {}

    class _Clock(TrainerCallback):
        def on_step_end(self, targs, state, control, **kw):  # type: ignore[no-untyped-def]
            stamps[state.global_step] = time.perf_counter()

    t0 = time.perf_counter()
    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(spec["model_dir"])
    task = build_task(config.task, config.model)
    features = task.encode(task.load(SOURCE, "train"), tokenizer)
    train_set = [{"input_ids": f["input_ids"], "labels": f["label"]} for f in features]
    model = AutoModelForSequenceClassification.from_pretrained(spec["model_dir"], num_labels=3)
    kwargs: dict[str, Any] = {}
    if not spec.get("hf_default"):
        kwargs["optim"] = "adamw_torch"  # equal settings: fsf's AdamW (torch's default mode)
    if spec["ranks"] > 1:
        kwargs["deepspeed"] = {
            "train_batch_size": "auto", "train_micro_batch_size_per_gpu": "auto",
            "gradient_accumulation_steps": "auto", "gradient_clipping": "auto",
            "zero_optimization": {"stage": 2}, "zero_allow_untested_optimizer": True,
            "bf16": {"enabled": "auto"}, "steps_per_print": 2**31 - 1,
        }  # fmt: skip
    targs = TrainingArguments(
        output_dir=str(Path(spec["workdir"]) / "hf"),
        per_device_train_batch_size=spec["batch"] // spec["ranks"],
        max_steps=spec["steps"],
        learning_rate=LR,
        weight_decay=WEIGHT_DECAY,
        warmup_steps=int(WARMUP_RATIO * spec["steps"]),
        lr_scheduler_type="linear",
        max_grad_norm=GRAD_CLIP,
        eval_strategy="no",
        save_strategy="no",
        logging_strategy="no",
        report_to="none",
        disable_tqdm=True,
        dataloader_num_workers=0,
        use_cpu=spec["device"] == "cpu",
        bf16=spec["precision"] == "bf16",
        seed=0,
        **kwargs,
    )
    trainer = Trainer(
        model=model,
        args=targs,
        train_dataset=train_set,
        data_collator=DataCollatorWithPadding(tokenizer),
        callbacks=[_Clock()],
    )
    trainer.train()
    return _timing(spec, stamps, time.perf_counter() - t0)


def _ray_loop(spec: dict[str, Any]) -> None:
    """A Ray Train worker: one rank of a two-rank run; writes its figures to a file."""
    import ray.train

    rank = ray.train.get_context().get_world_rank()
    out = fsf_rank(spec) if spec["side"].startswith("fsf") else hf_rank(spec)
    Path(spec["workdir"], f"rank{rank}.json").write_text(json.dumps(out))


def side(spec: dict[str, Any]) -> dict[str, Any]:
    """One whole run of a side (in this process, or in two Ray Train workers)."""
    if spec["ranks"] == 1:
        out = fsf_rank(spec) if spec["side"].startswith("fsf") else hf_rank(spec)
        out["peak_rss_total_mb"] = out["peak_rss_mb"]
        return out
    import logging

    import ray
    import ray.train
    from ray.train.torch import TorchConfig, TorchTrainer

    os.environ.setdefault("RAY_TRAIN_V2_ENABLED", "1")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(num_cpus=spec["ranks"], include_dashboard=False, logging_level=logging.ERROR,
             log_to_driver=False)  # fmt: skip
    trainer = TorchTrainer(
        _ray_loop,
        train_loop_config=spec,
        scaling_config=ray.train.ScalingConfig(
            num_workers=spec["ranks"], resources_per_worker={"CPU": 1}
        ),
        torch_config=TorchConfig(backend="gloo"),
        run_config=ray.train.RunConfig(
            name="bench", storage_path=str(Path(spec["workdir"]) / "ray")
        ),
    )
    trainer.fit()
    ranks = [json.loads(Path(spec["workdir"], f"rank{r}.json").read_text())
             for r in range(spec["ranks"])]  # fmt: skip
    out = dict(ranks[0])
    out["peak_rss_mb"] = max(r["peak_rss_mb"] for r in ranks)
    out["peak_rss_total_mb"] = sum(r["peak_rss_mb"] for r in ranks)
    return out


def child(spec: dict[str, Any]) -> dict[str, Any]:
    """Run `side(spec)` in a fresh process (its own peak RSS, its own Ray instance)."""
    with tempfile.TemporaryDirectory(dir=spec["workdir"]) as tmp:
        spec = {**spec, "workdir": tmp}
        out = subprocess.run(
            [sys.executable, __file__, "--side-spec", json.dumps(spec)],
            capture_output=True, text=True,
        )  # fmt: skip
    if out.returncode != 0:
        raise SystemExit(f"{spec['side']} ({spec['label']}) failed:\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------- driver


SIDES = {"fsf-df": "df", "fsf-fsf": "fsf", "hf": "df"}


def base_spec(args: argparse.Namespace, model: str, ranks: int, assets: dict[str, Path]) -> dict:
    return {
        "model": model,
        "model_dir": str(assets["model"]),
        "data_dir": str(assets["data"]),
        "workdir": str(args.workdir),
        "ranks": ranks,
        "threads": args.threads if ranks == 1 else 1,
        "batch": args.batch,
        "steps": args.steps,
        "warmup_steps": args.warmup_steps,
        "device": args.device,
        "engine": args.engine,
        "precision": args.precision,
    }


def compare(args: argparse.Namespace) -> list[list[Any]]:
    """Each model x ranks setting: `--repeat` rounds of the three sides, their order rotated
    from one round (and one setting) to the next, so that with 3 rounds each side runs once
    in each position (first, second, last: what the run before leaves behind, memory being
    freed, caches, differs by position); medians over the rounds, and the range of the
    per-round fsf / Trainer ratio (the run-to-run noise of the comparison)."""
    rows: list[list[Any]] = []
    turn = 0
    for model in args.models:
        assets = build_assets(args.workdir, model, args.batch * args.steps)
        for ranks in args.ranks:
            if model == "large" and ranks > 1 and not args.smoke and not args.large_two_ranks:
                print("skipping large x 2 ranks (memory; --large-two-ranks to run it)",
                      file=sys.stderr)  # fmt: skip
                continue
            spec = base_spec(args, model, ranks, assets)
            res: dict[str, list[dict[str, Any]]] = {s: [] for s in SIDES}
            for r in range(args.repeat):
                order = list(SIDES)[turn % 3 :] + list(SIDES)[: turn % 3]
                turn += 1
                for s in order:
                    print(f"{model} x {ranks} rank(s): {s} ({r + 1}/{args.repeat}) ...",
                          file=sys.stderr, flush=True)  # fmt: skip
                    res[s].append(child({**spec, "side": s, "policy": SIDES[s], "label": model}))

            med = {
                (s, key): statistics.median(x[key] for x in runs)
                for s, runs in res.items()
                for key in ("samples_per_s", "step_s", "peak_rss_total_mb")
            }
            ratios = [f["samples_per_s"] / h["samples_per_s"]
                      for f, h in zip(res["fsf-df"], res["hf"], strict=True)]  # fmt: skip
            rows.append([
                f"{model} x {ranks}", med["fsf-df", "samples_per_s"],
                med["fsf-fsf", "samples_per_s"], med["hf", "samples_per_s"],
                med["fsf-df", "samples_per_s"] / med["hf", "samples_per_s"],
                f"{min(ratios):.3f}-{max(ratios):.3f}",
                med["fsf-fsf", "step_s"] / med["fsf-df", "step_s"],
                med["fsf-df", "peak_rss_total_mb"], med["fsf-fsf", "peak_rss_total_mb"],
                med["hf", "peak_rss_total_mb"],
                med["fsf-df", "peak_rss_total_mb"] / med["hf", "peak_rss_total_mb"],
            ])  # fmt: skip
    return rows


def levers(args: argparse.Namespace) -> list[list[Any]]:
    model = args.models[0]
    assets = build_assets(args.workdir, model, args.batch * args.steps)
    spec = {**base_spec(args, model, 1, assets), "policy": "df", "label": model}
    runs: list[tuple[str, dict[str, Any]]] = [
        (name, {**spec, "side": "fsf-df", "overrides": over})
        for name, over in LEVERS.items()
        # DeepSpeed's CPU Adam compiles a C++ op on first use (minutes): not in a smoke run
        if not (args.smoke and over.get("optim.adamw") == "deepspeed-cpu")
        and (not args.only or name in args.only or name == "fsf (equal settings)")
    ]
    runs.insert(1, ("Trainer defaults", {**spec, "side": "hf", "hf_default": True}))
    runs.insert(1, ("Trainer (equal settings)", {**spec, "side": "hf"}))
    out: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in runs}
    for r in range(args.repeat):
        for name, s in runs if r % 2 == 0 else runs[::-1]:
            print(f"lever {name} ({r + 1}/{args.repeat}) ...", file=sys.stderr, flush=True)
            out[name].append(child(s))
    ref = statistics.median(x["samples_per_s"] for x in out["fsf (equal settings)"])
    hf_default = statistics.median(x["samples_per_s"] for x in out["Trainer defaults"])
    rows = []
    for name, results in out.items():
        sps = statistics.median(x["samples_per_s"] for x in results)
        rss = statistics.median(x["peak_rss_mb"] for x in results)
        rows.append([name, sps, sps / ref, sps / hf_default, rss])
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--models", nargs="+", default=["base", "large"], choices=["base", "large", "tiny"]
    )
    p.add_argument("--ranks", nargs="+", type=int, default=[1, 2], choices=[1, 2])
    p.add_argument("--batch", type=int, default=8, help="global batch (sequences)")
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--warmup-steps", type=int, default=2, help="steps before the timed span")
    p.add_argument("--threads", type=int, default=2, help="torch threads of a one-rank run")
    p.add_argument("--repeat", type=int, default=1, help="runs per side (or lever), alternating")
    p.add_argument("--levers", action="store_true", help="each speed lever alone (first model)")
    p.add_argument("--only", nargs="+", metavar="LEVER", help="--levers: these levers only")
    p.add_argument("--large-two-ranks", action="store_true")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--engine", default="deepspeed", choices=["deepspeed", "torch"])
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    p.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "fsf-real-size")
    p.add_argument("--json", type=Path, help="also write the rows here")
    p.add_argument("--smoke", action="store_true", help="a tiny config, seconds")
    p.add_argument("--side-spec", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.side_spec:
        print(json.dumps(side(json.loads(args.side_spec))))
        return 0
    if args.smoke:
        args.models, args.steps, args.warmup_steps, args.batch = ["tiny"], 3, 1, 4
    args.workdir.mkdir(parents=True, exist_ok=True)
    from fsf.cli._base import print_table

    load = os.getloadavg()
    setting = (
        f"batch {args.batch}, {args.steps - args.warmup_steps} timed steps after "
        f"{args.warmup_steps}, {args.repeat} run(s) per side, {args.device}, {args.engine}, "
        f"{args.precision}; load average {load[0]:.2f} at the start"
    )
    if args.levers:
        rows = levers(args)
        headers = ["fsf side (alone)", "samples/s", "/ fsf equal", "/ Trainer defaults",
                   "peak RSS MB"]  # fmt: skip
        title = f"speed levers, XLM-R-{args.models[0]} shape, 1 rank; {setting}"
    else:
        rows = compare(args)
        headers = ["model x ranks", "fsf DF samples/s", "fsf FSF samples/s", "Trainer samples/s",
                   "fsf / Trainer", "fsf / Trainer range", "FSF / DF step",
                   "fsf DF peak RSS MB", "fsf FSF peak RSS MB", "Trainer peak RSS MB",
                   "fsf / Trainer RSS"]  # fmt: skip
        title = f"fsf worker vs transformers.Trainer, random-weight XLM-R shapes; {setting}"
    print_table(headers, rows, title=title)
    if args.json:
        args.json.write_text(json.dumps({"title": title, "headers": headers, "rows": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
