"""The HTTP/1.1 session over httptools (llhttp, in C): the fast path.

It offers exactly what the h11 session offers (gateway/http/session.py), so the
connection layer cannot tell them apart. Rules:
1. llhttp parses eagerly: one `feed` may run callbacks for several pipelined requests.
   Their events wait in a queue, and the head of a request is held back (PAUSED) until
   the cycle before it has ended, as h11 does (RFC 9112 §9.3.2).
2. llhttp has no size limits, so this module keeps them: the target (414) as it is
   parsed; the head (431) both as fields complete and, for a head still incomplete after
   a feed, by the bytes fed into it, so a field without an end cannot grow unbounded.
3. Request framing rules shared with h11 (`check_request_head`) run on every head;
   llhttp's own errors are mapped to the same statuses h11 gives.
4. The response is serialised by the shared ResponseWriter (gateway/http/response.py).
5. An Upgrade request (or CONNECT) stops llhttp and comes as an UpgradeRequest; the
   bytes after it are kept. `take_upgraded` hands them to the new protocol; otherwise
   the next cycle parses them with a new parser, so an upgrade that is not taken falls
   back to plain HTTP.
"""

from __future__ import annotations

from collections import deque

import httptools

from gateway.errors import (
    BadRequest,
    MethodNotImplemented,
    ProtocolError,
    RequestHeadersTooLarge,
    RequestTargetTooLong,
    VersionNotSupported,
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
    FIELD_OVERHEAD_BYTES,
    Headers,
    UpgradeRequest,
    check_request_head,
)

# llhttp's messages for errors h11 answers with another status than 400.
_STATUS_BY_MESSAGE = {
    "Request has invalid `Transfer-Encoding`": MethodNotImplemented,
    "Invalid `Transfer-Encoding` header value": MethodNotImplemented,
    "Empty Transfer-Encoding": MethodNotImplemented,  # h11: not a lone chunked, so 501
    "Pause on PRI/Upgrade": VersionNotSupported,
    "Invalid HTTP version": VersionNotSupported,
}


class HttptoolsSession(ResponseWriter):
    """One connection's HTTP/1.1 state, parsed by httptools."""

    def __init__(self, max_header_bytes: int, max_target_bytes: int) -> None:
        super().__init__()
        self._max_header_bytes = max_header_bytes
        self._max_target_bytes = max_target_bytes
        self._parser = httptools.HttpRequestParser(self)
        self._events: deque[Event] = deque()
        self._error: ProtocolError | None = None
        self._upgraded: bytearray | None = None  # bytes after an upgrade request
        self._peer_closed = False
        # The request being parsed.
        self._url = b""
        self._fields: Headers = []
        self._head_bytes = 0
        self._in_head = False
        # The current cycle.
        self._cycle_open = False
        self._request_done = False

    # -- bytes in --------------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        if not data:
            self._peer_gone()
        elif self._upgraded is not None:
            self._upgraded += data
        else:
            self._parse(data)

    def _parse(self, data: bytes) -> None:
        """Run llhttp over `data`; an error is kept and raised by `next_event` once the
        events parsed before it are out, as h11 reports it where it happens."""
        if self._error is not None:
            return
        try:
            self._parser.feed_data(data)
            if self._in_head:
                self._head_bytes += len(data)  # rule 2: an incomplete head is bounded too
                self._check_head_size()
        except httptools.HttpParserUpgrade as upgrade:
            self._upgraded = bytearray(data[upgrade.args[0] :])
        except ProtocolError as exc:  # our own size check, after feed_data
            self._error = exc
        except httptools.HttpParserError as exc:
            self._error = _translate(exc)

    def _peer_gone(self) -> None:
        self._peer_closed = True
        self._keep_alive = False
        if self._in_head or (self._cycle_open and not self._request_done):
            self._error = self._error or BadRequest("the client closed mid-request")

    # -- llhttp callbacks ------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._url = b""
        self._fields = []
        self._head_bytes = 0
        self._in_head = True

    def on_url(self, url: bytes) -> None:
        self._url += url
        if len(self._url) > self._max_target_bytes:
            self._fail(RequestTargetTooLong("request target too long"))

    def on_header(self, name: bytes, value: bytes) -> None:
        self._fields.append((name.lower(), value))
        self._head_bytes += len(name) + len(value) + FIELD_OVERHEAD_BYTES
        self._check_head_size()

    def on_headers_complete(self) -> None:
        self._in_head = False
        version = self._parser.get_http_version()
        method = self._parser.get_method()
        # llhttp stops after a request that asks to switch protocols (session rule 4),
        # and after CONNECT, which stays a plain request (its target is refused).
        upgrade = method != b"CONNECT" and self._parser.should_upgrade()
        head = (UpgradeRequest if upgrade else RequestHead)(
            method=method,
            target=self._url,
            headers=self._fields,
            http_version=version,
        )
        try:
            check_request_head(head)
        except ProtocolError as exc:
            self._fail(exc)
        self._events.append(head)

    def on_body(self, body: bytes) -> None:
        self._events.append(RequestData(body))

    def on_message_complete(self) -> None:
        self._events.append(REQUEST_END)

    def _check_head_size(self) -> None:
        if self._head_bytes + len(self._url) > self._max_header_bytes:
            self._fail(RequestHeadersTooLarge("request head too large"))

    def _fail(self, error: ProtocolError) -> None:
        """Stop parsing from inside a callback; `_translate` recovers the error."""
        raise error

    # -- events out ------------------------------------------------------------------

    def next_event(self) -> Event:
        if not self._events and self._error is not None:
            raise self._error
        if self._events:
            event = self._events[0]
            if type(event) is RequestHead or type(event) is UpgradeRequest:
                if self._cycle_open:
                    return PAUSED
                self._begin_cycle(event)
            elif event is REQUEST_END:
                self._request_done = True
            elif type(event) is RequestData:
                self._awaiting_continue = False  # the client sends the body anyway
            return self._events.popleft()
        if self._upgraded is not None and self._cycle_open:
            return PAUSED
        if self._peer_closed:
            return CONNECTION_CLOSED
        return NEED_DATA

    def _begin_cycle(self, head: RequestHead) -> None:
        self._cycle_open = True
        self._request_done = False
        self._expect_response(head)

    # -- cycles ----------------------------------------------------------------------

    @property
    def reusable(self) -> bool:
        return self._finished and self._request_done and self._keep_alive

    def take_upgraded(self) -> bytes:
        rest, self._upgraded = bytes(self._upgraded or b""), None
        return rest

    def start_next_cycle(self) -> None:
        self._cycle_open = False
        self._reset_response()
        # The kept bytes belong to the upgrade request, the last one queued: parse them
        # only once its own cycle has ended, not after a request pipelined before it.
        if self._upgraded is not None and not self._events:
            rest, self._upgraded = bytes(self._upgraded), None
            self._parser = httptools.HttpRequestParser(self)
            if rest:
                self._parse(rest)


def _translate(exc: httptools.HttpParserError) -> ProtocolError:
    # httptools wraps what a callback raised; ours raise the ProtocolError to answer with.
    if isinstance(exc.__context__, ProtocolError):
        return exc.__context__
    message = str(exc)
    error = _STATUS_BY_MESSAGE.get(message, BadRequest)
    return error(message)
