"""The versioned Arrow schema of fsf results (documented in docs/results.md).

One row per (sweep, trial, seed, evaluation step, split, language, metric). The trial's
configuration is spread into typed columns; everything else of the run config is kept as
JSON in `config_json`, and the sweep's sampled parameters in `params_json`.

Evaluation rows have split `dev` or `test` (`EVAL_SPLITS`). Two more kinds of rows serve the
analyses (docs/analysis.md), in the same columns: the training loss of every step
(split `train`, metric `loss`, language = the source language) and per-layer CKA against the
pretrained model (split `cka`, metric `cka_layer_{i}`, i = 0 for the embeddings). Queries of
scores use evaluation rows only.
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import pyarrow as pa

if TYPE_CHECKING:
    from fsf.config import RunConfig
    from fsf.results.evaluation import Evaluation

__all__ = [
    "CKA_SPLIT",
    "CKA_V2_METRIC",
    "EVAL_SPLITS",
    "LOSS_METRIC",
    "SCHEMA",
    "SCHEMA_VERSION",
    "TRAIN_SPLIT",
    "SchemaVersionError",
    "TrialInfo",
    "check_schema",
    "evaluation_rows",
]

SCHEMA_VERSION = 1

#: Splits of evaluation rows (scores); other splits hold analysis rows.
EVAL_SPLITS = ("dev", "test")
#: Split and metric of the per-step training loss rows.
TRAIN_SPLIT, LOSS_METRIC = "train", "loss"
#: Split of the CKA rows; their metric is `cka_layer_{i}` (layer 0 = the embeddings).
CKA_SPLIT = "cka"
CKA_V2_METRIC = "cka_v2"  # policy_iv: cka's measurement (mean over the V_II layers, source probe)

#: Type of the run's JSON columns: text that is the same on every row of a run (a real run
#: config is ~1.6 kB), kept once per distinct value (Parquet stores it so on disk, and pyarrow
#: reads it back without expanding it: 20 M rows of real configs would be ~35 GB as plain
#: strings). Compute functions, `to_pylist` and `to_pandas` (a categorical) read it as text;
#: `.cast(pa.string())` expands it.
_RUN_TEXT = pa.dictionary(pa.int32(), pa.string())

_FIELDS: list[tuple[str, pa.DataType, str]] = [
    ("schema_version", pa.int16(), "version of this schema"),
    ("sweep", pa.string(), "sweep name ('' for a single fsf-train run)"),
    ("trial_id", pa.string(), "trial id, unique in the sweep"),
    ("seed", pa.int64(), "training seed"),
    ("status", pa.string(), "trial status: running | completed | failed | stopped"),
    ("failure_reason", pa.string(), "why the trial failed (null unless failed)"),
    ("step", pa.int64(), "optimizer step of the evaluation or record (0 = before training)"),
    ("epoch", pa.float64(), "epochs of source data seen"),
    ("total_steps", pa.int64(), "planned optimizer steps"),
    ("is_final", pa.bool_(), "the evaluation after the last step"),
    ("split", pa.string(), "dev | test (scores); train (loss) | cka (analysis rows)"),
    ("language", pa.string(), "evaluated language (train rows: the source language)"),
    ("is_source", pa.bool_(), "language == source_lang"),
    ("metric", pa.string(), "metric name, e.g. accuracy, f1; loss; cka_layer_{i}"),
    ("value", pa.float64(), "metric value in [0, 1] (loss rows: the step's training loss)"),
    ("primary_metric", pa.string(), "the task's main metric"),
    ("source_lang", pa.string(), "fine-tuning language"),
    ("task", pa.string(), "task name"),
    ("dataset", pa.string(), "dataset name or path"),
    ("model", pa.string(), "model name or path"),
    ("policy", pa.string(), "policy name"),
    ("c1", pa.float64(), "Policy I multiplier"),
    ("c2", pa.float64(), "Policy IV multiplier"),
    ("r", pa.float64(), "Policy II exponent"),
    ("window", pa.int64(), "loss-trend window"),
    ("threshold", pa.float64(), "loss-trend threshold"),
    ("switch_mode", pa.string(), "loss-trend | step | fraction"),
    ("switch_point", pa.float64(), "switch step or fraction (null for loss-trend)"),
    ("policy_iv", pa.bool_(), "Policy IV applied"),
    ("lr", pa.float64(), "peak learning rate"),
    ("batch_size", pa.int64(), "global batch size"),
    ("few_shot_m", pa.int64(), "few-shot examples per target language"),
    ("zero_stage", pa.int64(), "DeepSpeed ZeRO stage"),
    ("num_workers", pa.int64(), "DeepSpeed ranks"),
    ("phase", pa.string(), "P1 | P2 at this step"),
    ("phi", pa.float64(), "loss trend at this step (null before 2w steps)"),
    ("mult_s1", pa.float64(), "multiplier of S_I outside S_II"),
    ("mult_s2", pa.float64(), "multiplier of S_II"),
    ("mult_v1", pa.float64(), "multiplier of V_I outside V_II"),
    ("mult_v2", pa.float64(), "multiplier of V_II"),
    ("mult_embeddings", pa.float64(), "multiplier of the embeddings"),
    ("mult_head", pa.float64(), "multiplier of the task head"),
    ("train_loss", pa.float64(), "mean training loss since the previous evaluation"),
    ("elapsed_s", pa.float64(), "seconds since the run started"),
    ("node", pa.string(), "host (or Ray node) that ran the trial"),
    ("params_json", _RUN_TEXT, "the sweep's sampled parameters, JSON"),
    ("config_json", _RUN_TEXT, "the full run config, JSON"),
    ("timestamp", pa.timestamp("us", tz="UTC"), "when the row was written"),
]

SCHEMA = pa.schema(
    [pa.field(name, typ, metadata={"doc": doc}) for name, typ, doc in _FIELDS],
    metadata={"fsf.schema_version": str(SCHEMA_VERSION)},
)

#: A fragment's schema metadata key holding its run's provenance (JSON; `TrialInfo.provenance`).
PROVENANCE_KEY = b"fsf.provenance"


class SchemaVersionError(Exception):
    """A results file written with a schema version this fsf cannot read."""


def check_schema(schema: pa.Schema, where: str = "") -> int:
    """Return the file's schema version; raise if it is unknown (newer or unlabelled)."""
    meta = schema.metadata or {}
    raw = meta.get(b"fsf.schema_version")
    if raw is None:
        raise SchemaVersionError(f"{where}: not an fsf results file (no fsf.schema_version)")
    version = int(raw)
    if version > SCHEMA_VERSION:
        raise SchemaVersionError(
            f"{where}: written by a newer fsf (schema v{version}; this fsf reads up to "
            f"v{SCHEMA_VERSION}); upgrade fsf"
        )
    if version < 1:
        raise SchemaVersionError(f"{where}: schema v{version} is not supported")
    return version


