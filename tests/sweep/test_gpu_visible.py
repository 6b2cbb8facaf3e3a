"""A trial that was given GPUs but sees none (a CPU build of torch on a GPU node, a node whose
driver lost its GPU) fails with one line saying why, instead of training on the CPU."""

from __future__ import annotations

import pytest
import yaml

from fsf.errors import FsfError
from fsf.train.device import check_gpus_visible, run_device


def test_no_gpu_asked_for_is_no_check():
    check_gpus_visible(0)
    check_gpus_visible(0.0)


def test_a_gpu_asked_for_and_not_seen_is_one_line(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    with pytest.raises(FsfError) as err:
        check_gpus_visible(1)
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.startswith("this trial asked for 1 GPU(s) (search.resources.gpus) but sees none")
    assert f"torch {torch.__version__}" in msg and "CUDA_VISIBLE_DEVICES='0'" in msg
    assert "search.resources.gpus: 0" in msg


def test_the_device_recorded_is_the_one_the_run_trains_on(monkeypatch):
    from types import SimpleNamespace

    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert run_device(SimpleNamespace(device="auto")) == "cpu"
    assert run_device(SimpleNamespace(device="cuda")) == "cuda (none visible)"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i: "NVIDIA H100 80GB HBM3")
    assert run_device(SimpleNamespace(device="auto")) == "cuda:0 (NVIDIA H100 80GB HBM3)"
    assert run_device(SimpleNamespace(device="cpu")) == "cpu"


@pytest.mark.slow
def test_a_sweep_trial_given_a_gpu_it_cannot_see_fails_with_the_reason(tmp_path, capsys):
    """Ray is told this machine has a GPU; the CPU build of torch sees none: the trial fails
    before training, its reason recorded in the results and printed as one line."""
    import ray

    from fsf.cli.sweep import main
    from fsf.results import read_results

    space = tmp_path / "gpu.yaml"
    space.write_text(
        yaml.safe_dump(
            {
                "name": "gpu",
                "base": {
                    "model": {"name": "synthetic", "max_length": 32},
                    "task": {
                        "name": "classification",
                        "dataset": "synthetic:topic",
                        "text_fields": ["text"],
                        "num_labels": 4,
                    },
                    "source_lang": "en",
                    "target_langs": ["fr"],
                    "optim": {"max_steps": 4, "batch_size": 8},
                },
                "search": {
                    "parameters": {"policy.name": {"type": "categorical", "values": ["df"]}},
                    "searcher": "grid",
                    "scheduler": {"type": "none"},
                    "resources": {"cpus": 1, "gpus": 1},
                    "max_failures": 0,
                },
                "storage": {"path": str(tmp_path / "runs")},
            }
        )
    )
    ray.init(num_cpus=2, num_gpus=1, include_dashboard=False, _node_ip_address="127.0.0.1")
    try:
        code = main(["--space", str(space), "--no-progress"])
    finally:
        ray.shutdown()
    out = capsys.readouterr().out
    assert code == 1  # every trial failed
    (line,) = [x for x in out.splitlines() if "failed:" in x]
    assert "asked for 1 GPU(s) (search.resources.gpus) but sees none" in line, out
    rows = read_results(tmp_path / "runs" / "gpu").table
    assert set(rows["status"].to_pylist()) == {"failed"}
    assert "sees none" in rows["failure_reason"][0].as_py()
