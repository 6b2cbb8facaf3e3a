"""What a sweep is told about Ray before Ray starts: `--address` / `RAY_ADDRESS` and
`--num-cpus`, checked without importing Ray (the command line checks them before it reads
the space's model and data; the drivers again before they start Ray)."""

from __future__ import annotations

import os
import re

from fsf.errors import UsageError, short_repr

__all__ = ["MAX_NUM_CPUS", "check_address"]

#: `HOST:PORT` of a Ray cluster (an IPv6 host in brackets)
_HOST_PORT = re.compile(r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):([0-9]{1,5})")
#: the most CPUs `--num-cpus` may give the local instance
MAX_NUM_CPUS = 100_000


def check_address(address: str | None, num_cpus: int | None = None) -> None:
    """Refuse an `--address` (or `RAY_ADDRESS`) and `--num-cpus` that Ray would refuse only
    after starting (or would hang on): one line naming the flag, before Ray or the sweep
    folder is touched."""
    if num_cpus is not None and not 1 <= num_cpus <= MAX_NUM_CPUS:
        raise UsageError(f"--num-cpus must be in 1..{MAX_NUM_CPUS:,}, got {num_cpus}")
    for flag, value in (("--address", address), ("RAY_ADDRESS", os.environ.get("RAY_ADDRESS"))):
        if not value or value in ("auto", "local") or value.startswith("ray://"):
            continue
        m = _HOST_PORT.fullmatch(value)
        if m is None or not 1 <= int(m.group(1)) <= 65535:
            raise UsageError(
                f"{flag} {short_repr(value)}: expected auto, or HOST:PORT of a Ray cluster's "
                "head (e.g. 10.0.0.1:6379; an IPv6 host in brackets, [::1]:6379)"
            )
    if address and address.startswith("ray://"):
        raise UsageError(
            f"--address {address}: Ray Client is not supported for sweeps (Tune's driver and "
            "fsf's callbacks must run in this process, on the cluster); run fsf-sweep on a "
            "cluster node with --address auto (or HEAD:6379), or submit it as a job: "
            "ray job submit --address http://HEAD:8265 -- fsf-sweep ... (cluster/README.md)"
        )
