"""Text from outside fsf, made safe: input files read with a size limit, and strings shown
with their control characters escaped. A base-layer module: it needs only `fsf.errors`.

`read_limited(path, limit, what)` streams at most `limit` + 1 bytes, so `/dev/zero`,
`/dev/urandom` or a sparse file of many GB is refused after reading `limit` bytes, never
read whole first; the refusal is one line naming `what` and the limit.

`printable(text)` is what every string from a config or from result data goes through
before a terminal, a CSV file or a Markdown report shows it: C0 and C1 control characters
(ESC, BEL, CR, ...), DEL and the Unicode controls that reorder or hide text become visible
escapes (`\\x1b`, `\\u202e`), so a policy or language value holding an escape sequence
cannot set the window title, clear the screen or fake a table row.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from fsf.errors import UsageError

__all__ = ["CONTROL_RE2", "InputTooLarge", "printable", "read_limited"]

#: C0 controls, DEL and C1 controls; the bidirectional overrides, embeddings and isolates
#: ("Trojan Source"), the line and paragraph separators, zero-width joiners and the BOM.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")
CONTROL_RE2 = (
    r"[\x00-\x1f\x7f-\x{9f}\x{61c}\x{200b}-\x{200f}\x{2028}-\x{202e}\x{2060}-\x{2069}\x{feff}]"
)
"""The characters `printable` escapes, as an RE2 pattern (pyarrow.compute's regexes)."""


_NAMED = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


def _escape(match: re.Match[str]) -> str:
    c = match.group()
    if c in _NAMED:
        return _NAMED[c]
    return f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}"


def printable(value: Any, keep_newlines: bool = False) -> str:
    """`str(value)` with every control character escaped (`\\x1b`, `\\n`, `\\u202e`): safe
    to print to a terminal or to write into a CSV cell or a Markdown table. Printable text,
    including any language's letters, is unchanged. `keep_newlines`: the line breaks of a
    message of several lines stay line breaks (every other control is escaped)."""
    text = value if isinstance(value, str) else str(value)
    if not _CONTROL.search(text):
        return text
    if keep_newlines:
        return "\n".join(_CONTROL.sub(_escape, line) for line in text.split("\n"))
    return _CONTROL.sub(_escape, text)


class InputTooLarge(UsageError):
    """An input file over its size limit (exit 2); `str()` names the input and the limit."""

    def __init__(self, what: str, limit: int):
        self.what, self.limit = what, limit
        #: the message without the input's name
        self.reason = f"larger than {limit:,} bytes, the most this input may be"
        super().__init__(f"{what}: {self.reason}")


def read_limited(path: Any, limit: int, what: str | None = None) -> bytes:
    """The bytes of `path` (a local path, or a storage location with `.open('rb')`), read
    in chunks and refused with `InputTooLarge` as soon as they exceed `limit`: a device, a
    pipe or a huge sparse file is never read whole. OSError propagates (the caller names the
    file)."""
    what = what or str(path)
    if isinstance(path, (str, os.PathLike)):
        fh: Any = open(Path(path), "rb")  # noqa: SIM115 - closed below
    else:
        fh = path.open("rb")
    chunks: list[bytes] = []
    size = 0
    try:
        while True:
            chunk = fh.read(min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(bytes(chunk))
            size += len(chunk)
            if size > limit:
                raise InputTooLarge(what, limit)
    finally:
        fh.close()
    return b"".join(chunks)
