"""Training loop: the fsf worker (DF policy, DeepSpeed on CPU) vs Hugging Face `Trainer`.

Both sides fine-tune the same encoder (the shipped synthetic 12-layer XLM-R by default) on the
same encoded examples (the synthetic topic task's `en` train split, tokenised by fsf's task
code), with the same global batch, number of steps, AdamW settings, gradient clipping and
linear warm-up + decay schedule. Nothing is evaluated in the timed part: the fsf side
evaluates 8 dev examples per language at the end of its warm-up steps and at the last step,
which brackets the timed span; `Trainer` runs with `eval_strategy="no"`.

Each run is its own Python process (so peak memory, the RSS high-water mark, is not shared
with the other side or with this driver), and the two sides alternate `--repeat` times.
Both sides use `--threads` torch threads (default 1, as in a sweep trial; with 2 threads on a
2-core machine the spread between runs is larger than the difference measured).
Reported per side: steady-state samples/s (steps after the warm-up), end-to-end seconds
(from entering the training call to its return: data, model, engine and all steps), RSS after
the imports and peak RSS.

    python bench/bench_trainer.py [--steps 300] [--warmup-steps 50] [--repeat 5] [--smoke]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("DS_ACCELERATOR", "cpu")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

LR, WEIGHT_DECAY, WARMUP_RATIO, GRAD_CLIP = 2e-3, 0.01, 0.1, 1.0


def _rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _run_config(args: argparse.Namespace) -> Any:
    from fsf.config import validate_run_config

    return validate_run_config(
        {
            "model": {"name": args.model, "max_length": args.max_length},
            "task": {
                "name": "classification",
                "dataset": args.dataset,
                "text_fields": args.text_fields,
                "num_labels": args.num_labels,
                "max_eval_examples": 8,  # in-run evaluations only mark the clock
            },
            "target_langs": args.targets,
            "policy": {"name": "df"},
            "optim": {
                "lr": args.lr,
                "batch_size": args.batch,
                "max_steps": args.steps,
                "warmup_ratio": WARMUP_RATIO,
                "weight_decay": WEIGHT_DECAY,
                "grad_clip": GRAD_CLIP,
            },
            "eval": {"every_steps": args.warmup_steps, "at_start": False, "splits": ["dev"]},
            "deepspeed": {"zero_stage": 0},
            "device": "cpu",
        }
    )


def side_fsf(args: argparse.Namespace) -> dict[str, float]:
    """One fsf worker run; times come from the evaluations' clocks."""
    import torch

    torch.set_num_threads(args.threads)
    import deepspeed  # noqa: F401  (imported up front, like transformers on the other side)
    import transformers  # noqa: F401

    from fsf.train import ListReporter, train

    config = _run_config(args)
    if args.accuracy:  # the final model is saved, then scored on the whole dev set below,
        # outside the timed steps (as the Trainer side predicts after training)
        final = config.checkpoint.model_copy(update={"save": "final"})
        config = config.model_copy(
            update={"checkpoint": final, "output_dir": str(Path(args.workdir) / "fsf")}
        )
    rss_imports = _rss_mb()
    reporter = ListReporter()
    t0 = time.perf_counter()
    summary = train(config, reporter, artifacts_dir=Path(args.workdir) / "fsf-artifacts")
    total = time.perf_counter() - t0
    evs = {e.step: e.elapsed_s for e in reporter.evaluations}
    span = evs[args.steps] - evs[args.warmup_steps]
    out = {
        "samples_per_s": (args.steps - args.warmup_steps) * args.batch / span,
        "end_to_end_s": total,
        "rss_imports_mb": rss_imports,
        "peak_rss_mb": _peak_rss_mb(),
    }
    if args.accuracy:  # the source language's whole dev set, as the run would score it
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        from fsf.train import evaluate_model

        saved = summary.artifacts["checkpoint"]
        model = AutoModelForSequenceClassification.from_pretrained(saved)
        full = config.model_copy(
            update={"task": config.task.model_copy(update={"max_eval_examples": None})}
        )
        scores = evaluate_model(full, model, AutoTokenizer.from_pretrained(saved), ("dev",))
        out["dev_accuracy"] = scores["dev"][config.source_lang]["accuracy"]
    return out


