"""The HTTP/1.1 session over h11.

h11 parses the request side (request line, fields, body framing, chunked coding,
pipelining via PAUSED). This module adds what h11 leaves to its user:
1. The request-target limit (414): h11 has one limit for the whole head, so the target is
   checked on its own, and an oversized head whose request line never ended is a 414
   rather than a 431.
2. The response is serialised by the shared ResponseWriter (gateway/http/response.py),
   not by h11's `send`, which re-validates every field on each call and cost more than
   the parsing. h11's Connection then never learns that a response went out, so each
   cycle gets a new one, fed the bytes the last one had not parsed (`trailing_data`,
   h11's public hand-over, meant for protocol switches).
3. h11's RemoteProtocolError becomes a gateway ProtocolError and keeps h11's status hint.
"""

from __future__ import annotations

import h11

from gateway.errors import (
    BadRequest,
    ProtocolError,
    RequestHeadersTooLarge,
    RequestTargetTooLong,
)
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


class H11Session(ResponseWriter):
    """One connection's HTTP/1.1 state: requests parsed by h11."""

    def __init__(self, max_header_bytes: int, max_target_bytes: int) -> None:
        super().__init__()
        self._conn = h11.Connection(h11.SERVER, max_incomplete_event_size=max_header_bytes)
        self._max_target_bytes = max_target_bytes
        self._max_header_bytes = max_header_bytes

    def feed(self, data: bytes) -> None:
        try:
            self._conn.receive_data(data)
        except RuntimeError as exc:  # data after the peer's EOF: h11 refuses it
            raise BadRequest(str(exc)) from exc

    def next_event(self) -> Event:
        try:
            event = self._conn.next_event()
        except h11.RemoteProtocolError as exc:
            raise self._translate(exc) from exc
        if type(event) is h11.Data:
            self._awaiting_continue = False  # the client sends the body anyway
            return RequestData(bytes(event.data))
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
        self._expect_response(head)
        return head

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