class TrialInfo:
    """The columns that describe a trial, the same for all its rows."""

    def __init__(
        self,
        config: RunConfig,
        *,
        sweep: str = "",
        trial_id: str | None = None,
        params: dict[str, Any] | None = None,
        num_workers: int = 1,
        node: str = "",
        provenance: dict[str, Any] | None = None,
    ):
        #: what the run ran with (`fsf.provenance`, plus its `device`): the fragment's
        #: metadata `fsf.provenance` (JSON), read back by `fsf.results.read_provenance`
        self.provenance = provenance
        p = config.policy
        switch_point = (
            float(p.switch_step)
            if p.switch == "step" and p.switch_step is not None
            else p.switch_fraction
            if p.switch == "fraction"
            else None
        )
        self.columns: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "sweep": sweep,
            "trial_id": trial_id or config.name,
            "seed": config.seed,
            "source_lang": config.source_lang,
            "task": config.task.name,
            "dataset": config.task.dataset or "",
            "model": config.model.name,
            "policy": p.name,
            "c1": p.c1,
            "c2": p.c2,
            "r": p.r,
            "window": p.window,
            "threshold": p.threshold,
            "switch_mode": p.switch,
            "switch_point": switch_point,
            # the run config resolves policy_iv (true, false or cka; cka is Policy IV on,
            # gated by the CKA trend: its effect shows in mult_v2 per evaluation)
            "policy_iv": p.policy_iv is not False,
            "lr": config.optim.lr,
            "batch_size": config.optim.batch_size,
            "few_shot_m": config.few_shot.m,
            "zero_stage": config.deepspeed.zero_stage,
            "num_workers": num_workers,
            "node": node,
            "params_json": json.dumps(params or {}, sort_keys=True, default=str),
            "config_json": config.model_dump_json(),
        }


