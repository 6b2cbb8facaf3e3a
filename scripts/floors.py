"""Print the floor of each dependency range in pyproject.toml as a pip constraint (`name==X`),
for the floor job of .ci/run: `python3 scripts/floors.py > floors.txt`, then
`pip install -c floors.txt -e . torch==2.13.0`.

torch is the exception: it stays the version given by `--torch` (the local CPU wheel), since
its floor on PyPI is a CUDA build of several GB. `--except NAME` leaves a package out (the
floor job installs Ray's floor first, as a user's existing cluster would hold it)."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]
_REQ = re.compile(r"^\s*([A-Za-z0-9._-]+)(\[[^\]]*\])?\s*(.*)$")


def floors(pyproject: Path = ROOT / "pyproject.toml") -> dict[str, str]:
    """Each runtime dependency with a lower bound `>=X`: name -> X."""
    deps = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    out: dict[str, str] = {}
    for dep in deps:
        m = _REQ.match(dep.split(";")[0])
        if not m:
            raise SystemExit(f"scripts/floors.py: cannot read the requirement {dep!r}")
        name, spec = re.sub(r"[-_.]+", "-", m.group(1)).lower(), m.group(3)  # PEP 503 name
        low = [s.strip()[2:] for s in spec.split(",") if s.strip().startswith(">=")]
        if low:
            out[name] = low[0].strip()
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--torch", default="2.13.0", help="the torch version to keep (default 2.13.0)")
    p.add_argument("--except", dest="skip", action="append", default=[], metavar="NAME")
    args = p.parse_args(argv)
    got = floors()
    if "torch" in got:
        got["torch"] = args.torch
    for name in sorted(got):
        if name not in {s.lower() for s in args.skip}:
            print(f"{name}=={got[name]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
