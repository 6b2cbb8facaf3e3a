"""fsf across the Ray versions it supports (2.45 to 2.60): the private instance asks for token
authentication on every Ray that has it (2.52 and later; a local `ray.init()` turns it on by
itself only from 2.59), says how it is protected where Ray has none, and a driver whose Ray
differs from the cluster's gets one line naming both versions and the fix, exit 2."""

from __future__ import annotations

import platform

import pytest
import yaml

from fsf.errors import UsageError
from fsf.sweep._ray import _private_auth, _version_mismatch


@pytest.mark.parametrize("version", ["2.52.0", "2.55.1", "2.58.1", "2.59.0", "2.60.0", "3.0.0"])
def test_token_auth_is_asked_for_on_every_ray_that_has_it(version):
    env: dict[str, str] = {}
    assert _private_auth(version, env) is None
    assert env["RAY_AUTH_MODE"] == "token" and len(env["RAY_AUTH_TOKEN"]) == 64


@pytest.mark.parametrize("version", ["2.45.0", "2.50.1", "2.51.2"])
def test_a_ray_without_token_auth_is_left_alone_and_says_how_it_is_protected(version):
    env: dict[str, str] = {}
    line = _private_auth(version, env)
    assert env == {}  # RAY_AUTH_MODE=token would mean nothing to this Ray
    assert f"Ray {version} has no token authentication" in line and "127.0.0.1" in line
    assert "\n" not in line


def test_the_users_auth_mode_and_token_are_kept():
    env = {"RAY_AUTH_MODE": "disabled"}
    assert _private_auth("2.60.0", env) is None and env == {"RAY_AUTH_MODE": "disabled"}
    env = {"RAY_AUTH_TOKEN_PATH": "/somewhere"}
    _private_auth("2.55.1", env)
    assert env == {"RAY_AUTH_TOKEN_PATH": "/somewhere", "RAY_AUTH_MODE": "token"}


def _other_ray() -> str:
    """A supported Ray other than the one installed (the floor job runs 2.45)."""
    return "2.60.0" if _ray_version() == "2.45.0" else "2.45.0"


def _rays_mismatch_error(cluster_ray: str, cluster_python: str) -> RuntimeError:
    """The error Ray's own check raises when this process joins a cluster of another Ray."""
    from ray._private.utils import check_version_info

    try:
        check_version_info(
            {"ray_version": cluster_ray, "python_version": cluster_python},
            this_process_address="127.0.0.1",
        )
    except RuntimeError as exc:
        return exc
    raise AssertionError("Ray accepted the other version")


def test_a_driver_on_another_ray_than_the_clusters_is_one_line_naming_both():
    import ray

    other = _other_ray()
    err = _version_mismatch(_rays_mismatch_error(other, platform.python_version()), "h:6379")
    assert isinstance(err, UsageError) and err.exit_code == 2
    msg = str(err)
    assert "\n" not in msg
    assert f"the cluster at h:6379 runs Ray {other}, this driver Ray {ray.__version__}" in msg
    assert f"pip install 'ray[tune,train]=={other}'" in msg


def test_a_python_mismatch_names_the_python_versions():
    err = _version_mismatch(_rays_mismatch_error(_ray_version(), "3.10.4"), "h:6379")
    assert err is not None and "runs Python 3.10.4" in str(err)
    assert _version_mismatch(RuntimeError("something else"), "h") is None


def _ray_version() -> str:
    import ray

    return ray.__version__


def test_fsf_sweep_against_a_cluster_of_another_ray_exits_2_with_one_line(
    tmp_path, monkeypatch, capsys
):
    """The whole path, with `ray.init` answering as Ray does for a cluster on Ray 2.45."""
    import ray

    from fsf.cli.sweep import main

    mismatch = _rays_mismatch_error(_other_ray(), platform.python_version())

    def init(*args, **kwargs):
        raise mismatch

    monkeypatch.setattr(ray, "init", init)
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    space = tmp_path / "s.yaml"
    space.write_text(
        yaml.safe_dump(
            {
                "name": "v",
                "base": {
                    "model": {"name": "synthetic"},
                    "task": {
                        "name": "classification",
                        "dataset": "synthetic:topic",
                        "text_fields": ["text"],
                        "num_labels": 4,
                    },
                    "source_lang": "en",
                    "target_langs": ["fr"],
                },
                "search": {
                    "parameters": {"optim.lr": {"type": "float", "low": 1e-4, "high": 1e-3}}
                },
                "storage": {"path": str(tmp_path / "runs")},
            }
        )
    )
    code = main(["--space", str(space), "--address", "127.0.0.1:6379", "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and "Ray version mismatch" in err[0] and _other_ray() in err[0], err


def test_a_resume_on_another_ray_says_so(tmp_path):
    """Resuming across the supported Rays works both ways (scripts/smoke.py --resume-with,
    docs/benchmarks.md); the resume notes that the runs differ in what they ran with."""
    import json

    from fsf.provenance import stack_versions
    from fsf.sweep.folder import other_stack_note

    now = stack_versions()
    meta = tmp_path / "sweep.json"
    meta.write_text(json.dumps({"provenance": {"driver": {**now, "ray": _other_ray()}}}))
    note = other_stack_note(tmp_path)
    assert note is not None and f"ray {_other_ray()} -> {now['ray']}" in note and "fsf show" in note
    meta.write_text(json.dumps({"provenance": {"driver": {**now, "host": "elsewhere"}}}))
    assert other_stack_note(tmp_path) is None  # the same stack on another host
    meta.write_text(json.dumps({"name": "before provenance was recorded"}))
    assert other_stack_note(tmp_path) is None
