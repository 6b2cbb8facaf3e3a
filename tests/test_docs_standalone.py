"""The project's docs stand alone: no page cites reference material outside the repository."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGES = [
    ROOT / "README.md",
    *sorted((ROOT / "docs").rglob("*.md")),
    *sorted(ROOT.glob("*/README.md")),
]


def test_no_page_cites_a_path_outside_the_repository():
    outside = re.compile(r"(?:\.\./shared|/work/shared|/work/main|\.\./\.\./)")
    hits = [
        f"{page.relative_to(ROOT)}:{n}: {line.strip()}"
        for page in PAGES
        for n, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1)
        if outside.search(line)
    ]
    assert not hits, "\n".join(hits)
