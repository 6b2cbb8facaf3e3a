"""A multi-node Ray cluster on one machine: a head and worker nodes as separate `ray start`.

    with LocalCluster() as cluster:          # head (0 CPUs, fsf_driver) + node_a + node_b
        run_sweep(spec, address=cluster.address, storage_path="s3://...")
        cluster.kill_node("node_b")          # SIGKILL its raylet's process group

Each node is one `ray start --block` process started in a new session, so its process group
holds that node's daemons (the GCS on the head, the raylet, the agents). Ray starts its worker
processes in sessions of their own, so they are found by a marker instead: every process of
the cluster inherits `FSF_LOCAL_CLUSTER=<root>` in its environment, and its command line names
the cluster's temp dir `<root>` (a fresh, short folder under /tmp: Ray's socket paths must be
short). `stop()` kills the nodes' process groups, then every process that carries the marker,
until none is left; it never runs `ray stop`, which stops every Ray instance on the machine,
other people's included. Ports are fresh free ports, so the cluster never collides with
another Ray instance (whose defaults are 6379, 8265, 52365).

Nodes listen on 127.0.0.2 (loopback): Ray rewrites 127.0.0.1 to the machine's outward
address, but leaves other loopback addresses alone. The head's GCS declares a node dead after
about 3 s without a heartbeat (instead of Ray's default of about 15 s), so tests that kill a
node see its trials fail quickly.

`fsf cluster up|down|status|kill-node` (fsf.cli.cluster; also `python -m fsf.cluster ...`) does
the same from a shell (cluster/local/).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["LocalCluster", "NodeSpec", "RayProcess", "free_port"]

MARKER = "FSF_LOCAL_CLUSTER"
NODE_MARKER = "FSF_LOCAL_NODE"
STATE_FILE = "cluster.json"
DEFAULT_IP = "127.0.0.2"
#: Faster detection of dead nodes (Ray's defaults: 3 s period x 5 failures, 5 s delay).
FAST_HEALTH_CHECKS = {
    "RAY_health_check_initial_delay_ms": "1000",
    "RAY_health_check_period_ms": "1000",
    "RAY_health_check_timeout_ms": "1000",
    "RAY_health_check_failure_threshold": "3",
}


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@dataclass
class NodeSpec:
    """A node to start: its name (also the value of `FSF_LOCAL_NODE` in its processes), its
    CPUs and GPUs, and custom Ray resources."""

    name: str
    cpus: float = 1
    gpus: int = 0
    resources: dict[str, float] = field(default_factory=dict)


@dataclass
class RayProcess:
    pid: int
    pgid: int
    args: str
    node: str | None


@dataclass
class _Node:
    spec: NodeSpec
    pid: int
    log: str
    node_id: str | None = None


def _default_workers() -> list[NodeSpec]:
    return [NodeSpec("node_a", 1, 0, {"node_a": 1}), NodeSpec("node_b", 1, 0, {"node_b": 1})]


class LocalCluster:
    """A Ray head and worker nodes, each its own `ray start` process on this machine.

    The head has `head_cpus` CPUs (0 by default: no trial trains on it) and the custom
    resources `head_resources` (by default `fsf_driver`, the resource cluster/ray-cluster.yaml
    gives its non-preemptible driver nodes, which trial drivers ask for). `env` is added to
    every node's environment (e.g. S3 credentials and endpoint). Use it as a context manager,
    or call `start()` and `stop()`; `stop()` always runs, even if `start()` failed halfway.
    """

    def __init__(
        self,
        workers: Sequence[NodeSpec] | None = None,
        *,
        head_cpus: float = 0,
        head_resources: dict[str, float] | None = None,
        env: dict[str, str] | None = None,
        root: str | Path | None = None,
        ip: str = DEFAULT_IP,
        dashboard: bool = False,
        object_store_mb: int = 100,
    ):
        self.workers = list(workers) if workers is not None else _default_workers()
        self.head = NodeSpec(
            "head",
            head_cpus,
            0,
            {"fsf_driver": 100} if head_resources is None else dict(head_resources),
        )
        self.env = dict(env or {})
        self.root = Path(root) if root else Path(tempfile.mkdtemp(prefix="fsfray-", dir="/tmp"))
        self.ip = ip
        self.dashboard = dashboard
        self.object_store_mb = object_store_mb
        self.port = free_port()
        self.dashboard_port = free_port() if dashboard else None
        self.nodes: dict[str, _Node] = {}

    # ------------------------------------------------------------------ addresses

    @property
    def address(self) -> str:
        """The GCS address: `fsf-sweep --address`, `ray.init(address=...)`, `RAY_ADDRESS`."""
        return f"{self.ip}:{self.port}"

    @property
    def dashboard_url(self) -> str | None:
        """`ray job submit --address` (only with `dashboard=True`)."""
        return f"http://{self.ip}:{self.dashboard_port}" if self.dashboard_port else None

    # ------------------------------------------------------------------ starting

    def __enter__(self) -> LocalCluster:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def _environment(self, name: str) -> dict[str, str]:
        env = {**os.environ, **self.env, MARKER: str(self.root), NODE_MARKER: name}
        env.setdefault("RAY_AUTH_MODE", "disabled")
        env.pop("RAY_ADDRESS", None)
        if name == "head":
            env.update(FAST_HEALTH_CHECKS)
        return env

    def _command(self, spec: NodeSpec) -> list[str]:
        cmd = [
            sys.executable,
            "-m",
            "ray.scripts.scripts",
            "start",
            "--block",
            "--node-ip-address",
            self.ip,
            "--num-cpus",
            str(int(spec.cpus)),
            "--num-gpus",
            str(spec.gpus),
            "--object-store-memory",
            str(self.object_store_mb * 2**20),
            "--dashboard-agent-listen-port",
            str(free_port()),
            "--disable-usage-stats",
        ]
        if spec.resources:
            cmd += ["--resources", json.dumps(spec.resources)]
        if spec.name == "head":
            cmd += ["--head", "--port", str(self.port), "--temp-dir", str(self.root)]
            if self.dashboard_port:
                cmd += [
                    "--include-dashboard",
                    "true",
                    "--dashboard-host",
                    self.ip,
                    "--dashboard-port",
                    str(self.dashboard_port),
                ]
            else:
                cmd += ["--include-dashboard", "false"]
        else:
            cmd += ["--address", self.address]
        return cmd

    def start(self, timeout: float = 120) -> LocalCluster:
        """Start the head, then every worker node; return once each has joined."""
        self.root.mkdir(parents=True, exist_ok=True)
        self._start_node(self.head, timeout)
        for spec in self.workers:
            self._start_node(spec, timeout)
        self.save()
        return self

    def _start_node(self, spec: NodeSpec, timeout: float) -> None:
        if spec.name in self.nodes:
            raise ValueError(f"a node named {spec.name!r} was already started")
        log = self.root / f"{spec.name}.log"
        with open(log, "ab") as fh:
            proc = subprocess.Popen(
                self._command(spec),
                env=self._environment(spec.name),
                stdout=fh,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # its process group = this node's daemons
            )
        node = _Node(spec, proc.pid, str(log))
        self.nodes[spec.name] = node
        deadline = time.monotonic() + timeout
        while True:
            text = log.read_text(errors="replace")
            node.node_id = node.node_id or self._raylet_node_id(spec.name)
            if "Ray runtime started" in text and node.node_id:
                return
            if proc.poll() is not None:
                raise RuntimeError(f"node {spec.name} did not start:\n{text[-3000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"node {spec.name} did not start in {timeout} s:\n{text[-3000:]}"
                )
            time.sleep(0.2)

    def _raylet_node_id(self, name: str) -> str | None:
        for p in self.processes():
            if p.node == name and "/raylet " in f"{p.args} ":
                m = re.search(r"--node_id=([0-9a-f]+)", p.args)
                if m:
                    return m.group(1)
        return None

    # ------------------------------------------------------------------ inspecting

    def node_ids(self) -> dict[str, str]:
        """Node name -> Ray node id (hex), as `ray.get_runtime_context().get_node_id()`."""
        return {n: node.node_id for n, node in self.nodes.items() if node.node_id}

    def processes(self) -> list[RayProcess]:
        """Every live process of this cluster: those carrying its marker in their environment
        or naming its temp dir on their command line."""
        marker = f"{MARKER}={self.root}".encode()
        root = str(self.root)
        out = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == os.getpid():
                continue
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as fh:
                    args = fh.read().replace(b"\0", b" ").decode(errors="replace").strip()
                with open(f"/proc/{entry}/environ", "rb") as fh:
                    environ = fh.read().split(b"\0")
                pgid = os.getpgid(int(entry))
            except (OSError, ProcessLookupError):
                continue
            if not args:  # a zombie: already dead, waiting to be reaped
                continue
            if marker in environ or root in args:
                node = next(
                    (
                        e.split(b"=", 1)[1].decode()
                        for e in environ
                        if e.startswith(NODE_MARKER.encode() + b"=")
                    ),
                    None,
                )
                out.append(RayProcess(int(entry), pgid, args, node))
        return out

    # ------------------------------------------------------------------ stopping

    def kill_node(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Kill a node the hard way: its `ray start` process group (raylet, agents) and
        every worker process of that node."""
        node = self.nodes[name]
        _killpg(node.pid, sig)
        for p in self.processes():
            if p.node == name:
                _kill(p.pid, sig)

    def stop(self, timeout: float = 30) -> list[RayProcess]:
        """Kill every process of the cluster; return those still alive after `timeout`
        seconds (none, normally). Safe to call more than once."""
        for node in self.nodes.values():
            _killpg(node.pid, signal.SIGKILL)
        deadline = time.monotonic() + timeout
        while True:
            left = self.processes()
            if not left or time.monotonic() > deadline:
                break
            for p in left:
                _kill(p.pid, signal.SIGKILL)
            time.sleep(0.2)
        for node in self.nodes.values():  # reap our own children
            with contextlib.suppress(ChildProcessError):
                os.waitpid(node.pid, os.WNOHANG)
        return left

    # ------------------------------------------------------------------ state file

    def save(self) -> Path:
        """Write `<root>/cluster.json` (what `down` and `status` need)."""
        path = self.root / STATE_FILE
        state = {
            "address": self.address,
            "dashboard_url": self.dashboard_url,
            "root": str(self.root),
            "nodes": {
                n: {"pid": node.pid, "node_id": node.node_id, **asdict(node.spec)}
                for n, node in self.nodes.items()
            },
        }
        path.write_text(json.dumps(state, indent=2))
        return path

    @classmethod
    def load(cls, root: str | Path) -> LocalCluster:
        """The cluster started (by `up`) in `root`, to stop or inspect it."""
        state = json.loads((Path(root) / STATE_FILE).read_text())
        cluster = cls([], root=state["root"])
        cluster.ip, port = state["address"].rsplit(":", 1)
        cluster.port = int(port)
        for name, n in state["nodes"].items():
            spec = NodeSpec(n["name"], n["cpus"], n["gpus"], n["resources"])
            cluster.nodes[name] = _Node(spec, n["pid"], "", n["node_id"])
        return cluster


def _killpg(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _kill(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)
