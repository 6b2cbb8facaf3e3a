"""A minimal direct fine-tuning (DF) loop on the synthetic tasks, in plain torch.

This is the reference the benchmark's properties are measured with (and the smoke test's
harness); the project's real trainer lives in ``fsf.train``. It loads the checkpoint the way
``xlm-roberta-base`` is loaded (``AutoModelForSequenceClassification.from_pretrained``),
trains on the source language's train split only, and evaluates every language.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import (
    AutoConfig,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PreTrainedModel,
)

from fsf.synthetic.data import TASKS
from fsf.synthetic.world import SOURCE_LANGUAGE

__all__ = ["FinetuneConfig", "FinetuneResult", "finetune", "load_split"]


@dataclass(frozen=True)
class FinetuneConfig:
    """One DF run: batch 32, AdamW, linear warm-up then linear decay to 0."""

    task: str = "pawsx"
    lr: float = 1e-3
    steps: int = 300
    batch_size: int = 32
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    eval_every: int = 50
    eval_split: str = "test"
    max_length: int = 64
    seed: int = 0
    from_scratch: bool = False  # same architecture, random initialisation (the control)


@dataclass
class FinetuneResult:
    """Per-language accuracy at every evaluation, plus timing."""

    config: FinetuneConfig
    history: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    model: PreTrainedModel | None = None

    @property
    def final(self) -> dict[str, float]:
        """Accuracy per language at the last step."""
        return self.history[-1]["acc"]

    def gap(self, step: int = -1) -> float:
        """Source accuracy minus the mean over the other languages."""
        acc = self.history[step]["acc"]
        tgt = [v for k, v in acc.items() if k != SOURCE_LANGUAGE]
        return acc[SOURCE_LANGUAGE] - sum(tgt) / len(tgt)


def load_split(data: Path, lang: str, split: str) -> list[dict]:
    """Records of one ``<lang>/<split>.jsonl`` file of a task folder."""
    with (data / lang / f"{split}.jsonl").open(encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def _encode(tokenizer, records: list[dict], pair: bool, max_length: int) -> dict:
    if pair:
        enc = tokenizer(
            [r["sentence1"] for r in records],
            [r["sentence2"] for r in records],
            truncation=True,
            max_length=max_length,
        )
    else:
        enc = tokenizer([r["text"] for r in records], truncation=True, max_length=max_length)
    return {"input_ids": enc["input_ids"], "labels": [r["label"] for r in records]}


def _collate(ids: list[list[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(x) for x in ids)
    out = torch.full((len(ids), width), pad, dtype=torch.long)
    for i, x in enumerate(ids):
        out[i, : len(x)] = torch.tensor(x)
    return out, (out != pad).long()


@torch.no_grad()
def _accuracy(model: PreTrainedModel, enc: dict, pad: int, batch: int = 512) -> float:
    model.eval()
    correct = 0
    for i in range(0, len(enc["labels"]), batch):
        ids, mask = _collate(enc["input_ids"][i : i + batch], pad)
        pred = model(input_ids=ids, attention_mask=mask).logits.argmax(-1)
        correct += (pred == torch.tensor(enc["labels"][i : i + batch])).sum().item()
    model.train()
    return correct / len(enc["labels"])


def finetune(
    model_dir: Path, data_dir: Path, cfg: FinetuneConfig, keep_model: bool = False
) -> FinetuneResult:
    """Fine-tune the checkpoint in ``model_dir`` on ``data_dir``'s ``en`` train split.

    Every ``cfg.eval_every`` steps (and at step 0) records accuracy on ``cfg.eval_split`` of
    every language found in ``data_dir`` plus ``en`` validation accuracy (key ``dev``).
    """
    spec = TASKS[cfg.task]
    if spec.kind != "classification":
        raise ValueError(
            f"finetune() runs the classification tasks only, not {cfg.task!r} ({spec.kind}); "
            "train the others with fsf-train (task.name: tagging / qa)"
        )
    torch.manual_seed(cfg.seed)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    if cfg.from_scratch:
        config = AutoConfig.from_pretrained(model_dir, num_labels=spec.num_labels)
        model = AutoModelForSequenceClassification.from_config(config)
    else:
        model = AutoModelForSequenceClassification.from_pretrained(
            model_dir, num_labels=spec.num_labels
        )
    model.train()
    pad = tokenizer.pad_token_id
    langs = sorted(p.name for p in data_dir.iterdir() if p.is_dir())
    langs = [SOURCE_LANGUAGE] + [x for x in langs if x != SOURCE_LANGUAGE]
    train = _encode(
        tokenizer, load_split(data_dir, SOURCE_LANGUAGE, "train"), spec.pair, cfg.max_length
    )
    evals = {
        lang: _encode(
            tokenizer, load_split(data_dir, lang, cfg.eval_split), spec.pair, cfg.max_length
        )
        for lang in langs
    }
    dev = _encode(
        tokenizer, load_split(data_dir, SOURCE_LANGUAGE, "validation"), spec.pair, cfg.max_length
    )

    decay = [p for n, p in model.named_parameters() if p.ndim > 1 and "embeddings" not in n]
    rest = [p for n, p in model.named_parameters() if not (p.ndim > 1 and "embeddings" not in n)]
    opt = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": cfg.weight_decay},
            {"params": rest, "weight_decay": 0.0},
        ],
        lr=cfg.lr,
    )
    warmup = max(1, round(cfg.warmup_ratio * cfg.steps))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt,
        lambda s: (
            (s + 1) / warmup if s < warmup else max(0.0, (cfg.steps - s) / (cfg.steps - warmup))
        ),
    )
    gen = torch.Generator().manual_seed(cfg.seed)
    result = FinetuneResult(cfg)

    def evaluate(step: int, loss: float) -> None:
        acc = {lang: _accuracy(model, e, pad) for lang, e in evals.items()}
        result.history.append(
            {"step": step, "loss": loss, "dev": _accuracy(model, dev, pad), "acc": acc}
        )

    t0 = time.perf_counter()
    evaluate(0, float("nan"))
    order = torch.randperm(len(train["labels"]), generator=gen).tolist()
    running = 0.0
    for step in range(1, cfg.steps + 1):
        if len(order) < cfg.batch_size:
            order += torch.randperm(len(train["labels"]), generator=gen).tolist()
        idx, order = order[: cfg.batch_size], order[cfg.batch_size :]
        ids, mask = _collate([train["input_ids"][i] for i in idx], pad)
        labels = torch.tensor([train["labels"][i] for i in idx])
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        running += loss.item()
        if step % cfg.eval_every == 0 or step == cfg.steps:
            evaluate(step, running / cfg.eval_every)
            running = 0.0
    result.seconds = time.perf_counter() - t0
    if keep_model:
        result.model = model.eval()
    return result
