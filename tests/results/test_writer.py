"""ParquetReporter: the reporter contract suite, and how it finishes a trial as a context
manager (what fsf-train and the sweep's trials do)."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from fsf.results import ParquetReporter
from fsf.testing import ReporterContract
from tests.results.helpers import info


def _rows(reporter: ParquetReporter) -> list[dict]:
    return pq.read_table(reporter.path).to_pylist() if reporter.path.exists() else []


class TestParquetReporter(ReporterContract):
    @pytest.fixture()
    def make_reporter(self, tmp_path):
        count = iter(range(1000))
        return lambda: ParquetReporter(tmp_path / "results", info(f"t{next(count)}"))

    def received(self, reporter):
        steps = []
        for row in _rows(reporter):
            if row["metric"] != row["primary_metric"]:  # loss curve and CKA rows
                continue
            if not steps or steps[-1] != row["step"]:
                steps.append(row["step"])
        return steps

    def status(self, reporter):
        statuses = {row["status"] for row in _rows(reporter)}
        assert len(statuses) <= 1, f"one status per trial, got {statuses}"
        return statuses.pop() if statuses else None


def _evaluations():
    return ReporterContract().evaluations()


@pytest.mark.parametrize(("final", "status"), [(True, "completed"), (False, "stopped")])
def test_a_system_exit_is_a_stop_when_asked(tmp_path, final, status):
    """Ray Tune ends a trial (ASHA, max_t) with SystemExit from inside `tune.report`."""
    evaluations = _evaluations() if final else _evaluations()[:2]
    writer = ParquetReporter(tmp_path, info("t"), exit_is_stop=True)
    with pytest.raises(SystemExit), writer:
        for ev in evaluations:
            writer.report(ev)
        raise SystemExit(0)
    rows = _rows(writer)
    assert {r["status"] for r in rows} == {status}
    assert {r["failure_reason"] for r in rows} == {None}


def test_otherwise_a_system_exit_is_a_failure(tmp_path):
    with pytest.raises(SystemExit), ParquetReporter(tmp_path, info("t")) as writer:
        writer.report(_evaluations()[0])
        raise SystemExit(3)
    assert {(r["status"], r["failure_reason"]) for r in _rows(writer)} == {
        ("failed", "SystemExit: 3")
    }


def test_a_failure_before_the_first_evaluation_still_leaves_a_row(tmp_path):
    with pytest.raises(KeyboardInterrupt), ParquetReporter(tmp_path, info("t")) as writer:
        raise KeyboardInterrupt
    rows = _rows(writer)
    assert [(r["status"], r["failure_reason"]) for r in rows] == [("failed", "KeyboardInterrupt: ")]
