"""fsf.atomic: the one temp-and-rename write every file fsf writes locally goes through."""

from __future__ import annotations

import pytest

from fsf.atomic import atomic_path, write_atomic


def test_text_and_bytes_land_whole_in_a_new_folder(tmp_path):
    target = tmp_path / "a" / "b" / "f.txt"
    assert write_atomic(target, "héllo\n") == target
    assert target.read_text(encoding="utf-8") == "héllo\n"
    write_atomic(target, b"\x00\x01")
    assert target.read_bytes() == b"\x00\x01"
    assert [p.name for p in target.parent.iterdir()] == ["f.txt"]  # no temp file left


def test_a_failed_write_leaves_the_old_file_and_no_temp(tmp_path):
    target = tmp_path / "f.parquet"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".tmp-")
        assert tmp.suffix == ".part"  # hidden and not *.parquet: out of every dataset glob
        tmp.write_text("half")
        raise RuntimeError("disk full")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.parquet"]
