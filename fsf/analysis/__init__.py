"""Analysis of fine-tuning runs, after the paper's Section 2 (docs/analysis.md).

- `gap_curves`: source score, target mean and gap over training steps per run, with the P1/P2
  boundary detected from the recorded per-step training loss (the paper's loss-trend rule,
  `fsf.policies.PhaseTracker`) next to the phase the run recorded;
- `cka_curves`: per-layer linear CKA between the pretrained and the trained model over steps
  (rows the worker writes when `analysis.cka.every_steps` is set); `linear_cka` itself is `fsf.cka`;
- `probe_effects` / `derive_weight_sets`: the layer-probe results (`fsf-sweep probe`) as score
  changes against the no-probe baseline, and the weight sets (S_I, S_II, V_I, V_II) they
  suggest, written as a policy config.

Everything here reads results and computes; nothing imports Ray (probes *run* in
`fsf.sweep.probe`). `fsf.cka` is a leaf (torch and numpy only) that the training
worker imports; the other modules are loaded on first use (`fsf._lazy`): importing
`fsf.analysis.probe_spec` (a sweep's spec does) costs no pandas.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fsf._lazy import lazy_exports

if TYPE_CHECKING:
    from fsf.analysis.forgetting import CkaCurves, cka_curves
    from fsf.analysis.gap import GapCurves, gap_curves
    from fsf.analysis.probe import (
        ProbeEffects,
        derive_weight_sets,
        probe_effects,
        write_policy_config,
    )
    from fsf.analysis.probe_spec import ProbeSpec, SetRule
    from fsf.analysis.report import Report, write_report

_EXPORTS = {
    "CkaCurves": "fsf.analysis.forgetting",
    "cka_curves": "fsf.analysis.forgetting",
    "GapCurves": "fsf.analysis.gap",
    "gap_curves": "fsf.analysis.gap",
    "ProbeEffects": "fsf.analysis.probe",
    "derive_weight_sets": "fsf.analysis.probe",
    "probe_effects": "fsf.analysis.probe",
    "write_policy_config": "fsf.analysis.probe",
    "ProbeSpec": "fsf.analysis.probe_spec",
    "SetRule": "fsf.analysis.probe_spec",
    "Report": "fsf.analysis.report",
    "write_report": "fsf.analysis.report",
}
__getattr__, __dir__ = lazy_exports(globals(), _EXPORTS)

__all__ = [
    "CkaCurves",
    "GapCurves",
    "ProbeEffects",
    "ProbeSpec",
    "Report",
    "SetRule",
    "cka_curves",
    "derive_weight_sets",
    "gap_curves",
    "probe_effects",
    "write_policy_config",
    "write_report",
]
