"""What the training worker reports, and the tiny interface it reports through.

The worker knows nothing of Ray, Tune or Parquet: it hands each `Evaluation` to a `Reporter`.
`fsf-train` prints and writes Parquet; the sweep layer adapts reports to Ray Tune.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

__all__ = [
    "CompositeReporter",
    "Evaluation",
    "ListReporter",
    "Reporter",
    "RunSummary",
    "StepRecord",
]


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


@dataclass
class RunSummary:
    """The outcome of a run: every evaluation and the two model-selection rules.

    `best_by_source_dev`: the evaluation with the best source-language dev score (zero-shot
    honest). `best_by_all_dev`: the best mean dev score over all languages (uses target dev
    data: an oracle for zero-shot). Ties go to the earlier step.
    """

    evaluations: list[Evaluation] = field(default_factory=list)
    artifacts: dict[str, str] = field(default_factory=dict)
    """What the run wrote besides its rows: `predictions` (the folder of XTREME prediction
    files), `checkpoint` (the saved model); empty unless asked for (rank 0 only)."""

    def _best(self, key: Any) -> Evaluation | None:
        usable = [e for e in self.evaluations if "dev" in e.scores and not math.isnan(key(e))]
        return max(usable, key=key, default=None) if usable else None

    @property
    def final(self) -> Evaluation | None:
        return self.evaluations[-1] if self.evaluations else None

    @property
    def best_by_source_dev(self) -> Evaluation | None:
        return self._best(lambda e: e.source("dev"))

    @property
    def best_by_all_dev(self) -> Evaluation | None:
        return self._best(lambda e: e.all_mean("dev"))


@runtime_checkable
class Reporter(Protocol):
    """Receives each evaluation as soon as it is computed (on rank 0 only).

    `report` may raise to stop training (the exception propagates out of the worker).
    """

    def report(self, evaluation: Evaluation) -> None: ...


class ListReporter:
    """Keeps evaluations in memory."""

    def __init__(self) -> None:
        self.evaluations: list[Evaluation] = []

    def report(self, evaluation: Evaluation) -> None:
        self.evaluations.append(evaluation)


class CompositeReporter:
    """Hands each evaluation to several reporters in order."""

    def __init__(self, *reporters: Reporter):
        self.reporters = reporters

    def report(self, evaluation: Evaluation) -> None:
        for r in self.reporters:
            r.report(evaluation)
