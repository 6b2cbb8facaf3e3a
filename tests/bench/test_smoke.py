"""Smoke runs of the benchmark scripts: they complete and print their table (no timing)."""

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).parents[2] / "bench"


@pytest.mark.slow
def test_policy_overhead_smoke():
    out = subprocess.run(
        [sys.executable, str(BENCH / "bench_policy_overhead.py"), "--smoke"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "FSF / DF step time" in out.stdout
