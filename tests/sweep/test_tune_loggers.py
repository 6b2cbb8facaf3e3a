"""A real tiny sweep with Ray Tune's own loggers on: each trial folder has result.json,
progress.csv and TensorBoard events; ExperimentAnalysis and Tuner.restore(...).get_results()
see every trial; `--set` reaches the trials' run configs, and the artifacts they ask for land
in the trial's own folder of the sweep; the dry run drew the same first configurations."""

from __future__ import annotations

import json

import pytest
import yaml

pytestmark = pytest.mark.slow


def test_tune_loggers_artifacts_and_dry_run_of_a_real_sweep(assets, tmp_path, capsys):
    import ray
    from ray import tune
    from ray.tune import ExperimentAnalysis

    from fsf.cli.sweep import main
    from fsf.sweep.plan import sample_configurations
    from fsf.sweep.space import load_space

    space = tmp_path / "s.yaml"
    space.write_text(
        yaml.safe_dump(
            {
                "name": "logs",
                "base": {
                    "model": {"name": str(assets["xlmr"])},
                    "task": {"name": "pawsx", "dataset": str(assets["pawsx"])},
                    "target_langs": ["de", "fr"],
                    "optim": {"max_steps": 4, "batch_size": 8, "lr": 1e-3},
                    "eval": {"every_steps": 2},
                },
                "search": {
                    "parameters": {
                        "policy.c1": {"type": "float", "low": 0.01, "high": 0.5},
                        "optim.lr": {"type": "float", "low": 1e-5, "high": 9e-5, "log": True},
                    },
                    "searcher": "random",
                    "searcher_seed": 7,
                    "num_trials": 2,
                },
                "storage": {"path": str(tmp_path / "runs")},
            }
        )
    )
    sets = ["--set", "eval.predictions=true", "--set", "checkpoint.save=final"]
    try:
        code = main(["--space", str(space), "--no-progress", "--num-cpus", "2", *sets])
    finally:
        if ray.is_initialized():
            ray.shutdown()
    assert code == 0, capsys.readouterr().err
    sweep = tmp_path / "runs" / "logs"
    trial_dirs = [
        d for d in (sweep / "tune").iterdir() if d.is_dir() and (d / "params.json").exists()
    ]
    assert len(trial_dirs) == 2
    for d in trial_dirs:
        assert (d / "result.json").stat().st_size > 0 and (d / "progress.csv").stat().st_size > 0
        events = list(d.glob("events.out.tfevents.*"))
        assert events, d
        # TensorBoard's x axis is the optimizer step (evaluations every 2 of 4 steps), not
        # the count of reports (1, 2, 3); the evaluation before training (step 0) shows at 1:
        # Tune's logger takes a timesteps_total of 0 as missing and uses the report count
        steps = _tensorboard_steps(events[0], "ray/tune/dev_target_mean")
        assert steps[1:] == [2, 4] and steps[0] in (0, 1), steps
        # the folder names the sampled learning rate as it is, not rounded to 4 decimals
        lr = json.loads((d / "params.json").read_text())["optim.lr"]
        assert f"optim.lr={lr:.6g}" in d.name and lr < 1e-4, d.name
    frame = ExperimentAnalysis(str(sweep / "tune")).dataframe()
    assert len(frame) == 2 and "dev_target_mean" in frame.columns
    from fsf.sweep.trial import _trial
    from fsf.sweep.tune import result_grid

    restored = tune.Tuner.restore(str(sweep / "tune"), trainable=_trial)
    results = restored.get_results().get_dataframe()
    assert len(result_grid(sweep).get_dataframe()) == 2
    assert len(results) == 2 and results["dev_target_mean"].notna().all()
    # --set reached every trial; each kept its artifacts in its own folder of the sweep
    trial_ids = set(results["trial_id"])
    runs = sweep / "runs"
    assert {p.name for p in runs.iterdir()} == trial_ids
    for trial in trial_ids:
        seed_dir = runs / trial / "seed-0"
        assert sorted(p.name for p in (seed_dir / "predictions" / "pawsx").glob("test-*.tsv")) == [
            "test-de.tsv",
            "test-en.tsv",
            "test-fr.tsv",
        ]
        info = json.loads((seed_dir / "checkpoint" / "fsf_checkpoint.json").read_text())
        assert info["rule"] == "final" and info["step"] == 4
    # the dry run's draws are the sweep's first configurations
    import optuna

    study = optuna.load_study(study_name="logs", storage=f"sqlite:///{sweep / 'optuna.db'}")
    drawn = [t.params for t in sorted(study.trials, key=lambda t: t.number)]
    assert sample_configurations(load_space(space), 2) == drawn


