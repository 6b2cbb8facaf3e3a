"""Cluster arguments refused before anything starts: a sweep folder on an object store with
no Optuna study storage, and Ray Client addresses."""

from __future__ import annotations

import uuid

import pytest

from fsf.errors import FsfError
from fsf.results.storage import location
from fsf.sweep.space import validate_space


def test_object_store_without_a_study_storage_is_refused_before_any_write(s3, monkeypatch):
    from fsf.sweep.tune import run_sweep

    monkeypatch.delenv("FSF_OPTUNA_STORAGE", raising=False)
    bucket = s3.create_bucket(f"b-{uuid.uuid4().hex[:8]}")
    with pytest.raises(FsfError, match=r"storage\.optuna.*PostgreSQL"):
        run_sweep(validate_space({"name": "x"}), storage_path=bucket, progress=False)
    assert location(bucket).iterdir() == []


def test_ray_client_addresses_are_refused(tmp_path, capsys):
    from fsf.cli.sweep import main

    space = tmp_path / "s.yaml"
    space.write_text(f"name: x\nstorage: {{path: {tmp_path / 'runs'}}}\n")
    code = main(["--space", str(space), "--address", "ray://head:10001", "--no-progress"])
    assert code == 2  # a refusal: a usage error
    err = capsys.readouterr().err
    assert "Ray Client is not supported" in err and "ray job submit" in err
    assert not (tmp_path / "runs").exists()


def test_unknown_storage_scheme_is_a_config_error():
    from fsf.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown storage URI scheme 'ftp'"):
        validate_space({"storage": {"path": "ftp://host/sweeps"}})