def _num(x: float | None) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


def evaluation_rows(
    info: TrialInfo, ev: Evaluation, status: str = "running", reason: str | None = None
) -> list[dict[str, Any]]:
    """The rows of one evaluation: one per split, language and metric; then one per training
    step recorded since the previous evaluation (`ev.train_steps`) and one per CKA value
    (`ev.cka`). Analysis rows carry their own step, phase and phi; their multiplier, is_final
    and train_loss columns are null/false."""
    now = datetime.now(timezone.utc)
    m = ev.multipliers
    base = {
        **info.columns,
        "status": status,
        "failure_reason": reason,
        "step": ev.step,
        "epoch": ev.epoch,
        "total_steps": ev.total_steps,
        "is_final": ev.is_final,
        "primary_metric": ev.metric,
        "phase": ev.phase,
        "phi": _num(ev.phi),
        "mult_s1": m.get("S_I"),
        "mult_s2": m.get("S_II"),
        "mult_v1": m.get("V_I"),
        "mult_v2": m.get("V_II"),
        "mult_embeddings": m.get("embeddings"),
        "mult_head": m.get("head"),
        "train_loss": _num(ev.loss),
        "elapsed_s": ev.elapsed_s,
        "timestamp": now,
    }
    rows = []
    for split, per_lang in ev.scores.items():
        for lang, metrics in per_lang.items():
            for metric, value in metrics.items():
                rows.append(
                    {
                        **base,
                        "split": split,
                        "language": lang,
                        "is_source": lang == ev.source_lang,
                        "metric": metric,
                        "value": _num(value),
                    }
                )
    if ev.train_steps or ev.cka:
        rows += _analysis_rows(base, ev)
    return rows


def _analysis_rows(base: dict[str, Any], ev: Evaluation) -> list[dict[str, Any]]:
    blank = dict.fromkeys(
        (
            "mult_s1",
            "mult_s2",
            "mult_v1",
            "mult_v2",
            "mult_embeddings",
            "mult_head",
            "train_loss",
            "elapsed_s",
        )
    )
    per_step = ev.epoch / ev.step if ev.step else 0.0
    phases: dict[int, tuple[str | None, float | None]] = {0: ("P1", None)}
    phases.update({r.step: (r.phase, _num(r.phi)) for r in ev.train_steps})
    phases[ev.step] = (ev.phase, _num(ev.phi))
    common = {**base, **blank, "is_final": False}
    rows = []
    for r in ev.train_steps:
        step_row = {
            **common,
            "step": r.step,
            "epoch": r.step * per_step,
            "phase": r.phase,
            "phi": _num(r.phi),
            "language": ev.source_lang,
            "is_source": True,
        }
        if r.loss is not None:
            rows.append(
                {**step_row, "split": TRAIN_SPLIT, "metric": LOSS_METRIC, "value": _num(r.loss)}
            )
        if r.cka_v2 is not None:  # policy_iv: cka's measurement on the source probe batch
            rows.append(
                {**step_row, "split": CKA_SPLIT, "metric": CKA_V2_METRIC, "value": _num(r.cka_v2)}
            )
    for step, per_lang in sorted(ev.cka.items()):
        phase, phi = phases.get(step, (None, None))
        for lang, values in per_lang.items():
            for layer, value in enumerate(values):
                rows.append(
                    {
                        **common,
                        "step": step,
                        "epoch": step * per_step,
                        "phase": phase,
                        "phi": phi,
                        "split": CKA_SPLIT,
                        "language": lang,
                        "is_source": lang == ev.source_lang,
                        "metric": f"cka_layer_{layer}",
                        "value": _num(value),
                    }
                )
    return rows
