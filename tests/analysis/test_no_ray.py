"""The analysis package and the training core load without Ray (only fsf.sweep may use it)."""

from __future__ import annotations

import subprocess
import sys


def test_analysis_and_worker_do_not_import_ray():
    code = (
        "import sys\n"
        "import fsf.cka, fsf.analysis.gap, fsf.analysis.forgetting\n"
        "import fsf.analysis.probe, fsf.analysis._report, fsf.cli.analysis, fsf.train.worker\n"
        "import fsf.analysis.report\n"
        "bad = sorted(m for m in sys.modules if m == 'ray' or m.startswith('ray.'))\n"
        "assert not bad, bad[:5]\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_queries_and_config_load_without_torch():
    """`fsf-sweep best/show/report/validate` start without paying for torch (~3 s): the
    results, analysis and config layers and the command modules import it only on use."""
    code = (
        "import sys\n"
        "import fsf.config, fsf.results, fsf.cli.results, fsf.analysis, fsf.analysis.report\n"
        "import fsf.cli.sweep, fsf.sweep.space, fsf.tasks\n"
        "bad = sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.'))\n"
        "assert not bad, bad[:5]\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