def _tensorboard_steps(path, tag: str) -> list[int]:
    """The steps of a scalar in a TensorBoard event file (TFRecord framing, Event protos)."""
    import struct

    from tensorboardX.proto import event_pb2

    data, steps, at = path.read_bytes(), [], 0
    while at + 12 <= len(data):
        (length,) = struct.unpack("<Q", data[at : at + 8])
        event = event_pb2.Event.FromString(data[at + 12 : at + 12 + length])
        at += 12 + length + 4
        if any(v.tag == tag for v in event.summary.value):
            steps.append(event.step)
    return steps


def test_mlflow_logger_records_the_trials_in_the_sweep(assets, tmp_path):
    mlflow = pytest.importorskip("mlflow")
    import ray

    from fsf.sweep.space import validate_space
    from fsf.sweep.tune import run_sweep

    spec = validate_space(
        {
            "name": "ml",
            "base": {
                "model": {"name": str(assets["xlmr"])},
                "task": {"name": "pawsx", "dataset": str(assets["pawsx"])},
                "target_langs": ["de"],
                "optim": {"max_steps": 2, "batch_size": 8},
                "eval": {"every_steps": 2},
            },
            "search": {"num_trials": 1, "searcher": "random"},
            "loggers": ["mlflow"],
        }
    )
    try:
        out = run_sweep(spec, storage_path=str(tmp_path), progress=False, num_cpus=1)
    finally:
        if ray.is_initialized():
            ray.shutdown()
    assert out.statuses == {"finished": 1}
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'ml' / 'mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=["ml"])
    assert len(runs) == 1 and runs["metrics.dev_target_mean"].notna().all()


def test_wandb_logger_records_the_trials_offline(assets, tmp_path, monkeypatch):
    """W&B in offline mode (no account, no network): one run per trial, with fsf's scalars in
    its history. Skipped unless wandb is installed (`pip install 'fsf[wandb]'`)."""
    pytest.importorskip("wandb")

    import ray

    from fsf.sweep.space import validate_space
    from fsf.sweep.tune import run_sweep

    monkeypatch.delenv("WANDB_MODE", raising=False)  # `mode: offline` in the space is enough
    monkeypatch.setenv("WANDB_SILENT", "true")
    spec = validate_space(
        {
            "name": "wb",
            "base": {
                "model": {"name": str(assets["xlmr"])},
                "task": {"name": "pawsx", "dataset": str(assets["pawsx"])},
                "target_langs": ["de"],
                "optim": {"max_steps": 2, "batch_size": 8},
                "eval": {"every_steps": 2},
            },
            "search": {"num_trials": 1, "searcher": "random"},
            "loggers": {"wandb": {"mode": "offline", "dir": str(tmp_path / "wandb-logs")}},
        }
    )
    try:
        out = run_sweep(spec, storage_path=str(tmp_path), progress=False, num_cpus=1)
    finally:
        if ray.is_initialized():
            ray.shutdown()
    assert out.statuses == {"finished": 1}
    runs = list((tmp_path / "wandb-logs").rglob("offline-run-*/run-*.wandb"))
    assert len(runs) == 1  # one trial, one W&B run; its history holds fsf's scalars
    assert b"dev_target_mean" in runs[0].read_bytes()
