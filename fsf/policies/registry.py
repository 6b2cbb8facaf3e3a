"""The policy registry: DF, NoisyTune, FS, FF, FSF and the paper's ablations, by name.

| name      | rules (policy -> set)                    | what it is                          |
|-----------|------------------------------------------|-------------------------------------|
| df        | none                                     | direct fine-tuning                  |
| noisytune | none; uniform noise before training      | Wu et al. 2022                      |
| fs        | I->S_I, II->S_II                         | fine-tuning slow                    |
| ff        | III->V_I, IV->V_II                       | fine-tuning fast                    |
| fsf       | I->S_I, II->S_II, III->V_I, IV->V_II     | the method                          |
| only-s1   | I->S_I, II->S_I, III, IV                 | ablation: only S_I on the slow side |
| only-s2   | I->S_II, II->S_II, III, IV               | ablation: only S_II                 |
| swap-s    | I->S_II, II->S_I, III, IV                | ablation: S_II <-> S_I              |
| only-v1   | I, II, III->V_I, IV->V_I                 | ablation: only V_I on the fast side |
| only-v2   | I, II, III->V_II, IV->V_II               | ablation: only V_II                 |
| swap-v    | I, II, III->V_II, IV->V_I                | ablation: V_II <-> V_I              |

The ablations replace the set that one side of FSF acts on; with the default sets `only-v2`
equals FSF (Policy III only matters where V_I overlaps S_I) and `swap-v` equals `only-v1`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from fsf.errors import FsfError
from fsf.policies._base import BasePolicy, Rule, RulePolicy
from fsf.policies.weight_sets import ParameterMap, WeightSets

if TYPE_CHECKING:
    import torch

    from fsf.policies.settings import PolicySettings

__all__ = ["build_policy", "policy_class", "policy_names"]

_I, _II = Rule("I", "S_I"), Rule("II", "S_II")
_III, _IV = Rule("III", "V_I"), Rule("IV", "V_II")


def _rule_policy(name: str, doc: str, *rules: Rule) -> type[RulePolicy]:
    return type(
        name.replace("-", "_").title().replace("_", "") + "Policy",
        (RulePolicy,),
        {
            "name": name,
            "__doc__": doc,
            "rules": tuple(rules),
            "uses": frozenset(r.policy for r in rules),
        },
    )


class NoisyTunePolicy(RulePolicy):
    """NoisyTune (Wu et al., 2022): before fine-tuning, add uniform noise
    U(-lambda/2, lambda/2) * std(W) to every pretrained weight matrix W; then train like DF."""

    name = "noisytune"

    def prepare(
        self, model: torch.nn.Module, param_map: ParameterMap, generator: torch.Generator
    ) -> None:
        import torch

        lam = self.config.noise_lambda
        with torch.no_grad():
            for name, param in model.named_parameters():
                unit = param_map.units.get(name)
                if unit is None or unit.kind == "head" or param.numel() < 2:
                    continue
                noise = torch.rand(param.shape, generator=generator, dtype=torch.float32) - 0.5
                param.add_((noise * lam * param.float().std()).to(param.dtype))


_REGISTRY: dict[str, type[BasePolicy]] = {
    cls.name: cls
    for cls in (
        _rule_policy("df", "Direct fine-tuning: K = 1 everywhere."),
        NoisyTunePolicy,
        _rule_policy("fs", "Fine-tuning slow: Policies I and II.", _I, _II),
        _rule_policy("ff", "Fine-tuning fast: Policies III and IV.", _III, _IV),
        _rule_policy("fsf", "Fine-tuning slow and fast: Policies I-IV.", _I, _II, _III, _IV),
        _rule_policy(
            "only-s1", "Ablation: slow policies on S_I only.", _I, Rule("II", "S_I"), _III, _IV
        ),
        _rule_policy(
            "only-s2", "Ablation: slow policies on S_II only.", Rule("I", "S_II"), _II, _III, _IV
        ),
        _rule_policy(
            "swap-s", "Ablation: S_II <-> S_I.", Rule("I", "S_II"), Rule("II", "S_I"), _III, _IV
        ),
        _rule_policy(
            "only-v1", "Ablation: fast policies on V_I only.", _I, _II, _III, Rule("IV", "V_I")
        ),
        _rule_policy(
            "only-v2", "Ablation: fast policies on V_II only.", _I, _II, Rule("III", "V_II"), _IV
        ),
        _rule_policy(
            "swap-v", "Ablation: V_II <-> V_I.", _I, _II, Rule("III", "V_II"), Rule("IV", "V_I")
        ),
    )
}


def policy_names() -> list[str]:
    return list(_REGISTRY)


def policy_class(name: str) -> type[BasePolicy]:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise FsfError(f"unknown policy {name!r}; choose one of: {', '.join(_REGISTRY)}") from None


def build_policy(
    config: PolicySettings, sets: WeightSets, policy_iv: bool | Literal["cka"] = True
) -> BasePolicy:
    """Instantiate the configured policy. A run config has resolved `config.policy_iv`
    (`RunConfig` puts the task's default there); `policy_iv` is used only where it is unset
    (a bare `PolicyConfig`, e.g. in `fsf-policy explain`)."""
    cls = policy_class(config.name)
    iv = policy_iv if config.policy_iv is None else config.policy_iv
    if issubclass(cls, RulePolicy):
        return cls(config, sets, policy_iv=iv)
    return cls(config, sets)
