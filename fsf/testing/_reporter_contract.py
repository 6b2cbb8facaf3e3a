"""`ReporterContract`: what every `fsf.train.Reporter` promises, as pytest tests."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

    from fsf.results.evaluation import Evaluation
    from fsf.train.reporter import Reporter

__all__ = ["ReporterContract"]


class _Boom(RuntimeError):
    pass


class ReporterContract:
    """The contract of `Reporter` (fsf/train/reporter.py), for any reporter.

    Subclass it under a `Test...` name and give it a fixture `make_reporter`: a callable
    that returns a new reporter. Override `received` (the steps a reporter has recorded, in
    order) and, for a reporter that records a run's final status, `status`. The tests:

    - it is a `Reporter` and takes a run's evaluations in order (step 0 without a loss,
      then the final one); what it recorded is those steps, in that order;
    - it leaves the evaluations as they were (the worker hands the same object to the next
      reporter of a `CompositeReporter`);
    - two reporters share nothing;
    - where it has `finish(status)`: calling it again is harmless, the last call wins;
    - where it is a context manager: `with` gives the reporter itself; a clean block ends
      the run `completed`, an exception ends it `failed` and propagates unchanged.
    """

    def evaluations(self) -> list[Evaluation]:
        """A short run: step 0 (no loss yet), a middle one, the final one."""
        from fsf.results.evaluation import Evaluation, StepRecord

        out = []
        for step, loss, phase in ((0, None, "P1"), (3, 0.9, "P1"), (6, 0.5, "P2")):
            scores = {
                split: {"en": {"metric": 0.6 + 0.01 * step}, "de": {"metric": 0.4 + 0.01 * step}}
                for split in ("dev", "test")
            }
            out.append(
                Evaluation(
                    step=step,
                    epoch=step / 6,
                    loss=loss,
                    phase=phase,
                    phi=None if phase == "P1" else 0.7,
                    multipliers={
                        "S_I": 0.01 if phase == "P1" else 1.0,
                        "S_II": 0.01 if phase == "P1" else 0.66,
                        "V_I": 1.0,
                        "V_II": 1.0 if phase == "P1" else 10.0,
                        "embeddings": 1.0,
                        "head": 1.0,
                    },
                    scores=scores,
                    metric="metric",
                    source_lang="en",
                    target_langs=["de"],
                    elapsed_s=float(step),
                    total_steps=6,
                    is_final=step == 6,
                    train_steps=[StepRecord(s, 1.0 / s, phase, None) for s in range(1, step + 1)],
                )
            )
        return out

    def received(self, reporter: Any) -> list[int] | None:
        """The steps `reporter` has recorded, in order (None: it cannot tell). Default: the
        steps of its `evaluations` list, if it keeps one."""
        evaluations = getattr(reporter, "evaluations", None)
        return None if evaluations is None else [e.step for e in evaluations]

    def status(self, reporter: Any) -> str | None:
        """The final status the reporter recorded (None: it records none)."""
        return None

    # ------------------------------------------------------------------ tests

    def test_is_a_reporter(self, make_reporter: Callable[[], Reporter]) -> None:
        from fsf.train.reporter import Reporter

        assert isinstance(make_reporter(), Reporter), "a reporter has `report(evaluation)`"

    def test_takes_a_run_in_order(self, make_reporter: Callable[[], Reporter]) -> None:
        reporter = make_reporter()
        evaluations = self.evaluations()
        for ev in evaluations:
            reporter.report(ev)
        got = self.received(reporter)
        if got is not None:
            assert got == [e.step for e in evaluations], f"recorded steps {got}"

    def test_leaves_the_evaluations_alone(self, make_reporter: Callable[[], Reporter]) -> None:
        reporter = make_reporter()
        evaluations = self.evaluations()
        before = copy.deepcopy(evaluations)
        for ev in evaluations:
            reporter.report(ev)
        assert evaluations == before, "report changed the evaluation it was given"

    def test_reporters_share_nothing(self, make_reporter: Callable[[], Reporter]) -> None:
        a, b = make_reporter(), make_reporter()
        for ev in self.evaluations():
            a.report(ev)
        got = self.received(b)
        assert got in (None, []), f"a new reporter already holds steps {got}"

    def test_finish_twice(self, make_reporter: Callable[[], Reporter]) -> None:
        reporter: Any = make_reporter()
        if not callable(getattr(reporter, "finish", None)):
            return
        for ev in self.evaluations():
            reporter.report(ev)
        reporter.finish("stopped")
        reporter.finish("completed")
        got = self.received(reporter)
        if got is not None:
            assert got == [e.step for e in self.evaluations()], f"recorded steps {got}"
        if self.status(reporter) is not None:
            assert self.status(reporter) == "completed", "the last finish wins"

    def test_context_manager(self, make_reporter: Callable[[], Reporter]) -> None:
        reporter: Any = make_reporter()
        if not hasattr(reporter, "__enter__"):
            return
        with reporter as entered:
            assert entered is reporter, "`with reporter as r` gives the reporter itself"
            for ev in self.evaluations():
                reporter.report(ev)
        if self.status(reporter) is not None:
            assert self.status(reporter) == "completed", "a clean block ends it completed"

        failing: Any = make_reporter()
        boom = _Boom("the run broke")
        try:
            with failing:
                failing.report(self.evaluations()[0])
                raise boom
        except _Boom as exc:
            assert exc is boom, "the exception must propagate unchanged"
        else:
            raise AssertionError("the reporter swallowed the exception")
        if self.status(failing) is not None:
            assert self.status(failing) == "failed", "an exception ends the run failed"
