"""Folders that fail like real disks: read-only, and full.

Both are real kernel failures, not mocks: a tmpfs mounted read-only (EROFS) or of a few
kilobytes (ENOSPC). Mounting needs root (CAP_SYS_ADMIN); without it a read-only folder falls
back to `chmod 0555`, which stops any user but root, and a full disk cannot be had: those
tests skip, saying why.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


def _mount(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["mount", *args], capture_output=True, text=True)


def _umount(path: Path) -> None:
    if subprocess.run(["umount", str(path)], capture_output=True).returncode:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def _can_mount() -> bool:
    return os.geteuid() == 0 and shutil.which("mount") is not None


@contextlib.contextmanager
def small_disk(path: Path, kib: int = 64) -> Iterator[Path]:
    """`path` (created) as a tmpfs of `kib` KiB: writes beyond it fail with ENOSPC."""
    path.mkdir(parents=True, exist_ok=True)
    if not _can_mount():
        pytest.skip("a full disk needs a tmpfs mount, which needs root here")
    done = _mount("-t", "tmpfs", "-o", f"size={kib}k,mode=0755", "tmpfs", str(path))
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs: {done.stderr.strip()}")
    try:
        yield path
    finally:
        _umount(path)


@contextlib.contextmanager
def read_only(path: Path) -> Iterator[Path]:
    """`path` (an existing folder) made read-only for the duration, for root as well: its
    content is copied onto a tmpfs mounted over it, which is remounted read-only (EROFS).
    Without root: chmod 0555 on it and every folder under it."""
    if os.geteuid() != 0:
        folders = [path, *(p for p in path.rglob("*") if p.is_dir())]
        modes = {p: p.stat().st_mode for p in folders}
        for p in folders:
            p.chmod(0o555)
        try:
            yield path
        finally:
            for p, mode in modes.items():
                p.chmod(mode)
        return
    if not _can_mount():
        pytest.skip("a read-only folder for root needs a read-only mount")
    saved = path.with_name(path.name + ".saved")
    shutil.copytree(path, saved, symlinks=True)
    done = _mount("-t", "tmpfs", "-o", "size=64m,mode=0755", "tmpfs", str(path))
    if done.returncode:
        shutil.rmtree(saved)
        pytest.skip(f"cannot mount a tmpfs: {done.stderr.strip()}")
    try:
        shutil.copytree(saved, path, symlinks=True, dirs_exist_ok=True)
        done = _mount("-o", "remount,ro", str(path))
        if done.returncode:
            pytest.skip(f"cannot remount read-only: {done.stderr.strip()}")
        yield path
    finally:
        _umount(path)
        shutil.rmtree(saved, ignore_errors=True)
