"""Where sweeps and results live: a local folder, or a URI on a `pyarrow.fs` filesystem.

`location(x)` turns a string into either a `pathlib.Path` (a local or mounted folder, NFS
included: handled exactly as before, with `os` calls) or a `StoragePath` (a URI such as
`s3://bucket/sweeps`, `gs://bucket/sweeps`, `hdfs://...` or `file:///abs/path`, resolved with
`pyarrow.fs.FileSystem.from_uri`). `StoragePath` offers the subset of the `pathlib.Path` API
that fsf's results code uses (`/`, `name`, `parent`, `exists`, `is_dir`, `iterdir`, `glob`,
`read_text`, `stat`, `unlink`, ...), so that code works on either.

Credentials and endpoints come from the filesystem's usual sources: for S3 the AWS
environment variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`,
`AWS_ENDPOINT_URL` for an S3-compatible store such as MinIO), `~/.aws`, or the instance role;
for GCS the application default credentials. Query parameters of the URI
(`s3://b/p?endpoint_override=...`) are kept on every path derived from it.

Atomic writes (`write_bytes_atomic`): on a local disk, a mounted folder or a `file://` URI the
data goes to a hidden temp file that is renamed over the target; on HDFS the same with the
filesystem's rename. On object stores (S3, GCS, ...) an object becomes visible only when its
upload completes (one PUT, or a multipart upload that is completed at once), so the new bytes
are serialised in memory first and written as one object: a reader sees the old object or
the new one, never a partial one, and an interrupted upload leaves the old object.
"""

from __future__ import annotations

import fnmatch
import os
import posixpath
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pyarrow.fs as pafs

from fsf.atomic import temp_name, write_atomic

__all__ = [
    "Location",
    "StoragePath",
    "inside",
    "is_uri",
    "location",
    "write_bytes_atomic",
]

#: Filesystems whose rename is atomic: written through a temp file and a rename.
_RENAMING = ("local", "hdfs")


def is_uri(value: Any) -> bool:
    """True for `scheme://...` strings (a local path never contains `://`)."""
    return isinstance(value, str) and "://" in value


@dataclass(frozen=True)
class _Stat:
    st_size: int
    st_mtime_ns: int


