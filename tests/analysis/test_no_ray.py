"""The analysis package and the training core load without Ray (only fsf.sweep may use it)."""

from __future__ import annotations

import subprocess
import sys


def test_analysis_and_worker_do_not_import_ray():
    code = (
        "import sys\n"
        "import fsf.analysis.cka, fsf.analysis.gap, fsf.analysis.forgetting\n"
        "import fsf.analysis.probe, fsf.analysis._report, fsf.analysis.cli, fsf.train.worker\n"
        "import fsf.results.report\n"
        "bad = sorted(m for m in sys.modules if m == 'ray' or m.startswith('ray.'))\n"
        "assert not bad, bad[:5]\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
