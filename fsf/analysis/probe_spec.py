"""The `probe` section of a space: what a layer-probe sweep probes, and the rule that turns
its results into weight sets (see `fsf.analysis.probe` for the rule in words).

Plain pydantic models (no results, no Ray), so that `fsf.sweep.spec` can validate a space's
`probe` section without importing the analysis.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from fsf.policies.weight_sets import LayerRange
from fsf.strict import StrictModel

__all__ = ["ACTIONS", "PARTS", "ProbeSpec", "SetRule"]

Action = Literal["reinit", "freeze"]
Part = Literal["all", "attention", "ffn"]
ACTIONS: tuple[Action, ...] = ("reinit", "freeze")
PARTS: tuple[Part, ...] = ("all", "attention", "ffn")
_V2_KINDS: tuple[Literal["attention", "ffn"], ...] = ("attention",)


class SetRule(StrictModel):
    """The thresholds of the rule that derives the weight sets (module docstring)."""

    s1_drop: float = Field(
        0.01, ge=0, description="S_I: a whole-layer re-init must lower the target mean by more"
    )
    min_z: float = Field(
        2.0, ge=0, description="... and by at least this many standard errors (2+ seeds)"
    )
    s2_share: float = Field(
        0.5, gt=0, le=1, description="S_II: share of the largest part re-init drop in S_I"
    )
    v2_kinds: list[Literal["attention", "ffn"]] = Field(
        default_factory=lambda: list(_V2_KINDS), min_length=1, description="V_II's kinds"
    )
    split: Literal["dev", "test"] = Field(
        "dev", description="scores the rule reads (dev: the suggested sets never come from test)"
    )


class ProbeSpec(StrictModel):
    """The `probe` section of a space: what to probe, and the rule for the sets."""

    layers: LayerRange | Literal["all"] = Field("all", description="layers to probe")
    actions: list[Action] = Field(default_factory=lambda: list(ACTIONS), min_length=1)
    parts: list[Part] = Field(default_factory=lambda: list(PARTS), min_length=1)
    num_layers: int | None = Field(
        None, ge=1, description="model depth; default: the model config's num_hidden_layers"
    )
    rule: SetRule = Field(default_factory=SetRule)

    @field_validator("layers", mode="before")
    @classmethod
    def _layers(cls, value: Any) -> Any:
        if value == "all":
            return value
        parsed = LayerRange.parse(value)
        if parsed is None:
            raise ValueError("give 'all' or a layer range such as '1-6'")
        return parsed

    @field_validator("actions", "parts")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError(f"values must be distinct, got {value}")
        return value

    def layer_list(self, num_layers: int) -> list[int]:
        """The probed layers of an L-layer model; raises ValueError outside 1..L."""
        if self.layers == "all":
            return list(range(1, num_layers + 1))
        assert isinstance(self.layers, LayerRange)
        if not 1 <= self.layers.first <= self.layers.last <= num_layers:
            raise ValueError(
                f"probe.layers {self.layers} must lie within 1..{num_layers} (the model has "
                f"{num_layers} layers)"
            )
        return list(self.layers.layers())
