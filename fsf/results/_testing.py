"""Synthetic results tables for tests and benchmarks (vectorised: millions of rows in seconds).

Rows are ordered by trial, seed, step, split, language, as the writer leaves them. Scores
follow a plausible shape: a per-configuration quality, a per-language offset (the source is
best), a rise over training, and seeded noise. Not part of the public API.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

import numpy as np
import pyarrow as pa

from fsf.results.schema import SCHEMA, SCHEMA_VERSION

__all__ = ["synthetic_table"]

POLICIES = ("df", "fs", "ff", "fsf", "noisytune")


def synthetic_table(
    n_trials: int = 20,
    n_seeds: int = 2,
    n_steps: int = 5,
    languages: tuple[str, ...] = ("en", "de", "fr", "ja", "sw"),
    *,
    splits: tuple[str, ...] = ("dev", "test"),
    metric: str = "accuracy",
    task: str = "xnli",
    sweep: str = "synthetic",
    failed_every: int = 0,
    seed: int = 0,
    first_trial: int = 0,
    full_config: bool = False,
) -> pa.Table:
    """A results table of `n_trials * n_seeds` runs; `languages[0]` is the source.

    Every `failed_every`-th trial (if > 0) is marked failed on all its seeds. Trial ids start
    at `first_trial` (so that tables built in parts can be concatenated). `config_json` is `{}`
    unless `full_config`: then each trial's full run config (its policy, c1, c2 and lr on
    fsf's defaults), about 1.4 kB a row as the writer leaves it.
    """
    rng = np.random.default_rng(seed)
    n_lang, n_split = len(languages), len(splits)
    per_run = n_steps * n_split * n_lang
    n_runs = n_trials * n_seeds
    n = n_runs * per_run
    run = np.repeat(np.arange(n_runs), per_run)
    trial = run // n_seeds
    seed_col = run % n_seeds
    step_i = np.tile(np.repeat(np.arange(n_steps), n_split * n_lang), n_runs)
    split_i = np.tile(np.repeat(np.arange(n_split), n_lang), n_runs * n_steps)
    lang_i = np.tile(np.arange(n_lang), n_runs * n_steps * n_split)
    total = 100 * n_steps
    step = step_i * 100

    policy_i = (first_trial + np.arange(n_trials)) % len(POLICIES)
    c1 = rng.choice([0.001, 0.01, 0.1], n_trials)
    c2 = rng.choice([5.0, 10.0, 20.0], n_trials)
    lr = rng.choice([5e-6, 1e-5, 2e-5, 3e-5], n_trials)
    quality = rng.normal(0.0, 0.03, n_trials) + 0.01 * policy_i
    lang_off = np.concatenate([[0.0], -0.05 - 0.1 * rng.random(n_lang - 1)])
    curve = 0.6 + 0.25 * (1 - np.exp(-3 * (step_i + 1) / n_steps))
    value = curve + quality[trial] + lang_off[lang_i] + rng.normal(0, 0.01, n)
    value = np.clip(value, 0, 1)

    status = np.where(
        (failed_every > 0)
        & ((first_trial + np.arange(n_trials)) % max(failed_every, 1) == failed_every - 1),
        "failed",
        "completed",
    )
    trial_ids = np.array([f"t{first_trial + i:05d}" for i in range(n_trials)], dtype=object)
    params = np.array(
        [
            json.dumps(
                {"policy": POLICIES[policy_i[i]], "c1": c1[i], "c2": c2[i], "lr": lr[i]},
                sort_keys=True,
            )
            for i in range(n_trials)
        ],
        dtype=object,
    )
    langs = np.array(languages, dtype=object)
    policies = np.array(POLICIES, dtype=object)
    cols = {
        "schema_version": pa.array(np.full(n, SCHEMA_VERSION, np.int16)),
        "sweep": pa.array(np.full(n, sweep, dtype=object), pa.string()),
        "trial_id": pa.DictionaryArray.from_arrays(trial, trial_ids).cast(pa.string()),
        "seed": pa.array(seed_col.astype(np.int64)),
        "status": pa.DictionaryArray.from_arrays(trial, status.astype(object)).cast(pa.string()),
        "failure_reason": pa.DictionaryArray.from_arrays(
            trial, np.where(status == "failed", "RuntimeError: diverged", np.array(None))
        ).cast(pa.string()),
        "step": pa.array(step.astype(np.int64)),
        "epoch": pa.array(step / total * 3.0),
        "total_steps": pa.array(np.full(n, total, np.int64)),
        "is_final": pa.array(step_i == n_steps - 1),
        "split": pa.DictionaryArray.from_arrays(split_i, np.array(splits, dtype=object)).cast(
            pa.string()
        ),
        "language": pa.DictionaryArray.from_arrays(lang_i, langs).cast(pa.string()),
        "is_source": pa.array(lang_i == 0),
        "metric": pa.array(np.full(n, metric, dtype=object), pa.string()),
        "value": pa.array(value),
        "primary_metric": pa.array(np.full(n, metric, dtype=object), pa.string()),
        "source_lang": pa.array(np.full(n, languages[0], dtype=object), pa.string()),
        "task": pa.array(np.full(n, task, dtype=object), pa.string()),
        "dataset": pa.array(np.full(n, task, dtype=object), pa.string()),
        "model": pa.array(np.full(n, "xlm-roberta-base", dtype=object), pa.string()),
        "policy": pa.DictionaryArray.from_arrays(policy_i[trial], policies).cast(pa.string()),
        "c1": pa.array(c1[trial]),
        "c2": pa.array(c2[trial]),
        "r": pa.array(np.full(n, 3.0)),
        "window": pa.array(np.full(n, 100, np.int64)),
        "threshold": pa.array(np.full(n, 0.1)),
        "switch_mode": pa.array(np.full(n, "loss-trend", dtype=object), pa.string()),
        "switch_point": pa.nulls(n, pa.float64()),
        "policy_iv": pa.array(np.ones(n, bool)),
        "lr": pa.array(lr[trial]),
        "batch_size": pa.array(np.full(n, 32, np.int64)),
        "few_shot_m": pa.array(np.zeros(n, np.int64)),
        "zero_stage": pa.array(np.zeros(n, np.int64)),
        "num_workers": pa.array(np.ones(n, np.int64)),
        "phase": pa.array(np.where(step_i < max(1, n_steps // 5), "P1", "P2").astype(object)),
        "phi": pa.array(np.where(step_i < 2, np.nan, 0.5)),
        "mult_s1": pa.array(np.where(step_i < max(1, n_steps // 5), 0.01, 1.0)),
        "mult_s2": pa.array(np.full(n, 1.0)),
        "mult_v1": pa.array(np.full(n, 1.0)),
        "mult_v2": pa.array(np.where(step_i < max(1, n_steps // 5), 1.0, 10.0)),
        "mult_embeddings": pa.array(np.full(n, 1.0)),
        "mult_head": pa.array(np.full(n, 1.0)),
        "train_loss": pa.array(1.0 / (1 + step_i)),
        "elapsed_s": pa.array(step * 0.5),
        "node": pa.array(np.full(n, "node0", dtype=object), pa.string()),
        "params_json": pa.DictionaryArray.from_arrays(trial.astype(np.int32), params),
        "config_json": pa.DictionaryArray.from_arrays(
            trial.astype(np.int32) if full_config else np.zeros(n, np.int32),
            _configs(policy_i, c1, c2, lr) if full_config else np.array(["{}"], dtype=object),
        ),
        "timestamp": pa.array(
            np.full(
                n,
                np.datetime64(datetime(2025, 1, 1, tzinfo=timezone.utc).replace(tzinfo=None), "us"),
            )
        ).cast(pa.timestamp("us", tz="UTC")),
    }
    return pa.Table.from_pydict(cols, schema=SCHEMA)


def _configs(policy_i: np.ndarray, c1: np.ndarray, c2: np.ndarray, lr: np.ndarray) -> np.ndarray:
    """Per trial, the JSON of a full run config with its policy, c1, c2 and lr."""
    from fsf.config import RunConfig

    base = json.loads(RunConfig().model_dump_json())
    out = []
    for p, a, b, c in zip(policy_i, c1, c2, lr, strict=True):
        base["policy"].update(name=POLICIES[p], c1=float(a), c2=float(b))
        base["optim"]["lr"] = float(c)
        out.append(json.dumps(base))
    return np.array(out, dtype=object)
