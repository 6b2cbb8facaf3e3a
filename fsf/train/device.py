"""The device a run trains on, as recorded in its results (`fsf.provenance`), and the check
that a run given GPUs can see one."""

from __future__ import annotations

import os
from typing import Any

from fsf.errors import FsfError
from fsf.provenance import stack_versions

__all__ = ["check_gpus_visible", "run_device", "run_provenance"]


def run_device(config: Any) -> str:
    """`cpu`, or `cuda:N (NAME)` for the GPU a run with `config.device` (auto, cpu, cuda)
    trains on here; `cuda (none visible)` when CUDA was asked for and none is visible."""
    import torch

    if config.device == "cpu" or (config.device == "auto" and not torch.cuda.is_available()):
        return "cpu"
    if not torch.cuda.is_available():
        return "cuda (none visible)"
    index = torch.cuda.current_device()
    return f"cuda:{index} ({torch.cuda.get_device_name(index)})"


def run_provenance(config: Any) -> dict[str, Any]:
    """What a run ran with: `fsf.provenance.stack_versions()` and its `device`."""
    import torch  # noqa: F401  (stack_versions reads torch's CUDA version once it is imported)

    return {**stack_versions(), "device": run_device(config)}


def check_gpus_visible(gpus: float) -> None:
    """A run that was given `gpus` GPUs (a sweep's `search.resources.gpus`) must see one:
    raise `FsfError` with one line saying why it cannot, instead of training on the CPU."""
    if gpus <= 0:
        return
    import torch

    if torch.cuda.is_available():
        return
    why = (
        f"torch {torch.__version__} is built without CUDA"
        if torch.version.cuda is None
        else f"torch {torch.__version__} (CUDA {torch.version.cuda}) finds no usable GPU"
    )
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    seen = f", CUDA_VISIBLE_DEVICES={visible!r}" if visible is not None else ""
    raise FsfError(
        f"this trial asked for {gpus:g} GPU(s) (search.resources.gpus) but sees none: {why}"
        f"{seen}; install a CUDA build of torch on the GPU nodes (cluster/README.md), or set "
        "search.resources.gpus: 0 to train on CPUs"
    )
