"""The typed configuration of a learning-rate policy (every knob of the method), checked
against the policy it names: the knobs are `fsf.policies.settings`, and here is what needs
the registry (the name, and c1 / c2 / r only where the named policy uses them).

Checks that depend on other fields (c1 only matters for policies that use Policy I, ...) are
field validators reading the fields declared before them, so that pydantic reports every
problem of a config at once, each under its own field.
"""

from __future__ import annotations

from pydantic import ValidationInfo, field_validator

from fsf.policies.registry import _REGISTRY, policy_names
from fsf.policies.settings import PolicySettings

__all__ = ["PolicyConfig"]


def _uses(info: ValidationInfo) -> frozenset[str]:
    cls = _REGISTRY.get(info.data.get("name", ""))
    return cls.uses if cls is not None else frozenset()


class PolicyConfig(PolicySettings):
    """Which policy to use and every knob of it; defaults are the paper's."""

    @field_validator("name")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in policy_names():
            raise ValueError(f"unknown policy; choose one of: {', '.join(policy_names())}")
        return value

    @field_validator("c1")
    @classmethod
    def _c1(cls, value: float, info: ValidationInfo) -> float:
        if "I" in _uses(info) and not 0 <= value < 1:
            raise ValueError(
                f"must satisfy 0 <= c1 < 1 for policy {info.data['name']!r} (Policy I slows "
                "S_I down by c1; the paper uses 0.01)"
            )
        return value

    @field_validator("c2")
    @classmethod
    def _c2(cls, value: float, info: ValidationInfo) -> float:
        if "IV" in _uses(info) and info.data.get("policy_iv") is not False and not value > 1:
            raise ValueError(
                f"must be > 1 for policy {info.data['name']!r} (Policy IV speeds V_II up by "
                "c2; the paper uses 10), or set policy_iv: false"
            )
        return value

    @field_validator("r")
    @classmethod
    def _r(cls, value: float, info: ValidationInfo) -> float:
        if "II" in _uses(info) and not value > 0:
            raise ValueError("must be > 0 (Policy II: K = max(1 - phi^r, 0); the paper uses 3)")
        return value
