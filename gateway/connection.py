"""One HTTP/1.1 connection: the only code that touches a transport.

Rules:
1. Bytes go into the session (gateway/http) and events come out; this module turns them
   into ASGI `receive`/`send` for one request cycle at a time. Pipelined requests wait in
   the session (PAUSED) until the cycle before them has finished (RFC 9112 §9.3.2).
2. Flow control both ways. Reading pauses while a cycle holds more than
   BODY_HIGH_WATER_BYTES of unread body, or while a pipelined request waits. An app's
   `send` waits while the transport's write buffer is over its high-water mark.
3. Errors carry their reply: a ProtocolError from the session is answered with its
   status and the connection closes. An app failure before the response starts is a
   500 (or the status of the ProtocolError it let through, e.g. 413); during the
   response it closes the connection; after a complete response the connection stays
   usable, so pooled clients are not reset.
4. Tracebacks go to the error log, never to the client.
5. An upgrade request (UpgradeRequest) that asks for WebSocket on a path the router
   gives to an ASGI mount starts a WebSocketCycle (gateway/websocket.py), which then
   owns the connection: bytes go to it, and the HTTP session hands it what followed the
   head (`take_upgraded`). Any other upgrade request is plain HTTP. Ordinary requests
   pay nothing for this: the session gives upgrade requests their own event type.
   A WebSocket connection stays in `connections` until its app has returned too, so a
   graceful stop waits for the app (DESIGN §4).
6. Slow clients are bounded by one periodic sweep per worker (ServerState), never a
   timer per request: a connection without a request closes silently after
   `keep_alive_timeout` (from its start or the end of its last response); a request head
   not complete `header_timeout` after its first byte gets a 408 and the connection
   closes (Slowloris); a request whose app waits in `receive` while no body byte comes
   for `body_timeout` fails the same way: 408 if its response has not started, else a
   close, and `receive` reports http.disconnect (a WSGI read raises).
7. `limit_concurrency`: past that many requests and WebSockets in flight in this worker,
   a new one gets a 503 with Retry-After at once, without the app, and the connection
   closes. The hot path pays an integer count, nothing else.
8. Scheme and proxies are settled per connection, at connection_made: a TLS transport
   makes the scope's scheme "https" ("wss") and gives it the ASGI TLS extension. With
   `proxy_headers`, a peer in `forwarded_allow_ips` gets its requests' `client`,
   `scheme` and Host field from their proxy fields (gateway/proxy.py); requests from
   any other peer, and all of them with `proxy_headers` off, pay one `is None` check.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Callable
from email.utils import formatdate
from typing import Any, cast

from gateway.asgi import ASGI_VERSION, HTTP_SPEC_VERSION, ASGIApp, Message
from gateway.config import ServerConfig
from gateway.errors import (
    AppProtocolError,
    ClientDisconnected,
    HTTPError,
    ProtocolError,
    RequestTimeout,
    ServiceUnavailable,
)
from gateway.http.events import (
    CONNECTION_CLOSED,
    NEED_DATA,
    PAUSED,
    REQUEST_END,
    RequestData,
    RequestHead,
)
from gateway.http.h11_session import H11Session
from gateway.http.httptools_session import HttptoolsSession
from gateway.http.session import HTTPSession, RequestTarget, UpgradeRequest, parse_target
from gateway.http.ws_session import is_websocket_request, read_handshake
from gateway.proxy import ProxyTrust, forwarded_origin, with_host
from gateway.tls import tls_extension
from gateway.websocket import WebSocketCycle, WebSocketSettings, websocket_scope

# Unread request body a cycle may hold before reading pauses: large enough that a typical
# form or JSON body arrives in one go, small enough that a thousand slow uploads cost
# well under 100 MiB.
BODY_HIGH_WATER_BYTES = 64 * 1024
SERVER_HEADER = (b"server", b"gateway")
# The sweep's period, at most (rule 6): a connection lives at most this much past
# keep_alive_timeout, header_timeout or body_timeout (and half the shortest of them when
# that is shorter).
IDLE_SWEEP_INTERVAL_S = 0.5
# On a graceful stop, an idle keep-alive connection stays open this long: a client that
# reuses it right after a response (its request may be on the wire already) is answered,
# with `Connection: close`, instead of finding the socket closed under it, which few
# clients retry (RFC 9112 §9.3.1 leaves that to them). A client's next request comes
# within milliseconds, even on a busy machine; a quiet client delays the stop this much.
DRAIN_IDLE_GRACE_S = 1.0
# The `http` setting: the two sessions differ only in how bytes become events.
SESSIONS: dict[str, type[H11Session] | type[HttptoolsSession]] = {
    "auto": HttptoolsSession,
    "h11": H11Session,
    "httptools": HttptoolsSession,
}

error_log = logging.getLogger("gateway.error")
access_log = logging.getLogger("gateway.access")


class DateHeader:
    """The `date` field (RFC 9110 §6.6.1), formatted at most once a second."""

    def __init__(self) -> None:
        self._second = 0
        self._field = (b"date", b"")

    def field(self) -> tuple[bytes, bytes]:
        now = int(time.time())
        if now != self._second:
            self._second = now
            self._field = (b"date", formatdate(now, usegmt=True).encode("ascii"))
        return self._field


class ServerState:
    """What every connection of one worker shares: the app, settings, live connections."""

    def __init__(
        self,
        app: ASGIApp,
        config: ServerConfig,
        serves_websocket: Callable[[str], bool] | None = None,
    ) -> None:
        self.app = app
        self.config = config
        # Which paths take a WebSocket (the router's ASGI mounts); None: every path, for
        # an app that is one ASGI app.
        self.serves_websocket = serves_websocket or (lambda path: True)
        self.websocket = WebSocketSettings.from_config(config)
        self.connections: set[HTTPConnection] = set()
        # Running WebSocket apps: what a stop cancels once graceful_timeout has passed
        # (gateway/worker.py), and a strong reference (the loop keeps only weak ones).
        self.websocket_tasks: set[asyncio.Task[None]] = set()
        self.date = DateHeader()
        self.access_log = config.access_log
        self.on_connection_closed: Callable[[], object] | None = None  # set while draining
        self.requests_served = 0  # for max_requests; read by the worker's heartbeat
        # Rule 7: requests and WebSockets whose app runs; no limit is the largest int.
        self.in_flight = 0
        self.concurrency_limit = config.limit_concurrency or sys.maxsize
        # Rule 8: parsed once per worker; None when proxy_headers is off.
        self.proxy_trust = ProxyTrust(config.forwarded_allow_ips) if config.proxy_headers else None
        self._session_class = SESSIONS[config.http]
        self._loop = asyncio.get_running_loop()
        self._sweep: asyncio.TimerHandle | None = None
        bounds = (config.keep_alive_timeout, config.header_timeout, config.body_timeout)
        self._sweep_interval_s = min(IDLE_SWEEP_INTERVAL_S, *(b / 2 for b in bounds))

    def start_idle_sweep(self) -> None:
        """Hold every connection to rule 6's bounds (idle, head, body), now and then.

        One timer for the worker, not one per connection: arming and cancelling a timer
        on every request costs more than checking every connection twice a second. A
        connection is closed between its bound and the bound plus one interval.
        """
        now = self._loop.time()
        for conn in list(self.connections):
            conn.check_deadlines(now)
        self._sweep = self._loop.call_later(self._sweep_interval_s, self.start_idle_sweep)

    def stop_idle_sweep(self) -> None:
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None

    def new_session(self) -> HTTPSession:
        return self._session_class(self.config.max_header_bytes, self.config.max_target_bytes)


class HTTPConnection(asyncio.Protocol):
    """asyncio protocol for one client connection."""

    def __init__(self, state: ServerState) -> None:
        self._state = state
        self._loop = asyncio.get_running_loop()
        self._session = state.new_session()
        self._transport: asyncio.Transport | None = None
        self._cycle: RequestCycle | None = None
        self._websocket: WebSocketCycle | None = None  # owns the connection once set
        self._client: tuple[str, int | None] | None = None
        self._server: tuple[str, int | None] | None = None
        self._tls: dict[str, Any] | None = None  # the ASGI TLS extension, on TLS (rule 8)
        self._proxy: ProxyTrust | None = None  # set when the peer is a trusted proxy (rule 8)
        self._idle_since: float | None = None  # loop time the connection went idle
        self._head_since: float | None = None  # loop time a pending head's first byte came
        self._reading_paused = False
        self._writing_paused = False
        self._drain_waiter: asyncio.Future[None] | None = None
        self._closing = False
        self.closed = False

    # -- transport callbacks ---------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport, but implement it.
        self._transport = cast(asyncio.Transport, transport)
        self._client = _address(transport.get_extra_info("peername"))
        self._server = _address(transport.get_extra_info("sockname"))
        ssl_object = transport.get_extra_info("ssl_object")
        self._tls = tls_extension(ssl_object) if ssl_object is not None else None
        trust = self._state.proxy_trust
        if trust is not None:
            unix = isinstance(transport.get_extra_info("sockname"), str)
            self._proxy = trust if trust.trusts_peer(self._client, unix) else None
        self._state.connections.add(self)
        self._idle_since = self._loop.time()

    def data_received(self, data: bytes) -> None:
        if self._websocket is not None:
            self._websocket.data_received(data)
            return
        try:
            self._session.feed(data)
        except ProtocolError as exc:
            self._reject(exc)
            return
        self._handle_events()
        if self._cycle is None and self._head_since is None:
            # Part of a request head: header_timeout runs from its first byte, and later
            # bytes do not move it, so trickling a head buys nothing (rule 6).
            self._head_since = self._loop.time()

    def eof_received(self) -> bool:
        if self._websocket is not None:
            return False  # a peer done sending has nothing to say on a WebSocket: close
        if self._cycle is not None:
            self._cycle.peer_closed()
        self.data_received(b"")
        # Keep our side open while a cycle can still answer (a client may half-close
        # after sending its request); the cycle's end closes the transport.
        return self._cycle is not None

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._cycle is not None:
            self._cycle.client_gone()
        self._wake_drain_waiter()
        websocket = self._websocket
        if websocket is not None:
            websocket.connection_lost()
            if not websocket.finished:
                return  # rule 5: the app's return ends the connection's life
        self._forget()

    def _forget(self) -> None:
        self._state.connections.discard(self)
        if self._state.on_connection_closed is not None:
            self._state.on_connection_closed()

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        self._wake_drain_waiter()

    # -- events from the session -----------------------------------------------------

    def _handle_events(self) -> None:
        try:
            self._dispatch_events()
        except ProtocolError as exc:
            cycle = self._cycle
            if cycle is not None and cycle.request_complete:
                # The bad bytes follow a whole request (say, a request sent after
                # `Connection: close`): answer that request, then close (RFC 9112 §9.6).
                self.pause_reading()
                self._closing = True
            else:
                self._reject(exc)

    def _dispatch_events(self) -> None:
        while not self.closed:
            event = self._session.next_event()
            if type(event) is RequestData:
                self._body_received(event.data)
            elif type(event) is RequestHead:
                self._start_cycle(event)
            elif event is REQUEST_END:
                if self._cycle is not None:
                    self._cycle.body_complete()
            elif event is NEED_DATA:
                return
            elif event is PAUSED:
                self.pause_reading()
                return
            elif event is CONNECTION_CLOSED:
                if self._cycle is None:
                    self.close()
                return
            elif type(event) is UpgradeRequest:
                self._start_upgrade(event)

    def _start_cycle(self, head: RequestHead) -> None:
        state = self._state
        if state.in_flight >= state.concurrency_limit:
            self._refuse_over_limit()
            return
        target = parse_target(head.target)
        scope: dict[str, Any] = {
            "type": "http",
            "asgi": {"version": ASGI_VERSION, "spec_version": HTTP_SPEC_VERSION},
            "http_version": head.http_version,
            "method": head.method.decode("ascii"),
            "scheme": "http" if self._tls is None else "https",
            "path": target.path,
            "raw_path": target.raw_path,
            "query_string": target.query_string,
            "root_path": "",
            "headers": head.headers,
            "client": self._client,
            "server": self._server,
        }
        if self._tls is not None:
            scope["extensions"] = {"tls": self._tls}
        if self._proxy is not None:
            _apply_proxy(scope, self._proxy)
        cycle = RequestCycle(self, scope, head.expects_continue, state.access_log)
        self._cycle = cycle
        state.in_flight += 1  # until _cycle_finished
        self._loop.create_task(self._run_app(cycle))

    def _start_upgrade(self, head: UpgradeRequest) -> None:
        """Rule 5: a WebSocket cycle, or a plain HTTP one for any other upgrade."""
        target = parse_target(head.target)
        if is_websocket_request(head) and self._state.serves_websocket(target.path):
            self._start_websocket(head, target)
        else:
            self._start_cycle(head)

    def _start_websocket(self, head: UpgradeRequest, target: RequestTarget) -> None:
        state = self._state
        if state.in_flight >= state.concurrency_limit:
            self._refuse_over_limit()
            return
        handshake = read_handshake(head)  # a HandshakeError is answered by _reject
        scheme = "ws" if self._tls is None else "wss"
        scope = websocket_scope(head, target, handshake, self._client, self._server, scheme)
        if self._tls is not None:
            scope["extensions"]["tls"] = self._tls
        if self._proxy is not None:
            _apply_proxy(scope, self._proxy)
        cycle = WebSocketCycle(self, scope, handshake, self._state.websocket)
        self._websocket = cycle
        if self._closing:
            cycle.shutdown()
        state.in_flight += 1  # until _run_websocket ends
        task = self._loop.create_task(self._run_websocket(cycle))
        self._state.websocket_tasks.add(task)
        task.add_done_callback(self._state.websocket_tasks.discard)

    async def _run_websocket(self, cycle: WebSocketCycle) -> None:
        try:
            await cycle.run(self._state.app)
        finally:
            self._state.in_flight -= 1
        self._state.requests_served += 1
        if self._state.access_log:
            cycle.log_access()
        if self.closed:
            self._forget()

    def _body_received(self, data: bytes) -> None:
        cycle = self._cycle
        if cycle is not None and cycle.body_arrived(data) > BODY_HIGH_WATER_BYTES:
            self.pause_reading()

    def _reject(self, exc: HTTPError) -> None:
        """Answer with the status the error implies (bad input, a slow client, a limit),
        if the response has not started, then close (DESIGN §5)."""
        error_log.info("refused a request from %s: %s (%d)", self._client, exc, exc.status)
        cycle = self._cycle
        if cycle is not None:
            cycle.client_gone()
            if not cycle.response_started:
                cycle.status = exc.status  # for the access log
        # The error's own fields: a 426 names the version we speak (RFC 6455 §4.2.2), a
        # 503 says when to retry.
        headers = [*self.default_headers(), *exc.headers]
        self.write(self._session.error_response(exc.status, headers))
        self.close()

    def _refuse_over_limit(self) -> None:
        limit = self._state.config.limit_concurrency
        self._reject(ServiceUnavailable(f"limit_concurrency ({limit}) reached"))

    # -- the app ---------------------------------------------------------------------

    async def _run_app(self, cycle: RequestCycle) -> None:
        try:
            await self._state.app(cycle.scope, cycle.receive, cycle.send)
        except ClientDisconnected:
            pass
        except Exception as exc:
            self._app_failed(cycle, exc)
        else:
            if not cycle.response_complete and not cycle.disconnected:
                self._app_failed(cycle, AppProtocolError("app returned without a response"))
        finally:
            self._cycle_finished(cycle)

    def _app_failed(self, cycle: RequestCycle, exc: Exception) -> None:
        headers = self.default_headers()
        if isinstance(exc, HTTPError):  # e.g. 413 from the router, 503 from a WSGI queue
            error_log.info("request rejected: %s (%d)", exc, exc.status)
            status = exc.status
            headers.extend(exc.headers)
        else:
            error_log.error("app failed on %s %s", cycle.method, cycle.path, exc_info=exc)
            status = 500
        if cycle.disconnected or cycle.response_complete:
            return  # a complete response stands; the connection stays usable
        if self._session.response_started:
            self.close()  # half a response: only closing tells the client it is cut
            return
        cycle.status = status
        self.write(self._session.error_response(status, headers))
        cycle.response_complete = True

    def _cycle_finished(self, cycle: RequestCycle) -> None:
        self._state.in_flight -= 1
        self._state.requests_served += 1
        if self._state.access_log:
            cycle.log_access()
        self._cycle = None
        if self.closed:
            return
        if self._closing or not self._session.reusable:
            self.close()
            return
        self._session.start_next_cycle()
        self.resume_reading()
        self._handle_events()
        if self._cycle is None:
            self._idle_since = self._loop.time()
            self._head_since = None

    # -- writing and flow control ----------------------------------------------------

    def default_headers(self) -> list[tuple[bytes, bytes]]:
        return [SERVER_HEADER, self._state.date.field()]

    def write(self, data: bytes) -> None:
        if data and self._transport is not None and not self.closed:
            self._transport.write(data)

    async def drain(self) -> None:
        """Wait while the transport's write buffer is over its high-water mark."""
        while self._writing_paused and not self.closed:
            self._drain_waiter = self._loop.create_future()
            await self._drain_waiter
        if self.closed:
            raise ClientDisconnected("client went away")

    def _wake_drain_waiter(self) -> None:
        waiter, self._drain_waiter = self._drain_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def pause_reading(self) -> None:
        if not self._reading_paused and self._transport is not None:
            self._reading_paused = True
            self._transport.pause_reading()

    def resume_reading(self) -> None:
        if self._reading_paused and self._transport is not None and not self.closed:
            self._reading_paused = False
            self._transport.resume_reading()

    def take_upgraded(self) -> bytes:
        """For a WebSocket cycle that accepted: the bytes after the head; read on."""
        data = self._session.take_upgraded()
        self.resume_reading()
        return data

    def error_reply(self, status: int) -> bytes:
        """The gateway's own plain-text response for `status`, closing the connection."""
        return self._session.error_response(status, self.default_headers())

    def body_consumed(self) -> None:
        """The app took the buffered body: read more unless a pipelined request waits."""
        self.resume_reading()

    # -- timers and closing ----------------------------------------------------------

    def check_deadlines(self, now: float) -> None:
        """Called by the worker's sweep: hold this connection to rule 6's bounds."""
        if self._websocket is not None or self._transport is None:
            return  # a WebSocket has its own pings and timeouts
        if self._transport.is_closing():
            return  # already answered or closed; its last bytes may still be going out
        config = self._state.config
        cycle = self._cycle
        if cycle is not None:
            if cycle.body_stalled(now, config.body_timeout):
                self._reject(RequestTimeout(f"no request body for {config.body_timeout} s"))
        elif self._head_since is not None:
            if now - self._head_since >= config.header_timeout:
                timeout = config.header_timeout
                self._reject(RequestTimeout(f"request head not complete after {timeout} s"))
        elif self._idle_since is not None and now - self._idle_since >= config.keep_alive_timeout:
            self.close()

    def close(self) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.close()

    def shutdown(self) -> None:
        """Graceful stop: close once the current response is done, or, if idle, once
        DRAIN_IDLE_GRACE_S passed without a request; responses say `Connection: close`."""
        self._closing = True
        if self._websocket is not None:
            self._websocket.shutdown()
        elif self._cycle is None:
            self._loop.call_later(DRAIN_IDLE_GRACE_S, self._close_if_idle)

    def _close_if_idle(self) -> None:
        if self._cycle is None and self._websocket is None:
            self.close()

    def abort(self) -> None:
        """Fast stop: drop the connection without waiting for anything."""
        if self._transport is not None:
            self._transport.abort()

    def send_continue(self) -> None:
        self.write(self._session.continue_response())

    def response_head(self, status: int, headers: Any) -> bytes:
        if self._closing:  # tell the client, so it does not send another request here
            headers = [*headers, (b"connection", b"close")]
        return self._session.response_head(status, headers, self.default_headers())

    def response_body(self, data: bytes, more_body: bool) -> bytes:
        out = self._session.response_body(data)
        return out if more_body else out + self._session.response_end()

    @property
    def writing_paused(self) -> bool:
        return self._writing_paused


