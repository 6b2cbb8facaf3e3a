"""The conventions every console script keeps, tried through the installed scripts themselves:
--version, -v / -q, a closed pipe ends quietly with exit 0, usage errors and refusals exit 2,
results commands take the sweep DIR positionally, fsf-sweep --set and run --dry-run, and no
library output on stdout."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from fsf import __version__

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ("fsf", "fsf-train", "fsf-sweep", "fsf-policy", "fsf-synth")


def _env() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


def run(*argv: str, cwd: Path | None = None, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / argv[0]), *argv[1:]],
        capture_output=True,
        text=True,
        cwd=cwd or ROOT,
        env=_env(),
        timeout=timeout,
    )


def closed_pipe(*argv: str) -> subprocess.CompletedProcess:
    """Run a script whose reader stops after a few bytes (`... | head -c 10`)."""
    proc = subprocess.Popen(
        [str(BIN / argv[0]), *argv[1:]],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
        env=_env(),
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.read(10)
    proc.stdout.close()
    err = proc.stderr.read().decode()
    proc.wait(timeout=240)
    return subprocess.CompletedProcess(argv, proc.returncode, "", err)


@pytest.mark.parametrize("script", SCRIPTS)
def test_version_on_every_command(script):
    out = run(script, "--version")
    assert out.returncode == 0 and out.stdout.strip() == f"{script} (fsf {__version__})"


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """A results folder of two hand-built runs (no training)."""
    from tests.results.helpers import ev2, write
    from tests.results.helpers import run as make_run

    root = tmp_path_factory.mktemp("sweep")
    runs = [
        make_run(f"t{i}", [ev2(s, 0.5 + 0.01 * s + i * 0.01, 0.4 + 0.01 * s) for s in range(20)])
        for i in range(2)
    ]
    write(root / "results", runs)
    return root


def test_best_takes_the_sweep_dir_positionally_and_a_closed_pipe_exits_0(sweep):
    new, old = (
        run("fsf-sweep", "best", str(sweep), "--lang", "de", "--top", "2"),
        run("fsf-sweep", "best", "--sweep", str(sweep), "--lang", "de", "--top", "2"),
    )
    assert new.returncode == 0 and new.stdout == old.stdout
    assert "best configurations for de" in new.stdout
    piped = closed_pipe("fsf-sweep", "best", str(sweep), "--per-language", "--format", "json")
    assert piped.returncode == 0 and piped.stderr == ""
    explain = closed_pipe(
        "fsf-policy", "explain", "--policy", "fsf", "--layers", "24", "--steps", "3000",
        "--format", "json",
    )  # fmt: skip
    assert explain.returncode == 0 and explain.stderr == ""
    config = closed_pipe("fsf-train", "--print-config")
    assert config.returncode == 0 and config.stderr == ""


def test_usage_errors_and_refusals_exit_2(tmp_path):
    storage = tmp_path / "runs"
    (storage / "policies").mkdir(parents=True)
    (storage / "policies" / "space.yaml").write_text("name: policies\n")
    tune = storage / "policies" / "tune"  # Tune saved its state: a sweep, not a stillborn one
    tune.mkdir()
    (tune / "tuner.pkl").write_bytes(b"")
    (tune / "experiment_state-2026-12-01_00-00-00.json").write_text("{}")
    space = str(ROOT / "sweeps" / "policies.yaml")
    refused = run("fsf-sweep", "--space", space, "--storage-path", str(storage), "-q")
    assert refused.returncode == 2 and "already holds a sweep" in refused.stderr
    bad_set = run("fsf-sweep", "validate", "--space", space, "--set", "optim.lr")
    assert bad_set.returncode == 2 and "expected key=value" in bad_set.stderr
    invalid = run("fsf-sweep", "validate", "--space", space, "--set", "optim.lr=-1", "-v")
    assert invalid.returncode == 2 and "base.optim.lr" in invalid.stderr
    assert run("fsf-sweep", "best", str(tmp_path), "--per-language").returncode == 2
    assert run("fsf-sweep", "--no-such-flag").returncode == 2  # argparse's own


def test_set_and_dry_run_write_nothing(tmp_path):
    space = str(ROOT / "sweeps" / "policies.yaml")
    valid = run("fsf-sweep", "-q", "validate", "--space", space, "--set", "optim.max_steps=50")
    assert valid.returncode == 0 and "valid" in valid.stdout
    out = run(
        "fsf-sweep", "run", "--space", space, "--storage-path", str(tmp_path / "runs"),
        "--set", "optim.max_steps=50", "--set", "search_is_not_a_key=1", "--dry-run", "3",
    )  # fmt: skip
    assert out.returncode == 2 and "search_is_not_a_key" in out.stderr  # validated like the YAML
    out = run(
        "fsf-sweep", "run", "--space", space, "--storage-path", str(tmp_path / "runs"),
        "--set", "optim.max_steps=50", "--max-concurrent", "3", "--dry-run", "3",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert sum(line.lstrip().startswith(("1.", "2.", "3.")) for line in lines) == 3
    assert "policy.name=" in out.stdout and "(1 worker, 50 steps)" in out.stdout
    assert "trials: 12 x 1 seed = 12 training runs" in out.stdout
    assert "3 concurrent x 1 worker x 1 CPU = 3 CPUs" in out.stdout
    # the confirmation stage too: its runs (one trial each) and what they cost
    assert (
        "confirmation: the 2 best configuration(s) and the baseline (policy.name=df), each run "
        "(50 steps, no early stopping) its own trial, 3 at a time" in out.stdout
    )
    assert "race: round 1 = 3 configurations x 3 fresh seeds (from 100) = 9 runs" in out.stdout
    assert "at most 6 seeds each = 18 runs (4 rounds)" in out.stdout
    assert "nothing was started and nothing was written" in out.stdout
    assert not (tmp_path / "runs").exists()


def test_explain_without_losses_uses_the_example_curve_and_the_shipped_window():
    out = run("fsf-policy", "explain", "--policy", "fsf", "--layers", "12", "--steps", "200")
    assert out.returncode == 0
    assert "loss = 0.35 + 0.75 * exp(-t / 60); loss-trend window 20, threshold 0.1" in out.stdout
    assert "│ 76 " in out.stdout  # P2 from iteration 76 (fsf.policies.explain.EXAMPLE_LOSS)
    paper = run(
        "fsf-policy", "explain", "--policy", "fsf", "--layers", "12", "--steps", "200",
        "--set", "window=100",
    )  # fmt: skip
    assert "loss-trend window 100" in paper.stdout


@pytest.mark.slow
def test_fsf_train_prints_only_its_results_on_stdout(tmp_path):
    out = run(
        "fsf-train", "-q", "--set", "optim.max_steps=2", "--set", "eval.every_steps=2",
        "--set", f"output_dir={tmp_path}",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "DeepSpeed" not in out.stdout and "built successfully" not in out.stdout
    assert out.stdout.lstrip().startswith("run [fsf] accuracy") and "evaluation rows:" in out.stdout
