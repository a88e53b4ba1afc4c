"""Comparing a shadow's answer with the primary's (gateway/migration/shadow.py), as plain data.

Rules:
1. Two answers match when their statuses, their content types and their bodies match;
   no other field counts (dates, server names and request ids differ by nature), unless
   the caller asks for headers (`headers` not None: with shadow_denoise on). Then every
   header field counts too, by lower-cased name and its values in order, except
   UNCOMPARED_HEADERS (framing, hop-by-hop and per-response fields, and content-type,
   compared on its own) and the names in `headers`.
2. Content types are compared as media types: type, subtype and parameter names are
   case-insensitive (RFC 9110 §8.3.1), and the spaces around ";" do not count.
3. Bodies match when their bytes are equal or, when both parse as JSON, when they are
   equal as JSON once the `ignored` object keys are left out at any depth, and the
   places named by `paths` too. A path in `paths` is general: "$.items[*].id" stands
   for the id of every item (`general_path`). As JSON, `true` is not `1`, while `1`
   and `1.0` are the same number; key order never counts.
4. An Answer keeps only the first `keep` bytes of its body (`length` counts them all):
   a body longer than that is compared on those bytes and on its length, never as JSON.
5. A difference is described within bounds, so that a mismatch is one short line: at
   most MAX_PATHS JSON paths with each value cut to MAX_VALUE_CHARS of JSON, or
   WINDOW_BYTES of each body from just before the first byte that differs.
6. Each mismatch has a `kind`: a short string of what differed ("status",
   "content-type", "body $.price" with the first path made general, "body" for bytes,
   "header x-a", "error"), at most MAX_KIND_CHARS, so that equal kinds can be counted
   together (the migration page's "most frequent mismatches").
7. An Answer keeps its header fields only when asked (`keep_headers`), and then at most
   MAX_HEADER_FIELDS of them, each value cut to MAX_HEADER_VALUE_BYTES.
8. Layer 1: stdlib only; no event loop. Parsing and walking a large body takes CPU time,
   so the caller decides where that runs.
"""

from __future__ import annotations

import json
import re
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
# Response header fields never compared (rule "two answers match"): framing and
# hop-by-hop fields (RFC 9110 §7.6.1) belong to a connection, not to the answer; date,
# server, age and via differ by nature between two calls or two servers; content-type
# is compared on its own, as a media type.
UNCOMPARED_HEADERS = frozenset(
    {
        "age",
        "connection",
        "content-length",
        "content-type",
        "date",
        "keep-alive",
        "proxy-connection",
        "server",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "via",
    }
)
# Header fields an Answer keeps, and the bytes of each value: an API answer has a dozen
# fields of well under a kilobyte; an app that sends thousands must not make each copy
# hold them all (64 x 1 KiB at most, next to the 1 MiB of body).
MAX_HEADER_FIELDS = 64
MAX_HEADER_VALUE_BYTES = 1024
# A mismatch's kind is a label to count by, not a description: a status, a content
# type, and the first path or header name fit.
MAX_KIND_CHARS = 120
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
    keep_headers: bool = False  # rule "an Answer keeps its header fields only when asked"
    headers: list[tuple[str, str]] = field(default_factory=list)  # (lower-cased name, value)

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
            if self.keep_headers:
                self.headers = kept_headers(message.get("headers", ()))

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


def kept_headers(headers: Any) -> list[tuple[str, str]]:
    """The fields an Answer keeps (rule "an Answer keeps its header fields only when asked")."""
    kept: list[tuple[str, str]] = []
    for name, value in headers:
        if len(kept) == MAX_HEADER_FIELDS:
            break
        text = bytes(value[:MAX_HEADER_VALUE_BYTES]).decode("latin-1")
        kept.append((bytes(name).decode("latin-1").lower(), text))
    return kept


def header_values(answer: Answer) -> dict[str, list[str]]:
    """An answer's kept fields by name, each name's values in the order sent."""
    by_name: dict[str, list[str]] = {}
    for name, value in answer.headers:
        by_name.setdefault(name, []).append(value)
    return by_name


def _content_type(headers: Any) -> str:
    for name, value in headers:
        if name == b"content-type":
            return bytes(value).decode("latin-1")
    return ""


@dataclass(frozen=True)
class Mismatch:
    """How two answers differ: the parts ("status", "content-type", "body", "headers"),
    a bounded description of a body's and the headers' differences (rule "a difference
    is described within bounds"), and its kind (rule "each mismatch has a `kind`")."""

    parts: tuple[str, ...]
    diff: dict[str, Any]
    kind: str = ""


def compare(
    primary: Answer,
    shadow: Answer,
    ignored: frozenset[str],
    paths: frozenset[str] = frozenset(),
    headers: frozenset[str] | None = None,
) -> Mismatch | None:
    """None when the answers match (rules "two answers match", "content types are
    compared as media types", "bodies match" and "an Answer keeps only the first `keep`
    bytes"), else how they differ. `headers` None: header fields are not compared."""
    parts = []
    kinds = []
    if shadow.error:
        kinds.append("error")
    if primary.status != shadow.status:
        parts.append("status")
        kinds.append("status")
    if media_type(primary.content_type) != media_type(shadow.content_type):
        parts.append("content-type")
        kinds.append("content-type")
    diff = body_difference(primary, shadow, ignored, paths)
    if diff is not None:
        parts.append("body")
        found = diff.get("json")
        kinds.append(f"body {general_path(found[0]['path'])}" if found else "body")
    fields = [] if headers is None else header_differences(primary, shadow, headers)
    if fields:
        parts.append("headers")
        kinds.append(f"header {fields[0]['name']}")
    if not parts:
        return None
    described = {**(diff or {}), **({"headers": fields} if fields else {})}
    return Mismatch(tuple(parts), described, ", ".join(kinds)[:MAX_KIND_CHARS])


