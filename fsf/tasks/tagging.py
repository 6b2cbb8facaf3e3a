"""Token classification: WikiAnn / PAN-X named entities, and any `tokens` + tags dataset.

Examples are pre-split words (`tokens`) with one tag per word (`ner_tags`: class ids of the
dataset's tag set, or the tag strings themselves). Each word's tag goes to its first subword;
the other subwords and the special tokens are not trained on (-100) and not predicted. The
metric is entity-level F1 (fsf.tasks.metrics.entity_scores), computed over *all* words of a
sentence: words cut off by `model.max_length` are predicted `O`, so truncation can only cost
recall, never inflate the score.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from fsf.errors import ConfigError, Problem
from fsf.tasks._base import Task, pad_input_ids, pad_sequences
from fsf.tasks.data import label_names
from fsf.tasks.metrics import entity_scores

if TYPE_CHECKING:
    import torch

__all__ = ["PanXTask", "TaggingTask", "WikiannTask"]

WIKIANN_TAGS = ("O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC")
_IGNORE = -100


class TaggingTask(Task):
    """Tag every word; metric: entity-level F1 (also reports precision and recall).

    The tag set is `task.label_names`, else the names the dataset declares for its tag column
    (a ClassLabel, as on the hub), else WikiAnn's (O, B/I-PER, B/I-ORG, B/I-LOC).
    Policy IV is off by default, as in the paper's NER runs.
    """

    name: ClassVar[str] = "tagging"
    metric: ClassVar[str] = "f1"
    policy_iv_default: ClassVar[bool] = False
    tokens_field: ClassVar[str] = "tokens"
    tags_field: ClassVar[str] = "ner_tags"

    def __init__(self, config, model):
        super().__init__(config, model)
        fields = config.text_fields or [self.tokens_field]
        if len(fields) != 1:
            raise ConfigError(
                [Problem("task.text_fields", "give the one column of words", fields, True)]
            )
        self.tokens_field_name = fields[0]
        self.tags_field_name = config.label_field or self.tags_field
        self.labels: list[str] | None = list(config.label_names) if config.label_names else None
        if self.labels is not None:
            self._check_labels(self.labels, "task.label_names")

    # ------------------------------------------------------------------ labels
    @staticmethod
    def _check_labels(labels: list[str], where: str) -> None:
        bad = [
            t for t in labels if not (t == "O" or (len(t) > 2 and t[1] == "-" and t[0] in "BIES"))
        ]
        problems = []
        if bad:
            problems.append(Problem(where, f"tags must be O or B-/I-/E-/S-<type>: {bad}"))
        if "O" not in labels:
            problems.append(Problem(where, "the tag set needs an 'O' tag", labels, True))
        if len(set(labels)) != len(labels):
            problems.append(Problem(where, "tags are repeated", labels, True))
        if problems:
            raise ConfigError(problems)

    def load(self, lang: str, split: str) -> list[dict[str, Any]]:
        examples = super().load(lang, split)
        if self.labels is None:
            dataset, config_name = self.source(split)
            names = label_names(
                dataset,
                lang,
                self.split_name(split),
                self.tags_field_name,
                config_name,
            )
            if names is not None:
                self._check_labels(names, f"the {self.tags_field_name!r} feature of {dataset}")
                self.labels = names
        return examples

    @property
    def tag_set(self) -> list[str]:
        return self.labels if self.labels is not None else list(WIKIANN_TAGS)

    def _tag_ids(self, tags: list[Any]) -> list[int]:
        index = {t: i for i, t in enumerate(self.tag_set)}
        out = []
        for t in tags:
            if isinstance(t, str):
                if t not in index:
                    raise ConfigError(
                        [
                            Problem(
                                "task.label_names", f"tag {t!r} is in the data", self.tag_set, True
                            )
                        ]
                    )
                out.append(index[t])
            else:
                if not 0 <= int(t) < len(index):
                    raise ConfigError(
                        [
                            Problem(
                                "task.label_names", f"tag id {t} is in the data", self.tag_set, True
                            )
                        ]
                    )
                out.append(int(t))
        return out

    # ------------------------------------------------------------------ contract
    def encode(self, examples: list[dict[str, Any]], tokenizer: Any) -> list[dict[str, Any]]:
        if not examples:
            return []
        missing = [
            f for f in (self.tokens_field_name, self.tags_field_name) if f not in examples[0]
        ]
        if missing:
            raise ConfigError(
                [
                    Problem(
                        "task.text_fields"
                        if self.tokens_field_name in missing
                        else "task.label_field",
                        f"columns {missing} not in the data (it has {sorted(examples[0])})",
                    )
                ]
            )
        words = [list(ex[self.tokens_field_name]) for ex in examples]
        enc = tokenizer(
            words,
            is_split_into_words=True,
            truncation=True,
            max_length=self.model_config.max_length,
            padding=False,
        )
        out = []
        for i, ex in enumerate(examples):
            tags = self._tag_ids(list(ex[self.tags_field_name]))
            if len(tags) != len(words[i]):
                raise ConfigError(
                    [
                        Problem(
                            "task.label_field",
                            f"an example has {len(words[i])} words but {len(tags)} tags",
                        )
                    ]
                )
            labels, seen = [], set()
            for w in enc.word_ids(i):
                if w is None or w in seen:
                    labels.append(_IGNORE)
                else:
                    seen.add(w)
                    labels.append(tags[w])
            out.append({"input_ids": enc["input_ids"][i], "labels": labels, "tags": tags})
        return out

    def collate(self, features: list[dict[str, Any]], pad_id: int) -> dict[str, torch.Tensor]:
        # one label per token (encode), so the labels are as wide as input_ids
        labels = pad_sequences([f["labels"] for f in features], _IGNORE)
        return {**pad_input_ids(features, pad_id), "labels": labels}

    def build_model(self, path: str) -> torch.nn.Module:
        from transformers import AutoModelForTokenClassification

        tags = self.tag_set
        return AutoModelForTokenClassification.from_pretrained(
            path,
            num_labels=len(tags),
            id2label=dict(enumerate(tags)),
            label2id={t: i for i, t in enumerate(tags)},
        )

    def predict(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> list[Any]:
        """Per sentence, the predicted tag id of each word that was not truncated away."""
        inputs = {k: v for k, v in batch.items() if k != "labels"}
        best = model(**inputs).logits.argmax(-1)
        first = batch["labels"] != _IGNORE
        return [row[mask].tolist() for row, mask in zip(best, first, strict=True)]

    def score(self, predictions: list[Any], features: list[dict[str, Any]]) -> dict[str, float]:
        if not features:
            return {"f1": float("nan"), "precision": float("nan"), "recall": float("nan")}
        tags = self.tag_set
        outside = tags.index("O")
        gold, pred = [], []
        for p, f in zip(predictions, features, strict=True):
            words = list(p) + [outside] * (len(f["tags"]) - len(p))  # truncated words: O
            gold.append([tags[t] for t in f["tags"]])
            pred.append([tags[t] for t in words])
        return entity_scores(gold, pred)

    def prediction_text(self, predictions: list[Any], features: list[dict[str, Any]]) -> str:
        """One tag per word (words cut off by max_length: O, as scored), a blank line between
        sentences: XTREME's tagging layout (run_tag.py's save_predictions)."""
        tags = self.tag_set
        outside = tags.index("O")
        blocks = []
        for p, f in zip(predictions, features, strict=True):
            words = list(p) + [outside] * (len(f["tags"]) - len(p))
            blocks.append("".join(f"{tags[t]}\n" for t in words))
        return "\n".join(blocks)

    def score_prediction_text(self, text: str, examples: list[dict[str, Any]]) -> dict[str, float]:
        sentences: list[list[str]] = [[]]
        for line in text.splitlines():  # as XTREME's evaluate.py reads it (read_tag)
            line = line.strip()
            if line:
                sentences[-1].append(line)
            else:
                sentences.append([])
        if sentences and not sentences[-1]:
            sentences.pop()
        if len(sentences) != len(examples):
            raise ValueError(f"{len(sentences)} predicted sentences for {len(examples)} examples")
        if not examples:
            return {"f1": float("nan"), "precision": float("nan"), "recall": float("nan")}
        tags = self.tag_set
        gold = [[tags[t] for t in self._tag_ids(list(ex[self.tags_field_name]))] for ex in examples]
        return entity_scores(gold, sentences)


class PanXTask(TaggingTask):
    """PAN-X (XTREME's WikiAnn splits): `google/xtreme`, configs `PAN-X.<lang>`."""

    name = "panx"
    hub_dataset = "google/xtreme"
    hub_config = "PAN-X.{lang}"


class WikiannTask(TaggingTask):
    """WikiAnn with the balanced splits of Rahimi et al.: `unimelb-nlp/wikiann`, one config
    per language."""

    name = "wikiann"
    hub_dataset = "unimelb-nlp/wikiann"
