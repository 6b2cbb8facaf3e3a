"""Provenance: every result fragment records what its run ran with (versions and device),
a finished status keeps it, `fsf show` prints the driver's stack from sweep.json and the runs'
stacks, and says so when the runs disagree."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from fsf.cli.results import main
from fsf.provenance import PACKAGES, describe, stack_versions
from fsf.results import provenance_summary, read_provenance, read_results
from fsf.results.fragments import finalise_statuses
from fsf.results.schema import PROVENANCE_KEY
from tests.results.helpers import ev2, info, run, write


def _stack(**changes):
    return {**stack_versions(), "device": "cpu", **changes}


def _sweep(tmp_path, stacks):
    sweep = tmp_path / "sw"
    runs = []
    for i, stack in enumerate(stacks):
        r = run(f"t{i}", [ev2(50, 0.8, 0.6 + i / 100), ev2(100, 0.9, 0.7 + i / 100)])
        r[0].provenance = stack
        runs.append(r)
    write(sweep / "results", runs)
    meta = {"name": "sw", "stage": "search", "provenance": {"driver": stack_versions()}}
    (sweep / "sweep.json").write_text(json.dumps(meta))
    return sweep


def test_the_stack_names_every_library_that_changes_the_numbers():
    got = stack_versions()
    import ray
    import torch

    assert got["torch"] == torch.__version__ and got["ray"] == ray.__version__
    assert set(PACKAGES) <= set(got) and got["python"].count(".") == 2
    line = describe({**got, "device": "cuda:0 (NVIDIA H100)", "cuda": "12.8"})
    assert f"torch {torch.__version__} (CUDA 12.8)" in line and line.endswith(
        "on cuda:0 (NVIDIA H100)"
    )


def test_a_fragment_keeps_its_provenance_through_its_final_status(tmp_path):
    sweep = _sweep(tmp_path, [_stack()])
    (path,) = sweep.glob("results/trial=*/seed-*.parquet")
    assert json.loads(pq.read_schema(path).metadata[PROVENANCE_KEY])["device"] == "cpu"
    # a fragment left `running` (a killed worker) is rewritten by the driver: still recorded
    r = run("t9", [ev2(50, 0.8, 0.6)], status="running")
    r[0].provenance = _stack(device="cuda:0 (X)")
    (running,) = write(sweep / "results", [r])
    finalise_statuses(sweep / "results", {})
    assert pq.read_table(running)["status"][0].as_py() == "stopped"
    assert json.loads(pq.read_schema(running).metadata[PROVENANCE_KEY])["device"] == "cuda:0 (X)"
    got = read_provenance(read_results(sweep))
    assert sorted(p["device"] for p in got.values()) == ["cpu", "cuda:0 (X)"]


def test_show_prints_the_driver_and_the_runs_stacks(tmp_path, capsys):
    sweep = _sweep(tmp_path, [_stack(), _stack()])
    assert main(["show", str(sweep)]) == 0
    out = capsys.readouterr().out
    driver = describe(stack_versions(), device=False)
    assert f"driver:    {driver}" in out
    assert f"runs:      2 runs with {describe(_stack())}" in out
    assert "different versions" not in out
    assert main(["show", str(sweep), "--format", "json"]) == 0
    got = json.loads(capsys.readouterr().out)["provenance"]
    assert got["agree"] and got["runs"] == [{"stack": describe(_stack()), "runs": 2}]


@pytest.mark.parametrize("change", [{"torch": "2.11.0+cu128"}, {"device": "cpu"}])
def test_a_sweep_whose_runs_disagree_says_so(tmp_path, capsys, change):
    gpu = _stack(device="cuda:0 (NVIDIA H100)")
    sweep = _sweep(tmp_path, [gpu, gpu, {**gpu, **change}])
    assert main(["show", str(sweep)]) == 0
    out = capsys.readouterr().out
    assert "runs:      2 runs with" in out and "runs:      1 run with" in out
    assert "note: the runs ran with different versions or devices" in out
    assert not provenance_summary(read_results(sweep))["agree"]


def test_fragments_without_provenance_are_counted_not_guessed(tmp_path, capsys):
    sweep = tmp_path / "old"
    write(sweep / "results", [run("t0", [ev2(100, 0.9, 0.7)])])  # written before provenance
    assert info("x").provenance is None
    assert main(["show", str(sweep)]) == 0
    out = capsys.readouterr().out
    assert "runs:      1 run recorded no versions" in out and "driver:" not in out
