"""One HTTP request's ASGI cycle: the `receive` and `send` of an http scope.

Rules:
1. The cycle never touches the transport: it asks its connection (a Carrier,
   gateway/server/connection.py) to frame, write and drain, and the connection feeds it the
   request body and tells it when the client has gone.
2. `receive` gives the body as it arrived, then http.disconnect once the client has
   gone, the response is complete, or the client half-closed after its body. A 100
   Continue goes out only once the app asks for the body (RFC 9110 §10.1.1).
3. The response head waits for the first body message (ASGI: the server must not start
   the response before it), and both go out in one write. It is serialised then too,
   so an app that fails before its first body (a second start, a return) has sent
   nothing and still gets its 500 (DESIGN §5).
4. `send` waits while the transport's buffer is over its high-water mark, and raises
   ClientDisconnected once the client has gone.
5. While `receive` waits for body, the cycle remembers since when, for the sweep's
   body_timeout (gateway/server/connection.py rule 6); it arms no timer.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Protocol

from gateway.asgi import Message
from gateway.config.access_format import AccessEntry
from gateway.errors import AppProtocolError, ClientDisconnected

access_log = logging.getLogger("gateway.access")


class Carrier(Protocol):
    """What a cycle needs from its connection."""

    @property
    def writing_paused(self) -> bool: ...
    def write(self, data: bytes) -> None: ...
    async def drain(self) -> None: ...
    def send_continue(self) -> None: ...
    def body_consumed(self) -> None: ...
    def response_start(self, status: int, headers: Any, body: bytes, more_body: bool) -> bytes: ...
    def response_body(self, data: bytes, more_body: bool) -> bytes: ...


class RequestCycle:
    """One request and its response: the ASGI `receive` and `send` of an HTTP scope."""

    __slots__ = (
        "_body",
        "_body_complete",
        "_body_delivered",
        "_conn",
        "_expects_continue",
        "_peer_closed",
        "_response_headers",
        "_start",
        "_waiter",
        "_waiting_since",
        "bytes_sent",
        "disconnected",
        "method",
        "path",
        "response_complete",
        "response_started",
        "scope",
        "started_at",
        "status",
    )

    def __init__(
        self, conn: Carrier, scope: dict[str, Any], expects_continue: bool, timed: bool
    ) -> None:
        self.scope = scope
        self.method: str = scope["method"]
        self.path: str = scope["path"]
        self._conn = conn
        self._body = bytearray()
        self._body_complete = False
        self._body_delivered = False
        self._peer_closed = False
        self._expects_continue = expects_continue
        self._waiter: asyncio.Future[None] | None = None
        self._waiting_since = 0.0  # loop time `receive` began to wait (body_timeout)
        self._start: Message | None = None  # the start message, until the first body
        self._response_headers: Any = None  # the app's, for the access log's {name}o
        self.response_started = False
        self.response_complete = False
        self.disconnected = False
        self.status = 0
        self.bytes_sent = 0
        self.started_at = time.perf_counter() if timed else 0.0

    # -- fed by the connection -------------------------------------------------------

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
        """The app waits in `receive` for body that has not come for `timeout_s` (rule 6);
        a wait for http.disconnect after the whole body is no stall."""
        waiting = self._waiter is not None and not self._body_complete
        return waiting and now - self._waiting_since >= timeout_s

    # -- ASGI receive ----------------------------------------------------------------

    async def receive(self) -> Message:
        while True:
            if self._body or (self._body_complete and not self._body_delivered):
                return self._take_body()
            if self.disconnected or self.response_complete or self._peer_closed:
                return {"type": "http.disconnect"}
            if self._expects_continue:
                # RFC 9110 §10.1.1: the 100 goes out only once the app asks for the body.
                self._expects_continue = False
                self._conn.send_continue()
            loop = asyncio.get_running_loop()
            self._waiter = loop.create_future()
            self._waiting_since = loop.time()
            await self._waiter

    def _take_body(self) -> Message:
        body = bytes(self._body)
        self._body.clear()
        self._body_delivered = self._body_complete
        self._conn.body_consumed()
        return {"type": "http.request", "body": body, "more_body": not self._body_complete}

    # -- ASGI send -------------------------------------------------------------------

    async def send(self, message: Message) -> None:
        if self.disconnected:
            raise ClientDisconnected("client went away")
        kind = message["type"]
        if kind == "http.response.body":
            await self._send_body(message.get("body", b""), message.get("more_body", False))
        elif kind == "http.response.start":
            self._start_response(message)
        else:
            raise AppProtocolError(f"unexpected ASGI message type {kind!r}")

    def _start_response(self, message: Message) -> None:
        if self.response_started:
            raise AppProtocolError("http.response.start sent twice")
        self.response_started = True
        self.status = message["status"]
        # The head waits for the first body message (ASGI: the server must not start
        # the response before it), and both go out in one write. It is serialised then
        # too, so an app that fails before its first body (a second start, a return)
        # has sent nothing and still gets its 500 (DESIGN §5).
        self._start = message

    async def _send_body(self, body: bytes, more_body: bool) -> None:
        if not self.response_started:
            raise AppProtocolError("http.response.body sent before http.response.start")
        if self.response_complete:
            return  # ASGI: further messages after the last body are ignored
        start = self._start
        if start is None:
            data = self._conn.response_body(body, more_body)
        else:
            headers = start.get("headers", [])
            self._response_headers = headers
            data = self._conn.response_start(self.status, headers, body, more_body)
            # Only now: a body that broke the head's framing raised above, before
            # anything was written, and the head is still to come.
            self._start = None
        self.bytes_sent += len(body)
        self._conn.write(data)
        if not more_body:
            self.response_complete = True
            self._wake()
        elif self._conn.writing_paused:
            await self._conn.drain()

    def log_access(self) -> None:
        """One access line: the entry is rendered by the access logger's filter
        (gateway/logs.py), in the format parsed once at start."""
        duration_s = time.perf_counter() - self.started_at
        headers = () if self._response_headers is None else self._response_headers
        entry = AccessEntry(
            self.scope, self.method, self.status, self.bytes_sent, duration_s, headers
        )
        access_log.info(entry)
