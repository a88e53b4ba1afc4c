"""The HTTP/1.1 session over h11.

h11 does the RFC 9112 work (framing, chunked coding, keep-alive, 100-continue state,
pipelining via PAUSED). This module adds what h11 leaves to its user:
1. The request-target limit (414): h11 has one limit for the whole head, so the target is
   checked on its own, and an oversized head whose request line never ended is a 414
   rather than a 431.
2. Bodies the response must not carry (HEAD, 204, 304: RFC 9110 §9.3.2, §15.3.5, §15.4.5)
   are dropped here, so apps and the WSGI bridge may send them harmlessly.
3. h11's exceptions become gateway.errors: RemoteProtocolError keeps h11's status hint;
   LocalProtocolError (the app sent something HTTP cannot carry) is AppProtocolError.
"""

from __future__ import annotations

import h11

from gateway.errors import (
    AppProtocolError,
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
from gateway.http.session import (
    NO_BODY_STATUSES,
    REASONS,
    Headers,
    check_request_head,
    error_reply,
    head_size,
    plain_response,
)

# Room for the method, spaces and version around a target of the maximum length, so a
# request line that has not ended by then is known to be too long (RFC 9112 §3).
REQUEST_LINE_OVERHEAD_BYTES = 32


class H11Session:
    """One connection's HTTP/1.1 state, through h11."""

    def __init__(self, max_header_bytes: int, max_target_bytes: int) -> None:
        self._conn = h11.Connection(h11.SERVER, max_incomplete_event_size=max_header_bytes)
        self._max_target_bytes = max_target_bytes
        self._max_header_bytes = max_header_bytes
        self._method = b""
        self._drop_body = False
        self._started = False

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
            return RequestData(bytes(event.data))
        if type(event) is h11.Request:
            return self._request_head(event)
        return _SIGNALS[event if isinstance(event, type) else type(event)]

    def _request_head(self, event: h11.Request) -> RequestHead:
        if len(event.target) > self._max_target_bytes:
            raise RequestTargetTooLong("request target too long")
        headers = list(event.headers)
        # h11 bounds only a head still incomplete; one that arrived whole in one read is
        # held to the same limit here, so the limit does not depend on how bytes arrive.
        if head_size(event.target, headers) > self._max_header_bytes:
            raise RequestHeadersTooLarge("request head too large")
        self._method = event.method
        head = RequestHead(
            method=event.method,
            target=event.target,
            headers=headers,
            http_version=event.http_version.decode("ascii"),
            expects_continue=self._conn.they_are_waiting_for_100_continue,
        )
        check_request_head(head)
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

    def continue_response(self) -> bytes:
        if not self._conn.they_are_waiting_for_100_continue:
            return b""
        return self._send(
            h11.InformationalResponse(status_code=100, headers=[], reason=b"Continue")
        )

    def response_head(self, status: int, headers: Headers) -> bytes:
        self._drop_body = self._method == b"HEAD" or status in NO_BODY_STATUSES
        reason = REASONS.get(status, b"")
        try:
            response = h11.Response(status_code=status, headers=headers, reason=reason)
        except h11.LocalProtocolError as exc:  # h11 checks names and values on creation
            raise AppProtocolError(str(exc)) from exc
        data = self._send(response)
        self._started = True  # only once the head is valid: until then a 500 may go out
        return data

    def response_body(self, data: bytes) -> bytes:
        if self._drop_body or not data:
            return b""
        return self._send(h11.Data(data=data))

    def response_end(self) -> bytes:
        return self._send(h11.EndOfMessage())

    def error_response(self, status: int, headers: Headers) -> bytes:
        if self._started:
            return b""
        headers, body = error_reply(status, headers, self._method == b"HEAD")
        try:
            head = self.response_head(status, headers)
            return head + self.response_body(body) + self.response_end()
        except AppProtocolError:
            # h11 refuses to send anything once the app's own head failed its checks (its
            # state is ERROR). None of that head went out, so a plain one is safe here.
            self._started = True
            return plain_response(status, headers, body)

    @property
    def reusable(self) -> bool:
        return self._conn.our_state is h11.DONE and self._conn.their_state is h11.DONE

    @property
    def response_started(self) -> bool:
        return self._started

    def start_next_cycle(self) -> None:
        self._conn.start_next_cycle()
        self._method = b""
        self._drop_body = False
        self._started = False

    def _send(self, event: h11.Event) -> bytes:
        try:
            data = self._conn.send(event)
        except h11.LocalProtocolError as exc:
            raise AppProtocolError(str(exc)) from exc
        return data or b""


_SIGNALS: dict[object, Event] = {
    h11.EndOfMessage: REQUEST_END,
    h11.NEED_DATA: NEED_DATA,
    h11.PAUSED: PAUSED,
    h11.ConnectionClosed: CONNECTION_CLOSED,
}
