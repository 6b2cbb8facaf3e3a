"""Hand-built results: runs described as plain dicts, turned into schema rows or fragments."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa

from fsf.config import RunConfig
from fsf.results import SCHEMA, ParquetReporter, TrialInfo, evaluation_rows
from fsf.results.evaluation import Evaluation

SOURCE = "en"


def info(
    trial: str,
    seed: int = 0,
    policy: str = "fsf",
    lr: float = 1e-5,
    params: dict[str, Any] | None = None,
    targets: tuple[str, ...] = ("de", "sw"),
    sweep: str = "toy",
) -> TrialInfo:
    cfg = RunConfig(
        name=trial,
        seed=seed,
        task={"name": "xnli"},
        target_langs=list(targets),
        policy={"name": policy},
        optim={"lr": lr},
    )
    return TrialInfo(
        cfg,
        sweep=sweep,
        trial_id=trial,
        params=params if params is not None else {"policy": policy, "lr": lr},
    )


def evaluation(
    step: int, dev: dict[str, float], test: dict[str, float], *, phase: str = "P1", total: int = 100
) -> Evaluation:
    langs = sorted(set(dev) | set(test))
    return Evaluation(
        step=step,
        epoch=step / total,
        loss=1.0 / (1 + step),
        phase=phase,
        phi=None,
        multipliers={
            "S_I": 0.01 if phase == "P1" else 1.0,
            "S_II": 1.0,
            "V_I": 1.0,
            "V_II": 1.0 if phase == "P1" else 10.0,
            "embeddings": 1.0,
            "head": 1.0,
        },
        scores={
            "dev": {k: {"accuracy": v} for k, v in dev.items()},
            "test": {k: {"accuracy": v} for k, v in test.items()},
        },
        metric="accuracy",
        source_lang=SOURCE,
        target_langs=[x for x in langs if x != SOURCE],
        elapsed_s=float(step),
        total_steps=total,
        is_final=step == total,
    )


def run(
    trial: str,
    evals: list[Evaluation],
    *,
    seed: int = 0,
    status: str = "completed",
    reason: str | None = None,
    **kw: Any,
) -> tuple[TrialInfo, list[Evaluation], str, str | None]:
    return info(trial, seed, **kw), evals, status, reason


def table(runs: list[tuple]) -> pa.Table:
    rows: list[dict[str, Any]] = []
    for inf, evals, status, reason in runs:
        for ev in evals:
            rows += evaluation_rows(inf, ev, status, reason)
    return pa.Table.from_pylist(rows, schema=SCHEMA)


def write(root: Path, runs: list[tuple]) -> list[Path]:
    paths = []
    for inf, evals, status, reason in runs:
        rep = ParquetReporter(root, inf)
        for ev in evals:
            rep.report(ev)
        paths.append(rep.finish(status, reason) if status != "running" else rep.path)
    return paths


def ev2(
    step: int,
    en: float,
    de: float,
    sw: float | None = None,
    *,
    dev_de: float | None = None,
    phase: str = "P1",
) -> Evaluation:
    """An evaluation where test = dev unless given (dev_de: the dev score of de)."""
    dev = {"en": en, "de": de if dev_de is None else dev_de}
    test = {"en": en, "de": de}
    if sw is not None:
        dev["sw"] = test["sw"] = sw
    return evaluation(step, dev, test, phase=phase)
