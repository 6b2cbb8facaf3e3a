"""What the runs of a results folder ran with: each fragment's `fsf.provenance` metadata (the
versions of Python, torch and CUDA, transformers, DeepSpeed, Ray and Optuna, and the device
it trained on; `TrialInfo.provenance`), grouped, beside the driver's from `sweep.json`. A
sweep whose runs disagree (two torch builds, a node without its GPU) says so."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from fsf.provenance import describe
from fsf.results.fragment_reader import _read_schema
from fsf.results.reader import Results
from fsf.results.schema import PROVENANCE_KEY

__all__ = ["provenance_summary", "read_provenance"]


def read_provenance(res: Results) -> dict[str, dict[str, Any] | None]:
    """Each fragment's recorded provenance (None where it records none: written before fsf
    recorded it, or by a compaction), by its path under `res.root`; only footers are read."""
    out: dict[str, dict[str, Any] | None] = {}
    if res.root is None:
        return out
    for rel in res.fragments:
        try:
            raw = (_read_schema(res.root / rel).metadata or {}).get(PROVENANCE_KEY)
            out[rel] = json.loads(raw) if raw else None
        except (OSError, ValueError):
            out[rel] = None
    return out


def provenance_summary(res: Results) -> dict[str, Any]:
    """`{"driver": line or None, "runs": [{"stack": line, "runs": n}, ...], "agree": bool,
    "unrecorded": n}`: the driver's stack (sweep.json), then the distinct stacks of the runs,
    most runs first; `agree` is False when the runs ran with more than one."""
    driver = (res.sweep.get("provenance") or {}).get("driver")
    counts: Counter[str] = Counter()
    unrecorded = 0
    for prov in read_provenance(res).values():
        if prov is None:
            unrecorded += 1
        else:
            counts[describe(prov)] += 1
    return {
        "driver": describe(driver, device=False) if driver else None,
        "runs": [{"stack": s, "runs": n} for s, n in counts.most_common()],
        "agree": len(counts) <= 1,
        "unrecorded": unrecorded,
    }
