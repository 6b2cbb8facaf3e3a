"""Extractive question answering: MLQA, XQuAD, and any dataset in the SQuAD schema.

Examples have `id`, `context`, `question` and `answers` (`text`, `answer_start`: character
offsets into the context), as SQuAD / MLQA / XQuAD have on the hub. The English training data
of MLQA and XQuAD is SQuAD v1.1 (`task.train_dataset`, `rajpurkar/squad` by default).

Encoding follows Hugging Face's `run_qa.py`: `<s> question </s></s> context </s>`, the
question cut to `task.qa.max_query_length` tokens, a long context split into windows of
`model.max_length` tokens that overlap by `task.qa.doc_stride` tokens; each window is a
feature. A training window whose context holds the whole first answer is labelled with its
first and last token, any other window with the `<s>` token (position 0).

Answer extraction, per example over all of its windows: the `n_best` best start and end
tokens of each window; every pair inside the context with start <= end and at most
`max_answer_length` tokens is a candidate scored by start + end logit; the best candidate's
character span is the answer (empty when no window has a valid pair). The metric is F1 and
exact match with MLQA's language-aware normalisation (fsf.tasks.metrics), per example.

Few-shot sampling (fsf.train.worker) moves raw examples, so the unit is a question with all
of its windows, never a single window.
"""

from __future__ import annotations

import json
from collections import defaultdict
from typing import TYPE_CHECKING, Any, ClassVar

from fsf.errors import ConfigError, Problem
from fsf.tasks._base import Task, pad_input_ids
from fsf.tasks.metrics import qa_scores

if TYPE_CHECKING:
    import torch

__all__ = ["MlqaTask", "QATask", "XquadTask", "extract_answer"]

LANG_KEY = "_fsf_lang"  # the language `load` records on each example, for the metric


