"""The request corpus: tests/corpus/*.http, each file with its expected result (see the
README.md there).

Shared by tests/unit/test_request_corpus.py (replayed into both sessions under every
chunking) and tests/integration/test_request_corpus_served.py (sent to a real server).
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass
from pathlib import Path

CORPUS_DIR = Path(__file__).parent.parent / "corpus"
# Small limits, so the 414 and 431 files stay short. Both test files use these, and the
# integration test writes them into its mount file's [server] table.
CORPUS_MAX_HEADER_BYTES = 2048
CORPUS_MAX_TARGET_BYTES = 512

_REPEAT = re.compile(r"\{repeat:(\d+):([^{}]*)\}")
_KEYS = frozenset({"expect", "requests", "body", "why"})


@dataclass(frozen=True)
class Case:
    """One corpus file: its request bytes and what parsing them must give."""

    name: str
    raw: bytes
    status: int | None  # the error status, or None when the request(s) parse
    requests: int  # complete requests an ok file holds
    body: bytes  # the first request's body (empty unless the file states one)
    why: str


def _decode(text: str) -> bytes:
    """Python escapes to bytes (other text as UTF-8); `{repeat:N:unit}` first becomes N
    copies of `unit`."""
    text = _REPEAT.sub(lambda m: m.group(2) * int(m.group(1)), text)
    return codecs.escape_decode(text.encode("utf-8"))[0]


def load_case(path: Path) -> Case:
    lines = path.read_text("utf-8").splitlines()
    meta: dict[str, str] = {}
    while lines and lines[0].startswith("# "):
        key, sep, value = lines.pop(0)[2:].partition(":")
        if not sep or key.strip() not in _KEYS:
            raise ValueError(f"{path.name}: bad metadata line {key!r}")
        meta[key.strip()] = value.strip()
    expect = meta.get("expect")
    if expect is None or meta.get("why") is None:
        raise ValueError(f"{path.name}: needs '# expect:' and '# why:'")
    return Case(
        name=path.stem,
        raw=b"".join(_decode(line) for line in lines),
        status=None if expect == "ok" else int(expect),
        requests=int(meta.get("requests", "1")),
        body=_decode(meta.get("body", "")),
        why=meta["why"],
    )


def load_corpus() -> list[Case]:
    return [load_case(path) for path in sorted(CORPUS_DIR.glob("*.http"))]
