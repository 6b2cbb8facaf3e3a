"""The training worker (one DeepSpeed rank) and the reporter interface it speaks."""

from fsf.train.reporter import (
    CompositeReporter,
    Evaluation,
    ListReporter,
    Reporter,
    RunSummary,
    StepRecord,
)
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
