"""Install fsf onto a machine's own torch and transformers (the GPU check's first step,
bench/gpu/run.sh), replacing nothing: fsf's wheel and the wheels of what the machine lacks
(made here by bench/gpu/wheels.sh; the machine reaches no registry) go with `--no-index
--no-deps` into a folder of their own, SITE, put first on PYTHONPATH by run.sh. A carried wheel
of a package the machine already has is skipped, so nothing it holds is shadowed.

Then the proof, written to OUT/install.json: fsf imports from SITE; torch and transformers
are the machine's (same version, same place as before); fsf's declared ranges admit them.
Exit 2 (one line) if any of that fails.

    python bench/gpu/install.py WHEELS SITE OUT/install.json
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

KEEP = ("torch", "transformers")


def _dist(wheel: Path) -> str:
    return re.sub(r"[-_.]+", "-", wheel.name.split("-")[0]).lower()


def _installed(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _stack(site: Path | None) -> dict[str, dict[str, str | None]]:
    """Version and location of torch, transformers and fsf, as a fresh Python with `site`
    first on its path sees them."""
    code = (
        "import importlib, json\n"
        "out = {}\n"
        f"for name in {(*KEEP, 'fsf')!r}:\n"
        "    try:\n"
        "        m = importlib.import_module(name)\n"
        "        out[name] = {'version': getattr(m, '__version__', None), 'file': m.__file__}\n"
        "    except ImportError as exc:\n"
        "        out[name] = {'version': None, 'file': None, 'error': str(exc)}\n"
        "print(json.dumps(out))\n"
    )
    env = None
    if site is not None:
        import os

        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
        }
    # run outside the checkout (as gpu_bench.py runs: its own folder first on sys.path)
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        cwd=Path(__file__).parent,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str]) -> int:
    wheels, site, out = Path(argv[0]), Path(argv[1]), Path(argv[2])
    found = sorted(wheels.glob("*.whl"))
    if not any(_dist(w) == "fsf" for w in found):
        print(
            f"error: no fsf wheel in {wheels}/ (make them with: bash bench/gpu/wheels.sh)",
            file=sys.stderr,
        )
        return 2
    before = _stack(None)
    # fsf always; anything else only where the machine lacks it (never a second copy of a
    # package it has, which would shadow its own)
    chosen = [w for w in found if _dist(w) == "fsf" or _installed(_dist(w)) is None]
    skipped = sorted(_dist(w) for w in found if w not in chosen)
    site.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
         "--no-cache-dir", "--upgrade", "--target", str(site), *map(str, chosen)],
        check=True,
    )  # fmt: skip
    after = _stack(site)
    problems = []
    fsf_file = after["fsf"].get("file") or ""
    if not fsf_file.startswith(str(site.resolve())) and not fsf_file.startswith(str(site)):
        problems.append(f"fsf imports from {fsf_file or after['fsf'].get('error')}, not {site}")
    for name in KEEP:
        if after[name] != before[name]:
            problems.append(f"{name} changed: {before[name]} -> {after[name]}")
    # fsf's declared ranges (from the installed wheel's metadata) admit the machine's versions
    from packaging.requirements import Requirement

    dist = next(metadata.distributions(path=[str(site)], name="fsf"))
    ranges = {r.name: r for r in map(Requirement, dist.requires or []) if not r.marker}
    for name in KEEP:
        have = (before[name]["version"] or "").split("+")[0]
        spec = ranges[name].specifier if name in ranges else None
        if spec is None or not spec.contains(have, prereleases=True):
            problems.append(f"fsf's range {name}{spec} does not admit this machine's {name} {have}")
    report = {
        "kept": {n: before[n] for n in KEEP},
        "fsf": after["fsf"],
        "installed": sorted(_dist(w) for w in chosen),
        "skipped_present": skipped,
        "ranges": {n: str(ranges[n].specifier) for n in KEEP if n in ranges},
        "problems": problems,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    if problems:
        print("error: " + "; ".join(problems), file=sys.stderr)
        return 2
    kept = ", ".join(f"{n} {before[n]['version']}" for n in KEEP)
    print(f"fsf installed into {site} on this machine's {kept} (kept); installed: "
          f"{', '.join(report['installed'])}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