def side_hf(args: argparse.Namespace) -> dict[str, float]:
    """One `transformers.Trainer` run on the same encoded examples."""
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
    from fsf.train import resolve_model_path

    torch.set_num_threads(args.threads)
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    config = _run_config(args)
    rss_imports = _rss_mb()
    stamps: dict[int, float] = {}

    class _Clock(TrainerCallback):
        def on_step_end(self, targs, state, control, **kw):  # type: ignore[no-untyped-def]
            if state.global_step in (args.warmup_steps, args.steps):
                stamps[state.global_step] = time.perf_counter()

    t0 = time.perf_counter()
    torch.manual_seed(0)
    path = resolve_model_path(config.model.name)
    tokenizer = AutoTokenizer.from_pretrained(path)
    task = build_task(config.task, config.model)
    features = task.encode(task.load(config.source_lang, "train"), tokenizer)
    train_set = [{"input_ids": f["input_ids"], "labels": f["label"]} for f in features]
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=args.num_labels)
    targs = TrainingArguments(
        output_dir=str(Path(args.workdir) / "hf"),
        per_device_train_batch_size=args.batch,
        max_steps=args.steps,
        learning_rate=args.lr,
        weight_decay=WEIGHT_DECAY,
        warmup_steps=int(WARMUP_RATIO * args.steps),
        lr_scheduler_type="linear",
        max_grad_norm=GRAD_CLIP,
        **({} if args.hf_defaults else {"optim": "adamw_torch"}),
        eval_strategy="no",
        save_strategy="no",
        logging_strategy="no",
        report_to="none",
        disable_tqdm=True,
        dataloader_num_workers=0,
        use_cpu=True,
        seed=0,
    )
    trainer = Trainer(
        model=model,
        args=targs,
        train_dataset=train_set,
        data_collator=DataCollatorWithPadding(tokenizer),
        callbacks=[_Clock()],
    )
    trainer.train()
    total = time.perf_counter() - t0
    span = stamps[args.steps] - stamps[args.warmup_steps]
    out = {
        "samples_per_s": (args.steps - args.warmup_steps) * args.batch / span,
        "end_to_end_s": total,
        "rss_imports_mb": rss_imports,
        "peak_rss_mb": _peak_rss_mb(),
    }
    if args.accuracy:  # the source language's whole dev set, as fsf scores it
        whole = config.task.model_copy(update={"max_eval_examples": None})
        dev_task = build_task(whole, config.model)
        dev = dev_task.encode(dev_task.load(config.source_lang, "dev"), tokenizer)
        dev_set = [{"input_ids": f["input_ids"], "labels": f["label"]} for f in dev]
        predicted = trainer.predict(dev_set).predictions.argmax(-1)
        out["dev_accuracy"] = float((predicted == [f["label"] for f in dev]).mean())
    return out


def _child(args: argparse.Namespace, side: str) -> dict[str, float]:
    cmd = [sys.executable, __file__, "--side", side, *_forward(args)]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"{side} run failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _forward(args: argparse.Namespace) -> list[str]:
    return [
        "--steps", str(args.steps), "--warmup-steps", str(args.warmup_steps),
        "--batch", str(args.batch), "--threads", str(args.threads),
        "--model", args.model, "--dataset", args.dataset,
        "--num-labels", str(args.num_labels), "--workdir", args.workdir,
        "--lr", str(args.lr), "--max-length", str(args.max_length),
        *(["--hf-defaults"] if args.hf_defaults else []),
        *(["--accuracy"] if args.accuracy else []),
        "--text-fields", *args.text_fields, "--targets", *args.targets,
    ]  # fmt: skip


