"""The training worker (one DeepSpeed rank) and the reporter interface it speaks.

The worker's names are imported on first use (PEP 562), so that importing the reporter's
types does not import torch (about 3 s of a command's start-up; docs/benchmarks.md,
benchmark 9). What one evaluation is lives in `fsf.results.evaluation`.
"""

from typing import TYPE_CHECKING, Any

from fsf.train.reporter import CompositeReporter, ListReporter, Reporter, RunSummary

if TYPE_CHECKING:
    from fsf.train._evaluate import evaluate_model
    from fsf.train.model_path import resolve_model_path
    from fsf.train.worker import TrainingDiverged, scheduled_lr_factor, train

__all__ = [
    "CompositeReporter",
    "ListReporter",
    "Reporter",
    "RunSummary",
    "TrainingDiverged",
    "evaluate_model",
    "resolve_model_path",
    "scheduled_lr_factor",
    "train",
]

_WORKER = ("TrainingDiverged", "scheduled_lr_factor", "train")


def __getattr__(name: str) -> Any:
    if name in _WORKER:
        from fsf.train import worker

        return getattr(worker, name)
    if name == "resolve_model_path":
        from fsf.train.model_path import resolve_model_path

        return resolve_model_path
    if name == "evaluate_model":
        from fsf.train._evaluate import evaluate_model

        return evaluate_model
    raise AttributeError(f"module 'fsf.train' has no attribute {name!r}")
