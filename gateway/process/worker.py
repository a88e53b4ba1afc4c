"""One serving process: load the apps, run lifespan, serve on given sockets, drain, stop.

Rules:
1. The worker never binds: it serves on sockets it is handed (bound by the supervisor,
   the CLI, or a test that bound 127.0.0.1:0), so a later supervisor can bind once and
   hand the same sockets to many workers.
2. Start in order: import every app, lifespan startup for every mount, then accept.
   An app that fails to import or to start raises StartupError (exit status 3).
3. Stop in a known order (DESIGN §4): readiness turns 503 (and stays so for
   `shutdown_delay` while requests are still served), stop accepting, let in-flight
   responses finish within `graceful_timeout` while idle keep-alive connections close,
   HTTP/2 connections get the two-step GOAWAY and serve the streams it names
   (gateway/server/h2_connection.py, rule "a graceful `shutdown()`") and open
   WebSockets get a 1012 Close (their apps are waited for too), drop the
   rest and cancel the WebSocket apps still running, then lifespan shutdown, then the
   WSGI pools. Every connection made before the stop is asked to finish, also one whose
   connection_made comes after the drain began (gateway/server/shared.py, rule "a
   graceful stop reaches every connection").
4. The worker's lifecycle is one enum, WorkerState, moved only through its table
   (WORKER_LIFECYCLE, gateway/lifecycle.py). How a process runs the worker (its signals,
   a supervisor's pipe) is the caller's: gateway/process/single.py for `workers = 1`,
   gateway/process/children.py under a supervisor.
5. The event loop is uvloop's where it can be imported, and asyncio's own elsewhere
   (pyproject.toml installs uvloop only on CPython outside Windows): slower, but the
   same server, with one warning line at start rather than a failed install.
6. Each mount is built whole, once (gateway/process/mounts.py, rule "each mount is built
   whole"), with its shadow outermost among its rules.
7. The admin listener (`admin_socket`, gateway/server/admin.py) listens after the apps'
   sockets and is drained with them, at the same time; its app is never the router.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
import socket
from collections.abc import Callable, Sequence
from enum import Enum
from typing import Any

from gateway import native
from gateway.asgi import ASGIApp
from gateway.config.loader import Config
from gateway.config.mount_table import MountConfig
from gateway.lifecycle import Transitions
from gateway.migration.routes import mount_sides
from gateway.migration.shadows import Shadows
from gateway.process.mounts import (
    LoadedMount,
    lifespan_mount,
    mount_rules,
    prefix_root,
    routed,
)
from gateway.routing.health import HealthCheck
from gateway.routing.router import Mount, Router, Rule
from gateway.server.admin import serve_admin
from gateway.server.connection import HTTPConnection
from gateway.server.lifespan import LifespanFanout
from gateway.server.mount_metrics import worker_metrics
from gateway.server.shared import WorkerShared
from gateway.server.tls import TLS_HANDSHAKE_TIMEOUT_S, TLS_SHUTDOWN_TIMEOUT_S, server_context

log = logging.getLogger("gateway.server")

# How long WebSocket apps cancelled at the end of a drain have to unwind (their
# `finally` blocks, a CancelledError handler) before lifespan shutdown goes ahead
# without them. Cleanup that needs more should run when websocket.disconnect comes, which
# graceful_timeout already waits for; this only bounds an app that ignores cancellation.
CANCELLED_APP_GRACE_S = 1.0

# max_requests and what to do as the request that reaches it ends; (0, None): no limit.
RequestLimit = tuple[int, Callable[[], object] | None]


class WorkerState(Enum):
    """Where a worker is in its life (rule "the worker's lifecycle is one enum")."""

    STARTING = "starting"  # lifespan startup; not listening yet; readiness 503
    READY = "ready"  # started in every mount and listening; readiness 200
    # Asked to stop while ready: a load balancer may still send traffic, so it serves
    # `shutdown_delay` more (readiness 503) before the drain.
    STOPPING = "stopping"
    STOPPING_BEFORE_READY = "stopping before ready"  # never ready: the drain comes at once
    STOPPING_FAST = "stopping fast"  # connections aborted; no delay, no graceful wait

    @property
    def stopping(self) -> bool:
        return self is not WorkerState.STARTING and self is not WorkerState.READY


WORKER_LIFECYCLE = Transitions(
    "worker",
    {
        WorkerState.STARTING: {
            WorkerState.READY,
            WorkerState.STOPPING_BEFORE_READY,
            WorkerState.STOPPING_FAST,
        },
        WorkerState.READY: {WorkerState.STOPPING, WorkerState.STOPPING_FAST},
        # A second request to stop makes any graceful stop fast.
        WorkerState.STOPPING: {WorkerState.STOPPING_FAST},
        WorkerState.STOPPING_BEFORE_READY: {WorkerState.STOPPING_FAST},
        WorkerState.STOPPING_FAST: (),
    },
)


class Worker:
    """Serves loaded mounts on pre-bound sockets inside a running event loop.

    The apps are imported before the loop runs (`load_mounts`): code that runs at import
    (Django's ORM, say) may refuse to run inside an event loop's thread.
    """

    def __init__(
        self,
        config: Config,
        sockets: Sequence[socket.socket],
        mounts: list[LoadedMount],
        *,
        owns_process: bool = False,
        request_limit: RequestLimit = (0, None),
        admin_socket: socket.socket | None = None,
    ) -> None:
        self.config = config
        self.sockets = list(sockets)
        self.admin_socket = admin_socket  # rule "the admin listener"
        self.mounts = mounts
        # A worker that is the whole process may tune it (gc.freeze after startup); one
        # run inside another program (the tests) leaves the process alone.
        self._owns_process = owns_process
        self._lifecycle = WorkerState.STARTING
        # Wakes `serve` at each move of `_lifecycle`; never read as the lifecycle itself.
        # It binds to a loop only when first awaited.
        self._moved = asyncio.Event()
        self._state: WorkerShared | None = None  # once serving
        self._admin_state: WorkerShared | None = None  # once serving, with admin_socket
        # TLS: one context for every socket, built before serving, so that a certificate
        # that does not load is a ConfigError at start (gateway/server/tls.py).
        self._tls = server_context(config)
        self._metrics = worker_metrics(config.server)  # None: off, and no cost at all
        self._request_limit = request_limit
        self.shadows = Shadows()  # the mounts' shadow copies and mismatch logs
        self._noise_attached = False  # the shadows' noise is in the metrics' ledger
        self._sides = mount_sides(config.mounts)  # new or legacy, for per-route figures

    @property
    def lifecycle(self) -> WorkerState:
        return self._lifecycle

    @property
    def stopping(self) -> bool:
        """Asked to stop (gracefully or not)."""
        return self._lifecycle.stopping

    @property
    def ready(self) -> bool:
        """Readiness (health endpoint): started and not draining."""
        return self._lifecycle is WorkerState.READY

    def _move(self, state: WorkerState) -> None:
        self._lifecycle = WORKER_LIFECYCLE.move(self._lifecycle, state)
        self._moved.set()

    async def _until(self, reached: Callable[[WorkerState], bool]) -> None:
        while not reached(self._lifecycle):
            self._moved.clear()
            await self._moved.wait()

    async def serve(self, ready: Callable[[], None] | None = None) -> None:
        """Lifespan startup, accept until asked to stop, drain, lifespan shutdown."""
        try:
            await self._serve_mounts(self.mounts, ready)
        finally:
            for mount in self.mounts:
                mount.loaded.close()

    async def _serve_mounts(
        self, mounts: list[LoadedMount], ready: Callable[[], None] | None
    ) -> None:
        router = Router([self._build_mount(m, n) for n, m in enumerate(mounts, 1)])
        fanout = LifespanFanout(
            [lifespan_mount(m, r) for m, r in zip(mounts, router.mounts, strict=True)]
        )
        timeout_s = self.config.server.graceful_timeout
        await fanout.startup(timeout_s)
        if self._owns_process:
            _freeze_startup_objects()
        state = self._state = self._share(router)
        state.start_idle_sweep()
        listeners = [(await self._listen(state), state), *await self._listen_admin()]
        if self._lifecycle is WorkerState.STARTING:  # else a stop came during the startup
            self._move(WorkerState.READY)
        if ready is not None:
            ready()
        await self._until(lambda reached: reached.stopping)
        await self._delay_drain()
        await asyncio.gather(*(self._drain(servers, shared) for servers, shared in listeners))
        await self.shadows.close()  # before the shadow mounts' lifespan ends
        await fanout.shutdown(timeout_s)

    def _build_mount(self, mount: LoadedMount, number: int) -> Mount:
        """The mount whole (rule "each mount is built whole"): its rules, the shadow copy
        outermost (the answer the client gets is the one compared), around its app as
        measured."""
        config = mount.config
        rules = mount_rules(config, self._metrics)
        if config.shadow:
            where = (self.config.path, f"mount #{number}")
            rules.append(self._shadow_rule(config, where))
        return routed(mount, rules, self._metrics, self._sides)

    def _shadow_rule(self, config: MountConfig, where: tuple[str, str]) -> Rule:
        """The mount's shadow; with metrics on, it names its requests by the routing
        mount's routes and notes its mismatches and noise in the worker's ledger, read by
        the report (gateway/migration/report.py)."""
        if self._metrics is None:
            return self.shadows.rule(config, where, None)
        routes = self._metrics.routes
        if not self._noise_attached:
            routes.ledger.attach_noise(self.shadows.noise_json)
            self._noise_attached = True
        route_of = routes.route_of(config.label, prefix_root(config.prefix))
        return self.shadows.rule(
            config, where, self._metrics, route_of=route_of, ledger=routes.ledger
        )

    def _share(self, router: Router) -> WorkerShared:
        """What the connections share, whole: the front app and the request limit."""
        limit, on_limit = self._request_limit
        serves_websocket = router.serves_websocket
        front, server = self._front(router), self.config.server
        return WorkerShared(
            front, server, serves_websocket, request_limit=limit, on_request_limit=on_limit
        )

    def _front(self, router: Router) -> ASGIApp:
        """The app connections call: the router, behind the health endpoints when they
        are on, and the metrics endpoint in front of everything
        (gateway/server/mount_metrics.py)."""
        path = self.config.server.health_path
        app: ASGIApp = HealthCheck(router, path, lambda: self.ready) if path else router
        if self._metrics is None:
            return app
        self._metrics.publish_every()  # the gauges, from this (the running) loop
        return self._metrics.endpoint(app)

    async def _delay_drain(self) -> None:
        """Keep serving `shutdown_delay` seconds while readiness already answers 503, so
        a load balancer has time to stop sending traffic. A fast stop skips the rest of
        the delay, and a worker that was never ready skips all of it."""
        delay = self.config.server.shutdown_delay
        if delay > 0 and self._lifecycle is WorkerState.STOPPING:
            log.info("not ready; serving %.1f s more before the drain", delay)
            fast = self._until(lambda reached: reached is WorkerState.STOPPING_FAST)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(fast, delay)

    async def _listen(self, state: WorkerShared) -> list[asyncio.Server]:
        loop = asyncio.get_running_loop()
        servers = []
        backlog = self.config.server.backlog
        tls: dict[str, Any] = {}
        if self._tls is not None:
            tls = {
                "ssl": self._tls,
                "ssl_handshake_timeout": TLS_HANDSHAKE_TIMEOUT_S,
                "ssl_shutdown_timeout": TLS_SHUTDOWN_TIMEOUT_S,
            }
        for sock in self.sockets:
            # asyncio calls listen() again on a given socket, with its own default of 100:
            # pass ours, which also reaches sockets passed in (fd://, systemd).
            server = await loop.create_server(
                lambda: HTTPConnection(state), sock=sock, backlog=backlog, **tls
            )
            servers.append(server)
            log.info("serving on %s", _describe(sock, "https" if tls else "http"))
        return servers

    async def _listen_admin(self) -> list[tuple[list[asyncio.Server], WorkerShared]]:
        """The admin listener, if any (rule "the admin listener")."""
        sock, metrics = self.admin_socket, self._metrics
        if sock is None or metrics is None:  # metrics are on whenever admin_bind is
            return []
        server, self._admin_state = await serve_admin(sock, metrics, self.config.server)
        return [([server], self._admin_state)]

    async def _drain(self, servers: list[asyncio.Server], state: WorkerShared) -> None:
        # From here on a new connection asks itself (gateway/server/shared.py, rule "a
        # graceful stop reaches every connection").
        state.draining = True
        for server in servers:
            server.close()
        # A connection accepted before the close gets its connection_made a loop turn
        # later: one turn, and it is counted in `connections`, so the wait below waits
        # for it too instead of finding none and ending the worker under it.
        await asyncio.sleep(0)
        for conn in list(state.connections):
            conn.abort() if self._lifecycle is WorkerState.STOPPING_FAST else conn.shutdown()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.server.graceful_timeout
        while state.connections and self._lifecycle is not WorkerState.STOPPING_FAST:
            if not await state.connection_closed(deadline - loop.time()):
                break
        for conn in list(state.connections):
            conn.abort()
        state.stop_idle_sweep()
        await _cancel_apps(state.websocket_tasks)

    def request_stop(self, fast: bool = False) -> None:
        """Begin a graceful stop; called again (or with fast=True), stop at once."""
        state = self._lifecycle
        if not (fast or state.stopping):
            ready = state is WorkerState.READY
            self._move(WorkerState.STOPPING if ready else WorkerState.STOPPING_BEFORE_READY)
            log.info("stopping: finishing in-flight requests")
            return
        if state is not WorkerState.STOPPING_FAST:
            self._move(WorkerState.STOPPING_FAST)
        log.info("fast stop")  # again at each further request: it aborts what is left
        for conn in [c for s in (self._state, self._admin_state) if s for c in s.connections]:
            conn.abort()


def _freeze_startup_objects() -> None:
    """Move what importing the apps and their lifespan startup made (modules, routes,
    models: hundreds of thousands of objects for a FastAPI or Django app) out of the
    garbage collector's sight. They live as long as the worker, yet every full
    collection would walk them again: under load that cost ~10% CPU per request and
    tens of milliseconds at p99 on FastAPI JSON (benchmarks/). It also keeps their pages
    shared after a fork (the `gc.freeze` docs recommend it for pre-fork servers)."""
    gc.collect()
    gc.freeze()


async def _cancel_apps(tasks: set[asyncio.Task[None]]) -> None:
    """The WebSocket apps still running once the drain is over are cancelled, and waited
    for up to CANCELLED_APP_GRACE_S, so that lifespan shutdown comes after them (DESIGN
    §4; uvicorn's order: wait with a deadline, cancel the rest, then lifespan)."""
    running = list(tasks)
    for task in running:
        task.cancel()
    if running:
        _, stuck = await asyncio.wait(running, timeout=CANCELLED_APP_GRACE_S)
        if stuck:
            log.warning("%d WebSocket app(s) ignored cancellation; going on", len(stuck))


def _describe(sock: socket.socket, scheme: str) -> str:
    address = sock.getsockname()
    if sock.family == socket.AF_INET6:
        return f"{scheme}://[{address[0]}]:{address[1]}"
    if sock.family == socket.AF_INET:
        return f"{scheme}://{address[0]}:{address[1]}"
    return f"unix:{address}" + (" (TLS)" if scheme == "https" else "")


@functools.cache
def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    """uvloop's event loop, or asyncio's own where uvloop cannot be imported (rule "the
    event loop is uvloop's").

    Asked once the apps are loaded, so an error that stops the start stays the one line
    it is; cached, so the warning is one line per server: the supervisor asks before it
    forks, and its workers inherit the answer.
    """
    if not native.compiled():  # said once, with uvloop's (gateway/native.py)
        log.warning("the per-request modules run as pure Python: %s", native.why_pure())
    try:
        import uvloop
    except ImportError:
        log.warning("uvloop cannot be imported here: running on asyncio's own event loop")
        return asyncio.new_event_loop
    return uvloop.new_event_loop


def new_event_loop() -> asyncio.AbstractEventLoop:
    """The loop a worker serves on, for code that runs one elsewhere (gateway/api.py's
    TestServer): the choice of loop stays this module's own (rule "the event loop is
    uvloop's")."""
    return event_loop_factory()()