class RequestCycle:
    """One request and its response: the ASGI `receive` and `send` of an HTTP scope."""

    __slots__ = (
        "_body",
        "_body_complete",
        "_body_delivered",
        "_conn",
        "_expects_continue",
        "_peer_closed",
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
        self, conn: HTTPConnection, scope: dict[str, Any], expects_continue: bool, timed: bool
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
        start, self._start = self._start, None
        if start is None:
            data = self._conn.response_body(body, more_body)
        else:
            head = self._conn.response_head(self.status, start.get("headers", []))
            data = head + self._conn.response_body(body, more_body)
        self.bytes_sent += len(body)
        self._conn.write(data)
        if not more_body:
            self.response_complete = True
            self._wake()
        elif self._conn.writing_paused:
            await self._conn.drain()

    def log_access(self) -> None:
        duration_ms = (time.perf_counter() - self.started_at) * 1000
        client = self.scope["client"]
        query = self.scope["query_string"]
        target = f"{self.path}?{query.decode('latin-1')}" if query else self.path
        peer = f"{client[0]}:{client[1]}" if client else "-"
        mount = self.scope.get("gateway.mount", "-")
        access_log.info(
            '%s "%s %s HTTP/%s" %d %dB %.1fms mount=%s',
            peer,
            self.method,
            target,
            self.scope["http_version"],
            self.status,
            self.bytes_sent,
            duration_ms,
            mount,
        )


# Rule 8: the scope's scheme, by scope type, for a proxy that says plain or TLS.
_SCHEMES = {"http": ("http", "https"), "websocket": ("ws", "wss")}


def _apply_proxy(scope: dict[str, Any], trust: ProxyTrust) -> None:
    """Rule 8: what a trusted proxy's fields say replaces what the connection knows."""
    origin = forwarded_origin(scope["headers"], trust)
    if origin.client is not None:
        scope["client"] = origin.client
    if origin.secure is not None:
        scope["scheme"] = _SCHEMES[scope["type"]][origin.secure]
    if origin.host is not None:
        # The Host field, which ASGI apps (and WSGI's HTTP_HOST) build URLs from; the
        # app sees the host the client asked the proxy for, as behind Werkzeug's ProxyFix.
        scope["headers"] = with_host(scope["headers"], origin.host)


def _address(info: object) -> tuple[str, int | None] | None:
    """ASGI `client`/`server` from a socket address: [host, port], or [path, None]."""
    if isinstance(info, tuple) and len(info) >= 2:
        return (str(info[0]), int(info[1]))
    if isinstance(info, str) and info:
        return (info, None)
    return None
