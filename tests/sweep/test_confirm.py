"""A real tiny sweep with a confirmation stage: Optuna, Ray Tune and `fsf-sweep best` agree on
the winner; the confirmation re-runs the winners and the baseline on fresh seeds at full
budget; the answer comes from it, with paired statistics; `--emit-config` gives a run config
that trains the chosen configuration."""

from __future__ import annotations

import json
import os
import re
import signal
import threading
import time
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.slow


def _space(tmp_path: Path, **changes: dict) -> Path:
    """The embedded benchmark at a tiny budget: trained models whose scores differ."""
    data: dict = {
        "name": "honest",
        "base": {
            "model": {"name": "synthetic", "max_length": 64},
            "task": {
                "name": "classification",
                "dataset": "synthetic:topic",
                "text_fields": ["text"],
                "num_labels": 4,
                "max_eval_examples": 96,
            },
            "source_lang": "en",
            "target_langs": ["fr", "ja"],
            "optim": {"max_steps": 24, "batch_size": 16, "lr": 1e-3, "warmup_ratio": 0.1},
            "eval": {"every_steps": 8, "batch_size": 96},
        },
        "search": {
            "parameters": {
                "policy.name": {"type": "categorical", "values": ["df", "fsf"]},
                "optim.lr": {"type": "float", "low": 3e-4, "high": 4e-3, "log": True},
            },
            "objective": {"metric": "dev_target_mean", "mode": "max"},
            "searcher": "tpe",
            "num_trials": 4,
            "max_concurrent": 2,
            "scheduler": {"type": "asha", "grace_period": 8, "reduction_factor": 2},
            "seeds": [0],
        },
        "confirm": {"top_k": 1, "seeds": [7, 8], "baseline": {"policy.name": "df"}},
        "storage": {"path": str(tmp_path / "runs")},
    }
    for key, value in changes.items():
        data[key] = {**data[key], **value}
    path = tmp_path / "honest.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


#: base changes that make a run cheap where only the sweep's path is tested (kill/resume),
#: not which configuration wins: 2 evaluations of 32 sentences a language instead of 4 of 96
CHEAP_EVALS = {
    "task": {
        "name": "classification",
        "dataset": "synthetic:topic",
        "text_fields": ["text"],
        "num_labels": 4,
        "max_eval_examples": 32,
    },
    "eval": {"every_steps": 12, "batch_size": 96, "at_start": False},
}


def _descends_from(pid: int, ancestor: int) -> bool:
    while pid > 1:
        if pid == ancestor:
            return True
        try:
            pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            return False
    return False


def _kill_a_trial_worker_once(folder: Path, stop: threading.Event, killed: list[int]) -> None:
    """SIGKILL one Ray Tune trial worker of this process's Ray instance once `folder` holds a
    result fragment (a worker death: what `confirm.retries` is for)."""
    while not stop.is_set():
        if any(folder.glob("trial=*/seed-*.parquet")):
            for entry in Path("/proc").iterdir():
                if not entry.name.isdigit():
                    continue
                try:
                    cmd = (entry / "cmdline").read_bytes()
                except OSError:
                    continue
                pid = int(entry.name)
                if b"ray::ImplicitFunc" in cmd and _descends_from(pid, os.getpid()):
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
                    return
        time.sleep(0.2)


