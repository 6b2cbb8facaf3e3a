"""Every built-in policy runs the policy contract suite (fsf.testing.PolicyContract)."""

from __future__ import annotations

import pytest

from fsf.policies import PolicyConfig, build_policy, policy_names
from fsf.testing import PolicyContract


class TestBuiltinPolicies(PolicyContract):
    @pytest.fixture(params=policy_names())
    def make_policy(self, request):
        config = PolicyConfig(name=request.param)
        return lambda layers: build_policy(config, config.sets.resolve(layers))


class TestPolicyIvOff(PolicyContract):
    """The rules without Policy IV (the NER default)."""

    @pytest.fixture(params=["fsf", "ff"])
    def make_policy(self, request):
        config = PolicyConfig(name=request.param)
        return lambda layers: build_policy(config, config.sets.resolve(layers), policy_iv=False)


class TestAPolicyWithHiddenStateFails:
    """The suite catches what it is there to catch: a policy whose K depends on how often it
    was asked, and a `prepare` that replaces a parameter."""

    def test_hidden_state_is_caught(self):
        from fsf.policies import RulePolicy

        class Counting(RulePolicy):
            name = "counting"
            calls = 0

            def multipliers(self, state):
                self.calls += 1
                return {u: float(self.calls) for u in self.sets.units()}

        config = PolicyConfig(name="df")
        with pytest.raises(AssertionError, match="changed after other calls"):
            PolicyContract().test_multipliers_are_pure(
                lambda layers: Counting(config, config.sets.resolve(layers))
            )

    def test_a_replaced_parameter_is_caught(self):
        import torch

        from fsf.policies import RulePolicy

        class Replacing(RulePolicy):
            name = "replacing"

            def prepare(self, model, param_map, generator):
                layer = model.classifier.out_proj
                layer.weight = torch.nn.Parameter(layer.weight.detach().clone())

        config = PolicyConfig(name="df")
        with pytest.raises(AssertionError, match=r"replaced parameter classifier\.out_proj"):
            PolicyContract().test_prepare_keeps_the_parameter_set(
                lambda layers: Replacing(config, config.sets.resolve(layers))
            )

    def test_a_missing_unit_is_caught(self):
        from fsf.policies import RulePolicy, Unit

        class NoHead(RulePolicy):
            name = "nohead"

            def multipliers(self, state):
                return {u: 1.0 for u in self.sets.units() if u != Unit.head()}

        config = PolicyConfig(name="df")
        with pytest.raises(AssertionError, match="units missing"):
            PolicyContract().test_a_multiplier_for_every_unit(
                lambda layers: NoHead(config, config.sets.resolve(layers))
            )
