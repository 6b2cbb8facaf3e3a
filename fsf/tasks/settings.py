"""The typed settings of a task and of the pretrained model it runs on (`task:` and `model:`
of a run config; `fsf.config.RunConfig` holds them), each checked on its own. They live here,
beside the tasks that read them, so that the task layer needs nothing above it (as
`fsf.policies.settings` for `policy:`). What needs the registry of tasks (a known name, the
named task's splits) is `fsf.tasks.config`'s `TaskConfig`, a `TaskSettings` that imports the
registry: the tasks and the config both import this module, and it imports neither.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, ValidationInfo, field_validator

from fsf.policies.weight_sets import ArchitecturePatterns
from fsf.strict import StrictModel

#: fsf's name of a split (what the run reads as train, dev and test data)
SplitName = Literal["train", "dev", "test"]
#: the splits a run may evaluate on
EvalSplit = Literal["dev", "test"]
#: the dataset's split for each of fsf's, unless the task says otherwise
_HUB_SPLITS: dict[SplitName, str] = {"train": "train", "dev": "validation", "test": "test"}

__all__ = [
    "MAX_LABELS",
    "MAX_TOKENS",
    "EvalSplit",
    "ModelConfig",
    "QAConfig",
    "SplitName",
    "TaskSettings",
]

MAX_TOKENS = 2**17
"""The longest `model.max_length` (and QA window settings), in tokens."""

MAX_LABELS = 100_000
"""The most classes or tags a task may have."""


class _Strict(StrictModel):
    """Unknown keys refused; every number finite and in range (`fsf.strict`)."""


class ModelConfig(_Strict):
    """The pretrained encoder: a hub name (`xlm-roberta-base`) or a local `save_pretrained`
    folder; `synthetic` is the tiny encoder shipped with fsf."""

    name: str = Field("synthetic", description="hub name, local path, or 'synthetic'")
    tokenizer: str | None = Field(None, description="defaults to the model's own")
    max_length: int = Field(
        64, ge=8, le=MAX_TOKENS, description="tokens per example (pairs together)"
    )
    patterns: ArchitecturePatterns | None = Field(
        None, description="regexes placing parameters in layers, for unknown architectures"
    )


class QAConfig(_Strict):
    """Extractive QA: windows over long contexts, and how an answer is read off the logits."""

    doc_stride: int | None = Field(
        None,
        ge=1,
        le=MAX_TOKENS,
        description="tokens shared by consecutive windows; default max_length // 3",
    )
    max_query_length: int | None = Field(
        None,
        ge=1,
        le=MAX_TOKENS,
        description="question tokens kept; default min(64, max_length // 4)",
    )
    max_answer_length: int = Field(30, ge=1, le=MAX_TOKENS, description="longest answer, in tokens")
    n_best: int = Field(20, ge=1, le=1000, description="start and end candidates per window")
    normalization: Literal["mlqa", "squad"] | None = Field(
        None, description="answer normalisation of F1/EM; default: the task's (mlqa, squad)"
    )


class TaskSettings(_Strict):
    """Which task, and where its data comes from, each field checked on its own (what a
    task reads; a run config's `task:` is the `TaskConfig` built on it).

    `dataset` is a hub dataset name (`facebook/xnli`), a local folder in the hub layout (one
    config per language), a file template with `{lang}` and `{split}` placeholders
    (`data/{lang}/{split}.jsonl`; json, jsonl, parquet, csv and tsv), or
    `synthetic:<task>` for the data shipped with fsf. Split names map fsf's train/dev/test to
    the dataset's own.

    On the hub (and in a local copy of its layout) each language is a config; `config_name`
    is the template naming it (`PAN-X.{lang}`, `mlqa.{lang}.{lang}`; default: the task's own,
    `{lang}` for most). `train_dataset` is where the source-language train split comes from
    when that is another dataset (SQuAD for MLQA / XQuAD); `train_config_name` names its
    config (a template or a fixed name; none by default). docs/tasks.md has every task.
    """

    name: str = Field("pawsx", description="task type; see fsf.tasks.task_names()")
    dataset: str | None = Field(None, description="defaults to the task's hub dataset")
    config_name: str | None = Field(
        None, description="hub config of a language, a template with {lang}; task default"
    )
    train_dataset: str | None = Field(
        None, description="source train split from this dataset instead (task default)"
    )
    train_config_name: str | None = Field(
        None, description="config of train_dataset ({lang} allowed); default: none"
    )
    splits: dict[SplitName, str] = Field(
        default_factory=lambda: dict(_HUB_SPLITS),
        description="fsf's split -> the dataset's; default: the task's (XQuAD: test = "
        "validation, no dev)",
    )
    text_fields: list[str] | None = Field(None, description="input columns (1 or 2)")
    label_field: str | None = Field(
        None, description="label column; default: the task's ('label', 'ner_tags')"
    )
    num_labels: int | None = Field(None, ge=2, le=MAX_LABELS)
    label_names: list[str] | None = Field(
        None,
        max_length=MAX_LABELS,
        description="tagging: the tag set (B-X/I-X/O), default the dataset's, else WikiAnn's; "
        "classification: the class names, default the dataset's",
    )
    qa: QAConfig = Field(default_factory=lambda: QAConfig(), description="extractive QA only")
    max_train_examples: int | None = Field(None, ge=1)
    max_eval_examples: int | None = Field(None, ge=1, description="per language and split")

    @field_validator("config_name", "train_config_name")
    @classmethod
    def _template(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return value
        import string

        try:
            fields = {f for _, f, _, _ in string.Formatter().parse(value) if f is not None}
        except ValueError as exc:
            raise ValueError(f"not a valid template ({exc})") from None
        if fields - {"lang"}:
            raise ValueError(f"the only placeholder allowed is {{lang}}, found {sorted(fields)}")
        if info.field_name == "config_name" and "lang" not in fields:
            raise ValueError("must contain {lang}, e.g. 'PAN-X.{lang}' or 'mlqa.{lang}.{lang}'")
        return value
