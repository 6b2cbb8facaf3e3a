"""The tasks by name: where a run config's `task.name` finds its class (`task_class`,
`build_task`) and `fsf.tasks.config` checks the name. A new task is registered here, in
`_REGISTRY`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fsf.errors import FsfError
from fsf.tasks._base import Task
from fsf.tasks.classification import ClassificationTask, PawsXTask, XnliTask
from fsf.tasks.qa import MlqaTask, QATask, XquadTask
from fsf.tasks.tagging import PanXTask, TaggingTask, WikiannTask

if TYPE_CHECKING:
    from fsf.tasks.settings import ModelConfig, TaskSettings

__all__ = ["build_task", "task_class", "task_names"]

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


def build_task(config: TaskSettings, model: ModelConfig) -> Task:
    return task_class(config.name)(config, model)
