"""What the connections of one worker share (WorkerShared), and the sweep that holds
them to their time bounds.

Rules:
1. One WorkerShared per worker, made on its running loop; connections read settings
   from it and count themselves in and out (`connections`, `in_flight`).
2. Time bounds are held by one periodic sweep per worker (`start_idle_sweep`), never a
   timer per request: each connection checks its own deadlines when swept
   (gateway/server/connection.py, rule "slow clients are bounded").
3. Whatever is parsed from the settings (the proxy trust list, the session class) is
   parsed once here, not per connection or per request.
4. A graceful stop reaches every connection made before it: the drain sets `draining`
   before it asks the connections it knows of, and a connection made after that (its
   connection_made runs a loop turn after its accept) asks itself. A connection that
   ends leaves through `forget`, which wakes the drain waiting in `connection_closed`.
5. `request_limit` (max_requests) is checked as each request is counted: the one that
   reaches it calls `on_request_limit` (the worker's RETIRE) at once.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable
from email.utils import formatdate
from typing import Protocol

from gateway.asgi import ASGIApp
from gateway.config.server_table import ServerConfig
from gateway.http.forwarded import ProxyTrust
from gateway.http.h11_session import H11Session
from gateway.http.httptools_session import HttptoolsSession
from gateway.http.session import HTTPSession
from gateway.server.websocket import WebSocketSettings

# The sweep's period, at most (rule "time bounds are held by one periodic sweep";
# gateway/server/connection.py, rule "slow clients are bounded"): a connection lives at
# most this much past keep_alive_timeout, header_timeout, body_timeout or send_timeout
# (and half the shortest of them when that is shorter).
IDLE_SWEEP_INTERVAL_S = 0.5
# The `http` setting: the two sessions differ only in how bytes become events.
SESSIONS: dict[str, type[H11Session] | type[HttptoolsSession]] = {
    "auto": HttptoolsSession,
    "h11": H11Session,
    "httptools": HttptoolsSession,
}


class EndedCycle(Protocol):
    """A cycle that has ended, as `request_ended` sees it."""

    def log_access(self) -> None: ...


class Connection(Protocol):
    """What the state and the worker's drain ask of a live connection."""

    def check_deadlines(self, now: float) -> None: ...
    def shutdown(self) -> None: ...
    def abort(self) -> None: ...


SERVER_FIELD = (b"server", b"gateway")


class DefaultFields:
    """The fields every response gets unless its app sent them: `server` (unless
    `server_header` is off), and `date` (RFC 9110 §6.6.1), formatted at most once a
    second. Every reply goes through here: the apps', our error replies, WebSocket
    denials."""

    def __init__(self, server_header: bool = True) -> None:
        self._second = 0
        self._server: tuple[tuple[bytes, bytes], ...] = (SERVER_FIELD,) if server_header else ()
        self._fields = (*self._server, (b"date", b""))

    def fields(self) -> tuple[tuple[bytes, bytes], ...]:
        now = int(time.time())
        if now != self._second:
            self._second = now
            date = formatdate(now, usegmt=True).encode("ascii")
            self._fields = (*self._server, (b"date", date))
        return self._fields


class WorkerShared:
    """What every connection of one worker shares: the app, settings, live connections.
    (Not a mount's lifespan `state`, which the router copies into each request's scope.)"""

    def __init__(
        self,
        app: ASGIApp,
        config: ServerConfig,
        serves_websocket: Callable[[str], bool] | None = None,
        request_limit: int = 0,
        on_request_limit: Callable[[], object] | None = None,
    ) -> None:
        self.app = app
        self.config = config
        # Which paths take a WebSocket (the router's ASGI mounts); None: every path, for
        # an app that is one ASGI app.
        self.serves_websocket = serves_websocket or (lambda path: True)
        self.websocket = WebSocketSettings.from_config(config)
        self.connections: set[Connection] = set()
        # Running WebSocket apps: what a stop cancels once graceful_timeout has passed
        # (gateway/process/worker.py), and a strong reference (the loop keeps only weak ones).
        self.websocket_tasks: set[asyncio.Task[None]] = set()
        self.default_fields = DefaultFields(config.server_header)
        self.access_log = config.access_log
        # The drain's wait (rule "a graceful stop reaches every connection").
        self._closed: asyncio.Future[None] | None = None
        # Set by the worker's drain before it asks the connections to finish: a connection
        # whose connection_made comes later (accepted in the same loop turn as the stop,
        # or a TLS handshake that completes during the drain) is asked at once (rule "a
        # graceful stop reaches every connection").
        self.draining = False
        # max_requests, checked as each request is counted; 0: no limit (rule
        # "`request_limit`").
        self.request_limit = request_limit
        self.on_request_limit = on_request_limit
        self.requests_served = 0  # requests and WebSockets served so far (request_ended)
        # Requests and WebSockets whose app runs; no limit is the largest int
        # (gateway/server/connection.py, rule "`limit_concurrency`").
        self.in_flight = 0
        self.concurrency_limit = config.limit_concurrency or sys.maxsize
        # Parsed once per worker (rule "whatever is parsed from the settings"); None when
        # proxy_headers is off (gateway/server/connection.py, rule "scheme and proxies are
        # settled per connection").
        self.proxy_trust = (
            ProxyTrust(config.forwarded_allow_ips, forwarded_host=config.forwarded_host)
            if config.proxy_headers
            else None
        )
        self._session_class = SESSIONS[config.http]
        self._loop = asyncio.get_running_loop()
        self._sweep: asyncio.TimerHandle | None = None
        bounds = (
            config.keep_alive_timeout,
            config.header_timeout,
            config.body_timeout,
            config.send_timeout,
        )
        self._sweep_interval_s = min(IDLE_SWEEP_INTERVAL_S, *(b / 2 for b in bounds))

    def request_ended(self, cycle: EndedCycle) -> None:
        """A request, HTTP/2 stream or WebSocket ended: it leaves `in_flight`, is counted
        (max_requests) and logged. One place for every connection type; one call per
        request on the hot path."""
        self.in_flight -= 1
        self.requests_served += 1
        # At the request that reaches the limit (rule "`request_limit`"), not at the next
        # heartbeat, which at a few thousand requests a second comes a thousand requests
        # late.
        if self.requests_served == self.request_limit and self.on_request_limit is not None:
            self.on_request_limit()
        if self.access_log:
            cycle.log_access()

    def forget(self, conn: Connection) -> None:
        """`conn` has ended: it leaves `connections`, and a drain waiting wakes (rule "a
        graceful stop reaches every connection")."""
        self.connections.discard(conn)
        closed = self._closed
        if closed is not None and not closed.done():
            closed.set_result(None)

    async def connection_closed(self, timeout_s: float) -> bool:
        """Wait up to `timeout_s` for a connection to end (the drain); False if none did."""
        if timeout_s <= 0:
            return False
        self._closed = self._loop.create_future()
        try:
            await asyncio.wait_for(self._closed, timeout_s)
        except TimeoutError:
            return False
        finally:
            self._closed = None
        return True

    def start_idle_sweep(self) -> None:
        """Hold every connection to its time bounds (idle, head, body, send), now and
        then (gateway/server/connection.py, rule "slow clients are bounded").

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
