"""Selection rules: which data choose a configuration, which choose each run's checkpoint,
and which split is reported.

This is the one home of "best" in fsf: the sweep's objective (what Optuna receives), the
queries (`best`, `best_per_language`, `summary`), the report and the confirmation stage all
select through a `SelectionRule`, so they can never disagree on which configuration won.
Which evaluation of a run is its checkpoint is decided here too, for a run as it trains
(`CheckpointTracker`: the worker's kept weights and prediction files, the objective a trial
reports) and for the queries' vectorised kernel (`checkpoint_data`, `fsf.results.cube`):
the evaluation with the best score under the rule, ties to the earlier step, a NaN score
never.

A rule has three parts, each relative to the *entry* being answered (one language, or the
mean over the target languages):

- `checkpoint`: the evaluation step of each run that counts. `source-dev`: the step with the
  best source-language dev score (zero-shot honest); `target-dev`: the best dev score of the
  entry's own language (the mean target dev score for the target-mean entry); `all-dev`: the
  best mean dev score over all languages; `test`: the best test score (an ORACLE).
- `configuration`: the score, at that checkpoint and averaged over distinct seeds, that
  ranks configurations. `objective`: the sweep's objective for the target-mean entry (e.g.
  `dev_target_mean`) and the entry language's own dev score for a language; `source-dev`,
  `target-dev`, `all-dev`, `test`: as for checkpoints.
- `report`: the split whose scores are shown (test by default, for every language).

Built-in rules (`RULES`): `objective` (the default: configurations by the sweep's objective,
checkpoints as the sweep chose them, `search.checkpoint`, source-dev unless set), `source-dev`
(everything on the source language's dev data: XTREME's strict zero-shot protocol),
`target-dev`, `all-dev` (the paper's Appendix B), and `oracle-test`, which chooses on test
data and is only ever used when asked for by name; every output marks it ORACLE.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from fsf.results._errors import ResultsUsageError
from fsf.results.evaluation import Evaluation

__all__ = [
    "CHECKPOINTS",
    "DEFAULT_RULE",
    "OBJECTIVE_METRICS",
    "RULES",
    "CheckpointTracker",
    "Objective",
    "SelectionRule",
    "best_evaluation",
    "checkpoint_data",
    "checkpoint_score",
    "checkpoint_text",
    "objectives_of",
    "selection_rule",
]

#: Named rules a user can pick (`--select`); `objective` is the default.
RULES = ("objective", "source-dev", "target-dev", "all-dev", "oracle-test")
DEFAULT_RULE = "objective"
#: How a run's checkpoint can be chosen: the dev rules are those a run config
#: (`checkpoint.select`, `fsf.config.CheckpointRule`) and a sweep (`search.checkpoint`) take;
#: `test` only a query asked for the ORACLE rule.
CHECKPOINTS = ("source-dev", "target-dev", "all-dev", "test")
_CHECKPOINT_DATA = {
    "source-dev": ("dev", "source"),
    "all-dev": ("dev", "all_mean"),
    "target-dev": ("dev", None),
    "test": ("test", None),
}
#: Per-evaluation scalars an objective can name: `{split}_{kind}` and the training loss.
OBJECTIVE_METRICS = (
    *(
        f"{split}_{kind}"
        for split in ("dev", "test")
        for kind in ("source", "target_mean", "all_mean", "gap")
    ),
    "train_loss",
)

_DATA = {
    "source-dev": "source-language dev",
    "target-dev": "target-language dev",
    "all-dev": "dev of every language",
    "test": "TEST",
}


def checkpoint_data(checkpoint: str) -> tuple[str, str | None]:
    """(split, kind) of the score `checkpoint` maximises over a run's evaluations: kind
    `source` or `all_mean` (the same score for every entry), or None: the entry's own score
    (a language's; the mean over the target languages for the target-mean entry)."""
    try:
        return _CHECKPOINT_DATA[checkpoint]
    except KeyError:
        raise ResultsUsageError(
            f"unknown checkpoint rule {checkpoint!r}; choose one of: {', '.join(CHECKPOINTS)}"
        ) from None


def checkpoint_score(ev: Evaluation, checkpoint: str, language: str | None = None) -> float:
    """The score by which `checkpoint` ranks evaluation `ev` for an entry (`language`; None:
    the target mean), as the queries' kernel computes it (NaN: no score)."""
    split, kind = checkpoint_data(checkpoint)
    if kind == "source":
        return ev.source(split)
    if kind == "all_mean":
        return ev.all_mean(split)
    return ev.score(split, language) if language is not None else ev.target_mean(split)


class CheckpointTracker:
    """A run's checkpoint so far, as its evaluations arrive: `offer(ev)` is True when `ev`
    becomes it (its `checkpoint_score` beats the best so far: ties keep the earlier
    evaluation, a NaN score never counts). `best` is the checkpoint (None before any
    evaluation has a score), `score` its score."""

    def __init__(self, checkpoint: str, language: str | None = None):
        checkpoint_data(checkpoint)  # an unknown rule fails now
        self.checkpoint = checkpoint
        self.language = language
        self.best: Evaluation | None = None
        self.score = math.nan

    def offer(self, ev: Evaluation) -> bool:
        score = checkpoint_score(ev, self.checkpoint, self.language)
        if math.isnan(score) or (self.best is not None and not score > self.score):
            return False
        self.best, self.score = ev, score
        return True


def best_evaluation(
    evaluations: Iterable[Evaluation], checkpoint: str, language: str | None = None
) -> Evaluation | None:
    """The evaluation `checkpoint` selects among a run's `evaluations` (in step order)."""
    tracker = CheckpointTracker(checkpoint, language)
    for ev in evaluations:
        tracker.offer(ev)
    return tracker.best


def checkpoint_text(checkpoint: str, source_lang: str, metric: str) -> str:
    """How `checkpoint` chose a run's evaluation, in words (for the run's saved files)."""
    what = {
        "source-dev": f"source-language ({source_lang}) dev {metric}",
        "target-dev": f"mean target-language dev {metric}",
        "all-dev": f"mean dev {metric} over all languages",
        "test": f"mean target-language TEST {metric} (ORACLE)",
    }[checkpoint]
    used = {
        "source-dev": "no target-language data was used to select",
        "test": "test data was used to select: an oracle",
    }.get(checkpoint, "target-language dev data was used to select")
    return f"the best {what} over the run's evaluations (ties: the earlier step); {used}"


@dataclass(frozen=True)
class Objective:
    """A sweep objective: a per-evaluation scalar (`OBJECTIVE_METRICS`) and its direction."""

    metric: str = "dev_target_mean"
    mode: str = "max"

    @property
    def sign(self) -> float:
        """+1 when higher is better."""
        return 1.0 if self.mode == "max" else -1.0

    @property
    def uses_test(self) -> bool:
        return self.metric.startswith("test_")

    def data(self) -> str:
        """Which data the objective looks at, in words."""
        if self.metric == "train_loss":
            return "source-language training loss"
        split, kind = self.metric.split("_", 1)
        what = {
            "source": "source-language",
            "target_mean": "target-language",
            "all_mean": "every language's",
            "gap": "source and target",
        }[kind]
        return f"{what} {'TEST' if split == 'test' else split}"


@dataclass(frozen=True)
class SelectionRule:
    """Which data choose the configuration and the checkpoint, and which split is reported
    (see the module docstring). `objective` is the sweep's (first) objective."""

    name: str
    checkpoint: str
    configuration: str
    objective: Objective = Objective()
    report: str = "test"

    @property
    def oracle(self) -> bool:
        """The rule chooses something on test data."""
        return "test" in (self.checkpoint, self.configuration) or (
            self.configuration == "objective" and self.objective.uses_test
        )

    def configuration_data(self, target_mean: bool) -> str:
        """What ranks configurations for an entry, in words."""
        if self.configuration == "objective":
            if target_mean:
                o = self.objective
                return f"the sweep objective {o.metric} ({o.mode}; {o.data()} data)"
            return "the language's own dev score (target-language dev data)"
        if self.configuration == "target-dev" and target_mean:
            return "the mean target-language dev score"
        return f"the {_DATA[self.configuration]} score" + (
            " (ORACLE)" if self.configuration == "test" else ""
        )

    def checkpoint_data(self, target_mean: bool) -> str:
        if self.checkpoint == "target-dev":
            what = "mean target-language dev" if target_mean else "the language's own dev"
            return f"each run's step with the best {what} score"
        oracle = " (ORACLE)" if self.checkpoint == "test" else ""
        return f"each run's step with the best {_DATA[self.checkpoint]} score{oracle}"

    def describe(self, target_mean: bool = True) -> str:
        """One line: which data chose what, and what is reported."""
        head = "ORACLE (chosen on test data): " if self.oracle else ""
        return (
            f"{head}rule {self.name}: configuration by {self.configuration_data(target_mean)}; "
            f"checkpoint: {self.checkpoint_data(target_mean)}; reported: {self.report} scores, "
            "mean over distinct seeds"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "checkpoint": self.checkpoint,
            "configuration": self.configuration,
            "objective": {"metric": self.objective.metric, "mode": self.objective.mode},
            "report": self.report,
            "oracle": self.oracle,
            "description": self.describe(),
        }


def objectives_of(sweep: Mapping[str, Any]) -> list[Objective]:
    """The objectives recorded in a sweep's `sweep.json` (default: dev_target_mean, max)."""
    raw = sweep.get("objective") or [{"metric": "dev_target_mean", "mode": "max"}]
    if isinstance(raw, (str, dict)):
        raw = [raw]
    out = []
    for o in raw:
        o = {"metric": o, "mode": "max"} if isinstance(o, str) else dict(o)
        out.append(Objective(str(o.get("metric")), str(o.get("mode", "max"))))
    return out


def selection_rule(
    name: str | None = None,
    sweep: Mapping[str, Any] | None = None,
    *,
    report: str = "test",
) -> SelectionRule:
    """The rule called `name` (default `objective`) for a sweep described by `sweep`
    (its `sweep.json`: objectives and `checkpoint`). Raises `ResultsUsageError` for an
    unknown rule, split or objective."""
    name = name or DEFAULT_RULE
    if name not in RULES:
        raise ResultsUsageError(
            f"unknown selection rule {name!r}; choose one of: {', '.join(RULES)}"
        )
    if report not in ("dev", "test"):
        raise ResultsUsageError(f"unknown split {report!r}; choose one of: dev, test")
    sweep = sweep or {}
    objective = objectives_of(sweep)[0]
    if objective.metric not in OBJECTIVE_METRICS or objective.mode not in ("max", "min"):
        raise ResultsUsageError(
            f"the sweep's objective {objective.metric!r} ({objective.mode}) cannot be computed "
            f"from results; known: {', '.join(OBJECTIVE_METRICS)} (mode max|min)"
        )
    if name == "objective":
        checkpoint = str(sweep.get("checkpoint") or "source-dev")
        if checkpoint not in CHECKPOINTS:
            raise ResultsUsageError(
                f"sweep.json's checkpoint {checkpoint!r} is unknown; one of {', '.join(CHECKPOINTS)}"
            )
        return SelectionRule(name, checkpoint, "objective", objective, report)
    data = "test" if name == "oracle-test" else name
    return SelectionRule(name, data, data, objective, report)
