"""What a sweep or a run ran with: the versions of Python and of the libraries whose version
changes fsf's numbers or behaviour (torch and its CUDA, transformers, DeepSpeed, Ray, Optuna),
read from the installed distributions (nothing is imported). `sweep.json` records the driver's
(`provenance.driver`), every result fragment its run's, with the device it trained on
(`fsf.results.read_provenance`), and `fsf show` prints both."""

from __future__ import annotations

import platform
import socket
import sys
from importlib.metadata import PackageNotFoundError, version
from typing import Any

__all__ = ["PACKAGES", "describe", "stack_versions"]

#: The libraries recorded, in the order they are printed.
PACKAGES = ("torch", "transformers", "deepspeed", "ray", "optuna")


def stack_versions() -> dict[str, Any]:
    """`{"python": ..., "torch": ..., ..., "cuda": ..., "host": ...}`; a library that is not
    installed is None. torch's version keeps its local tag (`2.13.0+cpu`, `2.11.0+cu128`);
    `cuda` is torch's CUDA version when torch is already imported (None otherwise, and for a
    CPU build)."""
    out: dict[str, Any] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    torch = sys.modules.get("torch")
    out["cuda"] = getattr(getattr(torch, "version", None), "cuda", None)
    out["host"] = socket.gethostname()
    return out


def describe(prov: dict[str, Any], *, device: bool = True) -> str:
    """One line: `python 3.11.7, torch 2.13.0+cpu, ..., ray 2.60.0, optuna 5.1.0 on cpu`."""
    parts = [f"python {prov.get('python') or '?'}"]
    for name in PACKAGES:
        value = prov.get(name)
        text = f"{name} {value}" if value else f"{name} (none)"
        if name == "torch" and prov.get("cuda"):
            text += f" (CUDA {prov['cuda']})"
        parts.append(text)
    line = ", ".join(parts)
    if device and prov.get("device"):
        line += f" on {prov['device']}"
    return line
