"""Where a run's model comes from, without importing torch: the checks of `fsf validate` and
a sweep's start read the model's config.json through this, not through the worker."""

from __future__ import annotations

__all__ = ["resolve_model_path"]


def resolve_model_path(name: str) -> str:
    """`synthetic` -> the shipped tiny encoder; anything else unchanged (hub name or path)."""
    if name == "synthetic":
        from fsf.synthetic import model_dir

        return str(model_dir())
    return name
