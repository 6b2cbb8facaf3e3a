"""What one evaluation of a run is: the record the training worker makes of every language's
scores at a step (`Evaluation`, with the optimizer steps since the previous one,
`StepRecord`), which the results store as rows and a resumed sweep reads back.

It lives in `fsf.results`, below `fsf.train`, so that the worker, the sweep and the queries
share one definition of an evaluation and of which evaluation is a run's checkpoint
(`fsf.results.selection`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

__all__ = ["Evaluation", "StepRecord"]


@dataclass(frozen=True)
class StepRecord:
    """One optimizer step: its training loss (averaged over ranks; None when the loss curve
    is not recorded), the phase it was in and, with `policy_iv: cka`, the V_II layers' CKA
    to the pretrained model measured before its update (None between measurements)."""

    step: int
    loss: float | None
    phase: str
    phi: float | None
    cka_v2: float | None = None


@dataclass
class Evaluation:
    """One evaluation of every language, at optimizer step `step`.

    `scores[split][lang][metric]`; `metric` is the task's primary metric. `loss` is the mean
    training loss since the previous evaluation (None at step 0). `multipliers` gives K for
    the rows of the paper's table (S_I, S_II, V_I, V_II, embeddings, head) at this step.

    For analysis (`config.analysis`): `train_steps` holds every optimizer step since the
    previous evaluation (empty when the loss curve is not recorded), and `cka` the per-layer
    CKA measured since then, `{step: {lang: [layer 0 (embeddings), layer 1, ...]}}`.
    """

    step: int
    epoch: float
    loss: float | None
    phase: str
    phi: float | None
    multipliers: dict[str, float | None]
    scores: dict[str, dict[str, dict[str, float]]]
    metric: str
    source_lang: str
    target_langs: list[str]
    elapsed_s: float
    total_steps: int
    is_final: bool = False
    train_steps: list[StepRecord] = field(default_factory=list)
    cka: dict[int, dict[str, list[float]]] = field(default_factory=dict)

    def score(self, split: str, lang: str) -> float:
        return self.scores.get(split, {}).get(lang, {}).get(self.metric, math.nan)

    def source(self, split: str = "dev") -> float:
        return self.score(split, self.source_lang)

    def target_mean(self, split: str = "dev") -> float:
        vals = [self.score(split, lang) for lang in self.target_langs]
        return sum(vals) / len(vals) if vals else math.nan

    def all_mean(self, split: str = "dev") -> float:
        vals = [self.score(split, lang) for lang in (self.source_lang, *self.target_langs)]
        return sum(vals) / len(vals)

    def gap(self, split: str = "dev") -> float:
        return self.source(split) - self.target_mean(split)

    def scalars(self) -> dict[str, float]:
        """The few numbers a scheduler needs (dev and test summaries)."""
        out: dict[str, float] = {"step": float(self.step)}
        for split in self.scores:
            out[f"{split}_source"] = self.source(split)
            out[f"{split}_target_mean"] = self.target_mean(split)
            out[f"{split}_all_mean"] = self.all_mean(split)
            out[f"{split}_gap"] = self.gap(split)
        if self.loss is not None:
            out["train_loss"] = self.loss
        return out
