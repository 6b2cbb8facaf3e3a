"""`--no-confirm`: `fsf sweep` and `fsf resume` run the search only, the space's confirmation
stage left for `fsf confirm DIR`; without it the confirmation runs as the space says."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from fsf.errors import UsageError

SPACE = Path(__file__).resolve().parents[2] / "sweeps" / "policies.yaml"


@pytest.fixture()
def asked(monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    """What `run_sweep` was asked for (it stops there: no Ray, no training)."""
    import fsf.sweep.tune

    calls: list[dict] = []

    def fake(spec, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(kwargs)
        raise UsageError("stopped by the test")

    monkeypatch.setattr(fsf.sweep.tune, "run_sweep", fake)
    return calls


@pytest.mark.parametrize("flag, confirm", [([], True), (["--no-confirm"], False)])
def test_sweep_confirms_unless_told_not_to(asked, flag, confirm):
    from fsf.cli.sweep import main

    assert main(["run", "--space", str(SPACE), *flag]) == 2
    assert [c["confirm"] for c in asked] == [confirm]


@pytest.mark.parametrize("flag, confirm", [([], True), (["--no-confirm"], False)])
def test_resume_confirms_unless_told_not_to(asked, tmp_path, flag, confirm):
    from fsf.cli.sweep import main

    folder = tmp_path / "policies"
    folder.mkdir()
    shutil.copy(SPACE, folder / "space.yaml")
    assert main(["resume", str(folder), *flag]) == 2
    assert [c["confirm"] for c in asked] == [confirm] and asked[0]["resume"]
