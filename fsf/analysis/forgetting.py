"""Forgetting by CKA: per-layer linear CKA with the pretrained model, over training steps.

The worker writes these rows when `analysis.cka.every_steps` > 0 (split `cka`, metric
`cka_layer_{i}`, layer 0 = the embeddings' output, one row per language and step).
`cka_curves` reads them back as, per run and language, a layers x steps matrix; `mean`
averages runs (e.g. the seeds of a configuration) on their common steps.
"""

from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from fsf.results.reader import Results, load
from fsf.results.schema import CKA_SPLIT

__all__ = ["CkaCurves", "RunCka", "cka_curves"]

_LAYER = re.compile(r"^cka_layer_(\d+)$")


@dataclass
class RunCka:
    """One run's CKA: `values[lang]` is a (layers x steps) array, NaN where missing."""

    trial_id: str
    seed: int
    policy: str
    steps: np.ndarray
    layers: np.ndarray
    values: dict[str, np.ndarray]


@dataclass
class CkaCurves:
    """CKA of every run that recorded it."""

    runs: list[RunCka] = field(default_factory=list)

    @property
    def languages(self) -> list[str]:
        return sorted({lang for r in self.runs for lang in r.values})

    def table(self) -> pa.Table:
        """Long format: trial_id, seed, policy, language, step, layer, cka."""
        cols: dict[str, list[Any]] = {
            k: [] for k in ("trial_id", "seed", "policy", "language", "step", "layer", "cka")
        }
        for r in self.runs:
            for lang, mat in sorted(r.values.items()):
                for li, layer in enumerate(r.layers.tolist()):
                    for si, step in enumerate(r.steps.tolist()):
                        if np.isfinite(mat[li, si]):
                            cols["trial_id"].append(r.trial_id)
                            cols["seed"].append(r.seed)
                            cols["policy"].append(r.policy)
                            cols["language"].append(lang)
                            cols["step"].append(step)
                            cols["layer"].append(layer)
                            cols["cka"].append(float(mat[li, si]))
        return pa.table(cols)

    def mean(
        self, runs: list[tuple[str, int]] | None = None
    ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        """(steps, layers, {lang: layers x steps}) averaged over `runs` ((trial_id, seed);
        default all), on the steps and layers they all have."""
        chosen = [r for r in self.runs if runs is None or (r.trial_id, r.seed) in set(runs)]
        if not chosen:
            return np.zeros(0, np.int64), np.zeros(0, np.int64), {}
        steps = sorted(set.intersection(*(set(r.steps.tolist()) for r in chosen)))
        layers = sorted(set.intersection(*(set(r.layers.tolist()) for r in chosen)))
        langs = sorted(set.intersection(*(set(r.values) for r in chosen)))
        out = {}
        for lang in langs:
            stack = []
            for r in chosen:
                si = np.searchsorted(r.steps, steps)
                li = np.searchsorted(r.layers, layers)
                stack.append(r.values[lang][np.ix_(li, si)])
            with warnings.catch_warnings():  # all-NaN cells stay NaN
                warnings.simplefilter("ignore", RuntimeWarning)
                out[lang] = np.nanmean(np.stack(stack), axis=0)
        return np.array(steps, np.int64), np.array(layers, np.int64), out


def cka_curves(
    results: Results | str | os.PathLike[str] | pa.Table, *, task: str | None = None
) -> CkaCurves:
    """The CKA rows of the results (of `task` when given), per run; failed runs left out."""
    res = load(results)
    t = res.table
    mask = pc.equal(t["split"], CKA_SPLIT)
    mask = pc.and_(mask, pc.not_equal(t["status"], "failed"))
    if task is not None:
        mask = pc.and_(mask, pc.equal(t["task"], task))
    rows = t.filter(pc.fill_null(mask, False)).select(
        ["trial_id", "seed", "policy", "language", "step", "metric", "value"]
    )
    curves = CkaCurves()
    if not rows.num_rows:
        return curves
    data = {c: rows[c].to_pylist() for c in rows.column_names}
    per_run: dict[tuple[str, int], dict[str, Any]] = {}
    for trial, seed, policy, lang, step, metric, value in zip(
        *(data[c] for c in ("trial_id", "seed", "policy", "language", "step", "metric", "value")),
        strict=True,
    ):
        m = _LAYER.match(metric or "")
        if m is None or step is None:
            continue
        run = per_run.setdefault((trial, seed), {"policy": policy, "cells": {}})
        run["cells"][(lang, int(m.group(1)), int(step))] = value
    for (trial, seed), run in per_run.items():
        cells = run["cells"]
        steps = np.array(sorted({k[2] for k in cells}), np.int64)
        layers = np.array(sorted({k[1] for k in cells}), np.int64)
        values = {}
        for lang in sorted({k[0] for k in cells}):
            mat = np.full((len(layers), len(steps)), np.nan)
            for (lg, layer, step), v in cells.items():
                if lg == lang and v is not None:
                    mat[np.searchsorted(layers, layer), np.searchsorted(steps, step)] = v
            values[lang] = mat
        curves.runs.append(RunCka(trial, int(seed), run["policy"], steps, layers, values))
    curves.runs.sort(key=lambda r: (r.trial_id, r.seed))
    return curves
