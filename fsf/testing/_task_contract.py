"""`TaskContract`: what every `fsf.tasks.Task` promises, as pytest tests."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fsf.tasks import Task

__all__ = ["TaskContract"]

_SPLITS = {"train", "dev", "test"}


class TaskContract:
    """The contract of `Task` (fsf/tasks/_base.py), for any task.

    Subclass it under a `Test...` name and give it two fixtures: `task`, a task instance
    whose config points at a small dataset (local files, or `FSF_HUB_MIRROR` set), and
    `model_dir`, a folder with a tiny model and its tokenizer (`fsf.testing.tiny_model`)
    that `task.build_model` can load. The tests, on `examples` examples of language `lang`
    and the first evaluation split its data has:

    - `load` gives a non-empty list of dicts, the same twice;
    - `encode` keeps the examples' order: its features are, in order, those of encoding
      each example alone (one example may give several features, as QA's windows);
    - `collate` pads: `input_ids` as wide as the longest feature, each row the feature's
      ids then padding, `attention_mask` 1 on exactly the feature's tokens, every tensor
      one row per feature;
    - the model `build_model` loads takes the batch: a finite scalar `.loss` (the batch has
      labels) and logits with one row per feature (token-level logits one column per token);
    - `predict` gives one prediction per feature, and `score` a dict holding the task's
      `metric`, every value finite and in [0, 1];
    - `prediction_text` scored by `score_prediction_text` against the raw examples gives
      the metric `score` gives;
    - the declared defaults are consistent (`name`, `metric`, `eval_splits`, `hub_splits`).
    """

    lang: str = "en"
    examples: int = 6

    # ------------------------------------------------------------------ helpers

    def split(self, task: Task) -> str:
        """The split the suite reads: the first of the task's evaluation splits that its
        data has (`task.splits`)."""
        have = [s for s in task.eval_splits if s in task.splits]
        assert have, f"none of eval_splits {task.eval_splits} is in task.splits {task.splits}"
        return have[0]

    def load(self, task: Task) -> list[dict[str, Any]]:
        return task.load(self.lang, self.split(task))[: self.examples]

    def tokenizer(self, model_dir: Path) -> Any:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(str(model_dir))

    def pad_id(self, tokenizer: Any) -> int:
        return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    def batch(self, task: Task, model_dir: Path) -> tuple[list, list, dict, Any]:
        """(examples, features, collated batch, tokenizer)."""
        tok = self.tokenizer(model_dir)
        examples = self.load(task)
        features = task.encode(examples, tok)
        return examples, features, task.collate(features, self.pad_id(tok)), tok

    def predictions(self, task: Task, model_dir: Path) -> tuple[list, list, list]:
        """(examples, features, predictions of the freshly loaded model)."""
        import torch

        examples, features, batch, _ = self.batch(task, model_dir)
        model = task.build_model(str(model_dir))
        model.eval()
        with torch.no_grad():
            predictions = task.predict(model, batch)
        return examples, features, predictions

    # ------------------------------------------------------------------ tests

    def test_declared_defaults(self, task: Task) -> None:
        assert task.name and task.metric, "a task declares `name` and `metric`"
        assert task.eval_splits and set(task.eval_splits) <= {"dev", "test"}, task.eval_splits
        assert set(task.hub_splits) <= _SPLITS, f"hub_splits keys must be in {_SPLITS}"
        assert task.prediction_suffix and "." not in task.prediction_suffix

    def test_load_gives_examples(self, task: Task) -> None:
        examples = self.load(task)
        assert examples, f"load({self.lang!r}, {self.split(task)!r}) gave no examples"
        assert all(isinstance(e, dict) for e in examples), "examples are dicts"
        assert examples == self.load(task), "load gave other examples the second time"

    def test_encode_keeps_order(self, task: Task, model_dir: Path) -> None:
        tok = self.tokenizer(model_dir)
        examples = self.load(task)
        together = [f["input_ids"] for f in task.encode(examples, tok)]
        alone = [f["input_ids"] for e in examples for f in task.encode([e], tok)]
        assert together == alone, (
            "encode(examples) must give, in order, the features of encoding each example alone"
        )
        reverse = [f["input_ids"] for e in examples[::-1] for f in task.encode([e], tok)]
        assert [f["input_ids"] for f in task.encode(examples[::-1], tok)] == reverse

    def test_collate_pads(self, task: Task, model_dir: Path) -> None:
        import torch

        _, features, batch, tok = self.batch(task, model_dir)
        pad_id = self.pad_id(tok)
        ids, mask = batch["input_ids"], batch["attention_mask"]
        lengths = [len(f["input_ids"]) for f in features]
        assert ids.dtype == torch.long and tuple(ids.shape) == (len(features), max(lengths))
        for i, (f, n) in enumerate(zip(features, lengths, strict=True)):
            assert ids[i, :n].tolist() == list(f["input_ids"]), f"row {i} is not feature {i}"
            assert (ids[i, n:] == pad_id).all(), f"row {i} is not padded with pad_id"
            assert mask[i].tolist() == [1] * n + [0] * (ids.shape[1] - n), f"mask of row {i}"
        for key, value in batch.items():
            assert isinstance(value, torch.Tensor), f"batch[{key!r}] is not a tensor"
            assert len(value) == len(features), f"batch[{key!r}] has {len(value)} rows"

    def test_the_model_takes_the_batch(self, task: Task, model_dir: Path) -> None:
        _, features, batch, _ = self.batch(task, model_dir)
        model = task.build_model(str(model_dir))
        model.train()
        out = model(**batch)
        assert out.loss is not None and out.loss.dim() == 0, "a batch with labels gives a loss"
        assert math.isfinite(out.loss.item()), f"loss {out.loss.item()}"
        rows, width = len(features), batch["input_ids"].shape[1]
        found = False
        for name in ("logits", "start_logits", "end_logits"):
            logits = getattr(out, name, None)
            if logits is None:
                continue
            found = True
            assert logits.shape[0] == rows, f"{name}: {tuple(logits.shape)}, {rows} features"
            if name != "logits" or logits.dim() == 3:  # per token
                assert logits.shape[1] == width, f"{name}: {tuple(logits.shape)}, width {width}"
        assert found, "the model's output has no logits"

    def test_score_is_the_metric_in_0_1(self, task: Task, model_dir: Path) -> None:
        _, features, predictions = self.predictions(task, model_dir)
        assert len(predictions) == len(features), "predict gives one prediction per feature"
        scores = task.score(predictions, features)
        assert task.metric in scores, (
            f"score must return the task's metric {task.metric!r}; got {sorted(scores)}"
        )
        bad = {k: v for k, v in scores.items() if not (math.isfinite(v) and 0 <= v <= 1)}
        assert not bad, f"every score must be in [0, 1]: {bad}"

    def test_prediction_file_scores_like_score(self, task: Task, model_dir: Path) -> None:
        examples, features, predictions = self.predictions(task, model_dir)
        text = task.prediction_text(predictions, features)
        assert isinstance(text, str) and text
        from_file = task.score_prediction_text(text, examples)
        direct = task.score(predictions, features)
        m = task.metric
        assert math.isclose(from_file[m], direct[m], abs_tol=1e-9), (
            f"the prediction file scores {m} = {from_file[m]}, score {direct[m]}"
        )
