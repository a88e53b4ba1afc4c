"""The HTTP/1.1 session over h11.

h11 parses the request side (request line, fields, body framing, chunked coding,
pipelining via PAUSED). This module adds what h11 leaves to its user. Rules:
1. The request-target limit (414): h11 has one limit for the whole head, so the target is
   checked on its own, and an oversized head whose request line never ended is a 414
   rather than a 431.
2. The response is serialised by the shared ResponseWriter (gateway/http/response.py),
   not by h11's `send`, which re-validates every field on each call and cost more than
   the parsing. h11's Connection then never learns that a response went out, so each
   cycle gets a new one, fed the bytes the last one had not parsed (`trailing_data`,
   h11's public hand-over, meant for protocol switches).
3. h11's RemoteProtocolError becomes a gateway ProtocolError and keeps h11's status hint.
4. h11 is more lenient than llhttp, so the bytes of each head are kept while it arrives
   and held to what llhttp refuses, once h11 has parsed them: no bare CR or LF as line
   ends (RFC 9112 §2.2), no obs-fold (§5.2), no control character but HTAB in a field
   (RFC 9110 §5.5), no repeated Content-Length (h11 merges equal ones, §8.6). Only the
   head is scanned, by a few byte counts and one precompiled pattern: a few microseconds
   a request. A chunked body's chunk lines are checked too (chunk_lines.py).
5. Empty lines before a request line are skipped (RFC 9112 §2.2 SHOULD), as llhttp
   does, before h11 sees them.
"""

from __future__ import annotations

import re
from typing import Any

import h11

from gateway.errors import (
    BadRequest,
    ProtocolError,
    RequestHeadersTooLarge,
    RequestTargetTooLong,
)
from gateway.http.chunk_lines import ChunkLines
from gateway.http.events import (
    CONNECTION_CLOSED,
    NEED_DATA,
    PAUSED,
    REQUEST_END,
    Event,
    RequestData,
    RequestHead,
)
from gateway.http.response import ResponseWriter
from gateway.http.session import (
    Headers,
    UpgradeRequest,
    check_request_head,
    field_tokens,
    head_size,
)

# Room for the method, spaces and version around a target of the maximum length, so a
# request line that has not ended by then is known to be too long (RFC 9112 §3).
REQUEST_LINE_OVERHEAD_BYTES = 32
# Control characters but HTAB, CR and LF (rule "h11 is more lenient than llhttp"; CR and
# LF are counted instead: one pattern with look-arounds for bare ones cost three times as
# much as this and counts).
_CONTROL_BYTES = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_CONTENT_LENGTH_LIST = re.compile(rb"\ncontent-length:[^\r]*,", re.IGNORECASE)
_HEAD_END = b"\r\n\r\n"
_CRLF = b"\r\n"


