"""The policy contract and the rule-based implementation every FSF policy uses."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from fsf.policies.phase import PhaseState
from fsf.policies.weight_sets import ParameterMap, Unit, WeightSets

if TYPE_CHECKING:
    import torch

    from fsf.policies.settings import PolicySettings

__all__ = ["BasePolicy", "Rule", "RulePolicy", "set_multipliers"]


class BasePolicy(ABC):
    """A learning-rate policy: one multiplier K per unit, as a function of the phase.

    Contract (the training worker calls, in this order):

    1. `__init__(config, sets)` once the model's depth is known and the sets resolved.
    2. `prepare(model, param_map, generator)` once, after the pretrained weights are loaded and
       before the optimizer is built. It may change weight *values* in place (NoisyTune adds
       noise here) but never adds, removes or replaces parameters. The default does nothing.
    3. For every iteration t: `multipliers(state)` with the `PhaseState` of iteration t; the
       worker sets each param group's lr to `scheduled_lr(t) * K[unit]` before the optimizer
       step. It must return a K for every unit of `sets.units()`.

    `multipliers` is a pure function of its argument and the config: no hidden state, so
    every data-parallel rank computes the same learning rates and `fsf-policy explain` shows
    exactly what training will do.
    """

    name: str = ""
    uses: frozenset[str] = frozenset()
    """Which of the paper's policies ("I", "II", "III", "IV") this policy applies."""

    def __init__(self, config: PolicySettings, sets: WeightSets):
        self.config = config
        self.sets = sets

    def prepare(
        self, model: torch.nn.Module, param_map: ParameterMap, generator: torch.Generator
    ) -> None:
        """Change weights before training (default: nothing)."""

    @abstractmethod
    def multipliers(self, state: PhaseState) -> dict[Unit, float]:
        """The learning-rate multiplier of every unit at iteration `state.step`."""


@dataclass(frozen=True)
class Rule:
    """Apply one of the paper's policies to one weight set.

    I   : K = c1 in P1 (slow)           II : K = max(1 - phi^r, 0) in P2 (slow)
    III : K = 1 in P1: the set is exempt from Policy I's slow-down
    IV  : K = c2 in P2 (fast; skipped when `policy_iv` is off; with `policy_iv: cka` only
          while `PhaseState.cka_falling` is not False)
    """

    policy: Literal["I", "II", "III", "IV"]
    target: Literal["S_I", "S_II", "V_I", "V_II"]


class RulePolicy(BasePolicy):
    """A policy given by rules; a unit's K is the product of the rules that apply to it."""

    rules: tuple[Rule, ...] = ()

    def __init__(
        self, config: PolicySettings, sets: WeightSets, policy_iv: bool | Literal["cka"] = True
    ):
        super().__init__(config, sets)
        self.policy_iv = policy_iv
        self._units = sets.units()
        self._members = {u: sets.membership(u) for u in self._units}

    def multipliers(self, state: PhaseState) -> dict[Unit, float]:
        c = self.config
        p1 = state.phase == "P1"
        fast = self.policy_iv is True or (
            self.policy_iv == "cka" and state.cka_falling is not False
        )
        # R(phi) = max(1 - phi^r, 0); while phi is undefined (fewer than 2w losses, only
        # possible in P2 with the step/fraction switch modes) Policy II leaves K = 1.
        slow2 = 1.0 if state.phi is None else max(1.0 - max(state.phi, 0.0) ** c.r, 0.0)
        out: dict[Unit, float] = {}
        for unit in self._units:
            members = self._members[unit]
            k = 1.0
            exempt = p1 and any(r.policy == "III" and r.target in members for r in self.rules)
            for rule in self.rules:
                if rule.target not in members:
                    continue
                if rule.policy == "I" and p1 and not exempt:
                    k *= c.c1
                elif rule.policy == "II" and not p1:
                    k *= slow2
                elif rule.policy == "IV" and not p1 and fast:
                    k *= c.c2
            out[unit] = k
        return out


def set_multipliers(
    policy: BasePolicy, multipliers: Mapping[Unit, float]
) -> dict[str, float | None]:
    """Summarise per-unit multipliers by the rows of the paper's table.

    Keys: `S_II` (its units), `S_I` (S_I outside S_II), `V_II`, `V_I` (V_I outside V_II),
    `embeddings`, `head`. A set with no unit gives None.
    """
    sets = policy.sets
    out: dict[str, float | None] = {}
    for name, minus in (("S_I", "S_II"), ("S_II", None), ("V_I", "V_II"), ("V_II", None)):
        value = None
        for unit in sets.units():
            if sets.contains(name, unit) and not (minus and sets.contains(minus, unit)):
                value = multipliers[unit]
                break
        out[name] = value
    out["embeddings"] = multipliers[Unit.embeddings()]
    out["head"] = multipliers[Unit.head()]
    return out
