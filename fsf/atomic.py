"""Atomic writes to a local file: readers see the old file or the new one, never a partial one.

The one home of fsf's temp-and-rename rule (a base module: every layer may use it). The data
goes to a hidden temp file beside the target, is fsynced, and is renamed over the target in
one step (`os.replace`); on any error the temp file is removed and the target is untouched.
The temp name starts with '.' (skipped by pyarrow and pandas dataset discovery) and ends in
'.part', not in the target's suffix (DuckDB's `**/*.parquet` glob matches hidden files, so
the suffix is what keeps a half-written fragment out of DuckDB). Files on a URI (`s3://`)
are written by `fsf.results.storage`, which uses the same temp names where the filesystem
can rename.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_path", "temp_name", "write_atomic"]


def temp_name(name: str) -> str:
    """The hidden temp file name a write of `name` goes through (`.tmp-<uuid>-<name>.part`)."""
    return f".tmp-{uuid.uuid4().hex}-{name}.part"


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """A temp path to write in place of `path`; renamed over `path` when the block ends.

    Creates `path`'s folder if needed. When the block ends without an exception the temp
    file is fsynced and renamed over `path`; otherwise it is removed and the exception
    propagates. The block must leave a file at the temp path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / temp_name(path.name)
    try:
        yield tmp
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_atomic(path: str | os.PathLike[str], data: bytes | str) -> Path:
    """Write `data` (bytes, or text as UTF-8) to `path` atomically; return `path`."""
    path = Path(path)
    with atomic_path(path) as tmp:
        if isinstance(data, str):
            tmp.write_text(data, encoding="utf-8")
        else:
            tmp.write_bytes(data)
    return path
