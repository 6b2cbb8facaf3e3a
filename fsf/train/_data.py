"""What a run trains on and evaluates: the source training features (with few-shot
examples moved out of the target dev splits), the evaluation sets, and the endless stream of
shuffled batch indices."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch

from fsf.config import RunConfig
from fsf.errors import FsfError
from fsf.tasks import Task

__all__ = ["EvalSet", "batches", "load_data"]


class EvalSet:
    """Encoded examples of one (split, language), sorted by length for cheap padding."""

    def __init__(self, features: list[dict[str, Any]]):
        self.features = features
        self.order = sorted(range(len(features)), key=lambda i: len(features[i]["input_ids"]))


def load_data(
    task: Task, config: RunConfig, tokenizer: Any
) -> tuple[list[dict[str, Any]], dict[str, dict[str, EvalSet]]]:
    """Source train (+ few-shot) features, and eval sets per split and language."""
    train_examples = list(task.load(config.source_lang, "train"))
    eval_examples: dict[str, dict[str, list[dict[str, Any]]]] = {
        split: {lang: task.load(lang, split) for lang in config.languages}
        for split in config.eval.splits
    }
    m = config.few_shot.m
    if m:
        import random

        if "dev" not in eval_examples:
            eval_examples["dev"] = {lang: task.load(lang, "dev") for lang in config.languages}
        for lang in config.target_langs:
            dev = eval_examples["dev"][lang]
            if len(dev) <= m:
                raise FsfError(
                    f"few_shot.m={m} but the {lang} dev split has only {len(dev)} examples"
                )
            rng = random.Random(f"{config.few_shot.seed}:{lang}")
            picked = set(rng.sample(range(len(dev)), m))
            train_examples += [dev[i] for i in sorted(picked)]
            eval_examples["dev"][lang] = [ex for i, ex in enumerate(dev) if i not in picked]
        if "dev" not in config.eval.splits:
            del eval_examples["dev"]
    if not train_examples:
        raise FsfError(f"no training examples for the source language {config.source_lang!r}")
    train = task.encode(train_examples, tokenizer)
    evals = {
        split: {lang: EvalSet(task.encode(exs, tokenizer)) for lang, exs in per_lang.items()}
        for split, per_lang in eval_examples.items()
    }
    return train, evals


def batches(n: int, size: int, seed: int, lengths: list[int] | None = None) -> Iterator[list[int]]:
    """An endless stream of global batches of example indices, reshuffled each epoch.

    With `lengths` (tokens per example), each epoch's shuffled order is grouped by length
    as `transformers.Trainer`'s `group_by_length` does it: cut into mega-batches of 50
    batches, each sorted longest first, so a batch holds examples of similar length and
    needs little padding; every example is still seen once per epoch, in random mega-batches.
    """
    gen = torch.Generator().manual_seed(seed)
    buf: list[int] = []
    while True:
        while len(buf) < size:
            order = torch.randperm(n, generator=gen).tolist()
            if lengths is not None:
                mega = 50 * size
                order = [
                    i
                    for k in range(0, n, mega)
                    for i in sorted(order[k : k + mega], key=lambda j: -lengths[j])
                ]
            buf += order
        yield buf[:size]
        buf = buf[size:]
