"""Tasks: what a cross-lingual benchmark looks like to the training worker.

Sentence(-pair) classification (XNLI, PAWS-X), token classification (PAN-X, WikiAnn) and
extractive QA (MLQA, XQuAD), each with a generic variant for any dataset in the same schema
(`classification`, `tagging`, `qa`). docs/tasks.md describes them.
"""

from __future__ import annotations

from fsf.tasks._base import Task, pad_input_ids, pad_sequences
from fsf.tasks.classification import ClassificationTask, PawsXTask, XnliTask
from fsf.tasks.data import DataError, label_names, load_split
from fsf.tasks.qa import MlqaTask, QATask, XquadTask
from fsf.tasks.registry import build_task, task_class, task_names
from fsf.tasks.tagging import PanXTask, TaggingTask, WikiannTask

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
