"""The private Ray instance of `fsf-sweep` is closed: every socket it listens on is bound to
loopback, and Ray's token authentication is on (on Ray 2.52 and later, which have it; fsf
asks for it, since a local `ray.init()` turns it on by itself only from 2.59), its token in the
environment only.

A real instance is started (in a process of its own, as `fsf-sweep` starts it) and the
listening sockets of that process and all its descendants (GCS, raylet, agents, a worker)
are read with psutil."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fsf.sweep._ray import TOKEN_AUTH_SINCE, _ray_minor

pytestmark = pytest.mark.slow

LOOPBACK = {"127.0.0.1", "::ffff:127.0.0.1", "::1"}

PROBE = r"""
import json, os, time
import psutil
import ray
from fsf.sweep._ray import _init_ray

_init_ray(None, 1)

@ray.remote
def pid():
    return os.getpid()

worker = ray.get(pid.remote())  # a worker process exists, and listens too
time.sleep(1)
me = psutil.Process()
ours = {me.pid, *(p.pid for p in me.children(recursive=True))}
names = {}
for p in ours:
    try:
        names[p] = psutil.Process(p).name()
    except psutil.Error:
        pass
sockets = [
    [c.laddr.ip, c.laddr.port, names.get(c.pid, "?")]
    for c in psutil.net_connections("inet")
    if c.status == psutil.CONN_LISTEN and c.pid in ours
]
try:
    from ray._raylet import AuthenticationMode, get_authentication_mode
    token_auth = get_authentication_mode() == AuthenticationMode.TOKEN
except ImportError:  # a Ray without token authentication (before 2.52)
    token_auth = None

print(json.dumps({
    "sockets": sockets,
    "token_auth": token_auth,
    "ray": ray.__version__,
    "worker_in_tree": worker in ours,
    "gcs": ray.get_runtime_context().gcs_address,
}))
ray.shutdown()
"""


def _probe(tmp_path: Path, **env: str) -> dict:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    environ.update(HOME=str(tmp_path), **env)
    proc = subprocess.run(
        [sys.executable, "-c", PROBE],
        env=environ,
        capture_output=True,
        text=True,
        timeout=300,
        start_new_session=True,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {**json.loads(proc.stdout.strip().splitlines()[-1]), "stderr": proc.stderr}


def test_the_private_instance_listens_on_loopback_only_with_token_auth(tmp_path):
    got = _probe(tmp_path)
    names = {name for _, _, name in got["sockets"]}
    assert {"gcs_server", "raylet"} <= names, got  # the daemons were seen at all
    assert got["worker_in_tree"]
    open_ = [s for s in got["sockets"] if s[0] not in LOOPBACK]
    assert not open_, f"listening beyond loopback: {open_}"
    assert got["gcs"].startswith("127.0.0.1:")
    if _ray_minor(got["ray"]) >= TOKEN_AUTH_SINCE:  # on every Ray that has it, 2.52 and later
        assert got["token_auth"], f"Ray {got['ray']}: token authentication is off"
    else:  # Ray before 2.52 has none: loopback only, and fsf said so
        assert got["token_auth"] is None
        assert f"Ray {got['ray']} has no token authentication" in got["stderr"]
    assert not (tmp_path / ".ray" / "auth_token").exists()  # the token stays in the env


def test_an_explicit_auth_mode_is_respected_and_still_loopback(tmp_path):
    got = _probe(tmp_path, RAY_AUTH_MODE="disabled")
    assert not got["token_auth"] and "token authentication" not in got["stderr"]
    assert all(ip in LOOPBACK for ip, _, _ in got["sockets"]), got["sockets"]
