"""The access log's line: one entry per request or WebSocket, and the format that renders
it (`access_log_format`, gunicorn's atoms plus our own).

Rules:
1. A cycle logs an AccessEntry, the facts of one request, and nothing else: what the line
   looks like is decided here, once. Its `str()` is the default line, so a formatter
   that knows nothing of entries (a user's --log-config) still writes a useful line.
2. A format is parsed once, at start (`compile_format`), into a template and one getter
   per atom; rendering a line is one `str.format` call over the getters' results. An
   unknown atom or a stray `%` is refused when the config loads (`check`), never met
   while serving.
3. The atoms are gunicorn's (its "access_log_format" setting), meaning what they mean
   there, so an operator's existing format keeps working; ours are `mount` (the prefix
   or name of the mount that served the request) and `route` (what the request went
   through beyond it: "fallback:legacy", "canary:new", "shadow:next" for a request
   copied to a shadow; "-" for none).
4. Layer 1: stdlib, gateway.asgi and gateway.config.checks only; no event loop.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import time
from collections.abc import Callable, Iterable
from typing import Any

from gateway.asgi import Scope, mount_label
from gateway.config.checks import Invalid, expect

Headers = Iterable[tuple[bytes, bytes]]


class AccessEntry:
    """The facts of one request or WebSocket, as its cycle knew them at the end."""

    __slots__ = ("bytes_sent", "duration_s", "method", "response_headers", "scope", "status")

    def __init__(
        self,
        scope: Scope,
        method: str,
        status: int,
        bytes_sent: int,
        duration_s: float,
        response_headers: Headers = (),
    ) -> None:
        self.scope = scope
        self.method = method
        self.status = status
        self.bytes_sent = bytes_sent
        self.duration_s = duration_s
        self.response_headers = response_headers

    @property
    def websocket(self) -> bool:
        return bool(self.scope["type"] == "websocket")

    def __str__(self) -> str:
        return default_line(self)


def default_line(entry: AccessEntry) -> str:
    """The line of `access_log_format = ""`: the gateway's own, as it has always been."""
    scope = entry.scope
    line = (
        f'{_peer(scope)} "{_request_line(entry)}" {entry.status:d} {entry.bytes_sent:d}B '
        f"{entry.duration_s * 1000:.1f}ms mount={mount_label(scope)}"
    )
    return line + " websocket" if entry.websocket else line


def _peer(scope: Scope) -> str:
    client = scope["client"]
    return f"{client[0]}:{client[1]}" if client else "-"


def _target(scope: Scope) -> str:
    query: bytes = scope["query_string"]
    path: str = scope["path"]
    return f"{path}?{query.decode('latin-1')}" if query else path


def _request_line(entry: AccessEntry) -> str:
    """gunicorn's `r`, and the default line's request: "GET /x?y=1 HTTP/1.1"."""
    scope = entry.scope
    return f"{entry.method} {_target(scope)} HTTP/{scope['http_version']}"


def split_label(scope: Scope) -> tuple[str, str]:
    """The mount and the route of a mount label ("/api>fallback:legacy")."""
    mount, _, route = mount_label(scope).partition(">")
    return mount, route or "-"


def fields(entry: AccessEntry) -> dict[str, Any]:
    """The entry as data, for a JSON access line (gateway/logs.py)."""
    scope = entry.scope
    client = scope["client"]
    mount, route = split_label(scope)
    return {
        "client": client[0] if client else None,
        "client_port": client[1] if client else None,
        "method": entry.method,
        "path": scope["path"],
        "query": scope["query_string"].decode("latin-1"),
        "protocol": f"HTTP/{scope['http_version']}",
        "status": entry.status,
        "bytes": entry.bytes_sent,
        "duration_ms": round(entry.duration_s * 1000, 3),
        "mount": mount,
        "route": route,
        "websocket": entry.websocket,
    }


# -- the atoms -----------------------------------------------------------------------

Getter = Callable[[AccessEntry], str]


def _header(headers: Headers, name: bytes) -> str:
    for key, value in headers:
        if key.lower() == name:
            return value.decode("latin-1")
    return "-"


