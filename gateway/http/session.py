"""The interface every HTTP/1.1 session offers, and the request-target rules they share.

A session is one connection's protocol state. The connection layer feeds it bytes and
pulls events; it hands it response parts and writes the bytes it gets back. Rules:
1. `next_event` raises a gateway.errors.ProtocolError for bad input; its `status` is the
   reply, sent with `error_response` before the connection closes.
2. After the response and the request body are both complete, `reusable` tells whether
   the connection may carry another request (keep-alive, RFC 9112 §9.3); if so the
   connection calls `start_next_cycle`.
3. Sessions never add `date` or `server`; the connection layer owns those values.
"""

from __future__ import annotations

from typing import Protocol
from urllib.parse import unquote_to_bytes

from gateway.errors import BadRequest
from gateway.http.events import Event

Headers = list[tuple[bytes, bytes]]


class HTTPSession(Protocol):
    """What the connection layer needs from an HTTP/1.1 parser and serialiser."""

    def feed(self, data: bytes) -> None:
        """Take bytes from the peer; b"" means the peer closed its sending side."""

    def next_event(self) -> Event:
        """The next event, or NEED_DATA / PAUSED. Raises ProtocolError on bad input."""

    def continue_response(self) -> bytes:
        """The bytes of `100 Continue` if the client still waits for it, else b""."""

    def response_head(self, status: int, headers: Headers) -> bytes:
        """Serialise the status line and fields."""

    def response_body(self, data: bytes) -> bytes:
        """Serialise a piece of the body (chunked or not, as the head decided)."""

    def response_end(self) -> bytes:
        """Serialise the end of the response."""

    def error_response(self, status: int, headers: Headers) -> bytes:
        """A whole plain-text response for `status` if one can still be sent, else b""."""

    @property
    def reusable(self) -> bool:
        """Both sides finished this cycle and the connection may be kept alive."""

    @property
    def response_started(self) -> bool:
        """The status line of the current response has been serialised."""

    def start_next_cycle(self) -> None:
        """Reset for the next request on a kept-alive connection."""


class RequestTarget:
    """A request target (RFC 9112 §3.2) split the way ASGI wants it."""

    __slots__ = ("path", "query_string", "raw_path")

    def __init__(self, raw_path: bytes, query_string: bytes, path: str) -> None:
        self.raw_path = raw_path
        self.query_string = query_string
        self.path = path


def parse_target(target: bytes) -> RequestTarget:
    """Split origin-form (`/a?b`) and asterisk-form (`*`) targets.

    The path is percent-decoded and read as UTF-8 (ASGI: "percent escapes decoded and
    UTF-8 byte sequences decoded into characters"); invalid UTF-8 becomes U+FFFD rather
    than an error, so a stray `%FF` reaches the app instead of a 400. `raw_path` keeps
    the bytes as sent. Absolute-form is left for a later issue (proxy requests).
    """
    raw_path, _, query_string = target.partition(b"?")
    if raw_path == b"*":
        return RequestTarget(raw_path, query_string, "*")
    if not raw_path.startswith(b"/"):
        raise BadRequest("request target must be origin-form, starting with '/'")
    if b"%" in raw_path:
        path = unquote_to_bytes(raw_path).decode("utf-8", "replace")
    else:
        path = raw_path.decode("utf-8", "replace")
    return RequestTarget(raw_path, query_string, path)
