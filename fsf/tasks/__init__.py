"""Tasks: what a cross-lingual benchmark looks like to the training worker."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fsf.errors import FsfError
from fsf.tasks._base import Task
from fsf.tasks.classification import ClassificationTask, PawsXTask, XnliTask
from fsf.tasks.data import DataError, load_split

if TYPE_CHECKING:
    from fsf.config import ModelConfig, TaskConfig

__all__ = ["DataError", "Task", "build_task", "load_split", "task_class", "task_names"]

_REGISTRY: dict[str, type[Task]] = {
    cls.name: cls for cls in (XnliTask, PawsXTask, ClassificationTask)
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
