"""The knobs of a learning-rate policy, each checked on its own (`PolicySettings`).

A policy is built from them (`fsf.policies._base`, `fsf.policies.registry`) and the phase
tracker reads its switch from them (`fsf.policies.phase`); the checks that need the registry
(a known name, c1 / c2 / r as the named policy uses them) are `fsf.policies.config`'s
`PolicyConfig`, a `PolicySettings` that imports the registry. So the registry and the
config both import this module, and the config imports the registry, never the other way.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator

from fsf.policies.weight_sets import WeightSetsConfig
from fsf.strict import StrictModel

__all__ = ["PolicyIVCkaConfig", "PolicySettings", "SwitchMode"]

SwitchMode = Literal["loss-trend", "step", "fraction"]


class PolicyIVCkaConfig(StrictModel):
    """`policy_iv: cka`: how the CKA of the V_II layers is measured while training.

    Every `every_steps` optimizer steps (and before the first), the first `probe_size`
    source-language training examples (unlabelled use only: no target-language data decides
    anything) go through the model; the mean over the V_II layers of the linear CKA between
    their pooled hidden states and the pretrained model's is one measurement. c2 applies in
    P2 while the last `window` measurements fell by more than `min_drop`
    (`fsf.policies.CkaTrend`)."""

    every_steps: int = Field(20, ge=1, description="measure every N optimizer steps")
    probe_size: int = Field(64, ge=2, description="source training examples in the probe batch")
    window: int = Field(3, ge=2, description="measurements the falling test spans")
    min_drop: float = Field(
        0.001, ge=0, description="falling: the CKA dropped by more than this over the window"
    )


class PolicySettings(StrictModel):
    """Which policy to use and every knob of it, each checked on its own; defaults are the
    paper's. What a policy reads (`BasePolicy.config`); a run config's `policy:` is the
    `PolicyConfig` built on it, which checks the knobs against the named policy too."""

    name: str = Field("fsf", description="policy name; see `fsf-policy list`")
    policy_iv: bool | Literal["cka"] | None = Field(
        None,
        description="apply Policy IV: true, false, or cka (c2 only while the V_II layers' "
        "CKA to the pretrained model is still falling); None = the task's default",
    )
    cka: PolicyIVCkaConfig = Field(
        default_factory=PolicyIVCkaConfig, description="policy_iv: cka's measurement"
    )
    c1: float = Field(0.01, validate_default=True, description="Policy I: S_I's K in P1")
    c2: float = Field(10.0, validate_default=True, description="Policy IV: V_II's K in P2")
    r: float = Field(3.0, description="Policy II: S_II's K in P2 is max(1 - phi^r, 0)")
    window: int = Field(100, ge=1, description="loss-trend window w, in iterations")
    threshold: float = Field(0.1, description="P1 while the mean loss drops more than this")
    switch: SwitchMode = Field("loss-trend", description="loss-trend | step | fraction")
    switch_step: int | None = Field(
        None, validate_default=True, description="switch=step: iterations in P1"
    )
    switch_fraction: float | None = Field(
        None, validate_default=True, description="switch=fraction: share of iterations in P1"
    )
    sticky: bool = Field(True, description="once in P2, stay in P2")
    noise_lambda: float = Field(0.15, ge=0, description="NoisyTune: noise scale lambda")
    sets: WeightSetsConfig = Field(default_factory=WeightSetsConfig)

    @field_validator("switch_step")
    @classmethod
    def _switch_step(cls, value: int | None, info: ValidationInfo) -> int | None:
        if info.data.get("switch") == "step" and (value is None or value < 0):
            raise ValueError("switch: step needs switch_step >= 0 (the iterations in P1)")
        return value

    @field_validator("switch_fraction")
    @classmethod
    def _switch_fraction(cls, value: Any, info: ValidationInfo) -> float | None:
        if info.data.get("switch") == "fraction" and (value is None or not 0 <= value <= 1):
            raise ValueError("switch: fraction needs switch_fraction in [0, 1] (share in P1)")
        return value
