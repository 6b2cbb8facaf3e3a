"""The local cluster harness without Ray: the nodes it would start, and its teardown, which
must kill every process of its cluster (in any session) and nothing else."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from fsf.cli.cluster import main
from fsf.cluster.local import MARKER, NODE_MARKER, LocalCluster, NodeSpec, _Node


def _sleeper(env: dict[str, str]) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-c", "import time; print('up', flush=True); time.sleep(120)"],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        start_new_session=True,  # like Ray's worker processes: not in the node's group
    )
    assert proc.stdout.readline() == b"up\n"  # exec'd: /proc shows its own environment
    return proc


def test_node_commands(tmp_path):
    c = LocalCluster(
        [NodeSpec("node_a", 2, 0, {"node_a": 1})], root=tmp_path / "c", env={"X_TEST": "1"}
    )
    head = c._command(c.head)
    assert head[:5] == [sys.executable, "-m", "ray.scripts.scripts", "start", "--block"]
    assert head[head.index("--num-cpus") + 1] == "0"
    assert json.loads(head[head.index("--resources") + 1]) == {"fsf_driver": 100}
    assert head[head.index("--port") + 1] == str(c.port)
    assert head[head.index("--temp-dir") + 1] == str(c.root)
    assert head[head.index("--node-ip-address") + 1] == "127.0.0.2"
    worker = c._command(c.workers[0])
    assert worker[worker.index("--address") + 1] == c.address == f"127.0.0.2:{c.port}"
    assert "--head" not in worker and worker[worker.index("--num-cpus") + 1] == "2"
    env = c._environment("node_a")
    assert env[MARKER] == str(c.root) and env[NODE_MARKER] == "node_a" and env["X_TEST"] == "1"
    assert "RAY_health_check_period_ms" in c._environment("head")
    assert "RAY_health_check_period_ms" not in env


def test_stop_kills_the_clusters_processes_and_only_them(tmp_path):
    c = LocalCluster([], root=tmp_path / "c")
    c.root.mkdir()
    node = _sleeper({MARKER: str(c.root), NODE_MARKER: "node_a"})
    worker = _sleeper({MARKER: str(c.root), NODE_MARKER: "node_a"})
    other = _sleeper({MARKER: str(tmp_path / "another-cluster")})
    try:
        c.nodes["node_a"] = _Node(NodeSpec("node_a"), node.pid, "")
        found = {p.pid: p.node for p in c.processes()}
        assert found == {node.pid: "node_a", worker.pid: "node_a"}
        assert c.stop(timeout=10) == []
        assert worker.wait(timeout=10) is not None and node.wait(timeout=10) is not None
        assert other.poll() is None
    finally:
        for p in (node, worker, other):
            p.kill()
            p.wait()


def test_state_file_round_trip_and_cli_down(tmp_path, capsys):
    c = LocalCluster([NodeSpec("node_a", 1, 0, {"node_a": 1})], root=tmp_path / "c")
    c.root.mkdir()
    proc = _sleeper({MARKER: str(c.root), NODE_MARKER: "node_a"})
    try:
        c.nodes["node_a"] = _Node(c.workers[0], proc.pid, "", "ab" * 28)
        c.save()
        back = LocalCluster.load(c.root)
        assert back.address == c.address and back.node_ids() == {"node_a": "ab" * 28}
        assert main(["status", str(c.root)]) == 0
        assert str(proc.pid) in capsys.readouterr().out
        assert main(["down", str(c.root)]) == 0
        assert proc.wait(timeout=10) is not None
    finally:
        proc.kill()
        proc.wait()
