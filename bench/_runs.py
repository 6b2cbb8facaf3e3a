"""Shared by the benchmark scripts: many fsf training runs on a pool of processes.

`run_many(configs)` trains each `RunConfig` with the real fsf worker (`fsf.train.train`), on
`workers` processes of `threads` torch threads each (on a 2-core machine, 2 x 1 is about
twice the throughput of 1 x 2 for the tiny encoder), and returns every run's evaluations as
plain numbers. Results do not depend on the scheduling: each run is seeded by its config.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from multiprocessing import get_context
from typing import Any

__all__ = [
    "Curve",
    "checkpoint_scores",
    "md_table",
    "run_many",
    "set_args",
    "smoke_assets",
    "smoke_overrides",
]


@dataclass
class Curve:
    """One run: its evaluations (step -> scalars) and per-language test scores at the end."""

    label: str
    seed: int
    points: dict[int, dict[str, float]] = field(default_factory=dict)
    final_langs: dict[str, float] = field(default_factory=dict)
    best_dev_step: int = 0
    seconds: float = 0.0

    @property
    def final(self) -> dict[str, float]:
        return self.points[max(self.points)]

    @property
    def best_dev(self) -> dict[str, float]:
        """The evaluation selected by the source-language dev score (zero-shot honest)."""
        return self.points[self.best_dev_step]


def _init(threads: int) -> None:
    os.environ.setdefault("DS_ACCELERATOR", "cpu")
    import torch

    torch.set_num_threads(threads)


def _train_one(label: str, data: dict[str, Any]) -> Curve:
    import time

    from fsf.config import validate_run_config
    from fsf.train import train

    config = validate_run_config(data)
    t0 = time.perf_counter()
    summary = train(config)
    curve = Curve(label, config.seed, seconds=time.perf_counter() - t0)
    for ev in summary.evaluations:
        curve.points[ev.step] = ev.scalars()
    final = summary.final
    if final is not None and "test" in final.scores:
        curve.final_langs = {lang: final.score("test", lang) for lang in final.scores["test"]}
    best = summary.checkpoint("source-dev")
    curve.best_dev_step = best.step if best is not None else max(curve.points)
    return curve


def run_many(
    jobs: Sequence[tuple[str, Any]],
    workers: int = 2,
    threads: int = 1,
    desc: str = "runs",
) -> list[Curve]:
    """Train every `(label, RunConfig)`; returns the curves in the order of `jobs`."""
    from tqdm.auto import tqdm

    out: list[Curve | None] = [None] * len(jobs)
    ctx = get_context("spawn")
    with (
        ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init, initargs=(threads,)) as ex,
        tqdm(total=len(jobs), desc=desc, unit="run", file=sys.stderr) as bar,
    ):
        futures = {
            ex.submit(_train_one, label, cfg.model_dump(mode="json")): i
            for i, (label, cfg) in enumerate(jobs)
        }
        for fut in as_completed(futures):
            out[futures[fut]] = fut.result()
            bar.update(1)
    return [c for c in out if c is not None]


def smoke_assets(root: Any) -> dict[str, Any]:
    """Run-config overrides for smoke runs: a tiny random XLM-R and a pair dataset under
    `root`, 2 languages, batch 8."""
    from pathlib import Path

    from fsf.testing import pair_dataset, tiny_model

    root = Path(root)
    model = tiny_model(root / "model")
    data = pair_dataset(root / "data")
    return {
        "model": {"name": str(model), "max_length": 64},
        "task": {"name": "pawsx", "dataset": str(data)},
        "source_lang": "en",
        "target_langs": ["de", "fr"],
    }


def smoke_overrides(root: Any, steps: int = 6, **more: Any) -> dict[str, Any]:
    """Run-config overrides that turn a shipped space into a smoke run: the tiny random
    XLM-R and pair dataset of `smoke_assets(root)`, `steps` steps of batch 8, an evaluation
    every `steps // 2`, a loss-trend window of 2; `more` adds or replaces keys."""
    assets = smoke_assets(root)
    return {
        "model.name": assets["model"]["name"],
        "task": {"name": "pawsx", "dataset": assets["task"]["dataset"]},
        "target_langs": assets["target_langs"],
        "optim.max_steps": steps,
        "optim.batch_size": 8,
        "eval.every_steps": max(1, steps // 2),
        "policy.window": 2,
        **more,
    }


def set_args(overrides: dict[str, Any]) -> list[str]:
    """`--set key=value` arguments of `fsf sweep` for `overrides` (values as JSON, which
    fsf's YAML parser reads back exactly)."""
    import json

    return [a for k, v in overrides.items() for a in ("--set", f"{k}={json.dumps(v)}")]


def md_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], title: str = "") -> str:
    """A markdown table (pasted as is into docs/benchmarks.md)."""

    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.4g}"
        return "-" if v is None else str(v)

    lines = [title, ""] if title else []
    lines.append("| " + " | ".join(headers) + " |")
    lines.append("|" + "---|" * len(headers))
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def checkpoint_scores(folder: Any) -> list[dict[str, Any]]:
    """Every run of a sweep (or confirmation) folder, read with fsf's reader: its learning
    rate, parameters, steps, the test scores per language at the last step (`final`) and at
    the checkpoint chosen on source-language dev (`checkpoint`, ties to the earlier step, as
    fsf selects), the dev target mean there, and the dev gap at every evaluation."""
    import json
    from collections import defaultdict

    import numpy as np

    from fsf.results import read_results

    t = read_results(folder).table
    keep = [
        "trial_id", "seed", "status", "step", "split", "language", "metric", "value",
        "primary_metric", "lr", "source_lang", "params_json", "policy",
    ]  # fmt: skip
    runs: dict[tuple[str, int], dict[str, Any]] = {}
    for r in t.select(keep).to_pylist():
        if r["status"] == "failed" or r["split"] not in ("dev", "test"):
            continue
        if r["metric"] != r["primary_metric"]:
            continue
        run = runs.setdefault(
            (r["trial_id"], r["seed"]),
            {
                "lr": r["lr"],
                "source": r["source_lang"],
                "policy": r["policy"],
                "params": json.loads(r["params_json"] or "{}"),
                "s": defaultdict(dict),
            },
        )
        run["s"][(r["split"], r["step"])][r["language"]] = r["value"]
    out = []
    for (trial, seed), run in sorted(runs.items()):
        steps = sorted({s for _, s in run["s"]})
        src, sc = run["source"], run["s"]

        def tmean(split: str, step: int, src: str = src, sc: dict = sc) -> float:
            v = [x for lang, x in sc.get((split, step), {}).items() if lang != src]
            return float(np.mean(v)) if v else float("nan")

        dev_src = np.array([sc.get(("dev", s), {}).get(src, np.nan) for s in steps])
        ckpt = steps[int(np.nanargmax(dev_src))] if np.isfinite(dev_src).any() else steps[-1]
        out.append(
            {
                "trial_id": trial,
                "seed": seed,
                "lr": run["lr"],
                "policy": run["policy"],
                "params": run["params"],
                "source": src,
                "steps": steps,
                "final": dict(sc.get(("test", steps[-1]), {})),
                "checkpoint_step": ckpt,
                "checkpoint": dict(sc.get(("test", ckpt), {})),
                "dev_target_mean_ckpt": tmean("dev", ckpt),
                "gap_dev": [
                    sc.get(("dev", s), {}).get(src, np.nan) - tmean("dev", s) for s in steps
                ],
            }
        )
    return out
