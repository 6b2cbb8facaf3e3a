"""Benchmark: what parts of one training step cost, and what the CPU levers not taken would give.

One fine-tuning step (forward, backward, clipping at 1.0, fused AdamW with weight decay 0.01:
fsf's defaults) of a random-weight encoder on a random batch, timed under variants of the
same step, side by side with rotating order (each variant runs first, middle and last
alike); each figure is the median over rounds of the mean step time, and the ratio is
reference / variant (> 1: the variant is faster):

- `fp32`: the reference;
- `bf16 matmul internals`: `torch.backends.mkldnn.matmul.fp32_precision = "bf16"` (oneDNN
  computes fp32 matmuls with bfloat16 internals; PyTorch >= 2.9);
- `bf16 autocast`: `torch.autocast("cpu", torch.bfloat16)` around the forward, as
  `deepspeed.precision: bf16` does on CPU;
- `word embedding frozen`: no gradient, clipping or AdamW for the word embedding. Not a
  lever (it changes training): the most an exact lazy update of the embedding's untouched
  rows could save;
- `torch.compile` (with `--compile`): the model compiled by inductor, fp32 (its compile, a
  minute at XLM-R base on this machine, happens in the untimed first step);
- `embedding rows, N read` (with `--rows N ...`): `optim.embedding_update: rows`
  (`fsf.train._rows`: the embedding's gradient as rows, AdamW on the rows read so far) after
  N rows of the vocabulary have been read (a fine-tuning run's read set grows to the distinct
  tokens of its data; past half the vocabulary it is dense AdamW again), on its own copy of
  the model.

Models: `base` is XLM-R base's config (bench/data/xlmr_configs.json; batch 8 x 64 tokens),
`embedded` the embedded benchmark's encoder config (fsf/synthetic/assets/model; batch 32 x 48).

    python bench/bench_step_parts.py                     # both models
    python bench/bench_step_parts.py --models base --rounds 4
    python bench/bench_step_parts.py --models base --compile   # also torch.compile
    python bench/bench_step_parts.py --models base --rows 4000 50000 100000
    python bench/bench_step_parts.py --models base --exactness 10   # rows vs dense, fp32
    python bench/bench_step_parts.py --smoke             # tiny, seconds
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch
from transformers import XLMRobertaConfig, XLMRobertaForSequenceClassification

from fsf.cli._base import print_table

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = ("fp32", "bf16 matmul internals", "bf16 autocast", "word embedding frozen")


def model_config(name: str, smoke: bool) -> tuple[XLMRobertaConfig, int, int]:
    """(config, batch, length) of `name`."""
    if name == "base":
        raw = json.loads((ROOT / "bench" / "data" / "xlmr_configs.json").read_text())["base"]
        batch, length = 8, 64
    else:
        raw = json.loads(
            (ROOT / "fsf" / "synthetic" / "assets" / "model" / "config.json").read_text()
        )
        batch, length = 32, 48
    cfg = XLMRobertaConfig(**{k: v for k, v in raw.items() if k not in ("architectures",)})
    cfg.num_labels = 3
    cfg.tie_word_embeddings = False
    if smoke:
        cfg.num_hidden_layers, batch, length = 1, 2, 8
    return cfg, batch, length


class Step:
    """One training step of a model under each variant (separate AdamW states per variant,
    so that each variant's step is the same computation every round)."""

    def __init__(self, cfg: XLMRobertaConfig, batch: int, length: int):
        torch.manual_seed(0)
        self.model = XLMRobertaForSequenceClassification(cfg)
        self.emb = self.model.roberta.embeddings.word_embeddings.weight
        self.x = torch.randint(5, cfg.vocab_size, (batch, length))
        self.y = torch.randint(0, 3, (batch,))
        self.opt: dict[str, torch.optim.Optimizer] = {}
        self.compiled: torch.nn.Module | None = None
        self.rows: dict[str, tuple[torch.nn.Module, Any]] = {}

    def row_step(self, variant: str) -> None:
        """A step of `optim.embedding_update: rows` with `variant`'s rows already read."""
        from fsf.train._rows import RowAdamW, clip_grad_norm_

        if variant not in self.rows:
            model = copy.deepcopy(self.model)
            emb = model.roberta.embeddings.word_embeddings
            opt = RowAdamW([{"params": list(model.parameters()), "weight_decay": 0.01}], emb,
                           lr=2e-5)  # fmt: skip
            read = int(variant.split()[2])
            opt._track(
                torch.randperm(emb.num_embeddings, generator=torch.Generator().manual_seed(0))[
                    :read
                ]
            )
            self.rows[variant] = (model, opt)
        model, opt = self.rows[variant]
        loss = model(input_ids=self.x, labels=self.y).loss
        loss.backward()
        clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    def __call__(self, variant: str) -> None:
        if variant.startswith("embedding rows"):
            self.row_step(variant)
            return
        frozen = variant == "word embedding frozen"
        self.emb.requires_grad_(not frozen)
        params = [p for p in self.model.parameters() if p.requires_grad]
        if variant not in self.opt:
            self.opt[variant] = torch.optim.AdamW(params, lr=2e-5, weight_decay=0.01, fused=True)
        mkldnn = torch.backends.mkldnn.matmul
        previous = mkldnn.fp32_precision
        mkldnn.fp32_precision = "bf16" if variant == "bf16 matmul internals" else "ieee"
        autocast = (
            torch.autocast("cpu", dtype=torch.bfloat16)
            if variant == "bf16 autocast"
            else contextlib.nullcontext()
        )
        model = self.model
        if variant == "torch.compile":
            if self.compiled is None:
                self.compiled = torch.compile(self.model)
            model = self.compiled
        try:
            with autocast:
                loss = model(input_ids=self.x, labels=self.y).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            self.opt[variant].step()
            self.opt[variant].zero_grad(set_to_none=True)
        finally:
            mkldnn.fp32_precision = previous
        self.emb.requires_grad_(True)


def measure(name: str, args: argparse.Namespace) -> list[list[Any]]:
    cfg, batch, length = model_config(name, args.smoke)
    step = Step(cfg, batch, length)
    names = [*VARIANTS, "torch.compile"] if args.compile else list(VARIANTS)
    names += [f"embedding rows, {n} read" for n in args.rows]
    times: dict[str, list[float]] = {v: [] for v in names}
    for r in range(args.rounds):
        k = r % len(names)
        for variant in names[k:] + names[:k]:
            step(variant)  # (warm: the first step of a variant allocates its AdamW state)
            t0 = time.perf_counter()
            for _ in range(args.steps):
                step(variant)
            times[variant].append((time.perf_counter() - t0) / args.steps)
        print(f"{name}: round {r + 1}/{args.rounds} done", file=sys.stderr)
    ref = statistics.median(times["fp32"])
    rows = []
    for variant in names:
        med = statistics.median(times[variant])
        rows.append([name, variant, med, ref / med, " ".join(f"{t:.3f}" for t in times[variant])])
    return rows


def rows_exactness(name: str, steps: int, smoke: bool) -> list[list[Any]]:
    """Train copies of `name` for `steps` steps on the same random batches: with dense fused
    AdamW, with `optim.embedding_update: rows`, and with dense AdamW on one thread (the same
    arithmetic summed in another order: Adam's floating-point noise floor); then how far
    apart their parameters are, against how far training moved them."""
    from fsf.train._rows import RowAdamW, clip_grad_norm_

    cfg, batch, length = model_config(name, smoke)
    torch.manual_seed(0)
    dense = XLMRobertaForSequenceClassification(cfg)
    start = {k: v.detach().clone() for k, v in dense.state_dict().items()}
    rows, floor = copy.deepcopy(dense), copy.deepcopy(dense)
    groups = [{"params": list(dense.parameters()), "weight_decay": 0.01}]
    ref = torch.optim.AdamW(groups, lr=2e-5, fused=True)
    ref1 = torch.optim.AdamW(floor.parameters(), lr=2e-5, weight_decay=0.01, fused=True)
    threads = torch.get_num_threads()
    emb = rows.roberta.embeddings.word_embeddings
    opt = RowAdamW([{"params": list(rows.parameters()), "weight_decay": 0.01}], emb, lr=2e-5)
    gen = torch.Generator().manual_seed(1)
    for _ in range(steps):
        x = torch.randint(5, cfg.vocab_size, (batch, length), generator=gen)
        y = torch.randint(0, 3, (batch,), generator=gen)
        for model, optimizer, clip, n in (
            (dense, ref, torch.nn.utils.clip_grad_norm_, threads),
            (rows, opt, clip_grad_norm_, threads),
            (floor, ref1, torch.nn.utils.clip_grad_norm_, 1),
        ):
            torch.set_num_threads(n)
            model(input_ids=x, labels=y).loss.backward()
            clip(model.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
    torch.set_num_threads(threads)
    a = dense.state_dict()
    out = [name, steps, len(opt.rows)]
    for other in (rows.state_dict(), floor.state_dict()):  # (reading settles owed decay)
        out += [max(float((a[k] - other[k]).abs().max()) for k in a),
                float((a[EMB] - other[EMB]).abs().max())]  # fmt: skip
    return [[*out, max(float((a[k] - start[k]).abs().max()) for k in a)]]


EMB = "roberta.embeddings.word_embeddings.weight"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--models", nargs="+", default=["base", "embedded"], choices=["base", "embedded"]
    )
    p.add_argument("--rounds", type=int, default=4, help="rounds (the order rotates)")
    p.add_argument("--steps", type=int, default=3, help="timed steps per variant and round")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--compile", action="store_true", help="also time torch.compile (inductor)")
    p.add_argument("--rows", type=int, nargs="*", default=[],
                   help="also time optim.embedding_update: rows with these many rows read")  # fmt: skip
    p.add_argument("--exactness", type=int, default=0, metavar="STEPS",
                   help="instead: train dense and row-wise AdamW for STEPS steps on the same "
                   "batches and print how far apart the parameters end")  # fmt: skip
    p.add_argument("--smoke", action="store_true", help="a 1-layer model, 1 round, 1 step")
    args = p.parse_args(argv)
    if args.exactness:
        torch.set_num_threads(args.threads)
        models = ["embedded"] if args.smoke else args.models
        print_table(
            ["model", "steps", "rows read", "max |dense - rows|", "on the embedding",
             "max |dense - dense, 1 thread|", "on the embedding", "max |moved by training|"],
            [r for name in models for r in rows_exactness(name, args.exactness, args.smoke)],
            title="dense fused AdamW vs optim.embedding_update: rows, fp32, same batches",
        )  # fmt: skip
        return 0
    if args.smoke:
        args.models, args.rounds, args.steps = ["embedded"], 1, 1
        args.rows = args.rows or [100]
    torch.set_num_threads(args.threads)
    rows = [row for name in args.models for row in measure(name, args)]
    print_table(
        ["model", "variant", "s per step (median)", "fp32 / variant", "rounds (s per step)"],
        rows,
        title=f"one training step (fused AdamW, clipping), {args.threads} threads, "
        f"{args.rounds} rotated rounds of {args.steps} steps; torch {torch.__version__}",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
