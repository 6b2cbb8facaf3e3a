"""Analysis of fine-tuning runs, after the paper's Section 2 (docs/analysis.md).

- `gap_curves`: source score, target mean and gap over training steps per run, with the P1/P2
  boundary detected from the recorded per-step training loss (the paper's loss-trend rule,
  `fsf.policies.PhaseTracker`) next to the phase the run recorded;
- `cka_curves`: per-layer linear CKA between the pretrained and the trained model over steps
  (rows the worker writes when `analysis.cka.every_steps` is set); `linear_cka` itself;
- `probe_effects` / `derive_weight_sets`: the layer-probe results (`fsf-sweep probe`) as score
  changes against the no-probe baseline, and the weight sets (S_I, S_II, V_I, V_II) they
  suggest, written as a policy config.

Everything here reads results and computes; nothing imports Ray (probes *run* in
`fsf.sweep.probe`). `fsf.analysis.cka` is a leaf (torch and numpy only) that the training
worker imports; the other modules are loaded on first use.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__all__ = [
    "CkaCurves",
    "GapCurves",
    "ProbeEffects",
    "ProbeSpec",
    "SetRule",
    "cka_curves",
    "derive_weight_sets",
    "gap_curves",
    "linear_cka",
    "pooled_hidden_states",
    "probe_effects",
    "write_policy_config",
]

_WHERE = {
    "linear_cka": "fsf.analysis.cka",
    "pooled_hidden_states": "fsf.analysis.cka",
    "GapCurves": "fsf.analysis.gap",
    "gap_curves": "fsf.analysis.gap",
    "CkaCurves": "fsf.analysis.forgetting",
    "cka_curves": "fsf.analysis.forgetting",
    "ProbeEffects": "fsf.analysis.probe",
    "ProbeSpec": "fsf.analysis.probe",
    "SetRule": "fsf.analysis.probe",
    "derive_weight_sets": "fsf.analysis.probe",
    "probe_effects": "fsf.analysis.probe",
    "write_policy_config": "fsf.analysis.probe",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'fsf.analysis' has no attribute {name!r}")
