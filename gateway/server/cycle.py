"""One HTTP request's ASGI cycle: the `receive` and `send` of an http scope.

Rules:
1. The cycle never touches the transport nor frames a byte: it hands the response's
   status, fields and body to its Stream (gateway/server/stream.py), which frames and
   writes them, and the stream feeds it the request body and tells it when the client
   has gone.
2. `receive` gives the body as it arrived, then http.disconnect once the client has
   gone, the response is complete, or the client half-closed after its body. A 100
   Continue goes out only once the app asks for the body (RFC 9110 §10.1.1).
3. The response head waits for the first body message (ASGI: the server must not start
   the response before it), and both go out in one write. It is framed then too, so
   an app that fails before its first body (a second start, a return) has sent
   nothing and still gets its 500 (DESIGN §5).
4. `send` waits while the stream's writing is paused, and raises ClientDisconnected
   once the client has gone.
5. While `receive` waits for body, the cycle remembers since when, for the sweep's
   body_timeout (gateway/server/connection.py, rule "slow clients are bounded"); it arms
   no timer.
6. The response's state is the cycle's own ResponseState, changed only by a step of
   the TRANSITIONS table: through `next_state`, or its lookup inlined in `send`, where
   it runs once per message (gateway/server/stream.py, rule "one response's state is
   one ResponseState").
7. An app failure before the head went out is answered with the error's reply (a 500,
   or the status of an HTTPError the app let through); during the response the stream
   is closed, which is what tells the client the response is cut; a complete response
   stands.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from gateway.asgi import ASGIApp, Message
from gateway.errors import AppProtocolError, ClientDisconnected, HTTPError
from gateway.server.stream import (
    TRANSITIONS,
    Fields,
    ResponseEvent,
    ResponseState,
    Stream,
    log_access,
    next_state,
    refusal,
)

error_log = logging.getLogger("gateway.error")
WAITING, STARTED, COMPLETE = ResponseState.WAITING, ResponseState.STARTED, ResponseState.COMPLETE
START, BODY, LAST_BODY = ResponseEvent.START, ResponseEvent.BODY, ResponseEvent.LAST_BODY


class RequestCycle:
    """One request and its response: the ASGI `receive` and `send` of an HTTP scope."""

    __slots__ = (
        "_body",
        "_body_complete",
        "_body_delivered",
        "_expects_continue",
        "_peer_closed",
        "_response_headers",
        "_start",
        "_stream",
        "_waiter",
        "_waiting_since",
        "bytes_sent",
        "disconnected",
        "method",
        "path",
        "response",
        "scope",
        "started_at",
        "status",
    )

    def __init__(
        self, stream: Stream, scope: dict[str, Any], expects_continue: bool, timed: bool
    ) -> None:
        self.scope = scope
        self.method: str = scope["method"]
        self.path: str = scope["path"]
        self._stream = stream
        self._body = bytearray()
        self._body_complete = False
        self._body_delivered = False
        self._peer_closed = False
        self._expects_continue = expects_continue
        self._waiter: asyncio.Future[None] | None = None
        self._waiting_since = 0.0  # loop time `receive` began to wait (body_timeout)
        self._start: Message | None = None  # the start message, until the first body
        self._response_headers: Any = None  # the app's, for the access log's {name}o
        # Read by anyone, written here only (rule "the response's state").
        self.response = WAITING
        self.disconnected = False
        self.status = 0
        self.bytes_sent = 0
        self.started_at = time.perf_counter() if timed else 0.0

    async def run(self, app: ASGIApp) -> None:
        """Run the app on this cycle and answer for it if it fails (rule "an app
        failure"); then the stream may go on to what follows."""
        try:
            await app(self.scope, self.receive, self.send)
        except ClientDisconnected:
            pass
        except Exception as exc:
            self._app_failed(exc)
        else:
            if self.response is not COMPLETE and not self.disconnected:
                self._app_failed(AppProtocolError("app returned without a response"))
        finally:
            self._stream.end_cycle()

    def _app_failed(self, exc: Exception) -> None:
        headers: Fields = ()
        if isinstance(exc, HTTPError):  # e.g. 413 from the router, 503 from a WSGI queue
            error_log.info("request rejected: %s (%d)", exc, exc.status)
            status, headers = exc.status, exc.headers
        else:
            error_log.error("app failed on %s %s", self.method, self.path, exc_info=exc)
            status = 500
        if self.disconnected or self.response is COMPLETE:
            return  # a complete response stands; the connection stays usable
        if self.response is ResponseState.SENDING:
            self.response = next_state(self.response, ResponseEvent.CUT)
            self._stream.close()  # half a response: only closing tells the client
            return
        self._reply(status, headers)

    def _reply(self, status: int, headers: Fields) -> None:
        """The gateway's own reply in place of the app's response (rule "an app
        failure")."""
        self.response = next_state(self.response, ResponseEvent.REPLY)
        self.status = status
        self.bytes_sent = self._stream.send_error(status, headers)  # for the access log

    def abandon(self, error: HTTPError) -> None:
        """The stream gives up on this request (bad input, a timeout): its error's reply
        goes out unless the response has begun, and `receive` reports http.disconnect."""
        if self.response is WAITING or self.response is STARTED:
            self._reply(error.status, error.headers)
        elif self.response is ResponseState.SENDING:
            self.response = next_state(self.response, ResponseEvent.CUT)
        self.client_gone()

    # -- fed by the stream -----------------------------------------------------------

    def body_arrived(self, data: bytes) -> int:
        self._body += data
        self._wake()
        return len(self._body)

    def body_complete(self) -> None:
        self._body_complete = True
        self._wake()

    @property
    def request_complete(self) -> bool:
        return self._body_complete

    def client_gone(self) -> None:
        self.disconnected = True
        self._wake()

    def peer_closed(self) -> None:
        """The client half-closed: a response can still go out, but once the body is
        read, `receive` reports http.disconnect (a long poll must not wait forever)."""
        self._peer_closed = True
        self._wake()

    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def body_stalled(self, now: float, timeout_s: float) -> bool:
        """The app waits in `receive` for body that has not come for `timeout_s` (rule
        "while `receive` waits"); a wait for http.disconnect after the whole body is no
        stall."""
        waiting = self._waiter is not None and not self._body_complete
        return waiting and now - self._waiting_since >= timeout_s

    # -- ASGI receive ----------------------------------------------------------------

    async def receive(self) -> Message:
        while True:
            if self._body or (self._body_complete and not self._body_delivered):
                return self._take_body()
            if self.disconnected or self.response is COMPLETE or self._peer_closed:
                return {"type": "http.disconnect"}
            if self._expects_continue:
                # RFC 9110 §10.1.1: the 100 goes out only once the app asks for the body.
                self._expects_continue = False
                self._stream.send_continue()
            loop = asyncio.get_running_loop()
            self._waiter = loop.create_future()
            self._waiting_since = loop.time()
            await self._waiter

    def _take_body(self) -> Message:
        body = bytes(self._body)
        self._body.clear()
        self._body_delivered = self._body_complete
        self._stream.body_consumed()
        return {"type": "http.request", "body": body, "more_body": not self._body_complete}

    # -- ASGI send -------------------------------------------------------------------

    async def send(self, message: Message) -> None:
        if self.disconnected:
            raise ClientDisconnected("client went away")
        kind = message["type"]
        if kind == "http.response.body":
            await self._send_body(message.get("body", b""), message.get("more_body", False))
        elif kind == "http.response.start":
            try:  # next_state, inlined: once per message
                self.response = TRANSITIONS[self.response][START]
            except KeyError:
                raise refusal(self.response, START) from None
            self.status = message["status"]
            # The head waits for the first body, and is framed only then (rule "the
            # response head waits").
            self._start = message
        else:
            raise AppProtocolError(f"unexpected ASGI message type {kind!r}")

    async def _send_body(self, body: bytes, more_body: bool) -> None:
        state = self.response
        event = BODY if more_body else LAST_BODY
        try:  # next_state, inlined: once per message
            after = TRANSITIONS[state][event]
        except KeyError:
            raise refusal(state, event) from None
        if state is COMPLETE:
            return  # ASGI: further messages after the last body are ignored
        start = self._start
        if start is None:
            self._stream.send_body(body, more_body)
        else:
            headers = start.get("headers", [])
            self._response_headers = headers
            self._stream.send_head(self.status, headers, body, more_body)
            # Only now: a body that broke the head's framing raised above, before
            # anything was written, and the head is still to come.
            self._start = None
        self.response = after
        self.bytes_sent += len(body)
        if not more_body:
            self._wake()
        elif self._stream.writing_paused:
            await self._stream.drain()

    def log_access(self) -> None:
        headers = () if self._response_headers is None else self._response_headers
        log_access(self.scope, self.method, self.status, self.bytes_sent, self.started_at, headers)
