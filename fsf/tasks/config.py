"""The typed config of a task (`task:` of a run config), checked against the task it names:
the fields are `fsf.tasks.settings`' `TaskSettings`, and here is what needs the registry of
tasks (a known name, and the named task's own splits where none are given).
"""

from __future__ import annotations

from pydantic import field_validator, model_validator

from fsf.tasks.registry import task_class, task_names
from fsf.tasks.settings import TaskSettings

__all__ = ["TaskConfig"]


class TaskConfig(TaskSettings):
    """Which task, and where its data comes from (`TaskSettings`), for a task the registry
    knows; unset `splits` are that task's own."""

    @field_validator("name")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in task_names():
            raise ValueError(f"unknown task; choose one of: {', '.join(task_names())}")
        return value

    @model_validator(mode="after")
    def _task_splits(self) -> TaskConfig:
        """Unset `splits` -> the task's own (resolved here, once, so a dumped config says
        which splits it read)."""
        if "splits" not in self.model_fields_set:
            self.splits = dict(task_class(self.name).hub_splits)
        return self
