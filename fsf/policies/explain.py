"""Replay a policy over a loss curve: what multiplier every unit gets at every iteration."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from typing import Any, Literal

from fsf.policies._base import BasePolicy, set_multipliers
from fsf.policies.config import PolicyConfig
from fsf.policies.phase import CkaTrend, PhaseTracker
from fsf.policies.registry import build_policy
from fsf.policies.weight_sets import KINDS, Unit

__all__ = ["EXAMPLE_LOSS", "example_losses", "explain"]

EXAMPLE_LOSS = "0.35 + 0.75 * exp(-t / 60)"
"""The loss curve `explain` replays when it is given none: iteration t's training loss falls
fast at first and then flattens, as a fine-tuning loss does (1.09 at t = 1, 0.45 at t = 150,
0.36 at t = 300). With the shipped spaces' window w = 20 the loss-trend rule switches to P2
at t = 76 (threshold 0.1; t = 117 at 0.05), where phi = 0.86, so Policy II's K for S_II is
1 - phi^r > 0 and falls towards 0 as the loss flattens."""


def example_losses(steps: int) -> list[float]:
    """`EXAMPLE_LOSS` at iterations 1..steps."""
    return [0.35 + 0.75 * math.exp(-t / 60) for t in range(1, steps + 1)]


def explain(
    config: PolicyConfig,
    num_layers: int,
    losses: Sequence[float] | None = None,
    steps: int | None = None,
    policy_iv: bool | Literal["cka"] = True,
    cka: Sequence[tuple[int, float]] | None = None,
) -> list[dict[str, Any]]:
    """One record per iteration, as `fsf-policy explain --format json` prints it (which
    leaves out `set_multipliers`, the per-set summary the table shows).

    Without `losses`, the loss follows `EXAMPLE_LOSS` (a fast fall, then a plateau). `steps`
    defaults to the number of losses. `cka`: a recorded curve of `policy_iv: cka`'s
    measurement, `(step, value)` pairs (a run's `cka_v2` rows); iteration t sees the
    measurements made at steps <= t, as in training (measured before the update of step t).
    """
    if losses is None and steps is None:
        raise ValueError("give losses, steps, or both")
    total = steps if steps is not None else len(losses or [])
    curve = list(losses) if losses is not None else example_losses(total)
    if len(curve) < total:
        raise ValueError(f"{total} steps asked for but only {len(curve)} losses given")
    sets = config.sets.resolve(num_layers)
    policy: BasePolicy = build_policy(config, sets, policy_iv=policy_iv)
    tracker = PhaseTracker.from_config(config, total)
    trend = CkaTrend(config.cka.window, config.cka.min_drop) if cka is not None else None
    pending = sorted(cka or [])
    out = []
    for loss in curve[:total]:
        state = tracker.update(loss)
        if trend is not None:
            while pending and pending[0][0] <= state.step:
                trend.update(*pending.pop(0))
            state = replace(state, cka_falling=trend.falling)
        k = policy.multipliers(state)
        out.append(
            {
                "step": state.step,
                "phase": state.phase,
                "phi": state.phi,
                "cka_falling": state.cka_falling,
                "embeddings": k[Unit.embeddings()],
                "head": k[Unit.head()],
                "set_multipliers": set_multipliers(policy, k),
                "layers": [
                    {kind: k[Unit(layer, kind)] for kind in KINDS}
                    for layer in range(1, num_layers + 1)
                ],
            }
        )
    return out
