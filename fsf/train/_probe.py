"""Layer probes: re-initialise or freeze one part of one layer before fine-tuning.

The parts are the weight-set units of `fsf.policies.weight_sets` (attention, ffn, or the
whole layer), so a probe touches exactly the weights a policy would give one multiplier.
"""

from __future__ import annotations

import torch

from fsf.config import ProbeConfig
from fsf.errors import ConfigError, Problem
from fsf.policies import ParameterMap

__all__ = ["apply_probe", "probe_parameters"]

_KINDS = {"all": ("attention", "ffn", "other"), "attention": ("attention",), "ffn": ("ffn",)}


def probe_parameters(param_map: ParameterMap, probe: ProbeConfig) -> list[str]:
    """Names of the parameters the probe acts on (empty for `action: none`).

    Raises `ConfigError` (exit 2) when `probe.layer` is outside 1..L.
    """
    if probe.action == "none":
        return []
    assert probe.layer is not None  # the config validator guarantees it
    if not 1 <= probe.layer <= param_map.num_layers:
        raise ConfigError(
            [
                Problem(
                    "probe.layer",
                    f"must lie within 1..{param_map.num_layers} (the model has "
                    f"{param_map.num_layers} layers)",
                    probe.layer,
                    True,
                )
            ]
        )
    kinds = _KINDS[probe.part]
    names = [n for n, u in param_map.units.items() if u.layer == probe.layer and u.kind in kinds]
    if not names:
        raise ConfigError(
            [
                Problem(
                    "probe.part",
                    f"layer {probe.layer} has no {probe.part} weights in this model (check "
                    "model.patterns)",
                    probe.part,
                    True,
                )
            ]
        )
    return names


@torch.no_grad()
def apply_probe(
    model: torch.nn.Module,
    param_map: ParameterMap,
    probe: ProbeConfig,
    generator: torch.Generator,
) -> list[str]:
    """Re-initialise or freeze the probed weights in place; return their names.

    reinit: Linear weights (and any other weight matrix) ~ N(0, initializer_range) from
    `generator`, biases 0, LayerNorm weights 1 and biases 0 (the BERT/XLM-R initialisation).
    freeze: `requires_grad = False` (the worker builds no param group for them).
    """
    names = set(probe_parameters(param_map, probe))
    if not names:
        return []
    if probe.action == "freeze":
        for name, param in model.named_parameters():
            if name in names:
                param.requires_grad_(False)
        return sorted(names)
    std = float(getattr(getattr(model, "config", None), "initializer_range", 0.02))
    done: set[str] = set()
    for mod_name, module in model.named_modules():
        own = {
            f"{mod_name}.{p}" if mod_name else p: t
            for p, t in module.named_parameters(recurse=False)
        }
        mine = {n: t for n, t in own.items() if n in names}
        if not mine:
            continue
        norm = isinstance(module, torch.nn.LayerNorm) or "norm" in type(module).__name__.lower()
        for name, t in mine.items():
            leaf = name.rsplit(".", 1)[-1]
            if norm:
                t.fill_(1.0 if leaf == "weight" else 0.0)
            elif t.ndim >= 2:
                t.copy_(torch.randn(t.shape, generator=generator, dtype=torch.float32) * std)
            else:
                t.zero_()
            done.add(name)
    missing = names - done
    if missing:  # pragma: no cover - a parameter outside every module cannot exist
        raise RuntimeError(f"probe: could not re-initialise {sorted(missing)}")
    return sorted(names)
