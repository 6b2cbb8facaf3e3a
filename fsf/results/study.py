"""Where a sweep's Optuna study is stored, and how to open it.

Only the sweep driver (the `fsf-sweep` process, where Tune's searcher runs) talks to the
study; trials never do. The study storage is, in order of precedence:

1. the environment variable `FSF_OPTUNA_STORAGE` (keeps a database password out of the
   space file: inject it from a secret);
2. the space's `storage.optuna`;
3. `sqlite:///<sweep folder>/optuna.db` when the sweep folder is on a local or mounted disk.

Accepted forms:

- a SQLAlchemy URL: `postgresql://user:pw@host/db` (needs `psycopg2-binary`),
  `mysql+pymysql://user:pw@host/db` (needs `pymysql`), `sqlite:////abs/path/optuna.db`;
- `journal:PATH`: an Optuna `JournalStorage` in the file PATH (absolute, or relative to a
  local sweep folder), locked with `JournalFileOpenLock`, which is safe on NFS. Use it when
  the sweep folder is on NFS: SQLite's locking is not reliable there.

A sweep folder on an object store (`s3://`, `gs://`) has no default: SQLite and journal
files need a POSIX filesystem, so such a sweep must name a database or a journal file on a
disk the driver keeps (`fsf-sweep` says so before starting).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from fsf.errors import FsfError, UsageError
from fsf.results.storage import Location, StoragePath, is_uri

__all__ = [
    "ENV_VAR",
    "OBJECT_STORES",
    "check_study_url",
    "display_url",
    "open_study_storage",
    "readable_study_url",
    "require_study_storage",
    "resolve_study_url",
]

#: URI schemes of object stores: no POSIX files, so no default study storage there.
OBJECT_STORES = ("s3", "gs", "gcs", "abfs", "abfss")


def _no_study_storage(where: str) -> str:
    return (
        f"the sweep folder {where} is on an object store, where the Optuna study cannot live "
        "(SQLite and journal files need a POSIX disk): set the space's storage.optuna (or "
        f"${ENV_VAR}) to a PostgreSQL/MySQL URL, e.g. postgresql://fsf:PASSWORD@db-host/optuna, "
        "or to journal:/a/disk/the/driver/keeps/optuna.journal (see cluster/README.md)"
    )


def require_study_storage(configured: str | None, storage_root: str) -> None:
    """Refuse a sweep kept on an object store (`s3://`, `gs://`, ...) with no study storage
    configured, from the URI alone, before the store is contacted (UsageError, exit 2)."""
    if not is_uri(storage_root) or os.environ.get(ENV_VAR) or configured:
        return
    if storage_root.split("://", 1)[0].lower() in OBJECT_STORES:
        raise UsageError(_no_study_storage(storage_root))


ENV_VAR = "FSF_OPTUNA_STORAGE"
JOURNAL = "journal:"
_DIALECTS = ("sqlite", "postgresql", "mysql", "mariadb", "oracle", "mssql")


def check_study_url(url: str) -> str | None:
    """What is wrong with a study storage URL, or None when it is usable."""
    if url.startswith(JOURNAL):
        if not url[len(JOURNAL) :].strip():
            return "journal: needs a file path, e.g. journal:/mnt/nfs/sweeps/optuna.journal"
        if "://" in url[len(JOURNAL) :]:
            return "a journal file must be on a local or mounted disk (NFS), not a URI"
        return None
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:
        return (
            "not a database URL; use postgresql://user:pw@host/db, "
            "mysql+pymysql://user:pw@host/db, sqlite:////abs/optuna.db or journal:PATH"
        )
    dialect = parsed.drivername.split("+")[0]
    if dialect not in _DIALECTS:
        return f"unknown database {dialect!r}; use one of {list(_DIALECTS)} or journal:PATH"
    return None


def _local_dir(sweep_dir: Location) -> Path | None:
    """The sweep folder as a local path, if it is on a local (or mounted) disk."""
    if isinstance(sweep_dir, Path):
        return sweep_dir
    if sweep_dir.fs.type_name == "local":
        return Path(sweep_dir.path)
    return None


def resolve_study_url(configured: str | None, sweep_dir: Location) -> str:
    """The study storage of the sweep in `sweep_dir` (see the module doc), with relative
    journal paths made absolute. Raises `FsfError` when there is none or it is malformed."""
    url = os.environ.get(ENV_VAR) or configured
    local = _local_dir(sweep_dir)
    if not url:
        if local is None:
            raise UsageError(_no_study_storage(str(sweep_dir)))
        return f"sqlite:///{local / 'optuna.db'}"
    problem = check_study_url(url)
    if problem:
        source = f"${ENV_VAR}" if os.environ.get(ENV_VAR) else "storage.optuna"
        raise FsfError(f"{source}: {problem} (got {display_url(url)!r})")
    if url.startswith(JOURNAL):
        path = Path(url[len(JOURNAL) :]).expanduser()
        if not path.is_absolute():
            if local is None:
                raise FsfError(
                    f"storage.optuna {url!r}: a relative journal path needs a sweep folder on a "
                    f"local or mounted disk, not {sweep_dir}; give an absolute path"
                )
            path = local / path
        return f"{JOURNAL}{path.resolve()}"
    return url


def open_study_storage(url: str) -> Any:
    """An Optuna storage object for a resolved URL (`resolve_study_url`)."""
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

    if url.startswith(JOURNAL):
        path = url[len(JOURNAL) :]
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        return optuna.storages.JournalStorage(
            JournalFileBackend(path, lock_obj=JournalFileOpenLock(path))
        )
    kwargs = {"connect_args": {"timeout": 30}} if url.startswith("sqlite") else {}
    try:
        return optuna.storages.RDBStorage(url, engine_kwargs=kwargs)
    except ImportError as exc:  # the database's driver is not installed
        raise FsfError(
            f"cannot open the Optuna study at {display_url(url)}: {exc}; install the "
            "database driver (psycopg2-binary for PostgreSQL, pymysql for MySQL)"
        ) from exc


def display_url(url: str) -> str:
    """The URL with any password replaced by '***' (for logs and sweep.json)."""
    if url.startswith(JOURNAL) or "://" not in url:
        return url
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url.split("://", 1)[0] + "://***"


def readable_study_url(sweep_dir: Location | None, sweep_meta: dict[str, Any]) -> str | None:
    """Where a finished sweep's study can be read from: `$FSF_OPTUNA_STORAGE`, else
    `optuna.db` in the (local) sweep folder, else the storage recorded in sweep.json unless
    its password is hidden there."""
    if os.environ.get(ENV_VAR):
        return os.environ[ENV_VAR]
    local = _local_dir(sweep_dir) if isinstance(sweep_dir, (Path, StoragePath)) else None
    if local is not None and (local / "optuna.db").is_file():
        return f"sqlite:///{local / 'optuna.db'}"
    recorded = sweep_meta.get("optuna_storage")
    if recorded and "***" not in recorded:
        if recorded.startswith(JOURNAL) and not Path(recorded[len(JOURNAL) :]).is_file():
            return None
        return str(recorded)
    return None
