"""Sequence(-pair) classification: XNLI, PAWS-X, and any single- or two-text dataset."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from fsf.errors import ConfigError, Problem
from fsf.tasks._base import Task, pad_input_ids
from fsf.tasks.data import label_names

if TYPE_CHECKING:
    import torch

__all__ = ["ClassificationTask", "PawsXTask", "XnliTask"]


class ClassificationTask(Task):
    """Classify one text or a text pair; metric: accuracy.

    Set `task.text_fields` (one or two columns) and `task.num_labels` for your dataset.
    The class names (prediction files, model cards) are `task.label_names`, else the names
    the dataset declares for its label column (a ClassLabel, as on the hub), else the task's
    (XNLI's), else the class ids.
    """

    name: ClassVar[str] = "classification"
    metric: ClassVar[str] = "accuracy"
    text_fields: ClassVar[tuple[str, ...] | None] = None
    num_labels: ClassVar[int | None] = None
    class_names: ClassVar[tuple[str, ...] | None] = None

    def __init__(self, config, model):
        super().__init__(config, model)
        self.fields = tuple(config.text_fields or self.text_fields or ())
        self.labels = config.num_labels or self.num_labels
        self.label_field = config.label_field or "label"
        problems = []
        if len(self.fields) not in (1, 2):
            problems.append(
                Problem("task.text_fields", "give one or two text columns", list(self.fields), True)
            )
        if self.labels is None:
            problems.append(Problem("task.num_labels", "set the number of classes (>= 2)"))
        self._names: list[str] | None = list(config.label_names) if config.label_names else None
        if self._names is not None and self.labels and len(self._names) != self.labels:
            problems.append(
                Problem(
                    "task.label_names",
                    f"give one name per class ({self.labels})",
                    config.label_names,
                    True,
                )
            )
        if problems:
            raise ConfigError(problems)

    def load(self, lang: str, split: str) -> list[dict[str, Any]]:
        examples = super().load(lang, split)
        if self._names is None:
            dataset, config_name = self.source(split)
            names = label_names(
                dataset, lang, self.split_name(split), self.label_field, config_name
            )
            if names is not None and len(names) == self.labels:
                self._names = names
        return examples

    @property
    def names(self) -> list[str]:
        """The class names, by class id."""
        if self._names is not None:
            return self._names
        if self.class_names is not None and len(self.class_names) == self.labels:
            return list(self.class_names)
        return [str(i) for i in range(self.labels or 0)]

    def encode(self, examples: list[dict[str, Any]], tokenizer: Any) -> list[dict[str, Any]]:
        missing = [f for f in (*self.fields, self.label_field) if examples and f not in examples[0]]
        if missing:
            raise ConfigError(
                [
                    Problem(
                        "task.text_fields",
                        f"columns {missing} not in the data (it has {sorted(examples[0])})",
                    )
                ]
            )
        texts = [[ex[f] for ex in examples] for f in self.fields]
        enc = tokenizer(
            *texts, truncation=True, max_length=self.model_config.max_length, padding=False
        )
        label = self.label_field
        out = []
        for i, ex in enumerate(examples):
            y = int(ex[label])
            if not 0 <= y < self.labels:
                raise ConfigError(
                    [Problem("task.num_labels", f"label {y} found in the data", self.labels, True)]
                )
            out.append({"input_ids": enc["input_ids"][i], "label": y})
        return out

    def collate(self, features: list[dict[str, Any]], pad_id: int) -> dict[str, torch.Tensor]:
        import torch

        return {
            **pad_input_ids(features, pad_id),
            "labels": torch.tensor([f["label"] for f in features], dtype=torch.long),
        }

    def build_model(self, path: str) -> torch.nn.Module:
        from transformers import AutoModelForSequenceClassification

        names = self.names
        return AutoModelForSequenceClassification.from_pretrained(
            path,
            num_labels=self.labels,
            id2label=dict(enumerate(names)),
            label2id={n: i for i, n in enumerate(names)},
        )

    def predict(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> list[Any]:
        inputs = {k: v for k, v in batch.items() if k != "labels"}
        return model(**inputs).logits.argmax(-1).tolist()

    def score(self, predictions: list[Any], features: list[dict[str, Any]]) -> dict[str, float]:
        if not features:
            return {"accuracy": float("nan")}
        right = sum(int(p == f["label"]) for p, f in zip(predictions, features, strict=True))
        return {"accuracy": right / len(features)}

    def prediction_text(self, predictions: list[Any], features: list[dict[str, Any]]) -> str:
        """One class name per line (XNLI: entailment / neutral / contradiction, PAWS-X: 0 /
        1), as XTREME's run_classify.py writes them."""
        names = self.names
        return "".join(f"{names[int(p)]}\n" for p in predictions)

    def score_prediction_text(self, text: str, examples: list[dict[str, Any]]) -> dict[str, float]:
        predicted = [line.strip() for line in text.splitlines()]
        if len(predicted) != len(examples):
            raise ValueError(f"{len(predicted)} predictions for {len(examples)} examples")
        if not examples:
            return {"accuracy": float("nan")}
        names = self.names
        gold = [names[int(ex[self.label_field])] for ex in examples]
        return {"accuracy": sum(p == g for p, g in zip(predicted, gold, strict=True)) / len(gold)}


class XnliTask(ClassificationTask):
    """XNLI: premise/hypothesis, 3 labels (entailment, neutral, contradiction)."""

    name = "xnli"
    hub_dataset = "facebook/xnli"
    text_fields = ("premise", "hypothesis")
    num_labels = 3
    class_names = ("entailment", "neutral", "contradiction")  # facebook/xnli's ClassLabel


class PawsXTask(ClassificationTask):
    """PAWS-X: sentence1/sentence2, 2 labels (1 = paraphrase)."""

    name = "pawsx"
    hub_dataset = "google-research-datasets/paws-x"
    text_fields = ("sentence1", "sentence2")
    num_labels = 2
    class_names = ("0", "1")