def header_differences(
    primary: Answer, shadow: Answer, ignored: frozenset[str]
) -> list[dict[str, str]]:
    """Up to MAX_PATHS header fields whose values differ (rule "two answers match"),
    each with its values on each side (absent on a side that lacks it)."""
    left, right = header_values(primary), header_values(shadow)
    found = []
    for name in sorted(left.keys() | right.keys()):
        if name in UNCOMPARED_HEADERS or name in ignored or left.get(name) == right.get(name):
            continue
        entry = {"name": name}
        if name in left:
            entry["primary"] = ", ".join(left[name])[:MAX_VALUE_CHARS]
        if name in right:
            entry["shadow"] = ", ".join(right[name])[:MAX_VALUE_CHARS]
        found.append(entry)
        if len(found) == MAX_PATHS:
            break
    return found


def differing_header_names(a: Answer, b: Answer) -> list[str]:
    """The compared fields (not UNCOMPARED_HEADERS) whose values differ between two
    answers, in name order: what gateway/migration/noise.py learns."""
    left, right = header_values(a), header_values(b)
    return [
        name
        for name in sorted(left.keys() | right.keys())
        if name not in UNCOMPARED_HEADERS and left.get(name) != right.get(name)
    ]


def media_type(value: str) -> str:
    """A content type in a form where equal ones are equal strings
    (rule "content types are compared as media types")."""
    return ";".join(part.strip() for part in value.lower().split(";"))


def body_difference(
    primary: Answer, shadow: Answer, ignored: frozenset[str], paths: frozenset[str] = frozenset()
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
    found = json_differences(bytes(primary.body), bytes(shadow.body), ignored, paths)
    if found is None:
        return byte_window(primary.body, shadow.body)
    return {"json": found} if found else None


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


def json_differences(
    a: bytes, b: bytes, ignored: frozenset[str], paths: frozenset[str] = frozenset()
) -> list[dict[str, str]] | None:
    """Up to MAX_PATHS places where two JSON documents differ, [] if they are equal once
    `ignored` keys and the general `paths` are left out (rule "bodies match"), or None
    when either is not JSON."""
    documents = _parse_both(a, b)
    if documents is None:
        return None
    found = []
    for path, _, x, y in walk(*documents, ignored, paths):
        found.append(_entry(path, x, y))
        if len(found) == MAX_PATHS:
            break
    return found


def _parse_both(a: bytes, b: bytes) -> tuple[Any, Any] | None:
    try:
        return json.loads(a), json.loads(b)
    except (ValueError, RecursionError):  # not JSON, not UTF-8 text, or nested too deep
        return None


def differing_general_paths(
    a: bytes, b: bytes, ignored: frozenset[str], limit: int
) -> list[str] | None:
    """Up to `limit` distinct general paths where two JSON documents differ, in document
    order (what gateway/migration/noise.py learns), or None when either is not JSON."""
    documents = _parse_both(a, b)
    if documents is None:
        return None
    found: dict[str, None] = {}
    for _, general, _, _ in walk(*documents, ignored, frozenset()):
        found[general] = None
        if len(found) == limit:
            break
    return list(found)


def general_path(path: str) -> str:
    """A path with every list index made "*": "$.items[3].id" -> "$.items[*].id" (rule
    "bodies match"). Keys are JSON strings in brackets, so only an index is all digits."""
    return _INDEX.sub("[*]", path)


_INDEX = re.compile(r"\[\d+\]")


def walk(
    left: Any, right: Any, ignored: frozenset[str], paths: frozenset[str]
) -> Iterator[tuple[str, str, Any, Any]]:
    """The places where two parsed documents differ, in document order: each path, the
    same made general, and both values. A key in `ignored`, or a general path in
    `paths`, is left out with all below it. An explicit stack rather than recursion:
    json.loads accepts nesting deeper than a recursive walk may."""
    if "$" in paths:
        return
    stack: list[tuple[str, str, Any, Any]] = [("$", "$", left, right)]
    while stack:
        path, general, x, y = stack.pop()
        if isinstance(x, dict) and isinstance(y, dict):
            keys = [key for key in {**x, **y} if key not in ignored]
            for key in reversed(keys):
                below = _key_path(general, key)
                if below not in paths:
                    pair = (x.get(key, _ABSENT), y.get(key, _ABSENT))
                    stack.append((_key_path(path, key), below, *pair))
        elif isinstance(x, list) and isinstance(y, list):
            below = f"{general}[*]"
            if below in paths:
                continue
            for n in reversed(range(max(len(x), len(y)))):
                item_x = x[n] if n < len(x) else _ABSENT
                item_y = y[n] if n < len(y) else _ABSENT
                stack.append((f"{path}[{n}]", below, item_x, item_y))
        elif not _same(x, y):
            yield path, general, x, y


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
