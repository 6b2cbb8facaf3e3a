"""What happens to a trial's result fragments after the trial: the final status of each, and
setting aside the fragments of trials that will not be continued. The layout and status
columns of a results folder are known here (and in `writer` / `reader`) alone; the sweep
driver calls these functions.
"""

from __future__ import annotations

from fsf.errors import os_reason
from fsf.results.fragment_reader import COMPACTED_DIR, read_fragment
from fsf.results.storage import Location
from fsf.results.writer import atomic_write_table, fragment_path

__all__ = ["ORPHANED_DIR", "finalise_statuses", "set_aside_orphans"]

ORPHANED_DIR = ".orphaned"
"""Folder (under `results/`, hidden from readers) for fragments of orphaned trials."""


def set_aside_orphans(results_dir: Location, known: set[str]) -> list[str]:
    """Move the folder of every trial not in `known` (trial ids) to `results/.orphaned/`;
    returns the folder names moved, sorted."""
    keep = {fragment_path(results_dir, trial_id, 0).parent.name for trial_id in known}
    moved = []
    folders: list[Location] = sorted(results_dir.glob("trial=*"), key=lambda p: p.name)
    for folder in folders:
        if folder.name in keep or folder.name == COMPACTED_DIR:
            continue
        target = results_dir / ORPHANED_DIR / folder.name
        target.parent.mkdir(parents=True, exist_ok=True)
        # target is the kind of path folder is (both under results_dir); mypy pairs each
        # kind of folder with either kind of target
        folder.replace(target)  # type: ignore[arg-type]
        moved.append(folder.name)
    return moved


def finalise_statuses(
    results_dir: Location, errors: dict[str, str]
) -> tuple[dict[str, str], list[str]]:
    """Fragments still marked `running` belong to trials that were stopped (ASHA) or died
    without cleaning up (a killed worker): mark them failed with the reason when the trial
    failed, completed when their final evaluation is recorded, else stopped.

    Returns the failure reason recorded in the results for each trial that has a failed
    fragment, and notes on fragments whose status could not be updated."""
    import pyarrow as pa

    recorded: dict[str, str] = {}
    notes: list[str] = []
    paths: list[Location] = sorted(results_dir.glob("trial=*/seed-*.parquet"), key=str)
    for path in paths:
        try:
            table = read_fragment(path)
        except Exception:  # an unreadable fragment is reported by the readers
            continue
        if table.num_rows == 0:
            continue
        trial_id = table.column("trial_id")[0].as_py()
        statuses = set(table.column("status").to_pylist())
        if "failed" in statuses:
            reasons = [r for r in table.column("failure_reason").to_pylist() if r]
            recorded.setdefault(trial_id, reasons[0] if reasons else "failed")
            continue
        if statuses != {"running"}:
            continue
        if trial_id in errors:
            status, reason = "failed", errors[trial_id]
        elif any(table.column("is_final").to_pylist()):
            # its final evaluation is recorded: Tune ended it after the last report (ASHA or
            # max_t at the last step) before the writer could say so; the run is whole
            status, reason = "completed", None
        else:
            status, reason = "stopped", None
        n = table.num_rows
        for column, value in (("status", status), ("failure_reason", reason)):
            i = table.schema.get_field_index(column)
            table = table.set_column(i, table.schema.field(i), pa.array([value] * n, pa.string()))
        try:
            atomic_write_table(table, path)
        except OSError as exc:
            notes.append(f"could not mark {path} as {status}: {os_reason(exc)}")
            continue
        if status == "failed" and reason is not None:
            recorded[trial_id] = reason
    return recorded, notes
