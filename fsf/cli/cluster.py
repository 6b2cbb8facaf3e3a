"""`fsf cluster up|down|status|kill-node` (also `python -m fsf.cluster ...`): the local
multi-node Ray cluster of `fsf.cluster.local` from a shell (cluster/local/ wraps it)."""

from __future__ import annotations

import argparse
import math
import re
import sys

from fsf.cli._base import Command, add_commands, add_common_arguments, configure, dispatch
from fsf.cluster.local import LocalCluster, NodeSpec

__all__ = ["COMMANDS", "SUBCOMMANDS", "main"]


#: the most CPUs (or GPUs) a node of the local cluster may declare
_MAX_PER_NODE = 4096


def _cpus(text: str) -> float:
    """A CPU count: a finite number in 0.._MAX_PER_NODE (Ray refuses the rest only after
    it started the node's processes)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of CPUs, got {text!r}") from None
    if not (math.isfinite(value) and 0 <= value <= _MAX_PER_NODE):
        raise argparse.ArgumentTypeError(f"CPUs must be in 0..{_MAX_PER_NODE}, got {text!r}")
    return value


def _parse_node(text: str) -> NodeSpec:
    """NAME[:CPUS[:GPUS]], e.g. node_a:2 (the node also gets the custom resource NAME: 1)."""
    parts = text.split(":")
    name = parts[0]
    if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,63}", name) or len(parts) > 3:
        raise argparse.ArgumentTypeError(
            f"expected NAME[:CPUS[:GPUS]] with a NAME of letters, digits, '_' and '-', got {text!r}"
        )
    try:
        cpus = _cpus(parts[1]) if len(parts) > 1 else 1
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"CPUs must be a number in 0..{_MAX_PER_NODE}, got {text!r}"
        ) from None
    try:
        gpus = int(parts[2]) if len(parts) > 2 else 0
    except ValueError:
        gpus = -1
    if not 0 <= gpus <= _MAX_PER_NODE:
        raise argparse.ArgumentTypeError(f"GPUs must be in 0..{_MAX_PER_NODE}, got {text!r}")
    return NodeSpec(name, cpus, gpus, {name: 1})


def _up_args(up: argparse.ArgumentParser) -> None:
    up.add_argument("--dir", help="cluster folder (default: a new /tmp/fsfray-*)")
    up.add_argument(
        "--node",
        action="append",
        type=_parse_node,
        metavar="NAME[:CPUS[:GPUS]]",
        help="a worker node (repeat; default: node_a:1 node_b:1)",
    )
    up.add_argument("--head-cpus", type=_cpus, default=0)
    up.add_argument("--dashboard", action="store_true", help="start the dashboard (ray job)")


def _dir_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("dir")


def _kill_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("dir")
    p.add_argument("name")


def _up(args: argparse.Namespace) -> int:
    cluster = LocalCluster(
        args.node, head_cpus=args.head_cpus, root=args.dir, dashboard=args.dashboard
    )
    try:
        cluster.start()
    except BaseException:
        cluster.stop()
        raise
    print(f"cluster folder: {cluster.root}")
    print(f"export RAY_ADDRESS={cluster.address}")
    if cluster.dashboard_url:
        print(f"dashboard / ray job submit --address {cluster.dashboard_url}")
    for name, node_id in cluster.node_ids().items():
        print(f"  {name}: node {node_id}")
    return 0


def _status(args: argparse.Namespace) -> int:
    for proc in LocalCluster.load(args.dir).processes():
        print(f"{proc.pid:>8} {proc.node or '-':>8}  {proc.args[:100]}")
    return 0


def _kill_node(args: argparse.Namespace) -> int:
    LocalCluster.load(args.dir).kill_node(args.name)
    return 0


def _down(args: argparse.Namespace) -> int:
    cluster = LocalCluster.load(args.dir)
    left = cluster.stop()
    if left:
        print(f"{len(left)} process(es) would not die: {[p.pid for p in left]}", file=sys.stderr)
        return 1
    print(f"stopped the cluster in {cluster.root}")
    return 0


#: `python -m fsf.cluster up|down|status|kill-node`.
SUBCOMMANDS: dict[str, Command] = {
    "up": Command("start a head and worker nodes; print the address", _up_args, _up),
    "down": Command("kill every process of the cluster in DIR", _dir_args, _down),
    "status": Command("list the processes of the cluster in DIR", _dir_args, _status),
    "kill-node": Command("SIGKILL one node of the cluster in DIR", _kill_args, _kill_node),
}


def _cluster_args(p: argparse.ArgumentParser) -> None:
    add_commands(p.add_subparsers(dest="command", required=True), SUBCOMMANDS)


#: `fsf cluster ...` (the same as `python -m fsf.cluster ...`).
COMMANDS: dict[str, Command] = {
    "cluster": Command(
        "a Ray cluster of several nodes on this machine (up, down, status, kill-node)",
        _cluster_args,
    ),
}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m fsf.cluster",
        description="A Ray cluster of several nodes on this machine (see cluster/README.md).",
    )
    return add_common_arguments(configure(p, COMMANDS["cluster"]), "python -m fsf.cluster")


def main(argv: list[str] | None = None) -> int:
    return dispatch(_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
