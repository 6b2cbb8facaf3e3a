"""Writing results: atomic Parquet fragments in a hive-partitioned dataset.

Layout: `<root>/trial=<trial_id>/seed-<seed>.parquet`, one fragment per (trial, seed). The
fragment is rewritten whole (temp file + rename; one object on S3/GCS, see
`fsf.results.storage`) after each evaluation, so a reader sees either the previous complete
fragment or the new one, never a partial file; a trial that
restarts rewrites its fragment from scratch, so its rows are never duplicated.
"""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from fsf.atomic import atomic_path
from fsf.errors import os_reason
from fsf.results._errors import ResultsWriteError
from fsf.results.evaluation import Evaluation
from fsf.results.schema import PROVENANCE_KEY, SCHEMA, TrialInfo, evaluation_rows
from fsf.results.storage import Location, StoragePath, location, write_bytes_atomic

__all__ = [
    "WRITE_OPTIONS",
    "ParquetReporter",
    "atomic_write_table",
    "check_writable",
    "fragment_path",
    "fragment_rel",
]

#: How fsf writes every Parquet file: zstd pages, each with a CRC-32 checksum that the readers
#: verify (`fsf.results.reader`), so a flipped bit is reported like a truncated file.
WRITE_OPTIONS: dict[str, Any] = {"compression": "zstd", "write_page_checksum": True}


def atomic_write_table(table: pa.Table, path: str | Path | StoragePath) -> Location:
    """Write `table` to `path` so that readers never see a partial file.

    The data goes to a hidden `.tmp-*.part` file in the same folder, is fsynced, then renamed
    over `path` in one step (`fsf.atomic`, which says why the name keeps it out of pyarrow,
    pandas and DuckDB dataset discovery). On a URI (`s3://...`) the file is serialised in
    memory and written as one object (see `fsf.results.storage`).
    Every page carries a checksum (`WRITE_OPTIONS`).
    """
    path = location(path)
    if isinstance(path, StoragePath):
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink, **WRITE_OPTIONS)
        write_bytes_atomic(path, sink.getvalue().to_pybytes())
        return path
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, **WRITE_OPTIONS)
    return path


def check_writable(folder: str | Path | StoragePath) -> Location:
    """Create `folder` if needed and prove that a file can be written in it (a hidden probe,
    removed at once), so that a run or sweep fails before training, not after it. Raises
    `ResultsWriteError` naming the folder and the reason."""
    folder = location(folder)
    probe = folder / f".fsf-write-test-{uuid.uuid4().hex}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(probe, b"fsf")
        probe.unlink(missing_ok=True)
    except OSError as exc:
        raise ResultsWriteError(f"cannot write results to {folder}: {os_reason(exc)}") from exc
    return folder


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name) or "_"


def fragment_rel(trial_id: str, seed: int) -> str:
    """Where the writer puts run (`trial_id`, `seed`)'s fragment, relative to the results
    root: `trial=<id>/seed-<seed>.parquet` (characters outside [A-Za-z0-9_.-] of the id
    replaced by `_`)."""
    return f"trial={_safe(trial_id)}/seed-{seed}.parquet"


def fragment_path(root: str | Path | StoragePath, trial_id: str, seed: int) -> Location:
    """`fragment_rel(trial_id, seed)` under the results root `root`."""
    return location(root) / fragment_rel(trial_id, seed)


class ParquetReporter:
    """A `Reporter` that keeps a trial's rows in one atomically rewritten fragment.

    Every `report` rewrites the fragment with all rows so far, status `running`; `finish`
    rewrites it with the final status (it may be called again: the last call wins). Used as
    a context manager, it finishes the trial when the block ends: `completed` without an
    exception; on one, `failed` with the reason `<ExceptionType>: <message>`, and the
    exception propagates. With `exit_is_stop=True` a `SystemExit` means the trial was ended
    from outside (Ray Tune does that from inside `tune.report`: ASHA, max_t): `completed`
    when its last evaluation was the final one, else `stopped`.
    """

    def __init__(
        self, root: str | Path | StoragePath, info: TrialInfo, *, exit_is_stop: bool = False
    ):
        self.info = info
        self.path = fragment_path(root, info.columns["trial_id"], info.columns["seed"])
        self.evaluations: list[Evaluation] = []
        self.exit_is_stop = exit_is_stop

    def __enter__(self) -> ParquetReporter:
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        if exc is None:
            self.finish("completed")
        elif self.exit_is_stop and isinstance(exc, SystemExit):
            self.finish(self.stop_status())
        else:
            self.finish("failed", f"{type(exc).__name__}: {exc}")

    def report(self, evaluation: Evaluation) -> None:
        self.evaluations.append(evaluation)
        self._write("running", None)

    def stop_status(self) -> str:
        """A trial ended from outside: completed if its last evaluation was the final one."""
        evs = self.evaluations
        return "completed" if evs and evs[-1].is_final else "stopped"

    def finish(self, status: str = "completed", reason: str | None = None) -> Location:
        """Mark the trial's rows with its final status (completed, failed or stopped).

        Raises `ResultsWriteError` when the fragment cannot be written; for a failed run its
        message keeps the failure's reason, since the results cannot."""
        try:
            return self._write(status, reason)
        except ResultsWriteError as exc:
            if status != "failed":
                raise
            raise ResultsWriteError(
                f"the run failed ({reason}) and the failure could not be recorded: {exc}"
            ) from exc

    def _write(self, status: str, reason: str | None) -> Location:
        rows: list[dict[str, Any]] = []
        for ev in self.evaluations:
            rows += evaluation_rows(self.info, ev, status, reason)
        if not rows:  # a trial that failed before its first evaluation still leaves a row
            from datetime import datetime, timezone

            rows = [
                {
                    **self.info.columns,
                    "status": status,
                    "failure_reason": reason,
                    "timestamp": datetime.now(timezone.utc),
                }
            ]
        schema = SCHEMA
        if self.info.provenance:
            prov = json.dumps(self.info.provenance, sort_keys=True, default=str)
            schema = SCHEMA.with_metadata({**SCHEMA.metadata, PROVENANCE_KEY: prov.encode()})
        table = pa.Table.from_pylist(rows, schema=schema)
        try:
            return atomic_write_table(table, self.path)
        except OSError as exc:
            raise ResultsWriteError(
                f"cannot write results to {self.path}: {os_reason(exc)}"
            ) from exc