def _spread(values: list[float]) -> str:
    return f"{min(values):.4g}-{max(values):.4g}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--warmup-steps", type=int, default=50, help="steps before the timed span")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--repeat", type=int, default=5, help="runs per side, alternating")
    p.add_argument("--threads", type=int, default=1, help="torch threads (a sweep trial: 1)")
    p.add_argument("--model", default="synthetic", help="fsf model name or local folder")
    p.add_argument("--dataset", default="synthetic:topic")
    p.add_argument("--text-fields", nargs="+", default=["text"])
    p.add_argument("--num-labels", type=int, default=4)
    p.add_argument("--targets", nargs="+", default=["fk", "fr", "ja", "cy", "sw", "ur"])
    p.add_argument("--workdir", default=None)
    p.add_argument("--lr", type=float, default=LR, help=f"peak learning rate ({LR})")
    p.add_argument("--max-length", type=int, default=64, help="tokens per example (64)")
    p.add_argument(
        "--hf-defaults",
        action="store_true",
        help="Trainer as a user gets it (its default optimizer) instead of equal settings",
    )
    p.add_argument(
        "--accuracy",
        action="store_true",
        help="also each side's source-language dev accuracy at the last step (whole dev set)",
    )
    p.add_argument("--smoke", action="store_true", help="tiny model and sizes; just completes")
    p.add_argument("--side", choices=("fsf", "hf"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.side:
        result = side_fsf(args) if args.side == "fsf" else side_hf(args)
        print(json.dumps(result))
        return 0

    import tempfile

    tmp = tempfile.TemporaryDirectory()
    args.workdir = args.workdir or tmp.name
    if args.smoke:
        from fsf.testing import pair_dataset, tiny_model

        root = Path(args.workdir)
        args.model = str(tiny_model(root / "model"))
        args.dataset = str(pair_dataset(root / "data"))
        args.text_fields, args.num_labels, args.targets = ["sentence1", "sentence2"], 2, ["de"]
        args.steps, args.warmup_steps, args.batch, args.repeat = 6, 2, 8, 1
    runs: dict[str, list[dict[str, float]]] = {"fsf": [], "hf": []}
    from tqdm.auto import tqdm

    with tqdm(total=2 * args.repeat, desc="runs", unit="run", file=sys.stderr) as bar:
        for r in range(args.repeat):
            for side in ("fsf", "hf") if r % 2 == 0 else ("hf", "fsf"):
                runs[side].append(_child(args, side))
                bar.update(1)
    tmp.cleanup()

    def med(side: str, key: str) -> float:
        return statistics.median(x[key] for x in runs[side])

    rows = []
    for key, label in (
        ("samples_per_s", "samples/s (steady)"),
        ("end_to_end_s", "end-to-end s"),
        ("rss_imports_mb", "RSS after imports MB"),
        ("peak_rss_mb", "peak RSS MB"),
        *([("dev_accuracy", "source dev accuracy")] if args.accuracy else []),
    ):
        f, h = med("fsf", key), med("hf", key)
        rows.append(
            [label, f, _spread([x[key] for x in runs["fsf"]]), h,
             _spread([x[key] for x in runs["hf"]]), f / h if h else None]
        )  # fmt: skip
    from fsf.cli._base import print_table

    title = (
        f"fsf worker (DF, DeepSpeed ZeRO-0, CPU, its defaults) vs transformers.Trainer "
        f"({'its defaults' if args.hf_defaults else 'equal settings'}): {args.steps} steps "
        f"x batch {args.batch}, timed after step {args.warmup_steps}; median and min-max of "
        f"{args.repeat} runs per side, torch threads {args.threads}"
    )
    print_table(
        ["measure", "fsf", "fsf range", "Trainer", "Trainer range", "fsf / Trainer"],
        rows,
        title=title,
    )
    ratio = med("fsf", "samples_per_s") / med("hf", "samples_per_s")
    print(f"fsf / Trainer throughput (median): {ratio:.3f} (goal >= 1.0)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
