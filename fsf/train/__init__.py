"""The training worker (one DeepSpeed rank) and the reporter interface it speaks.

The worker's names are imported on first use (`fsf._lazy`, PEP 562), so that importing the
reporter's types does not import torch (about 3 s of a command's start-up; docs/benchmarks.md,
benchmark 9). What one evaluation is lives in `fsf.results.evaluation`.
"""

from typing import TYPE_CHECKING

from fsf._lazy import lazy_exports
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

_EXPORTS = {
    "TrainingDiverged": "fsf.train.worker",
    "scheduled_lr_factor": "fsf.train.worker",
    "train": "fsf.train.worker",
    "resolve_model_path": "fsf.train.model_path",
    "evaluate_model": "fsf.train._evaluate",
}
__getattr__, __dir__ = lazy_exports(globals(), _EXPORTS)
