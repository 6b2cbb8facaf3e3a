"""Evaluation outside the training loop's own bookkeeping: predictions for a set of
features on every rank (`predict`), scoring a saved model as a run would (`evaluate_model`),
and the `Keeper` that holds the selected evaluation's predictions and weights for the run's
artifacts."""

from __future__ import annotations

from typing import Any

import torch

from fsf.config import RunConfig
from fsf.errors import FsfError
from fsf.results.evaluation import Evaluation
from fsf.results.selection import CheckpointTracker
from fsf.tasks import Task, build_task
from fsf.train._data import EvalSet
from fsf.train.reporter import RunSummary

__all__ = ["Keeper", "evaluate_model", "predict"]


def evaluate_model(
    config: RunConfig,
    model: torch.nn.Module,
    tokenizer: Any,
    splits: tuple[str, ...] = ("test",),
) -> dict[str, dict[str, dict[str, float]]]:
    """Score `model` (e.g. a saved checkpoint loaded with `AutoModelFor...from_pretrained`)
    on `splits` of every language of `config`, exactly as the training run evaluates:
    `{split: {lang: {metric: value}}}`. Runs in this process, on the model's device."""
    task = build_task(config.task, config.model)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out: dict[str, dict[str, dict[str, float]]] = {}
    try:
        with torch.no_grad():
            for split in splits:
                out[split] = {}
                for lang in config.languages:
                    es = EvalSet(task.encode(task.load(lang, split), tokenizer))
                    preds = predict(task, model, es, config.eval.batch_size, pad_id, device)
                    out[split][lang] = task.score(preds, es.features)
    finally:
        model.train(was_training)
    return out


def predict(
    task: Task,
    model: torch.nn.Module,
    es: EvalSet,
    batch_size: int,
    pad_id: int,
    device: Any,
    rank: int = 0,
    world: int = 1,
) -> list[Any]:
    """The task's predictions for every feature of `es`, in the features' order (each rank
    predicts its share, the shares are gathered). The model must be in eval mode."""
    import torch.distributed as dist

    mine = es.order[rank::world]
    preds: list[Any] = []
    for i in range(0, len(mine), batch_size):
        feats = [es.features[j] for j in mine[i : i + batch_size]]
        batch = {k: v.to(device) for k, v in task.collate(feats, pad_id).items()}
        preds += task.predict(model, batch)
    if world > 1:
        gathered: list[Any] = [None] * world
        dist.all_gather_object(gathered, list(zip(mine, preds, strict=True)))
        pairs = sorted(p for part in gathered for p in part)
    else:
        pairs = sorted(zip(mine, preds, strict=True))
    return [p for _, p in pairs]


class Keeper:
    """Keeps what the run's artifacts need of the selected evaluation (`config.selection`):
    with a checkpoint rule (`checkpoint.select`), the evaluation it selects so far
    (`fsf.results.selection.CheckpointTracker`, as the queries select it), its test
    predictions and, for `checkpoint.save: best`, a CPU copy of the weights; with `final`,
    the last evaluation's. Only rank 0 keeps weights."""

    def __init__(self, config: RunConfig, rank: int):
        self.active = config.keeps_artifacts
        self.rule = config.selection
        self.tracker = CheckpointTracker(self.rule) if self.rule != "final" else None
        self.weights = config.checkpoint.save == "best" and rank == 0
        self.best: tuple[Evaluation, dict[str, list[Any]]] | None = None
        self.state: dict[str, torch.Tensor] | None = None
        self.last: tuple[Evaluation, dict[str, list[Any]]] | None = None

    def offer(
        self, ev: Evaluation, test_preds: dict[str, list[Any]], model: torch.nn.Module
    ) -> None:
        if not self.active:
            return
        self.last = (ev, test_preds)
        if self.tracker is None or not self.tracker.offer(ev):
            return
        self.best = (ev, test_preds)
        if self.weights:
            self.state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}

    def result(
        self, summary: RunSummary
    ) -> tuple[Evaluation, dict[str, list[Any]], dict[str, torch.Tensor] | None]:
        """(selected evaluation, its test predictions, the weights to load or None: the
        model as it is now)."""
        if self.best is not None:
            ev, preds = self.best
            return ev, preds, self.state
        if self.last is None:  # pragma: no cover - a run always evaluates at its end
            raise FsfError("no evaluation was made: nothing to select")
        return self.last[0], self.last[1], None
