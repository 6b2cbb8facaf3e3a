"""Layer-probe sweeps: one Ray Tune trial per (action, part, layer), plus a no-probe baseline.

`probe_space(spec)` turns a space (its `base` run config, its `search` resources and seeds,
and its `probe` section, or the defaults) into a grid space over the run-config keys
`probe.action`, `probe.layer` and `probe.part`: the baseline (`probe.action: none`) and every
action x part x layer. Each grid point is a trial that trains every seed of the space, like
any sweep (`fsf.sweep.tune.run_sweep`). `run_probe` runs it and writes the analysis
(`fsf.analysis.probe`) into `<sweep>/probe/`: probe.png (score change per layer, like the
paper's Fig. 3), probe.md / probe.csv (Tables 1/6) and policy-sets.yaml (the suggested
weight sets as a policy config).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fsf.analysis.probe_spec import ProbeSpec
from fsf.errors import ConfigError, Problem
from fsf.sweep.space import validate_space
from fsf.sweep.spec import Parameter, SchedulerSpec, SweepSpec

__all__ = [
    "ProbeOutcome",
    "model_depth",
    "output_dir",
    "probe_space",
    "run_probe",
    "write_probe_outputs",
]


def model_depth(spec: SweepSpec) -> int:
    """The number of transformer layers of the space's model: `probe.num_layers`, else the
    model config's `num_hidden_layers` (`n_layer`, `num_layers`)."""
    if spec.probe is not None and spec.probe.num_layers is not None:
        return spec.probe.num_layers
    from transformers import AutoConfig

    from fsf.train.model_path import resolve_model_path

    base = spec.base_config()
    path = resolve_model_path(base.model.name)
    try:
        cfg = AutoConfig.from_pretrained(path)
    except (OSError, ValueError) as exc:
        raise ConfigError(
            [
                Problem(
                    "base.model.name",
                    f"cannot read the model config to count its layers ({exc}); set "
                    "probe.num_layers",
                    base.model.name,
                    True,
                )
            ]
        ) from None
    for attr in ("num_hidden_layers", "n_layer", "num_layers"):
        depth = getattr(cfg, attr, None)
        if isinstance(depth, int) and depth > 0:
            return depth
    raise ConfigError(
        [Problem("probe.num_layers", "the model config does not say its depth; set it")]
    )


def probe_space(spec: SweepSpec, num_layers: int | None = None) -> SweepSpec:
    """The grid space of a probe sweep (see the module docstring), validated.

    Raises `ConfigError` (exit 2) for layers outside the model, or a space that also
    searches other parameters.
    """
    probe = spec.probe or ProbeSpec()
    spec = spec.model_copy(update={"probe": probe})
    own = [k for k in spec.search.parameters if not k.startswith("probe.")]
    if own:
        raise ConfigError(
            [
                Problem(
                    "search.parameters",
                    f"a probe sweep searches only probe.action/layer/part; remove {own}",
                )
            ]
        )
    depth = num_layers if num_layers is not None else model_depth(spec)
    try:
        layers = probe.layer_list(depth)
    except ValueError as exc:
        raise ConfigError([Problem("probe.layers", str(exc))]) from None
    actions = list(probe.actions)
    params = {
        "probe.action": Parameter(type="categorical", values=["none", *actions]),
        "probe.layer": Parameter(type="categorical", values=layers, when={"probe.action": actions}),
        "probe.part": Parameter(
            type="categorical", values=list(probe.parts), when={"probe.action": actions}
        ),
    }
    search = spec.search.model_copy(
        update={"parameters": params, "searcher": "grid", "scheduler": SchedulerSpec()}
    )
    data = spec.model_copy(update={"search": search}).model_dump(mode="json")
    data["probe"]["num_layers"] = depth
    return validate_space(data)


def output_dir(sweep_dir: Any, name: str) -> Path:
    """Where a probe sweep's analysis goes: `<sweep>/probe/` for a local sweep folder, else
    (a sweep on an object store) `./probe-<name>/`, as reports do."""
    from fsf.results.storage import StoragePath

    if isinstance(sweep_dir, StoragePath):
        local = sweep_dir.fs.type_name == "local"
        return Path(sweep_dir.path) / "probe" if local else Path(f"probe-{name}")
    return Path(sweep_dir) / "probe"


@dataclass
class ProbeOutcome:
    """Where a probe sweep's results and analysis are."""

    sweep_dir: Any
    outputs: dict[str, Path]
    reasons: list[str]
    statuses: dict[str, int]
    errors: dict[str, str]


def write_probe_outputs(
    results: Any, spec: ProbeSpec, out: Path, *, num_layers: int | None = None, source: str = ""
) -> tuple[dict[str, Path], list[str]]:
    """Analyse a probe sweep's results; write probe.png, probe.md, probe.csv and
    policy-sets.yaml into `out`; return the paths and the reasons for the sets."""
    from fsf.analysis.plots import probe_plot
    from fsf.analysis.probe import (
        derive_weight_sets,
        probe_effects,
        probe_markdown,
        write_policy_config,
    )

    effects = probe_effects(results, split=spec.rule.split, num_layers=num_layers)
    sets, reasons = derive_weight_sets(effects, spec.rule)
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "plot": out / "probe.png",
        "table": out / "probe.md",
        "csv": out / "probe.csv",
        "policy": out / "policy-sets.yaml",
    }
    probe_plot(effects, paths["plot"], s1_drop=spec.rule.s1_drop)
    paths["table"].write_text(probe_markdown(effects, sets, reasons))
    import pyarrow.csv as pacsv

    pacsv.write_csv(effects.table(), paths["csv"])
    write_policy_config(sets, paths["policy"], reasons=reasons, source=source)
    return paths, reasons


def run_probe(
    spec: SweepSpec,
    *,
    name: str | None = None,
    storage_path: str | None = None,
    address: str | None = None,
    max_concurrent: int | None = None,
    progress: bool = True,
    num_cpus: int | None = None,
    num_layers: int | None = None,
) -> ProbeOutcome:
    """Run the probe sweep of `spec` (see `probe_space`) and write its analysis."""
    from fsf.results import read_results
    from fsf.sweep.tune import run_sweep

    grid = probe_space(spec, num_layers)
    assert grid.probe is not None
    outcome = run_sweep(
        grid,
        name=name,
        storage_path=storage_path,
        address=address,
        max_concurrent=max_concurrent,
        progress=progress,
        num_cpus=num_cpus,
    )
    res = read_results(outcome.sweep_dir)
    paths, reasons = write_probe_outputs(
        res,
        grid.probe,
        output_dir(outcome.sweep_dir, grid.name),
        num_layers=grid.probe.num_layers,
        source=str(outcome.sweep_dir),
    )
    return ProbeOutcome(outcome.sweep_dir, paths, reasons, outcome.statuses, outcome.errors)