class H11Session(ResponseWriter):
    """One connection's HTTP/1.1 state: requests parsed by h11."""

    def __init__(self, max_header_bytes: int, max_target_bytes: int) -> None:
        super().__init__()
        self._conn = h11.Connection(h11.SERVER, max_incomplete_event_size=max_header_bytes)
        self._max_target_bytes = max_target_bytes
        self._max_header_bytes = max_header_bytes
        # The bytes fed while h11 waits for a head, what h11 buffers for it (rule "h11 is
        # more lenient than llhttp").
        self._head_bytes = bytearray()
        self._chunks: ChunkLines | None = None  # a chunked body's framing, followed

    def feed(self, data: bytes) -> None:
        if data and self._conn.their_state is h11.IDLE:
            data = self._keep_head_bytes(data)
            if not data:
                return
        elif data and self._chunks is not None:
            self._follow_chunks(data)
        self._receive(data)

    def _receive(self, data: bytes) -> None:
        try:
            self._conn.receive_data(data)
        except RuntimeError as exc:  # data after the peer's EOF: h11 refuses it
            raise BadRequest(str(exc)) from exc

    def _keep_head_bytes(self, data: bytes) -> bytes:
        """Keep the head's bytes; skip empty lines before it (rules "h11 is more lenient
        than llhttp" and "empty lines before a request line are skipped")."""
        if not self._head_bytes:
            data = data.lstrip(_CRLF)  # any CR and LF bytes, as llhttp skips them
        self._head_bytes += data
        return data

    def _follow_chunks(self, data: bytes | bytearray) -> None:
        chunks = self._chunks
        if chunks is not None:
            chunks.feed(data)
            if chunks.done:
                self._chunks = None

    def next_event(self) -> Event:
        try:
            event = self._conn.next_event()
        except h11.RemoteProtocolError as exc:
            raise self._translate(exc) from exc
        if type(event) is h11.Data:
            self._awaiting_continue = False  # the client sends the body anyway
            # h11 hands a bytearray where its types say bytes, and compiled code checks
            # an attribute's declared type as it reads it (setup.py, mypyc): read untyped.
            untyped: Any = event
            return RequestData(bytes(untyped.data))
        if type(event) is h11.Request:
            return self._request_head(event)
        return _SIGNALS[event if isinstance(event, type) else type(event)]

    def _request_head(self, event: h11.Request) -> RequestHead:
        if len(event.target) > self._max_target_bytes:
            raise RequestTargetTooLong("request target too long")
        headers = [(name.lower(), value) for name, value in event.headers.raw_items()]
        # h11 bounds only a head still incomplete; one that arrived whole in one read is
        # held to the same limit here, so the limit does not depend on how bytes arrive.
        if head_size(event.target, headers) > self._max_header_bytes:
            raise RequestHeadersTooLarge("request head too large")
        head_type = UpgradeRequest if _asks_to_upgrade(event.method, headers) else RequestHead
        head = head_type(
            method=event.method,
            target=event.target,
            headers=headers,
            http_version=event.http_version.decode("ascii"),
            expects_continue=self._conn.they_are_waiting_for_100_continue,
        )
        check_request_head(head)
        self._check_head_bytes(headers)
        self._expect_response(head)
        return head

    def _check_head_bytes(self, headers: Headers) -> None:
        """Rule "h11 is more lenient than llhttp", on the bytes h11 has just parsed into a
        head."""
        raw, self._head_bytes = self._head_bytes, bytearray()
        end = raw.find(_HEAD_END)
        # Without a CRLF CRLF, h11 found the head's end at a bare LF: scan it all.
        end = len(raw) if end < 0 else end + len(_HEAD_END)
        lines = raw.count(_CRLF, 0, end)
        # Each CRLF holds one CR and one LF: any more is a bare one.
        if raw.count(b"\r", 0, end) + raw.count(b"\n", 0, end) != 2 * lines:
            raise BadRequest("a bare CR or LF in the head")
        if raw.find(b"\n ", 0, end) >= 0 or raw.find(b"\n\t", 0, end) >= 0:
            raise BadRequest("obs-fold: a field line continued on the next")
        if _CONTROL_BYTES.search(raw, 0, end) is not None:
            raise BadRequest("a control character in the head")
        # Request line, one line per field, the empty line: a field h11 dropped was an
        # equal Content-Length repeated.
        if lines != len(headers) + 2:
            raise BadRequest("Content-Length repeated")
        chunked = False
        for name, _ in headers:
            if name == b"content-length":
                if _CONTENT_LENGTH_LIST.search(raw, 0, end) is not None:
                    raise BadRequest("Content-Length repeated")
            elif name == b"transfer-encoding":
                chunked = True  # check_request_head let through only a lone `chunked`
        if chunked:
            self._chunks = ChunkLines()
            self._follow_chunks(raw[end:])

    def _translate(self, exc: h11.RemoteProtocolError) -> ProtocolError:
        if exc.error_status_hint == 431 and not self._request_line_ended():
            return RequestTargetTooLong("request line too long")
        if exc.error_status_hint == 431:
            return RequestHeadersTooLarge("request head too large")
        return ProtocolError(str(exc), exc.error_status_hint)

    def _request_line_ended(self) -> bool:
        buffered, _ = self._conn.trailing_data
        limit = self._max_target_bytes + REQUEST_LINE_OVERHEAD_BYTES
        return b"\n" in buffered[:limit]

    @property
    def reusable(self) -> bool:
        # MIGHT_SWITCH_PROTOCOL: an upgrade request, complete, answered without a switch;
        # h11 never sees our response, so it cannot move the client to DONE itself.
        return self._finished and self._keep_alive and self._conn.their_state in _REQUEST_DONE

    def take_upgraded(self) -> bytes:
        unparsed, _ = self._conn.trailing_data
        return bytes(unparsed)

    def start_next_cycle(self) -> None:
        unparsed, closed = self._conn.trailing_data
        self._conn = h11.Connection(h11.SERVER, max_incomplete_event_size=self._max_header_bytes)
        self._head_bytes = bytearray()
        self._chunks = None
        unparsed = self._keep_head_bytes(unparsed) if unparsed else unparsed
        if unparsed:
            self._conn.receive_data(unparsed)
        if closed:
            self._conn.receive_data(b"")
        self._reset_response()


def _asks_to_upgrade(method: bytes, headers: Headers) -> bool:
    """An Upgrade field with the `upgrade` connection option (RFC 9110 §7.8), as llhttp
    sees it, so both sessions hand the same requests over. (CONNECT, which both parsers
    also stop at, stays a plain request: its authority-form target is refused.)"""
    upgrade = connection_upgrade = False
    for name, value in headers:
        if name == b"upgrade":
            upgrade = True
        elif name == b"connection" and b"upgrade" in field_tokens(value):
            connection_upgrade = True
    return upgrade and connection_upgrade and method != b"CONNECT"


# MIGHT_SWITCH_PROTOCOL is a documented h11 state, left out of h11's __all__.
_REQUEST_DONE = frozenset({h11.DONE, h11.MIGHT_SWITCH_PROTOCOL})  # type: ignore[attr-defined]
_SIGNALS: dict[object, Event] = {
    h11.EndOfMessage: REQUEST_END,
    h11.NEED_DATA: NEED_DATA,
    h11.PAUSED: PAUSED,
    h11.ConnectionClosed: CONNECTION_CLOSED,
}
