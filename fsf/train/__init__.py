"""The training worker (one DeepSpeed rank) and the reporter interface it speaks.

The worker's names are imported on first use (PEP 562), so that the readers of results,
which need only the reporter's types, do not import torch (about 3 s of every query
command's start-up; docs/benchmarks.md, benchmark 9).
"""

from typing import TYPE_CHECKING, Any

from fsf.train.reporter import (
    CompositeReporter,
    Evaluation,
    ListReporter,
    Reporter,
    RunSummary,
    StepRecord,
)

if TYPE_CHECKING:
    from fsf.train.worker import (
        TrainingDiverged,
        evaluate_model,
        resolve_model_path,
        scheduled_lr_factor,
        train,
    )

__all__ = [
    "CompositeReporter",
    "Evaluation",
    "ListReporter",
    "Reporter",
    "RunSummary",
    "StepRecord",
    "TrainingDiverged",
    "evaluate_model",
    "resolve_model_path",
    "scheduled_lr_factor",
    "train",
]

_WORKER = (
    "TrainingDiverged",
    "evaluate_model",
    "resolve_model_path",
    "scheduled_lr_factor",
    "train",
)


def __getattr__(name: str) -> Any:
    if name in _WORKER:
        from fsf.train import worker

        return getattr(worker, name)
    raise AttributeError(f"module 'fsf.train' has no attribute {name!r}")
