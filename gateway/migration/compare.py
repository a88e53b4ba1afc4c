"""Comparing a shadow's answer with the primary's (gateway/migration/shadow.py), as plain data.

Rules:
1. Two answers match when their statuses, their content types and their bodies match;
   no other field counts (dates, server names and request ids differ by nature).
2. Content types are compared as media types: type, subtype and parameter names are
   case-insensitive (RFC 9110 §8.3.1), and the spaces around ";" do not count.
3. Bodies match when their bytes are equal or, when both parse as JSON, when they are
   equal as JSON once the `ignored` object keys are left out at any depth. As JSON,
   `true` is not `1`, while `1` and `1.0` are the same number; key order never counts.
4. An Answer keeps only the first `keep` bytes of its body (`length` counts them all):
   a body longer than that is compared on those bytes and on its length, never as JSON.
5. A difference is described within bounds, so that a mismatch is one short line: at
   most MAX_PATHS JSON paths with each value cut to MAX_VALUE_CHARS of JSON, or
   WINDOW_BYTES of each body from just before the first byte that differs.
6. Layer 1: stdlib only; no event loop. Parsing and walking a large body takes CPU time,
   so the caller decides where that runs.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from gateway.asgi import Message

# JSON paths listed per mismatch: the first few say what changed (a renamed field, a
# shifted list), and a whole list of thousands would make the log line as big as the body.
MAX_PATHS = 10
# Characters of each side's JSON value, and of a content type, shown per mismatch: a
# value longer than a short line is cut, the path already says where to look.
MAX_VALUE_CHARS = 200
# Bytes of each body shown around the first difference, WINDOW_BEFORE_BYTES of them
# before it: two lines of an HTML page or a CSV, enough to see what changed there.
WINDOW_BYTES = 160
WINDOW_BEFORE_BYTES = 32
# The block size in which bodies are compared to find the first difference (bytes
# compare in C a block at a time; the last block is searched byte by byte).
SCAN_BLOCK_BYTES = 4096


@dataclass
class Answer:
    """One side's answer as far as the comparison goes; filled by `take` as the app
    sends its messages."""

    keep: int  # bytes of body kept (rule "an Answer keeps only the first `keep` bytes")
    status: int | None = None  # None: no http.response.start came
    content_type: str = ""
    body: bytearray = field(default_factory=bytearray)
    length: int = 0  # every body byte sent, kept or not
    complete: bool = False  # its last body message came
    error: str = ""  # why the app ended without a complete answer, if it did

    def take(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.body":
            chunk = message.get("body", b"")
            self.length += len(chunk)
            room = self.keep - len(self.body)
            if room > 0:
                self.body += chunk[:room]
            self.complete = not message.get("more_body", False)
        elif kind == "http.response.start":
            self.status = message["status"]
            self.content_type = _content_type(message.get("headers", ()))

    @property
    def cut(self) -> bool:
        """Longer than what was kept (rule "an Answer keeps only the first `keep` bytes")."""
        return self.length > len(self.body)

    def summary(self) -> dict[str, Any]:
        """What a mismatch line shows of this side."""
        shown: dict[str, Any] = {
            "status": self.status,
            "content_type": self.content_type[:MAX_VALUE_CHARS],
            "bytes": self.length,
        }
        if self.error:
            shown["error"] = self.error[:MAX_VALUE_CHARS]
        return shown


def _content_type(headers: Any) -> str:
    for name, value in headers:
        if name == b"content-type":
            return bytes(value).decode("latin-1")
    return ""


@dataclass(frozen=True)
class Mismatch:
    """How two answers differ: the parts ("status", "content-type", "body") and, for a
    body, a bounded description (rule "a difference is described within bounds")."""

    parts: tuple[str, ...]
    diff: dict[str, Any]


def compare(primary: Answer, shadow: Answer, ignored: frozenset[str]) -> Mismatch | None:
    """None when the answers match (rules "two answers match", "content types are
    compared as media types", "bodies match" and "an Answer keeps only the first `keep`
    bytes"), else how they differ."""
    parts = []
    if primary.status != shadow.status:
        parts.append("status")
    if media_type(primary.content_type) != media_type(shadow.content_type):
        parts.append("content-type")
    diff = body_difference(primary, shadow, ignored)
    if diff is not None:
        parts.append("body")
    return Mismatch(tuple(parts), diff or {}) if parts else None


def media_type(value: str) -> str:
    """A content type in a form where equal ones are equal strings
    (rule "content types are compared as media types")."""
    return ";".join(part.strip() for part in value.lower().split(";"))


def body_difference(
    primary: Answer, shadow: Answer, ignored: frozenset[str]
) -> dict[str, Any] | None:
    """None when the bodies match (rules "bodies match" and "an Answer keeps only the
    first `keep` bytes"), else a bounded description (rule "a difference is described
    within bounds")."""
    if primary.cut or shadow.cut:
        if primary.length == shadow.length and primary.body == shadow.body:
            return None
        kept = {"kept_bytes": min(primary.keep, shadow.keep)}
        return {**kept, **byte_window(primary.body, shadow.body)}
    if primary.body == shadow.body:
        return None
    paths = json_differences(bytes(primary.body), bytes(shadow.body), ignored)
    if paths is None:
        return byte_window(primary.body, shadow.body)
    return {"json": paths} if paths else None


def byte_window(a: bytes | bytearray, b: bytes | bytearray) -> dict[str, Any]:
    """Where two bodies first differ, and a window of each from just before there."""
    at = first_difference(a, b)
    start = max(0, at - WINDOW_BEFORE_BYTES)
    return {
        "offset": at,
        "primary": _text(a[start : start + WINDOW_BYTES]),
        "shadow": _text(b[start : start + WINDOW_BYTES]),
    }


def first_difference(a: bytes | bytearray, b: bytes | bytearray) -> int:
    """The offset of the first byte that differs (the shorter length if one body is
    the other's beginning)."""
    end = min(len(a), len(b))
    left, right = memoryview(a), memoryview(b)
    block = 0
    while (
        block < end
        and left[block : block + SCAN_BLOCK_BYTES] == right[block : block + SCAN_BLOCK_BYTES]
    ):
        block += SCAN_BLOCK_BYTES
    for at in range(block, min(block + SCAN_BLOCK_BYTES, end)):
        if a[at] != b[at]:
            return at
    return end


def _text(data: bytes | bytearray) -> str:
    return bytes(data).decode("utf-8", "backslashreplace")


_ABSENT = object()  # a key one side's object lacks, or an index past a list's end


def json_differences(a: bytes, b: bytes, ignored: frozenset[str]) -> list[dict[str, str]] | None:
    """Up to MAX_PATHS places where two JSON documents differ, [] if they are equal once
    `ignored` keys are left out (rule "bodies match"), or None when either is not JSON."""
    try:
        left, right = json.loads(a), json.loads(b)
    except (ValueError, RecursionError):  # not JSON, not UTF-8 text, or nested too deep
        return None
    found = []
    for path, x, y in _walk(left, right, ignored):
        found.append(_entry(path, x, y))
        if len(found) == MAX_PATHS:
            break
    return found


def _walk(left: Any, right: Any, ignored: frozenset[str]) -> Iterator[tuple[str, Any, Any]]:
    """The paths where two parsed documents differ, in document order. An explicit stack
    rather than recursion: json.loads accepts nesting deeper than a recursive walk may."""
    stack: list[tuple[str, Any, Any]] = [("$", left, right)]
    while stack:
        path, x, y = stack.pop()
        if isinstance(x, dict) and isinstance(y, dict):
            keys = [key for key in {**x, **y} if key not in ignored]
            for key in reversed(keys):
                stack.append((_key_path(path, key), x.get(key, _ABSENT), y.get(key, _ABSENT)))
        elif isinstance(x, list) and isinstance(y, list):
            for n in reversed(range(max(len(x), len(y)))):
                item_x = x[n] if n < len(x) else _ABSENT
                item_y = y[n] if n < len(y) else _ABSENT
                stack.append((f"{path}[{n}]", item_x, item_y))
        elif not _same(x, y):
            yield path, x, y


def _same(x: Any, y: Any) -> bool:
    """Equal as JSON values that are not both objects or both arrays (rule "bodies match")."""
    if isinstance(x, bool) or isinstance(y, bool):
        return x is y
    if isinstance(x, int | float) and isinstance(y, int | float):
        return x == y
    return type(x) is type(y) and x == y


def _key_path(path: str, key: str) -> str:
    return f"{path}.{key}" if key.isidentifier() else f"{path}[{json.dumps(key)}]"


def _entry(path: str, x: Any, y: Any) -> dict[str, str]:
    """One difference; a side whose key or index is absent is left out."""
    entry = {"path": path}
    if x is not _ABSENT:
        entry["primary"] = json.dumps(x)[:MAX_VALUE_CHARS]
    if y is not _ABSENT:
        entry["shadow"] = json.dumps(y)[:MAX_VALUE_CHARS]
    return entry
