"""The embedded offline benchmark: a synthetic multilingual world and a tiny pretrained encoder.

Shipped artefacts (built by ``fsf-synth build --out fsf/synthetic/assets``):

* :func:`data_dir` ``("pawsx")`` / ``("topic")`` / ``("ner")`` / ``("qa")``: task folders in
  the Hugging Face hub layout (``ner``: PAN-X's schema, ``qa``: SQuAD's),
  so ``datasets.load_dataset(str(data_dir("pawsx")), name="fr", split="test")`` works offline
  exactly like ``load_dataset("google-research-datasets/paws-x", name="fr", split="test")``.
* :func:`model_dir`: a 12-layer, hidden-64 XLM-R checkpoint and its tokenizer; load it with
  ``AutoModelForSequenceClassification.from_pretrained(model_dir(), num_labels=2)``.

See docs/synthetic.md for the world, the pretraining recipe and the measured properties.
"""

from __future__ import annotations

import json
from pathlib import Path

from fsf.synthetic.build import DEFAULT_TASK, GENERATOR_VERSION, MAX_LENGTH
from fsf.synthetic.data import SPLITS, TASKS, TaskSpec, generate_task
from fsf.synthetic.world import LANGUAGES, SOURCE_LANGUAGE, World

__all__ = [
    "DEFAULT_TASK",
    "GENERATOR_VERSION",
    "LANGUAGES",
    "MAX_LENGTH",
    "SOURCE_LANGUAGE",
    "SPLITS",
    "TASKS",
    "TaskSpec",
    "World",
    "assets_dir",
    "data_dir",
    "generate_task",
    "manifest",
    "model_dir",
]


def assets_dir() -> Path:
    """The folder holding the shipped artefacts (data, checkpoint, ``manifest.json``)."""
    return Path(__file__).resolve().parent / "assets"


def model_dir() -> Path:
    """The shipped checkpoint: tokenizer + ``XLMRobertaForMaskedLM`` (``save_pretrained``)."""
    return assets_dir() / "model"


def data_dir(task: str = DEFAULT_TASK) -> Path:
    """The shipped hub-layout folder of ``task`` (one of :data:`TASKS`)."""
    if task not in TASKS:
        raise ValueError(f"unknown synthetic task {task!r}; valid tasks: {', '.join(TASKS)}")
    return assets_dir() / "data" / task


def manifest() -> dict:
    """The shipped ``manifest.json`` (seed, generator version, file hashes, probes)."""
    return json.loads((assets_dir() / "manifest.json").read_text(encoding="utf-8"))
