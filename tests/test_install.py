"""Installing fsf into an environment that already holds a supported Ray and torch (a user's
cluster image, a Ray job's `runtime_env`) keeps both: pip's own resolver, asked to install this
checkout into an environment holding torch and the oldest Ray fsf supports, installs fsf and
what it lacks, and neither Ray nor torch (nor any CUDA package in torch's place).

The environment is `FSF_EXISTING_ENV` (a Python; CI's floor job makes one: .ci/floor base) or,
without it, one made here (torch 2.13.0, the local CPU wheel, and that Ray: a few minutes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.version import Version

pytestmark = pytest.mark.slow

ROOT = Path(__file__).parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from floors import floors  # noqa: E402


def _pip(python: Path | str, *args: str, timeout: int = 900) -> str:
    done = subprocess.run(
        [str(python), "-m", "pip", *args], capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def _existing_env(tmp_path: Path) -> Path:
    given = os.environ.get("FSF_EXISTING_ENV")
    if given:
        return Path(given)
    venv = tmp_path / "cluster-env"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    _pip(venv / "bin" / "python", "install", "-q", "torch==2.13.0", f"ray=={floors()['ray']}")
    return venv / "bin" / "python"


def _versions(python: Path) -> dict[str, str]:
    got = json.loads(_pip(python, "list", "--format", "json"))
    return {p["name"].lower(): p["version"] for p in got}


def test_installing_fsf_keeps_the_ray_and_torch_it_finds(tmp_path):
    python = _existing_env(tmp_path)
    before = _versions(python)
    assert Version(before["ray"]) == Version(floors()["ray"])  # the oldest Ray fsf supports
    assert "torch" in before and "fsf" not in before
    report = tmp_path / "report.json"
    # what cluster/README.md tells a user to run, as pip would run it
    _pip(python, "install", "--dry-run", "-q", "--report", str(report), str(ROOT))
    planned = {
        i["metadata"]["name"].lower(): i["metadata"]["version"]
        for i in json.loads(report.read_text())["install"]
    }
    assert "fsf" in planned and "transformers" in planned  # fsf and what it lacks
    assert "ray" not in planned, f"pip would replace Ray {before['ray']} by {planned['ray']}"
    assert "torch" not in planned, f"pip would replace torch {before['torch']}"
    cuda = sorted(n for n in planned if n.startswith(("nvidia-", "triton")))
    assert not cuda, f"pip would pull CUDA packages: {cuda}"
    assert _versions(python) == before  # (a dry run changes nothing)
