"""A racing confirmation end to end: rounds of fresh seeds, each run its own trial, the race's
record in confirm/sweep.json; the driver is SIGKILLed after the first round and `fsf confirm
DIR` continues the race where it was (round 1 neither retrained nor decided again); `fsf best`
says how many seeds each configuration got, which round dropped which and why it stopped."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.sweep.test_confirm import CHEAP_EVALS, _space

pytestmark = pytest.mark.slow


def test_a_killed_race_continues_where_it_was(tmp_path):
    from fsf.cli.sweep import main
    from fsf.results import read_results
    from tests.sweep.killing import cli, kill_after, start

    space = _space(
        tmp_path,
        search={
            "parameters": {"policy.name": {"type": "categorical", "values": ["fs"]}},
            "searcher": "grid",
            "scheduler": {"type": "none"},
        },
        # 2 seeds, then 1 more: two rounds (min_rounds), the second at the seed budget
        confirm={
            "top_k": 1,
            "seeds": None,
            "race": {"first_round": 2, "per_round": 1, "max_seeds": 3, "min_rounds": 2},
        },
        base=CHEAP_EVALS,
    )
    sweep = tmp_path / "runs" / "honest"
    meta_path = sweep / "confirm" / "sweep.json"
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "PYTHONUNBUFFERED": "1"}
    proc = start("--space", str(space), env=env)

    def rounds_recorded() -> int:
        try:
            return len(json.loads(meta_path.read_text()).get("race", {}).get("rounds", []))
        except (OSError, ValueError):
            return 0

    kill_after(proc, rounds_recorded, n=1)
    meta = json.loads(meta_path.read_text())
    assert not meta["finished"] and meta["scheme"] == "race" and meta["seeds"] == [100, 101, 102]
    (first,) = meta["race"]["rounds"]
    assert first["round"] == 1 and first["seed_list"] == [100, 101] and first["stop"] is None
    results = sweep / "confirm" / "results"
    before = {p: p.stat().st_mtime_ns for p in results.glob("trial=*/seed-10[01].parquet")}
    assert len(before) == 4  # the candidate and the baseline on both first seeds

    done = subprocess.run(
        cli("confirm", str(sweep)), env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "the race went on at round 2 (1 round(s) decided before)" in done.stdout
    meta = json.loads(meta_path.read_text())
    assert meta["finished"] and [r["round"] for r in meta["race"]["rounds"]] == [1, 2]
    assert meta["race"]["rounds"][0] == first  # round 1 was not decided again
    assert meta["race"]["stop"] and meta["race"]["rounds"][1]["seed_list"] == [100, 101, 102]
    # round 1's runs were read back, not retrained; every run ran once, completed
    assert {p: p.stat().st_mtime_ns for p in before} == before
    rows = read_results(sweep / "confirm").table.select(["trial_id", "seed", "status"])
    runs = {(r["trial_id"], r["seed"], r["status"]) for r in rows.to_pylist()}
    ids = [c["confirm_trial_id"] for c in meta["candidates"]]
    assert runs == {(t, s, "completed") for t in ids for s in (100, 101, 102)}

    # the answer says how many seeds each configuration got and why the race stopped
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["best", str(sweep), "--lang", "target-mean", "--top", "3"]) == 0
    text = out.getvalue()
    assert "confirmation stage, a race" in text
    assert f"race:      seeds per configuration: {ids[0]} (fs, search #1) 3" in text
    assert "race:      round 1: 2 shared seeds (seeds 100-101)" in text
    assert f"race:      stopped: {meta['race']['stop']}" in text
