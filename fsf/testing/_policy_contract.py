"""`PolicyContract`: what every `fsf.policies.BasePolicy` promises, as pytest tests."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

    import torch

    from fsf.policies import BasePolicy, PhaseState

__all__ = ["PolicyContract"]

_PAPER_POLICIES = frozenset({"I", "II", "III", "IV"})


def _states() -> list[PhaseState]:
    """Phase states a run can produce: P1 before and after phi exists, P2 with phi undefined
    (step / fraction switch modes), below, at and above 1, and 0."""
    from fsf.policies import PhaseState

    return [
        PhaseState(1, "P1", None),
        PhaseState(40, "P1", 0.8),
        PhaseState(5, "P2", None),
        PhaseState(41, "P2", 0.0),
        PhaseState(60, "P2", 0.5),
        PhaseState(61, "P2", 1.0),
        PhaseState(300, "P2", 1.3),
    ]


class PolicyContract:
    """The contract of `BasePolicy` (fsf/policies/_base.py), for any policy.

    Subclass it under a `Test...` name and give it a fixture `make_policy`: a callable that
    takes a number of encoder layers and returns a new policy for a model that deep (its
    config and resolved weight sets are the subclass's choice). Parametrise the fixture to
    run the suite on several policies. The tests:

    - a finite K >= 0 for exactly the units of `sets.units()`, in every phase state;
    - `multipliers` is pure: the same state gives the same K whatever was asked before, and
      two policies built alike agree (every data-parallel rank computes the same rates);
    - `prepare` never adds, removes or replaces parameters (values may change), and with
      equal generators it changes equal models equally;
    - `name` is set and `uses` names only the paper's policies I-IV.

    `layers` are the depths the multipliers are checked at; `make_model` builds the small
    randomly initialised model `prepare` is given (override it for another architecture).
    """

    layers: tuple[int, ...] = (2, 12)
    prepare_layers: int = 2

    def make_model(self, num_layers: int) -> torch.nn.Module:
        """A tiny randomly initialised XLM-R classifier `num_layers` deep (same seed, same
        weights)."""
        import torch
        from transformers import XLMRobertaConfig, XLMRobertaForSequenceClassification

        torch.manual_seed(0)
        return XLMRobertaForSequenceClassification(
            XLMRobertaConfig(
                vocab_size=50,
                hidden_size=8,
                num_hidden_layers=num_layers,
                num_attention_heads=2,
                intermediate_size=16,
                max_position_embeddings=20,
            )
        )

    # ------------------------------------------------------------------ multipliers

    def test_a_multiplier_for_every_unit(self, make_policy: Callable[[int], BasePolicy]) -> None:
        for layers in self.layers:
            policy = make_policy(layers)
            units = set(policy.sets.units())
            for state in _states():
                k = policy.multipliers(state)
                assert set(k) == units, (
                    f"{type(policy).__name__}.multipliers({state}) at {layers} layers: units "
                    f"missing {sorted(map(str, units - set(k)))}, "
                    f"extra {sorted(map(str, set(k) - units))}"
                )
                bad = {str(u): v for u, v in k.items() if not _usable(v)}
                assert not bad, f"K must be a finite float >= 0; {state} gives {bad}"

    def test_multipliers_are_pure(self, make_policy: Callable[[int], BasePolicy]) -> None:
        for layers in self.layers:
            policy = make_policy(layers)
            states = _states()
            first = [policy.multipliers(s) for s in states]
            again = [policy.multipliers(s) for s in reversed(states)][::-1]
            for state, a, b in zip(states, first, again, strict=True):
                assert a == b, f"multipliers({state}) changed after other calls: {_diff(a, b)}"
            other = make_policy(layers)  # another rank's policy, asked in another order
            for state, a in zip(states[::-1], first[::-1], strict=True):
                b = other.multipliers(state)
                assert a == b, f"two policies built alike disagree at {state}: {_diff(a, b)}"

    def test_name_and_uses(self, make_policy: Callable[[int], BasePolicy]) -> None:
        policy = make_policy(self.layers[0])
        assert isinstance(policy.name, str) and policy.name, "a policy needs a `name`"
        assert set(policy.uses) <= _PAPER_POLICIES, (
            f"`uses` may name only the paper's policies {sorted(_PAPER_POLICIES)}, "
            f"got {sorted(policy.uses)}"
        )

    # ------------------------------------------------------------------ prepare

    def _prepared(self, make_policy: Callable[[int], BasePolicy], seed: int) -> tuple[Any, Any]:
        import torch

        from fsf.policies import map_parameters

        model = self.make_model(self.prepare_layers)
        before = [(n, p, p.shape, p.dtype) for n, p in model.named_parameters()]
        param_map = map_parameters([n for n, *_ in before], num_layers=self.prepare_layers)
        make_policy(self.prepare_layers).prepare(
            model, param_map, torch.Generator().manual_seed(seed)
        )
        return model, before

    def test_prepare_keeps_the_parameter_set(
        self, make_policy: Callable[[int], BasePolicy]
    ) -> None:
        model, before = self._prepared(make_policy, seed=0)
        after = list(model.named_parameters())
        assert [n for n, *_ in before] == [n for n, _ in after], (
            "prepare added, removed or renamed parameters: "
            f"{sorted({n for n, *_ in before} ^ {n for n, _ in after})}"
        )
        for (name, param, shape, dtype), (_, now) in zip(before, after, strict=True):
            assert now is param, f"prepare replaced parameter {name} (change its values in place)"
            assert (now.shape, now.dtype) == (shape, dtype), f"prepare reshaped or recast {name}"

    def test_prepare_is_deterministic(self, make_policy: Callable[[int], BasePolicy]) -> None:
        import torch

        a, _ = self._prepared(make_policy, seed=1)
        b, _ = self._prepared(make_policy, seed=1)
        for (name, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters(), strict=True):
            assert torch.equal(pa, pb), f"prepare with equal generators gave different {name}"


def _usable(value: object) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value >= 0
    )


def _diff(a: dict[Any, float], b: dict[Any, float]) -> str:
    keys = sorted(set(a) | set(b), key=str)
    return ", ".join(f"{k}: {a.get(k)} vs {b.get(k)}" for k in keys if a.get(k) != b.get(k))
