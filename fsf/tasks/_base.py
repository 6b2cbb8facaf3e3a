"""The task contract: how a task loads data, builds its model, and scores predictions."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar

from fsf.tasks.data import DataError, load_split

if TYPE_CHECKING:
    import torch

    from fsf.tasks.settings import EvalSplit, ModelConfig, SplitName, TaskSettings

__all__ = ["Task", "pad_input_ids", "pad_sequences"]


class Task(ABC):
    """A cross-lingual task: data per (language, split), a model head, and a metric.

    The training worker calls, in order:

    1. `load(lang, split)` for the source train split and every language's dev/test split:
       raw examples (dicts in the dataset's own schema). The worker may move examples from a
       dev split into training (few-shot) before anything is encoded.
    2. `encode(examples, tokenizer)` once per split: a list of features (plain dicts of
       token ids, labels, and whatever `score` needs), same order as `examples`.
    3. `build_model(path)`: a Hugging Face model whose forward takes `collate(...)`'s batch
       and returns an output with `.loss` when the batch has labels.
    4. During evaluation: `predict(model, batch)` per batch (model in eval mode, no grad),
       then `score(predictions, features)` once per (language, split): a dict of metrics
       that contains `metric`, in [0, 1].

    `score` may return more metrics than `metric` (precision, recall; exact match): every
    one of them becomes a results row.

    Prediction files (`eval.predictions`): `prediction_text(predictions, features)` gives
    the content of one language's XTREME submission file, `test-<lang>.<prediction_suffix>`
    in the layout XTREME's `evaluate.py --prediction_folder` reads (one label per line; one
    tag per line with a blank line between sentences; a JSON object id -> answer text);
    `score_prediction_text(text, examples)` scores such a file against the raw examples'
    gold labels with the task's metric, as `score` does. A feature may be one of several of an example (QA's
    windows over a long context): `score` then aggregates them back to examples.

    Defaults a task declares: `policy_iv_default` (Policy IV; the paper turns it off for
    NER), `hub_dataset` and `hub_config` (the template naming a language's config there),
    `hub_train_dataset` / `hub_train_config` (where the source train split comes from when
    it is another dataset, as SQuAD is for MLQA), `hub_splits` (fsf's train / dev / test ->
    the dataset's split names, when `task.splits` is not set; a split left out does not
    exist, as XQuAD has no dev split) and `eval_splits` (the splits evaluated when
    `eval.splits` is not set). The run config's `task.*` and `eval.*` override them.
    """

    name: ClassVar[str]
    metric: ClassVar[str]
    prediction_suffix: ClassVar[str] = "tsv"
    policy_iv_default: ClassVar[bool] = True
    hub_dataset: ClassVar[str | None] = None
    hub_config: ClassVar[str] = "{lang}"
    hub_train_dataset: ClassVar[str | None] = None
    hub_train_config: ClassVar[str | None] = None
    hub_splits: ClassVar[dict[SplitName, str]] = {
        "train": "train",
        "dev": "validation",
        "test": "test",
    }
    eval_splits: ClassVar[tuple[EvalSplit, ...]] = ("dev", "test")

    def __init__(self, config: TaskSettings, model: ModelConfig):
        self.config = config
        self.model_config = model
        self.dataset = config.dataset or self.hub_dataset
        if self.dataset is None:
            from fsf.errors import ConfigError, Problem

            raise ConfigError([Problem("task.dataset", f"task {self.name!r} needs a dataset")])
        self.config_name = config.config_name or self.hub_config
        self.splits: dict[SplitName, str] = dict(config.splits)  # the task's hub_splits by default
        self.train_dataset = config.train_dataset or self.hub_train_dataset
        self.train_config_name = (
            config.train_config_name
            if config.train_dataset or config.train_config_name
            else self.hub_train_config
        )

    def source(self, split: str) -> tuple[str, str | None]:
        """(dataset, config template) that `split` is read from."""
        if split == "train" and self.train_dataset is not None:
            return self.train_dataset, self.train_config_name
        # __init__ refused a task without a dataset; the attribute stays Optional for subclasses
        return self.dataset, self.config_name  # type: ignore[return-value]

    def load(self, lang: str, split: str) -> list[dict[str, Any]]:
        """Raw examples of one language and split (`train`, `dev` or `test`)."""
        dataset, config_name = self.source(split)
        examples = load_split(dataset, lang, self.split_name(split), config_name)
        limit = (
            self.config.max_train_examples if split == "train" else self.config.max_eval_examples
        )
        return examples[:limit] if limit else examples

    def split_name(self, split: str) -> str:
        """The dataset's name of fsf's `split` (`train`, `dev` or `test`; train is `train`
        unless mapped)."""
        if split == "train" and split not in self.splits:
            return "train"
        if split not in self.splits:
            raise DataError(
                f"task {self.name!r} has no {split!r} split (its splits: "
                f"{', '.join(f'{k}={v}' for k, v in self.splits.items())}); map it with "
                f"task.splits, or leave {split} out of eval.splits"
            )
        return self.splits[split]

    @abstractmethod
    def encode(self, examples: list[dict[str, Any]], tokenizer: Any) -> list[dict[str, Any]]:
        """Tokenize examples into features."""

    @abstractmethod
    def collate(self, features: list[dict[str, Any]], pad_id: int) -> dict[str, torch.Tensor]:
        """Pad features into a batch of tensors the model takes."""

    @abstractmethod
    def build_model(self, path: str) -> torch.nn.Module:
        """Load the pretrained encoder with this task's head."""

    @abstractmethod
    def predict(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> list[Any]:
        """Predictions for one batch."""

    @abstractmethod
    def score(self, predictions: list[Any], features: list[dict[str, Any]]) -> dict[str, float]:
        """Metrics for one language and split."""

    @abstractmethod
    def prediction_text(self, predictions: list[Any], features: list[dict[str, Any]]) -> str:
        """One language's XTREME prediction file, in the examples' order."""

    @abstractmethod
    def score_prediction_text(self, text: str, examples: list[dict[str, Any]]) -> dict[str, float]:
        """The metrics of a prediction file against the gold labels of `examples` (raw, as
        `load` gives them, in the same order)."""


def pad_sequences(rows: list[list[int]], value: int) -> torch.Tensor:
    """Right-pad integer sequences with `value` into one (len(rows), longest) long tensor."""
    import torch

    out = torch.full((len(rows), max(len(r) for r in rows)), value, dtype=torch.long)
    for i, row in enumerate(rows):
        out[i, : len(row)] = torch.tensor(row, dtype=torch.long)
    return out


def pad_input_ids(features: list[dict[str, Any]], pad_id: int) -> dict[str, torch.Tensor]:
    """`input_ids` of `features` right-padded with `pad_id`, and the `attention_mask` that is 1
    on every token that is not `pad_id`: the part of a batch every task's collate shares."""
    ids = pad_sequences([f["input_ids"] for f in features], pad_id)
    return {"input_ids": ids, "attention_mask": (ids != pad_id).long()}
