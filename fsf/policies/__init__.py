"""Learning-rate policies: weight sets, phase detection, and the policy registry.

This package is the heart of FSF and depends on neither Ray nor DeepSpeed.
"""

from fsf.policies._base import BasePolicy, Rule, RulePolicy, set_multipliers
from fsf.policies.config import PolicyConfig
from fsf.policies.explain import explain
from fsf.policies.phase import CkaTrend, PhaseState, PhaseTracker
from fsf.policies.registry import build_policy, policy_class, policy_names
from fsf.policies.settings import PolicyIVCkaConfig
from fsf.policies.weight_sets import (
    ArchitecturePatterns,
    LayerRange,
    ParameterMap,
    Unit,
    UnmappableModelError,
    WeightSets,
    WeightSetsConfig,
    default_ranges,
    map_parameters,
)

__all__ = [
    "ArchitecturePatterns",
    "BasePolicy",
    "CkaTrend",
    "LayerRange",
    "ParameterMap",
    "PhaseState",
    "PhaseTracker",
    "PolicyConfig",
    "PolicyIVCkaConfig",
    "Rule",
    "RulePolicy",
    "Unit",
    "UnmappableModelError",
    "WeightSets",
    "WeightSetsConfig",
    "build_policy",
    "default_ranges",
    "explain",
    "map_parameters",
    "policy_class",
    "policy_names",
    "set_multipliers",
]
