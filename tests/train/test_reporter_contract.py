"""The in-memory reporters run the reporter contract suite (fsf.testing.ReporterContract);
fsf.results' ParquetReporter runs it in tests/results/test_writer.py."""

from __future__ import annotations

import pytest

from fsf.testing import ReporterContract
from fsf.train import CompositeReporter, ListReporter


class TestListReporter(ReporterContract):
    @pytest.fixture()
    def make_reporter(self):
        return ListReporter


class TestCompositeReporter(ReporterContract):
    @pytest.fixture()
    def make_reporter(self):
        return lambda: CompositeReporter(ListReporter(), ListReporter())

    def received(self, reporter):
        first, second = ([e.step for e in r.evaluations] for r in reporter.reporters)
        assert first == second, "every reporter of a CompositeReporter gets every evaluation"
        return first


class TestAReporterThatMutatesFails:
    def test_a_changed_evaluation_is_caught(self):
        class Rounding(ListReporter):
            def report(self, evaluation):
                evaluation.scores["dev"]["en"]["metric"] = round(
                    evaluation.scores["dev"]["en"]["metric"], 1
                )
                super().report(evaluation)

        with pytest.raises(AssertionError, match="changed the evaluation"):
            ReporterContract().test_leaves_the_evaluations_alone(Rounding)

    def test_shared_state_is_caught(self):
        shared = ListReporter()
        with pytest.raises(AssertionError, match="already holds steps"):
            ReporterContract().test_reporters_share_nothing(lambda: shared)