def test_search_then_confirmation(tmp_path, capsys):
    """A search and its confirmation, one of whose trial workers is killed while it trains:
    the trial is run again (`confirm.retries`), so the answer has every candidate and the
    baseline on every fresh seed."""
    import optuna
    import ray
    from ray import tune

    from fsf.cli.sweep import main
    from fsf.config import validate_run_config
    from fsf.results import best, best_per_language, read_results
    from fsf.sweep.trial import _trial, is_confirm_run
    from fsf.yamlfile import read_yaml

    space = _space(tmp_path)
    sweep = tmp_path / "runs" / "honest"
    stop, killed = threading.Event(), []
    watcher = threading.Thread(
        target=_kill_a_trial_worker_once,
        args=(sweep / "confirm" / "results", stop, killed),
        daemon=True,
    )
    watcher.start()
    try:
        try:
            code = main(["--space", str(space), "--no-progress", "--num-cpus", "2"])
        finally:
            stop.set()
        assert code == 0
        out = capsys.readouterr().out
        assert "confirmation finished: " in out and "confirmed configurations" in out
        assert killed, "no confirmation worker was killed"
        assert re.search(
            r"note: confirmation trial \S+ was run again after: 1 failure\(s\), the last "
            r"(\w*Died|The actor died)",
            out,
        ), out

        # one objective: Optuna's best, Tune's best and fsf's best are the same configuration
        study = optuna.load_study(study_name="honest", storage=f"sqlite:///{sweep / 'optuna.db'}")
        assert study.metric_names == ["dev_target_mean"]
        search = read_results(sweep)
        ranked = best(search, "target-mean", top=10).entries
        top = ranked[0]
        # configurations tied with the best (exactly equal scores) are equally "best": each
        # tool breaks the tie its own way, so the check is that it picks among them
        tied = {
            t
            for e in ranked
            if e["selection_score"] == top["selection_score"]
            for t in e["trial_ids"]
        }
        assert study.best_trial.user_attrs["tune_trial_id"] in tied
        assert study.best_value == pytest.approx(top["selection_score"], abs=1e-12)
        # Tune's record of the call holds both stages (one fit): its search trials are those
        # whose config names no candidate
        grid = tune.Tuner.restore(str(sweep / "tune"), _trial).get_results()
        confirm_runs = [r for r in grid if is_confirm_run(r.config)]
        meta = json.loads((sweep / "confirm" / "sweep.json").read_text())
        assert len(confirm_runs) == 2 * len(meta["candidates"])  # each on seeds 7 and 8
        searched = [r for r in grid if not is_confirm_run(r.config)]
        tune_best = max(searched, key=lambda r: r.metrics["dev_target_mean"])
        assert tune_best.metrics["trial_id"] in tied
        for t in study.trials:  # every trained trial: Optuna's value is fsf's
            if t.state.name == "COMPLETE" and "tune_trial_id" in t.user_attrs:
                rk = best(search, "target-mean", top=10)
                (e,) = [x for x in rk.entries if t.user_attrs["tune_trial_id"] in x["trial_ids"]]
                assert t.value == pytest.approx(e["selection_score"], abs=1e-12)

        # the confirmation: the search's best and the best DF, fresh seeds, full budget
        meta = json.loads((sweep / "confirm" / "sweep.json").read_text())
        assert meta["stage"] == "confirm" and meta["seeds"] == [7, 8] and meta["finished"]
        roles = [c["role"] for c in meta["candidates"]]
        assert roles in (["candidate", "baseline"], ["candidate+baseline"])
        assert meta["candidates"][0]["trial_id"] == top["trial_id"]
        confirmed = read_results(sweep / "confirm")
        runs = confirmed.table.select(["trial_id", "seed", "status", "step"]).to_pylist()
        assert {r["seed"] for r in runs} == {7, 8} and {r["status"] for r in runs} == {"completed"}
        assert max(r["step"] for r in runs) == 24
        per = best_per_language(confirmed)
        assert per.stage["name"] == "confirm"
        assert per.target_mean["n_seeds"] == 2 and per.target_mean["budget"]["full"]
        vs = per.target_mean["vs_baseline"]
        assert vs["is_baseline"] or (vs["n"] == 2 and vs["verdict"] != "untested")
        assert per.target_mean["search"]["trial_id"] in {c["trial_id"] for c in meta["candidates"]}

        # every confirmed run wrote prediction files; only the winner keeps its checkpoints
        runs_dir = sweep / "confirm" / "runs"
        preds = sorted(
            p.parents[3].name for p in runs_dir.glob("*/seed-*/predictions/*/test-fr.tsv")
        )
        assert len(preds) == 2 * len(meta["candidates"])
        kept = {p.parents[2].name for p in runs_dir.glob("*/seed-*/checkpoint/config.json")}
        assert kept == set(per.target_mean["trial_ids"])
        assert len(list(runs_dir.glob("*/seed-*/checkpoint/config.json"))) == 2
        assert sorted(meta["checkpoints_pruned"]) == sorted(set(preds) - kept)

        # queries on the sweep answer from the confirmation by default
        assert main(["best", "--sweep", str(sweep), "--per-language", "--format", "json"]) == 0
        data = json.loads(capsys.readouterr().out)
        assert data["stage"]["name"] == "confirm" and data["target_mean"]["seeds"] == [7, 8]
        assert main(["best", "--sweep", str(sweep), "--lang", "fr", "--stage", "search"]) == 0
        assert "search stage" in capsys.readouterr().out
        # running it again reports it done, nothing retrained
        assert main(["confirm", str(sweep), "--no-progress", "--num-cpus", "2"]) == 0
        assert "already done" in capsys.readouterr().out
        assert main(["confirm", str(sweep), "--seeds", "9", "10", "--no-progress"]) == 1
        assert "other settings" in capsys.readouterr().err

        # --emit-config: the run config of the confirmed winner
        emitted = tmp_path / "best.yaml"
        assert (
            main(["best", "--sweep", str(sweep), "--per-language", "--emit-config", str(emitted)])
            == 0
        )
        config = validate_run_config(read_yaml(emitted))
        assert config.seed == 7 and config.optim.max_steps == 24
        assert config.policy.name == per.target_mean["policy"]
        assert config.optim.lr == pytest.approx(per.target_mean["config"]["lr"])
        assert "rule objective" in emitted.read_text().splitlines()[1]
    finally:
        if ray.is_initialized():
            ray.shutdown()


