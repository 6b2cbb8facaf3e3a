"""The tiny interface the training worker reports through, and what a run returns.

The worker knows nothing of Ray, Tune or Parquet: it hands each `Evaluation`
(`fsf.results.evaluation`) to a `Reporter`. `fsf-train` prints and writes Parquet; the sweep
layer adapts reports to Ray Tune.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from fsf.results.evaluation import Evaluation
from fsf.results.selection import best_evaluation

__all__ = [
    "CompositeReporter",
    "ListReporter",
    "Reporter",
    "RunSummary",
]


@dataclass
class RunSummary:
    """The outcome of a run: every evaluation, and what it wrote besides its rows.

    `checkpoint(rule)`: the evaluation a checkpoint rule (`source-dev`, `target-dev`,
    `all-dev`) selects, as everywhere in fsf (`fsf.results.selection`)."""

    evaluations: list[Evaluation] = field(default_factory=list)
    artifacts: dict[str, str] = field(default_factory=dict)
    """What the run wrote besides its rows: `predictions` (the folder of XTREME prediction
    files), `checkpoint` (the saved model); empty unless asked for (rank 0 only)."""

    @property
    def final(self) -> Evaluation | None:
        return self.evaluations[-1] if self.evaluations else None

    def checkpoint(self, rule: str = "source-dev") -> Evaluation | None:
        """The evaluation `rule` selects (None: no evaluation has a score under it)."""
        return best_evaluation(self.evaluations, rule)


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
