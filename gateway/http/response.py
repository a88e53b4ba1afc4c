"""The response side of an HTTP/1.1 session, shared by every parser: the one serialiser
of a response head, and the one check of a response field.

Parsers differ in how they turn bytes into request events; the bytes of a response do
not depend on the parser, so both sessions inherit this one serialiser. (h11's own
`send` would cost a h11 session more than its parsing does: it re-validates and
re-normalises every field on each call.) Every head the gateway writes goes through it:
an app's, the gateway's own error replies (`error_response`), and a WebSocket
handshake's 101 (`interim_head`). Rules:
1. `_expect_response(head)` starts a cycle: the request's method, version and fields
   decide keep-alive (HTTP/1.0 gets one request per connection, as with h11;
   `Connection: close` is honoured, RFC 9112 §9.6) and whether 100 Continue is owed.
2. Content-Length is held to; a body without one is chunked (HTTP/1.1) or delimited by
   closing (HTTP/1.0) (RFC 9112 §6.3). Bodies that must be empty (HEAD, 1xx, 204, 304:
   RFC 9110 §9.3.2, §15.3.5, §15.4.5) are dropped, so apps may send them harmlessly.
   A 1xx head ends at its empty line (RFC 9110 §15.2): nothing is added to frame it.
   A head serialised with a first body that breaks its length was never written:
   `discard_response` forgets it, so the error reply can take its place.
3. The app's field names and values must be bytes (ASGI) and are checked (RFC 9110
   §5.1, §5.5) so no CR or LF can split a response; a field that fails is an
   AppProtocolError raised before any byte of the head is returned, so a 500 can still
   go out.
4. `date` and `server` come from the connection layer, which owns their values; they
   are added here, in the same pass, only if the app did not send its own.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence
from typing import cast

from gateway.asgi import plain_reply
from gateway.errors import AppProtocolError
from gateway.http.events import RequestHead
from gateway.http.session import NO_BODY_STATUSES, REASONS, Headers

# RFC 9110 §5.1 field-name token. §5.5 field-value: no control character but HTAB, and
# no whitespace at either end; searching for what is forbidden costs a quarter of
# matching the whole grammar, and this runs for every response field.
_FIELD_NAME = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_BAD_FIELD_VALUE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]|^[ \t]|[ \t]$")
Field = tuple[bytes, bytes]
# Apps send the same few fields over and over (content-type, server, a date that
# changes once a second): remember this many valid ones rather than check them again.
_KNOWN_FIELDS = 4096
# Heads that no body follows, so nothing frames one: 204, 304 and every 1xx (rule
# "Content-Length is held to").
# One set, so that the common status pays one lookup.
_UNFRAMED_STATUSES = frozenset({*NO_BODY_STATUSES, *range(100, 200)})
# The gateway's own error replies end the connection (DESIGN §5).
_CLOSE = (b"connection", b"close")


class ResponseWriter:
    """Serialises the response of the current cycle; a session inherits it."""

    def __init__(self) -> None:
        self._method = b""
        self._http10 = False
        self._keep_alive = True
        self._awaiting_continue = False
        self._reset_response()

    def _reset_response(self) -> None:
        self._started = False
        self._finished = False
        self._chunked = False
        self._drop_body = False
        self._remaining: int | None = None

    def _expect_response(self, head: RequestHead) -> None:
        """What the request decides about its response (rule "`_expect_response(head)`
        starts a cycle")."""
        self._method = head.method
        self._http10 = head.http_version == "1.0"
        # Read from the head, not the parser: it may already be parsing the next request.
        self._keep_alive = not self._http10 and not head.wants_close
        self._awaiting_continue = head.expects_continue

    @property
    def response_started(self) -> bool:
        return self._started

    def continue_response(self) -> bytes:
        if not self._awaiting_continue or self._started:
            return b""
        self._awaiting_continue = False
        return b"HTTP/1.1 100 Continue\r\n\r\n"

    def response_head(
        self, status: int, headers: Iterable[Field], defaults: Sequence[Field] = ()
    ) -> bytes:
        """The status line and fields; each of `defaults` (the connection's `date` and
        `server`) is added unless the app sent a field of that name itself."""
        lines = [_status_line(status)]
        length = coding = connection = None
        names: set[bytes] = set()
        # Read as objects: field_line checks that they are bytes (rule "the app's field
        # names"), and compiled code (setup.py) would check the declared type first,
        # with a message that does not name the rule.
        for app_name, app_value in cast("Iterable[tuple[object, object]]", headers):
            line, name = field_line(app_name, app_value)
            value = cast(bytes, app_value)  # checked by field_line
            lines.append(line)
            names.add(name)
            if name == b"content-length":
                length = value
            elif name == b"transfer-encoding":
                coding = value
            elif name == b"connection":
                connection = value
        for name, value in defaults:
            if name not in names:
                lines.append(field_line(name, value)[0])
        lines.extend(self._framing(status, length, coding, connection))
        lines.append(b"\r\n")
        self._started = True
        self._awaiting_continue = False
        return b"".join(lines)

    def _framing(
        self, status: int, length: bytes | None, coding: bytes | None, connection: bytes | None
    ) -> list[bytes]:
        """Decide how the body is delimited (RFC 9112 §6.3); return the fields to add."""
        self._drop_body = self._method == b"HEAD" or status in NO_BODY_STATUSES or status < 200
        if connection is not None and b"close" in connection.lower():
            self._keep_alive = False
        added = [] if self._keep_alive or connection else [b"connection: close\r\n"]
        if status in _UNFRAMED_STATUSES:
            return added
        if length is not None:
            if not length.isdigit():
                raise AppProtocolError(f"bad Content-Length {length!r}")
            self._remaining = int(length)
        elif coding is not None or not self._http10:
            if coding is not None and coding.strip().lower() != b"chunked":
                raise AppProtocolError("only Transfer-Encoding: chunked can be sent")
            self._chunked = True
            if coding is None:
                added.append(b"transfer-encoding: chunked\r\n")
        else:
            self._keep_alive = False  # HTTP/1.0 without a length: the close ends the body
        return added

    def response_body(self, data: bytes) -> bytes:
        if self._drop_body or not data:
            return b""
        if self._remaining is not None:
            self._remaining -= len(data)
            if self._remaining < 0:
                raise AppProtocolError("too much data for declared Content-Length")
        if self._chunked:
            return b"%x\r\n%s\r\n" % (len(data), data)
        return data

    def response_end(self) -> bytes:
        self._finished = True
        if self._drop_body:
            return b""
        if self._remaining:
            self._keep_alive = False
            raise AppProtocolError("too little data for declared Content-Length")
        return b"0\r\n\r\n" if self._chunked else b""

    def discard_response(self) -> None:
        """Forget a response whose head was serialised but never written (its first
        body broke the framing), so that an error reply can take its place."""
        self._reset_response()

    def error_response(self, status: int, headers: Headers) -> bytes:
        """The gateway's plain-text reply for `status`, whole, if no head has gone out;
        it says `Connection: close`, which ends keep-alive (the framing of rule
        "Content-Length is held to")."""
        if self._started:
            return b""
        fields, body = plain_reply(status, headers, head_request=self._method == b"HEAD")
        fields.append(_CLOSE)
        head = self.response_head(status, fields)
        return head + self.response_body(body) + self.response_end()


def interim_head(status: int, headers: Iterable[Field], defaults: Sequence[Field]) -> bytes:
    """The head of an interim response (1xx; a WebSocket handshake's 101), outside any
    cycle: checked and serialised as every head is, with nothing to frame."""
    return ResponseWriter().response_head(status, headers, defaults)


@functools.lru_cache(maxsize=1024)
def _status_line(status: int) -> bytes:
    return b"HTTP/1.1 %d %s\r\n" % (status, REASONS.get(status, b""))


@functools.lru_cache(maxsize=_KNOWN_FIELDS)
def field_line(name: object, value: object) -> tuple[bytes, bytes]:
    """A response field as its line and its lowercased name, checked (rule "the app's
    field names and values must be bytes")."""
    if not isinstance(name, bytes) or not isinstance(value, bytes):  # ASGI: byte strings
        raise AppProtocolError(
            f"response header names and values must be bytes, not {type(name).__name__}"
            f" and {type(value).__name__}: {name!r}, {value!r}"
        )
    name = name.lower()
    if _FIELD_NAME.fullmatch(name) is None:
        raise AppProtocolError(f"illegal response header name {name!r}")
    if _BAD_FIELD_VALUE.search(value) is not None:
        raise AppProtocolError(f"illegal response header value {value!r}")
    return b"%s: %s\r\n" % (name, value), name
