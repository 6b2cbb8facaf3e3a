"""Hand-built results for the analyses: runs with loss curves, CKA and probe settings."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from fsf.config import RunConfig
from fsf.results import SCHEMA, TrialInfo, evaluation_rows
from fsf.results.evaluation import Evaluation, StepRecord


def config(trial: str, seed: int = 0, **over: Any) -> RunConfig:
    data: dict[str, Any] = {
        "name": trial,
        "seed": seed,
        "task": {"name": "xnli"},
        "target_langs": ["de", "sw"],
        "policy": {"name": "df", "window": 2, "threshold": 0.1},
    }
    data.update(over)
    return RunConfig(**data)


def evaluation(
    step: int,
    total: int,
    en: float,
    de: float,
    sw: float,
    *,
    phase: str = "P1",
    steps: list[StepRecord] | None = None,
    cka: dict[int, dict[str, list[float]]] | None = None,
) -> Evaluation:
    scores = {"en": {"accuracy": en}, "de": {"accuracy": de}, "sw": {"accuracy": sw}}
    return Evaluation(
        step=step,
        epoch=step / total,
        loss=None,
        phase=phase,
        phi=None,
        multipliers=dict.fromkeys(("S_I", "S_II", "V_I", "V_II", "embeddings", "head"), 1.0),
        scores={"dev": scores, "test": scores},
        metric="accuracy",
        source_lang="en",
        target_langs=["de", "sw"],
        elapsed_s=float(step),
        total_steps=total,
        is_final=step == total,
        train_steps=steps or [],
        cka=cka or {},
    )


def table(runs: list[tuple[RunConfig, list[Evaluation]]], sweep: str = "toy") -> pa.Table:
    rows: list[dict[str, Any]] = []
    for cfg, evals in runs:
        info = TrialInfo(cfg, sweep=sweep, trial_id=cfg.name, params={"trial": cfg.name})
        for ev in evals:
            rows += evaluation_rows(info, ev, "completed")
    return pa.Table.from_pylist(rows, schema=SCHEMA)
