"""Helpers of the tests that SIGKILL a sweep driver and resume the sweep."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any


def cli(*args: str) -> list[str]:
    """An `fsf-sweep` command line, quiet and sized to this machine."""
    return [sys.executable, "-m", "fsf.cli.sweep", *args, "--no-progress", "--num-cpus", "2"]


def start(*args: str, env: dict[str, str]) -> subprocess.Popen:
    """An `fsf-sweep` driver started in the background, quiet, in a process group of its
    own (so `kill_after` kills it with its local Ray instance)."""
    return subprocess.Popen(
        cli(*args),
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def kill_after(proc: subprocess.Popen, fragments: Callable[[], int], n: int = 3) -> None:
    """SIGKILL the driver `proc` (started with start_new_session, so with its local Ray
    instance) once `fragments()` counts `n` result fragments."""
    try:
        deadline, done = time.time() + 240, 0
        while time.time() < deadline and proc.poll() is None:
            done = fragments()
            if done >= n:
                break
            time.sleep(0.5)
        assert done >= n, "the sweep made no progress"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    time.sleep(1)


def resume(sweep: str, env: dict[str, str]) -> str:
    """`fsf-sweep resume SWEEP`, which must succeed; returns what it printed."""
    code = subprocess.run(
        cli("resume", sweep),
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        start_new_session=True,
    )
    assert code.returncode == 0, code.stderr[-3000:]
    return code.stdout


def check_study(study: Any, row_trial_ids: list[str], results: Any) -> None:
    """The study's COMPLETE and PRUNED (stopped by ASHA) trials, orphans aside, are exactly the trials with rows (no
    repeat was answered in a grid); orphans' rows (if any) moved to results/.orphaned."""
    orphans = set(study.user_attrs.get("fsf_orphans", []))
    ran = [
        t.user_attrs.get("tune_trial_id")
        for t in study.trials
        if t.state.name in ("COMPLETE", "PRUNED") and t.number not in orphans
    ]
    trials = [(t.number, t.state.name, t.params, t.user_attrs) for t in study.trials]
    assert sorted(map(str, ran)) == sorted(row_trial_ids), trials
    tune_ids = {t.number: t.user_attrs.get("tune_trial_id") for t in study.trials}
    moved = {p.name for p in (results / ".orphaned").glob("trial=*")}
    assert moved <= {f"trial={tune_ids[n]}" for n in orphans}