class QATask(Task):
    """Extractive QA in the SQuAD schema; metric: F1 (also reports exact_match)."""

    name: ClassVar[str] = "qa"
    metric: ClassVar[str] = "f1"
    prediction_suffix: ClassVar[str] = "json"
    normalization: ClassVar[str] = "mlqa"
    required: ClassVar[tuple[str, ...]] = ("context", "question", "answers")

    def __init__(self, config, model):
        super().__init__(config, model)
        qa = config.qa
        self.norm = qa.normalization or self.normalization
        self.max_length = model.max_length
        self.stride = qa.doc_stride if qa.doc_stride is not None else model.max_length // 3
        self.max_query = (
            qa.max_query_length
            if qa.max_query_length is not None
            else min(64, model.max_length // 4)
        )
        problems = []
        # <s> question </s></s> context </s>: a window must have room for more context tokens
        # than it shares with the next one
        if self.max_query + 4 + self.stride >= model.max_length:
            problems.append(
                Problem(
                    "task.qa",
                    f"max_query_length ({self.max_query}) + doc_stride ({self.stride}) + 4 special "
                    f"tokens must be below model.max_length ({model.max_length}); lower them",
                )
            )
        if problems:
            raise ConfigError(problems)

    def load(self, lang: str, split: str) -> list[dict[str, Any]]:
        """Raw examples, each tagged with its language (the metric's normalisation is per
        language)."""
        return [{**ex, LANG_KEY: lang} for ex in super().load(lang, split)]

    # ------------------------------------------------------------------ encoding
    def _questions(self, examples: list[dict[str, Any]], tokenizer: Any) -> list[str]:
        """Questions cut to `max_query_length` tokens (at a token boundary of the text)."""
        enc = tokenizer(
            [ex["question"].lstrip() for ex in examples],
            add_special_tokens=False,
            return_offsets_mapping=True,
        )
        out = []
        for ex, offsets in zip(examples, enc["offset_mapping"], strict=True):
            q = ex["question"].lstrip()
            out.append(q if len(offsets) <= self.max_query else q[: offsets[self.max_query - 1][1]])
        return out

    def encode(self, examples: list[dict[str, Any]], tokenizer: Any) -> list[dict[str, Any]]:
        if not examples:
            return []
        missing = [f for f in self.required if f not in examples[0]]
        if missing:
            raise ConfigError(
                [
                    Problem(
                        "task.dataset",
                        f"columns {missing} not in the data (it has {sorted(examples[0])}); "
                        "extractive QA needs the SQuAD schema",
                    )
                ]
            )
        enc = tokenizer(
            self._questions(examples, tokenizer),
            [ex["context"] for ex in examples],
            truncation="only_second",
            max_length=self.max_length,
            stride=self.stride,
            return_overflowing_tokens=True,
            return_offsets_mapping=True,
            padding=False,
        )
        features = []
        for i, ex_index in enumerate(enc["overflow_to_sample_mapping"]):
            ex = examples[ex_index]
            seq = enc.sequence_ids(i)
            offsets = [
                tuple(o) if s == 1 else None
                for o, s in zip(enc["offset_mapping"][i], seq, strict=True)
            ]
            start, end = self._positions(ex, offsets)
            features.append(
                {
                    "input_ids": enc["input_ids"][i],
                    "start_positions": start,
                    "end_positions": end,
                    "example": ex_index,
                    "id": ex.get("id"),
                    "offsets": offsets,
                    "context": ex["context"],
                    "answers": list(ex["answers"]["text"]),
                    "lang": ex.get(LANG_KEY, ""),
                }
            )
        return features

    @staticmethod
    def _positions(ex: dict[str, Any], offsets: list[tuple[int, int] | None]) -> tuple[int, int]:
        """Token positions of the first answer in this window, or (0, 0) when it is not
        wholly inside."""
        answers = ex["answers"]
        if not answers["text"]:
            return 0, 0
        a_start = int(answers["answer_start"][0])
        a_end = a_start + len(answers["text"][0])
        inside = [j for j, o in enumerate(offsets) if o is not None]
        # offsets[j] for j in `inside` is never None; mypy cannot follow the index list
        if not inside or offsets[inside[0]][0] > a_start or offsets[inside[-1]][1] < a_end:  # type: ignore[index]
            return 0, 0
        start = next(j for j in inside if offsets[j][1] > a_start)  # type: ignore[index]
        end = next(j for j in reversed(inside) if offsets[j][0] < a_end)  # type: ignore[index]
        return start, max(start, end)

    def collate(self, features: list[dict[str, Any]], pad_id: int) -> dict[str, torch.Tensor]:
        import torch

        return {
            **pad_input_ids(features, pad_id),
            "start_positions": torch.tensor([f["start_positions"] for f in features]),
            "end_positions": torch.tensor([f["end_positions"] for f in features]),
        }

    def build_model(self, path: str) -> torch.nn.Module:
        from transformers import AutoModelForQuestionAnswering

        return AutoModelForQuestionAnswering.from_pretrained(path)

    # ------------------------------------------------------------------ evaluation
    def predict(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> list[Any]:
        """Per window: the `n_best` (position, logit) of start and of end, best first."""
        inputs = {k: batch[k] for k in ("input_ids", "attention_mask")}
        out = model(**inputs)
        k = min(self.config.qa.n_best, batch["input_ids"].shape[1])
        pad = batch["attention_mask"] == 0
        preds = []
        starts = out.start_logits.float().masked_fill(pad, float("-inf")).topk(k, dim=-1)
        ends = out.end_logits.float().masked_fill(pad, float("-inf")).topk(k, dim=-1)
        for i in range(len(batch["input_ids"])):
            preds.append(
                (
                    list(zip(starts.indices[i].tolist(), starts.values[i].tolist(), strict=True)),
                    list(zip(ends.indices[i].tolist(), ends.values[i].tolist(), strict=True)),
                )
            )
        return preds

    def _answers(
        self, predictions: list[Any], features: list[dict[str, Any]]
    ) -> list[tuple[str, dict[str, Any]]]:
        """(answer text, first feature) per example, in the examples' order."""
        by_example: dict[int, list[tuple[Any, dict[str, Any]]]] = defaultdict(list)
        for p, f in zip(predictions, features, strict=True):
            by_example[f["example"]].append((p, f))
        return [
            (extract_answer(by_example[k], self.config.qa.max_answer_length), by_example[k][0][1])
            for k in sorted(by_example)
        ]

    def score(self, predictions: list[Any], features: list[dict[str, Any]]) -> dict[str, float]:
        answers = self._answers(predictions, features)
        return qa_scores(
            [a for a, _ in answers],
            [f["answers"] for _, f in answers],
            [f["lang"] for _, f in answers],
            self.norm,
        )

    def prediction_text(self, predictions: list[Any], features: list[dict[str, Any]]) -> str:
        """A JSON object: question id -> answer text (XTREME's and SQuAD's prediction file)."""
        out: dict[str, str] = {}
        for text, f in self._answers(predictions, features):
            if f["id"] is None:
                raise ValueError("a QA prediction file needs an `id` column in the data")
            if str(f["id"]) in out:
                raise ValueError(f"question id {f['id']!r} is repeated: ids must be unique")
            out[str(f["id"])] = text
        return json.dumps(out, ensure_ascii=False, indent=1) + "\n"

    def score_prediction_text(self, text: str, examples: list[dict[str, Any]]) -> dict[str, float]:
        predicted = json.loads(text)
        return qa_scores(
            [predicted.get(str(ex["id"]), "") for ex in examples],  # unanswered: ""
            [list(ex["answers"]["text"]) for ex in examples],
            [ex.get(LANG_KEY, "") for ex in examples],
            self.norm,
        )


def extract_answer(windows: list[tuple[Any, dict[str, Any]]], max_answer_length: int) -> str:
    """The best answer span over the windows of one example: (prediction, feature) pairs,
    each prediction the (position, logit) lists of `QATask.predict`."""
    best, text = float("-inf"), ""
    for (starts, ends), f in windows:
        offsets = f["offsets"]
        for s, s_logit in starts:
            if s >= len(offsets) or offsets[s] is None:
                continue
            for e, e_logit in ends:
                if (
                    e >= len(offsets)
                    or offsets[e] is None
                    or e < s
                    or e - s + 1 > max_answer_length
                ):
                    continue
                if s_logit + e_logit > best:
                    best = s_logit + e_logit
                    text = f["context"][offsets[s][0] : offsets[e][1]]
    return text


class MlqaTask(QATask):
    """MLQA from `google/xtreme`'s Parquet configs `MLQA.<context lang>.<question lang>`
    (splits `validation` = dev and `test`), trained on English SQuAD v1.1
    (`rajpurkar/squad`). (`facebook/mlqa` holds only a loading script, which datasets >= 4
    cannot run.)"""

    name = "mlqa"
    hub_dataset = "google/xtreme"
    hub_config = "MLQA.{lang}.{lang}"
    hub_train_dataset = "rajpurkar/squad"


class XquadTask(QATask):
    """XQuAD (`google/xquad`, configs `xquad.<lang>`), trained on SQuAD v1.1; scored with
    SQuAD v1.1's normalisation, as XTREME does. XQuAD has one split, `validation`, which fsf
    evaluates as the test split; there is no dev split (by default only test is evaluated,
    so a run selects its final step)."""

    name = "xquad"
    hub_dataset = "google/xquad"
    hub_config = "xquad.{lang}"
    hub_train_dataset = "rajpurkar/squad"
    hub_splits = {"train": "train", "test": "validation"}  # noqa: RUF012
    eval_splits = ("test",)
    normalization = "squad"
