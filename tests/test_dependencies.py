"""The dependency ranges of pyproject.toml, the exact set of constraints.txt and the floors the
CI's floor job installs (scripts/floors.py) agree: the developed-against set lies inside the
ranges, the floors are the ranges' lower ends, and the ranges admit the stacks fsf promises to
run on (a GPU image's torch 2.11 and transformers 5.17, Ray 2.45 to 2.60)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import tomllib
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).parents[1]


def _ranges() -> dict[str, Requirement]:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    return {canonicalize_name(r.name): r for r in map(Requirement, deps)}


def _pins(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, _, ver = line.partition("==")
            assert ver, f"{path.name}: {line!r} is not an exact pin"
            out[canonicalize_name(name)] = ver
    return out


def test_every_runtime_dependency_is_a_range_not_a_pin():
    for name, req in _ranges().items():
        ops = {s.operator for s in req.specifier}
        assert "==" not in ops and "===" not in ops, f"{name} is pinned: {req}"
        assert ">=" in ops, f"{name} has no floor: {req}"


def test_the_locked_set_lies_inside_the_ranges():
    pins = _pins(ROOT / "constraints.txt")
    for name, req in _ranges().items():
        assert name in pins, f"constraints.txt does not lock {name}"
        assert req.specifier.contains(pins[name], prereleases=True), (name, pins[name], str(req))
    assert pins["torch"] == "2.13.0"  # the CPU wheel bootstrap installs first


@pytest.mark.parametrize(
    ("name", "inside", "outside"),
    [
        ("torch", ["2.11.0", "2.11.0+cu128", "2.13.0+cpu", "2.99"], ["2.10.0", "3.0.0"]),
        ("ray", ["2.45.0", "2.50.1", "2.55.1", "2.58.0", "2.60.0"], ["2.44.1", "2.61.0"]),
        ("transformers", ["5.0.0", "5.17.0", "5.25.0"], ["4.57.6", "6.0.0"]),
        ("deepspeed", ["0.17.6", "0.19.8"], ["0.17.5", "0.20.0"]),
        ("optuna", ["5.0.0", "5.1.0"], ["4.9.0", "6.0.0"]),
    ],
)
def test_the_ranges_admit_the_stacks_fsf_runs_on(name, inside, outside):
    spec = _ranges()[name].specifier
    for v in inside:
        assert spec.contains(v), f"{name} {spec} should admit {v}"
    for v in outside:
        assert not spec.contains(v), f"{name} {spec} should not admit {v}"


def test_the_floor_job_installs_each_ranges_lower_end_with_the_local_torch():
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "floors.py")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    floors = dict(line.split("==") for line in out.split())
    ranges = _ranges()
    assert set(floors) == set(ranges)
    assert floors["torch"] == "2.13.0"  # the local CPU wheel, never a CUDA build from PyPI
    for name, version in floors.items():
        if name != "torch":
            (low,) = [s.version for s in ranges[name].specifier if s.operator == ">="]
            assert version == low, name
    left = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "floors.py"), "--except", "ray"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "ray==" not in left and "torch==2.13.0" in left