def _user(entry: AccessEntry) -> str:
    """gunicorn's `u`: the user name of a Basic Authorization (RFC 7617), else "-"."""
    credentials = _header(entry.scope["headers"], b"authorization")
    scheme, _, token = credentials.partition(" ")
    if scheme.lower() != "basic":
        return "-"
    try:
        decoded = base64.b64decode(token, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return "-"
    return decoded.partition(":")[0] or "-"


def _request_time(entry: AccessEntry) -> str:
    """gunicorn's `t`: when the request began, in the Common Log Format's brackets."""
    started = time.localtime(time.time() - entry.duration_s)
    return time.strftime("[%d/%b/%Y:%H:%M:%S %z]", started)


ATOMS: dict[str, Getter] = {
    "h": lambda e: e.scope["client"][0] if e.scope["client"] else "-",
    "l": lambda e: "-",
    "u": _user,
    "t": _request_time,
    "r": _request_line,
    "m": lambda e: e.method,
    "U": lambda e: e.scope["path"],
    "q": lambda e: e.scope["query_string"].decode("latin-1"),
    "H": lambda e: f"HTTP/{e.scope['http_version']}",
    "s": lambda e: str(e.status),
    "B": lambda e: str(e.bytes_sent),
    "b": lambda e: str(e.bytes_sent) if e.bytes_sent else "-",
    "f": lambda e: _header(e.scope["headers"], b"referer"),
    "a": lambda e: _header(e.scope["headers"], b"user-agent"),
    "T": lambda e: str(int(e.duration_s)),
    "M": lambda e: str(int(e.duration_s * 1000)),
    "D": lambda e: str(int(e.duration_s * 1_000_000)),
    "L": lambda e: f"{e.duration_s:.6f}",
    "p": lambda e: f"<{os.getpid()}>",  # at each line: the worker's, not the parent's
    "mount": lambda e: split_label(e.scope)[0],
    "route": lambda e: split_label(e.scope)[1],
}


def _parametrised_atom(name: str) -> Getter | None:
    """`{header}i`, `{header}o` (request and response fields) and `{variable}e`."""
    match = re.fullmatch(r"\{([^{}]+)\}([ioe])", name)
    if match is None:
        return None
    key, kind = match.groups()
    if kind == "e":
        value = os.environ.get(key, "-")  # read once: the environment does not change
        return lambda e: value
    field = key.lower().encode("latin-1")  # ASGI gives field names lower-cased
    if kind == "i":
        return lambda e: _header(e.scope["headers"], field)
    return lambda e: _header(e.response_headers, field)


# -- the format ----------------------------------------------------------------------

_PIECE = re.compile(r"%\((?P<atom>[^)]*)\)s|%%|%")


class AccessFormat:
    """A parsed `access_log_format` (rule "a format is parsed once")."""

    __slots__ = ("_getters", "_template", "text")

    def __init__(self, text: str, template: str, getters: tuple[Getter, ...]) -> None:
        self.text = text
        self._template = template
        self._getters = getters

    def render(self, entry: AccessEntry) -> str:
        if not self.text:
            return default_line(entry)
        return self._template.format(*[getter(entry) for getter in self._getters])


def compile_format(text: str) -> AccessFormat:
    """Parse a format once; ValueError names what is wrong with it."""
    template: list[str] = []
    getters: list[Getter] = []
    position = 0
    for match in _PIECE.finditer(text):
        template.append(_escape(text[position : match.start()]))
        position = match.end()
        piece = match.group(0)
        if piece == "%%":
            template.append("%")
        elif piece == "%":
            raise ValueError(
                f"a lone '%' at character {match.start() + 1}: write atoms as "
                "%(h)s, and a percent sign as %%"
            )
        else:
            getters.append(_atom(match.group("atom")))
            template.append("{}")
    template.append(_escape(text[position:]))
    return AccessFormat(text, "".join(template), tuple(getters))


def _escape(literal: str) -> str:
    return literal.replace("{", "{{").replace("}", "}}")


def _atom(name: str) -> Getter:
    getter = ATOMS.get(name) or _parametrised_atom(name)
    if getter is None:
        known = " ".join(ATOMS)
        raise ValueError(
            f"unknown atom %({name})s; known: {known}, {{header}}i, {{header}}o, {{variable}}e"
        )
    return getter


def check(value: object) -> str:
    """The `access_log_format` validator (gateway/config/server_table.py)."""
    text = expect(value, str, "a string")
    try:
        compile_format(text)
    except ValueError as exc:
        raise Invalid(str(exc)) from None
    return text
