"""The stream seam: what an ASGI cycle needs from the protocol below it, and the state of
one response.

Rules:
1. A cycle (gateway/server/cycle.py, gateway/server/websocket.py) talks to a Stream and
   to nothing else below it: it hands over a status, fields and body parts, and the
   stream's session frames them (gateway/http) and the stream writes them. The cycle
   never sees a byte of HTTP framing. An HTTP/1.1 connection is one stream at a time
   (gateway/server/connection.py); an HTTP/2 connection (none yet) will be one stream
   per request.
2. Backpressure is the stream's `writing_paused` and `drain`: a cycle that wrote while
   writing is paused waits in `drain`, which raises ClientDisconnected once the client
   has gone. Writing never waits, so a send that is not paused costs no await.
3. Flow control of the request body runs the other way: the stream feeds its cycle the
   body as it arrives and holds reading while the cycle holds too much; the cycle says
   `body_consumed` when the app has taken it.
4. One response's state is one ResponseState, owned by its cycle, and every change of it
   is a step of the TRANSITIONS table below (h11's `_state.py` is the model), taken
   through `next_state` or, on a cycle's hot path, the same lookup inlined. An event
   the table does not allow in a state is an AppProtocolError, raised before anything
   is written, so the app's failure can still be answered.
5. A stream that switched protocols (a WebSocket the app accepted) is a TunnelStream: its
   cycle frames its own messages (gateway/http/ws_session.py) and the stream carries the
   bytes as they are: over HTTP/1.1 the connection's bytes, over HTTP/2 a stream's DATA
   (gateway/server/h2_tunnel.py).
6. Every request and WebSocket is logged the same way when it ends (`log_access`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from enum import Enum
from typing import Protocol

from gateway.asgi import Scope
from gateway.config.access_format import AccessEntry
from gateway.errors import AppProtocolError

Fields = Iterable[tuple[bytes, bytes]]

access_log = logging.getLogger("gateway.access")


class Stream(Protocol):
    """One request's way down: what a cycle needs from the connection it runs on."""

    @property
    def writing_paused(self) -> bool:
        """The transport's buffer is over its high-water mark: `drain` before more."""

    async def drain(self) -> None:
        """Wait until writing may go on; raise ClientDisconnected once the client left."""

    def send_head(self, status: int, headers: Fields, body: bytes, more_body: bool) -> None:
        """Frame and write the head with the first body part, in one write. A field or
        a body that breaks the framing raises AppProtocolError before any byte is
        written, and the response can still be replaced by an error reply."""

    def send_body(self, body: bytes, more_body: bool) -> None:
        """Frame and write a further body part (and the end, if it is the last)."""

    def send_error(self, status: int, headers: Fields = ()) -> int:
        """The gateway's own plain-text reply for `status`, unless a response has begun;
        the size of its body, for the access log."""

    def send_continue(self) -> None:
        """A 100 Continue, if the client waits for one (RFC 9110 §10.1.1)."""

    def body_consumed(self) -> None:
        """The app took the body received so far: read on (rule "flow control of the request
        body")."""

    def close(self) -> None:
        """End the stream once what was written has gone out; for half a response this
        is what tells the client the response is cut."""

    def end_cycle(self) -> None:
        """The cycle's app has returned and the cycle has answered for it: the stream
        may log it and go on (HTTP/1.1: to the next pipelined request)."""


class TunnelStream(Stream, Protocol):
    """A stream whose request asked to switch protocols (a WebSocket; rule "a stream that
    switched protocols")."""

    @property
    def closed(self) -> bool:
        """The connection has gone."""

    def default_headers(self) -> list[tuple[bytes, bytes]]:
        """The fields every response gets unless it sends its own (`date`, `server`)."""

    def switch_protocols(self, fields: list[tuple[bytes, bytes]]) -> int:
        """Send the accept with these fields, framed as the protocol below frames it (a
        101 on HTTP/1.1, a 200 on an HTTP/2 stream, RFC 8441 §5); its status. A field
        that breaks the framing raises AppProtocolError before anything is written."""

    def take_upgraded(self) -> bytes:
        """Switch protocols: the bytes that followed the request's head; read on."""

    def write(self, data: bytes) -> None:
        """Bytes of the new protocol, framed by the cycle's own session."""

    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...

    def abort(self) -> None:
        """Drop the stream at once, without waiting for what was written."""


class ResponseState(Enum):
    """Where one HTTP response stands (rule "one response's state is one ResponseState")."""

    # Members are singletons compared by identity: hash them so too. Enum's own
    # `__hash__` is Python code, and the transition table is read on every message.
    __hash__ = object.__hash__

    WAITING = "waiting"  # no http.response.start yet
    STARTED = "started"  # the start came; its head waits for the first body (ASGI)
    SENDING = "sending"  # the head went out; more body is to come
    COMPLETE = "complete"  # the last body went out, or the gateway's reply took its place
    CUT = "cut"  # half a response went out and the stream was closed under it


class ResponseEvent(Enum):
    """What moves a response on: the app's messages and the gateway's own acts."""

    __hash__ = object.__hash__  # as ResponseState's

    START = "http.response.start"
    BODY = "http.response.body with more_body"
    LAST_BODY = "http.response.body"
    REPLY = "the gateway's own reply"  # an error reply takes the response's place
    CUT = "a close under half a response"


_S, _E = ResponseState, ResponseEvent
TRANSITIONS: dict[ResponseState, dict[ResponseEvent, ResponseState]] = {
    _S.WAITING: {_E.START: _S.STARTED, _E.REPLY: _S.COMPLETE},
    # A head not yet written can still be replaced by an error reply (DESIGN §5).
    _S.STARTED: {_E.BODY: _S.SENDING, _E.LAST_BODY: _S.COMPLETE, _E.REPLY: _S.COMPLETE},
    _S.SENDING: {_E.BODY: _S.SENDING, _E.LAST_BODY: _S.COMPLETE, _E.CUT: _S.CUT},
    # ASGI: body messages after the last are ignored.
    _S.COMPLETE: {_E.BODY: _S.COMPLETE, _E.LAST_BODY: _S.COMPLETE},
    _S.CUT: {},
}


def next_state(state: ResponseState, event: ResponseEvent) -> ResponseState:
    """The state after `event`, or AppProtocolError if `state` does not allow it."""
    after = TRANSITIONS[state].get(event)
    if after is None:
        raise refusal(state, event)
    return after


def refusal(state: ResponseState, event: ResponseEvent) -> AppProtocolError:
    """The error for an event the table does not allow, in the app's terms."""
    if event is _E.START:
        return AppProtocolError("http.response.start sent twice")
    if state is _S.WAITING and event is not _E.REPLY:
        return AppProtocolError("http.response.body sent before http.response.start")
    return AppProtocolError(f"{event.value} in state {state.value}")


def log_access(
    scope: Scope,
    method: str,
    status: int,
    bytes_sent: int,
    started_at: float,
    response_headers: Fields = (),
) -> None:
    """One access line for a request or WebSocket that ended: the entry is rendered by
    the access logger's filter (gateway/logs.py), in the format parsed once at start."""
    duration_s = time.perf_counter() - started_at
    entry = AccessEntry(scope, method, status, bytes_sent, duration_s, response_headers)
    access_log.info(entry)
