"""Tasks: what a cross-lingual benchmark looks like to the training worker.

Sentence(-pair) classification (XNLI, PAWS-X), token classification (PAN-X, WikiAnn) and
extractive QA (MLQA, XQuAD), each with a generic variant for any dataset in the same schema
(`classification`, `tagging`, `qa`). docs/tasks.md describes them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fsf.errors import FsfError
from fsf.tasks._base import Task, pad_input_ids, pad_sequences
from fsf.tasks.classification import ClassificationTask, PawsXTask, XnliTask
from fsf.tasks.data import DataError, label_names, load_split
from fsf.tasks.qa import MlqaTask, QATask, XquadTask
from fsf.tasks.tagging import PanXTask, TaggingTask, WikiannTask

if TYPE_CHECKING:
    from fsf.tasks.config import ModelConfig, TaskConfig

__all__ = [
    "ClassificationTask",
    "DataError",
    "MlqaTask",
    "PanXTask",
    "PawsXTask",
    "QATask",
    "TaggingTask",
    "Task",
    "WikiannTask",
    "XnliTask",
    "XquadTask",
    "build_task",
    "label_names",
    "load_split",
    "pad_input_ids",
    "pad_sequences",
    "task_class",
    "task_names",
]

_REGISTRY: dict[str, type[Task]] = {
    cls.name: cls
    for cls in (
        XnliTask,
        PawsXTask,
        ClassificationTask,
        PanXTask,
        WikiannTask,
        TaggingTask,
        MlqaTask,
        XquadTask,
        QATask,
    )
}


def task_names() -> list[str]:
    return list(_REGISTRY)


def task_class(name: str) -> type[Task]:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise FsfError(f"unknown task {name!r}; choose one of: {', '.join(_REGISTRY)}") from None


def build_task(config: TaskConfig, model: ModelConfig) -> Task:
    return task_class(config.name)(config, model)
