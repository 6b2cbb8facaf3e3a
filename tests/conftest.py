"""Shared fixtures: tiny randomly initialised encoders and hub-shaped datasets on disk."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("DS_ACCELERATOR", "cpu")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def assets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from fsf.testing import pair_dataset, tiny_model

    root = tmp_path_factory.mktemp("assets")
    return {
        "xlmr": tiny_model(root / "xlmr", "xlmr", layers=2),
        "bert": tiny_model(root / "bert", "bert", layers=2),
        "pawsx": pair_dataset(root / "pawsx", "pawsx"),
        "xnli": pair_dataset(root / "xnli", "xnli", seed=1),
    }


@pytest.fixture()
def run_config(assets: dict[str, Path], tmp_path: Path):
    """A factory of small, valid run configs on the tiny XLM-R and PAWS-X-shaped data."""
    from fsf.config import apply_overrides, validate_run_config

    def make(**overrides: object):
        base = {
            "name": "t",
            "model": {"name": str(assets["xlmr"])},
            "task": {"name": "pawsx", "dataset": str(assets["pawsx"])},
            "source_lang": "en",
            "target_langs": ["de", "fr"],
            "optim": {"max_steps": 6, "batch_size": 8, "lr": 1e-3},
            "eval": {"every_steps": 3, "batch_size": 32},
            "output_dir": str(tmp_path / "runs"),
        }
        return validate_run_config(apply_overrides(base, list(overrides.items())))

    return make


@pytest.fixture(scope="session")
def s3():
    """A local S3 endpoint (moto, offline) for the session; the AWS_* variables point at it.
    Make a bucket per test with `s3.create_bucket(name)`."""
    from tests.s3 import s3_server

    with s3_server() as server:
        yield server


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Order the tests so that two xdist workers finish together (`-n 2 --dist worksteal`,
    the README's command). Worksteal hands the first half of this list to one worker and the
    second half to the other, and a worker that runs out steals from the tail of the other's
    queue. So each half starts with half of the slow tests (dealt alternately, in collection
    order) and ends with fast ones: the last tests either worker runs are then seconds long,
    where a minutes-long Ray sweep left last made one worker idle for its whole length. In a
    serial run this only moves the slow tests first."""
    slow = [item for item in items if item.get_closest_marker("slow") is not None]
    if not slow or len(slow) == len(items):
        return
    fast = [item for item in items if item.get_closest_marker("slow") is None]
    first, second = slow[0::2], slow[1::2]
    take = max(len(items) // 2 - len(first), 0)
    items[:] = first + fast[:take] + second + fast[take:]
