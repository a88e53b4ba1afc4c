"""One HTTP/1.1 connection: the only code that touches a transport.

Rules:
1. Bytes go into the session (gateway/http) and events come out; this module turns them
   into ASGI `receive`/`send` for one request cycle at a time. Pipelined requests wait in
   the session (PAUSED) until the cycle before them has finished (RFC 9112 §9.3.2).
2. Flow control both ways. Reading pauses while a cycle holds more than
   BODY_HIGH_WATER_BYTES of unread body, or while a pipelined request waits. An app's
   `send` waits while the transport's write buffer is over its high-water mark, and
   raises once the transport is closing (an app that streams without ever waiting
   would otherwise never let connection_lost run).
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
from typing import Any, cast

from gateway.asgi import ASGI_VERSION, HTTP_SPEC_VERSION
from gateway.cycle import RequestCycle
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
from gateway.http.session import RequestTarget, UpgradeRequest, parse_target
from gateway.http.ws_session import is_websocket_request, read_handshake
from gateway.proxy import ProxyTrust, apply_forwarded
from gateway.state import ServerState
from gateway.tls import tls_extension
from gateway.websocket import WebSocketCycle, websocket_scope

# Unread request body a cycle may hold before reading pauses: large enough that a typical
# form or JSON body arrives in one go, small enough that a thousand slow uploads cost
# well under 100 MiB.
BODY_HIGH_WATER_BYTES = 64 * 1024
# On a graceful stop, an idle keep-alive connection stays open this long: a client that
# reuses it right after a response (its request may be on the wire already) is answered,
# with `Connection: close`, instead of finding the socket closed under it, which few
# clients retry (RFC 9112 §9.3.1 leaves that to them). A client's next request comes
# within milliseconds, even on a busy machine; a quiet client delays the stop this much.
DRAIN_IDLE_GRACE_S = 1.0
error_log = logging.getLogger("gateway.error")
access_log = logging.getLogger("gateway.access")


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
        if self._websocket is not None:
            self._websocket.writing_resumed()  # it paused reading for its replies

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
            apply_forwarded(scope, self._proxy)
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
            apply_forwarded(scope, self._proxy)
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
        return list(self._state.default_fields.fields())

    def write(self, data: bytes) -> None:
        if data and self._transport is not None and not self.closed:
            self._transport.write(data)

    async def drain(self) -> None:
        """Wait while the transport's write buffer is over its high-water mark."""
        while self._writing_paused and not self.closed:
            self._drain_waiter = self._loop.create_future()
            await self._drain_waiter
        if self.closed or self._write_failed():
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

    def response_start(self, status: int, headers: Any, body: bytes, more_body: bool) -> bytes:
        """The head and the first body part, to go out in one write."""
        session = self._session
        if self._closing:  # tell the client, so it does not send another request here
            headers = [*headers, (b"connection", b"close")]
        data = session.response_head(status, headers, self._state.default_fields.fields())
        data += session.response_body(body)
        return data if more_body else data + session.response_end()

    def response_body(self, data: bytes, more_body: bool) -> bytes:
        out = self._session.response_body(data)
        return out if more_body else out + self._session.response_end()

    @property
    def writing_paused(self) -> bool:
        # A transport that is closing takes no more bytes: `drain` then raises, so an app
        # that streams without ever waiting learns the client is gone although
        # connection_lost, which the loop calls later, has not run yet.
        return self._writing_paused or self._write_failed()

    def _write_failed(self) -> bool:
        transport = self._transport
        return transport is not None and transport.is_closing()


def _address(info: object) -> tuple[str, int | None] | None:
    """ASGI `client`/`server` from a socket address: [host, port], or [path, None]."""
    if isinstance(info, tuple) and len(info) >= 2:
        return (str(info[0]), int(info[1]))
    if isinstance(info, str) and info:
        return (info, None)
    return None