def test_a_killed_confirmation_resumes_each_candidate_once(tmp_path):
    """The driver is SIGKILLed while the confirmation trains its first candidate; `fsf-sweep
    confirm DIR` finishes it: every candidate runs on every fresh seed exactly once."""
    import os
    import subprocess

    from fsf.results import read_results
    from tests.sweep.killing import cli, kill_after, start

    space = _space(
        tmp_path,
        search={
            "parameters": {"policy.name": {"type": "categorical", "values": ["df", "fs", "fsf"]}},
            "searcher": "grid",
            "scheduler": {"type": "none"},
        },
        confirm={"top_k": 2},
        base=CHEAP_EVALS,
    )
    sweep = tmp_path / "runs" / "honest"
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "PYTHONUNBUFFERED": "1"}
    proc = start("--space", str(space), env=env)
    confirm_results = sweep / "confirm" / "results"

    def confirm_runs() -> int:  # (fsf resumes from its own records, never Tune's state)
        return len(list(confirm_results.glob("trial=*/seed-*.parquet")))

    kill_after(proc, confirm_runs, n=1)
    assert not json.loads((sweep / "confirm" / "sweep.json").read_text()).get("finished")
    done = subprocess.run(
        cli("confirm", str(sweep)), env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "note: confirmation resumed from its results:" in done.stdout

    meta = json.loads((sweep / "confirm" / "sweep.json").read_text())
    assert meta["finished"]
    rows = read_results(sweep / "confirm").table.select(["trial_id", "seed", "policy", "status"])
    runs = {(r["trial_id"], r["seed"], r["policy"], r["status"]) for r in rows.to_pylist()}
    assert {r[3] for r in runs} == {"completed"}
    policies = sorted(c["params"]["policy.name"] for c in meta["candidates"])
    by_trial: dict[str, set] = {}
    for trial_id, seed, policy, _ in runs:
        by_trial.setdefault((trial_id, policy), set()).add(seed)
    assert sorted(policy for _, policy in by_trial) == policies  # each candidate once
    assert all(seeds == {7, 8} for seeds in by_trial.values())