class StoragePath:
    """A file or folder on a `pyarrow.fs.FileSystem`, addressed by URI.

    `str()` gives the URI (what Ray Tune's `RunConfig(storage_path=...)` and every fsf
    command accept); `fs` and `path` are the filesystem and the path on it.
    """

    def __init__(self, fs: pafs.FileSystem, path: str, uri: str):
        self.fs = fs
        self.path = path.rstrip("/") or "/"
        self._uri = uri

    @classmethod
    def from_uri(cls, uri: str) -> StoragePath:
        try:
            fs, path = pafs.FileSystem.from_uri(uri)
        except ValueError as exc:  # pyarrow.ArrowInvalid: an unknown scheme, a malformed URI
            raise ValueError(f"{uri!r}: not a storage URI pyarrow can open ({exc})") from exc
        except OSError as exc:  # a known scheme that cannot be reached (network, no driver)
            raise ValueError(f"{uri!r}: cannot open this storage ({_first_line(exc)})") from exc
        parts = urlsplit(uri)
        clean = urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), parts.query, ""))
        return cls(fs, path, clean)

    # ------------------------------------------------------------------ naming

    def __str__(self) -> str:
        return self._uri

    def __repr__(self) -> str:
        return f"StoragePath({self._uri!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, StoragePath) and str(self) == str(other)

    def __hash__(self) -> int:
        return hash(self._uri)

    def __lt__(self, other: StoragePath) -> bool:
        return self.path < other.path

    def _with_path(self, path: str) -> StoragePath:
        parts = urlsplit(self._uri)
        # the URI's path is the filesystem path, except that S3/GCS put the bucket in netloc
        if parts.netloc and path.startswith(parts.netloc + "/"):
            uri_path = "/" + path[len(parts.netloc) + 1 :]
        elif parts.netloc and path == parts.netloc:
            uri_path = ""
        else:
            uri_path = path
        uri = urlunsplit((parts.scheme, parts.netloc, uri_path, parts.query, ""))
        return StoragePath(self.fs, path, uri)

    def __truediv__(self, name: str | os.PathLike[str]) -> StoragePath:
        name = os.fspath(name).strip("/")
        return self._with_path(posixpath.join(self.path, name) if name else self.path)

    @property
    def name(self) -> str:
        return posixpath.basename(self.path)

    @property
    def suffix(self) -> str:
        return PurePath(self.name).suffix

    @property
    def parent(self) -> StoragePath:
        return self._with_path(posixpath.dirname(self.path) or self.path)

    def resolve(self) -> StoragePath:
        return self

    def relative_to(self, other: StoragePath) -> PurePath:
        return PurePath(posixpath.relpath(self.path, other.path))

    # ------------------------------------------------------------------ queries

    def _info(self) -> pafs.FileInfo:
        return self.fs.get_file_info(self.path)

    def exists(self) -> bool:
        return self._info().type != pafs.FileType.NotFound

    def is_dir(self) -> bool:
        return self._info().type == pafs.FileType.Directory

    def is_file(self) -> bool:
        return self._info().type == pafs.FileType.File

    def stat(self) -> _Stat:
        info = self._info()
        if info.type == pafs.FileType.NotFound:
            raise FileNotFoundError(str(self))
        return _Stat(int(info.size or 0), int(info.mtime_ns or 0))

    def _list(self, recursive: bool) -> list[pafs.FileInfo]:
        if not self.is_dir():
            return []
        selector = pafs.FileSelector(self.path, recursive=recursive, allow_not_found=True)
        return sorted(self.fs.get_file_info(selector), key=lambda i: i.path)

    def iterdir(self) -> list[StoragePath]:
        return [self._with_path(i.path) for i in self._list(recursive=False)]

    def files(self) -> list[tuple[str, StoragePath]]:
        """Every file below this folder: (path relative to it, '/'-separated; its path)."""
        prefix = self.path.rstrip("/") + "/"
        return [
            (i.path[len(prefix) :], self._with_path(i.path))
            for i in self._list(recursive=True)
            if i.type == pafs.FileType.File and i.path.startswith(prefix)
        ]

    def glob(self, pattern: str) -> list[StoragePath]:
        """Entries matching a relative pattern of '/'-separated `fnmatch` components (no
        `**`), like `Path.glob` for such patterns; hidden names match only explicitly."""
        want = pattern.strip("/").split("/")
        prefix = self.path.rstrip("/") + "/"
        out = []
        for info in self._list(recursive=len(want) > 1):
            if not info.path.startswith(prefix):
                continue
            rel = info.path[len(prefix) :].split("/")
            if len(rel) == len(want) and all(
                fnmatch.fnmatchcase(r, w) and (not r.startswith(".") or w.startswith("."))
                for r, w in zip(rel, want, strict=True)
            ):
                out.append(self._with_path(info.path))
        return out

    # ------------------------------------------------------------------ reading

    def read_bytes(self) -> bytes:
        try:
            with self.fs.open_input_stream(self.path) as fh:
                return fh.read()
        except FileNotFoundError:
            raise
        except OSError as exc:
            if not self.exists():
                raise FileNotFoundError(f"{self}: no such file") from exc
            raise

    def read_text(self, encoding: str = "utf-8") -> str:
        return self.read_bytes().decode(encoding)

    def open(self, mode: str = "rb") -> Any:
        """A binary file object: 'rb' (random access) or 'wb' (not atomic: prefer
        `write_bytes_atomic`)."""
        if mode == "rb":
            return self.fs.open_input_file(self.path)
        if mode == "wb":
            return self.fs.open_output_stream(self.path)
        raise ValueError(f"mode {mode!r}: only 'rb' and 'wb'")

    # ------------------------------------------------------------------ changing

    def mkdir(self, parents: bool = True, exist_ok: bool = True) -> None:
        if self.fs.type_name in ("s3", "gcs"):  # no folders on object stores
            return
        self.fs.create_dir(self.path, recursive=parents)

    def write_bytes(self, data: bytes) -> int:
        write_bytes_atomic(self, data)
        return len(data)

    def write_text(self, text: str, encoding: str = "utf-8") -> int:
        return self.write_bytes(text.encode(encoding))

    def unlink(self, missing_ok: bool = False) -> None:
        try:
            self.fs.delete_file(self.path)
        except FileNotFoundError:
            if not missing_ok:
                raise
        except OSError:
            if self.exists() or not missing_ok:
                raise

    def rmdir(self) -> None:
        if self.fs.type_name in ("s3", "gcs"):  # an empty "folder" does not exist
            return
        self.fs.delete_dir(self.path)

    def replace(self, target: StoragePath) -> StoragePath:
        """Move this file or folder to `target` (a rename where the filesystem has one;
        on object stores each object is copied, then deleted)."""
        if self.fs.type_name in _RENAMING or self.is_file():
            target.parent.mkdir()
            self.fs.move(self.path, target.path)
            return target
        for rel, src in self.files():
            self.fs.move(src.path, (target / rel).path)
        return target


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


Location = Path | StoragePath
"""A local folder or file (`Path`) or one on a pyarrow filesystem (`StoragePath`)."""


def location(value: str | os.PathLike[str] | StoragePath) -> Location:
    """`value` as a `Path` (local or mounted) or a `StoragePath` (a `scheme://` URI)."""
    if isinstance(value, StoragePath):
        return value
    if isinstance(value, PurePath):
        return Path(value)
    text = os.fspath(value)
    return StoragePath.from_uri(text) if is_uri(text) else Path(text)


def inside(path: Location, folder: Location) -> bool:
    """Whether `path` is `folder` or lies under it (symbolic links and `..` resolved for
    local paths; a `file://` URI is the local path it names)."""

    def local(p: Location) -> Path | None:
        if isinstance(p, Path):
            return p
        return Path(p.path) if p.fs.type_name == "local" else None

    a, b = local(path), local(folder)
    if a is not None and b is not None:
        return a.resolve().is_relative_to(b.resolve())
    if isinstance(path, StoragePath) and isinstance(folder, StoragePath):
        same = path.fs.type_name == folder.fs.type_name
        return same and (path.path + "/").startswith(folder.path.rstrip("/") + "/")
    return False


def write_bytes_atomic(path: Location, data: bytes) -> None:
    """Write `data` to `path` so that readers never see a partial file (see the module doc)."""
    if isinstance(path, Path):
        write_atomic(path, data)
        return
    path.parent.mkdir()
    if path.fs.type_name in _RENAMING:
        tmp = path.parent / temp_name(path.name)
        try:
            with path.fs.open_output_stream(tmp.path) as fh:
                fh.write(data)
            path.fs.move(tmp.path, path.path)
        finally:
            tmp.unlink(missing_ok=True)
        return
    with path.fs.open_output_stream(path.path) as fh:  # one object, visible when complete
        fh.write(data)
