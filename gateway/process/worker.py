"""One serving process: load the apps, run lifespan, serve on given sockets, drain, stop.

Rules:
1. The worker never binds: it serves on sockets it is handed (bound by the supervisor,
   the CLI, or a test that bound 127.0.0.1:0), so a later supervisor can bind once and
   hand the same sockets to many workers.
2. Start in order: import every app, lifespan startup for every mount, then accept.
   An app that fails to import or to start raises StartupError (exit status 3).
3. Stop in a known order (DESIGN §4): readiness turns 503 (and stays so for
   `shutdown_delay` while requests are still served), stop accepting, let in-flight
   responses finish within `graceful_timeout` while idle keep-alive connections close
   and open WebSockets get a 1012 Close (their apps are waited for too), drop the
   rest and cancel the WebSocket apps still running, then lifespan shutdown, then the
   WSGI pools. Every connection made before the stop is asked to finish, also one whose
   connection_made comes after the drain began (gateway/server/shared.py rule 4).
4. Under a supervisor, the worker stops gracefully when the supervisor is gone
   (SupervisorLink), and asks for its replacement as the request that reaches
   max_requests ends.
5. The event loop is uvloop's where it can be imported, and asyncio's own elsewhere
   (pyproject.toml installs uvloop only on CPython outside Windows): slower, but the
   same server, with one warning line at start rather than a failed install.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
import os
import random
import signal
import socket
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from gateway.adapters import InterfaceMismatch, LoadedApp, WSGIAdapter, load_app, load_static
from gateway.asgi import ASGIApp
from gateway.config.loader import Config
from gateway.config.mount_table import MountConfig
from gateway.errors import AppLoadError
from gateway.migration.rules import CanaryRule, FallbackRule, RoutingCounters
from gateway.migration.shadow import Shadows
from gateway.routing.health import HealthCheck
from gateway.routing.router import Mount, Router, Rule
from gateway.server.connection import HTTPConnection
from gateway.server.lifespan import LifespanFanout, LifespanMount
from gateway.server.metrics import WorkerMetrics, worker_metrics
from gateway.server.shared import WorkerShared
from gateway.server.tls import TLS_HANDSHAKE_TIMEOUT_S, TLS_SHUTDOWN_TIMEOUT_S, server_context

log = logging.getLogger("gateway.server")

# How long WebSocket apps cancelled at the end of a drain have to unwind (their
# `finally` blocks, a CancelledError handler) before lifespan shutdown goes ahead
# without them. Cleanup that needs more should run when websocket.disconnect comes, which
# graceful_timeout already waits for; this only bounds an app that ignores cancellation.
CANCELLED_APP_GRACE_S = 1.0


@dataclass
class LoadedMount:
    """A mount's settings next to the app they produced."""

    config: MountConfig
    loaded: LoadedApp


def use_pythonpath(config: Config) -> None:
    """Put `pythonpath` first on sys.path, where the apps and the hooks are looked for."""
    for entry in reversed(config.server.pythonpath):
        if entry not in sys.path:
            sys.path.insert(0, entry)


def load_mounts(config: Config) -> list[LoadedMount]:
    """Import every app in the mount file (after putting `pythonpath` on sys.path); a
    static mount whose directory is missing fails like an app that does not import."""
    use_pythonpath(config)
    mounts = []
    for number, mount in enumerate(config.mounts, 1):
        try:
            mounts.append(LoadedMount(mount, _load_mount(mount)))
        except AppLoadError as exc:
            raise _in_context(exc, config, number, mount) from exc
    return mounts


def _load_mount(mount: MountConfig) -> LoadedApp:
    if mount.static:
        return load_static(mount.static)
    threads, max_queue = mount.threads, mount.max_queue  # defaulted by the config; None: ASGI
    label = mount.label  # names its pool threads and error lines
    return load_app(mount.app, mount.interface, threads, label, max_queue, mount.body_buffer_bytes)


def _in_context(exc: AppLoadError, config: Config, number: int, mount: MountConfig) -> AppLoadError:
    """`exc` with what a ConfigError says (the file, the mount and the key) and, when
    the app's code was looked for, the pythonpath it was looked for on."""
    named = f'prefix "{mount.prefix}"' if mount.prefix else f'name "{mount.name}"'
    where = f"mount #{number}, {named}"
    key = "static" if mount.static else "interface" if isinstance(exc, InterfaceMismatch) else "app"
    message = f"{config.path}: [{where}] {key}: {exc}"
    if key == "app":
        searched = ", ".join(config.server.pythonpath) or "(none)"
        message += f" (pythonpath searched: {searched})"
    return type(exc)(message)


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
    ) -> None:
        self.config = config
        self.sockets = list(sockets)
        self.mounts = mounts
        # A worker that is the whole process may tune it (gc.freeze after startup); one
        # run inside another program (the tests) leaves the process alone.
        self._owns_process = owns_process
        self._stop = asyncio.Event()  # binds to a loop only when first awaited
        self._fast_requested = asyncio.Event()  # cuts `shutdown_delay` short
        self._fast_stop = False
        self._state: WorkerShared | None = None
        self._started = False  # lifespan startup done in every mount, sockets listening
        self._stopping = False  # asked to stop: readiness answers 503 from now on
        # Ready when the stop came: a load balancer may be sending traffic, so the drain
        # waits `shutdown_delay`. A worker stopped before it was ever ready has none.
        self._stopped_while_ready = False
        # TLS: one context for every socket, built before serving, so that a certificate
        # that does not load is a ConfigError at start (gateway/server/tls.py).
        self._tls = server_context(config)
        self._metrics = worker_metrics(config.server)  # None: off, and no cost at all
        # max_requests and what to do on reaching it (`retire_after`); 0: no limit.
        self._request_limit: tuple[int, Callable[[], object] | None] = (0, None)
        self.shadows = Shadows()  # the mounts' shadow copies and mismatch logs

    @property
    def stopping(self) -> bool:
        """Asked to stop (gracefully or not)."""
        return self._stopping

    @property
    def ready(self) -> bool:
        """Readiness (health endpoint): started and not draining."""
        return self._started and not self._stopping

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
        router = Router([self._route(m, n) for n, m in enumerate(mounts, 1)])
        fanout = LifespanFanout(
            [_lifespan_mount(m, r) for m, r in zip(mounts, router.mounts, strict=True)]
        )
        timeout_s = self.config.server.graceful_timeout
        await fanout.startup(timeout_s)
        if self._owns_process:
            _freeze_startup_objects()
        state = WorkerShared(self._front(router), self.config.server, router.serves_websocket)
        state.request_limit, state.on_request_limit = self._request_limit
        self._state = state
        state.start_idle_sweep()
        servers = await self._listen(state)
        self._started = True
        if ready is not None:
            ready()
        await self._stop.wait()
        await self._delay_drain()
        await self._drain(servers, state)
        state.stop_idle_sweep()
        await self.shadows.close()  # before the shadow mounts' lifespan ends
        await fanout.shutdown(timeout_s)

    def _route(self, mount: LoadedMount, number: int) -> Mount:
        config = mount.config
        rules = _rules(config, self._metrics)
        if config.shadow:  # outermost: the answer the client gets is the one compared
            where = (self.config.path, f"mount #{number}")
            rules.append(self.shadows.rule(config, where, self._metrics))
        return _route(mount, rules)

    def _front(self, router: Router) -> ASGIApp:
        """The app connections call: the router, behind the health and metrics endpoints
        when they are on."""
        path = self.config.server.health_path
        app: ASGIApp = HealthCheck(router, path, lambda: self.ready) if path else router
        return app if self._metrics is None else self._measure(self._metrics, router, app)

    def _measure(self, metrics: WorkerMetrics, router: Router, front: ASGIApp) -> ASGIApp:
        """Every mount's app behind the metrics middleware, and the metrics endpoint in
        front of everything (gateway/server/metrics.py)."""
        for mount, route in zip(self.mounts, router.mounts, strict=True):
            pool = mount.loaded.app if isinstance(mount.loaded.app, WSGIAdapter) else None
            route.app = metrics.wrap(route.app, route.label, pool)  # its rules wrap this
        metrics.publish_every()  # the gauges, from this (the running) loop
        return metrics.endpoint(front)

    async def _delay_drain(self) -> None:
        """Keep serving `shutdown_delay` seconds while readiness already answers 503, so
        a load balancer has time to stop sending traffic. A fast stop skips the rest of
        the delay, and a worker that was never ready skips all of it."""
        delay = self.config.server.shutdown_delay
        if delay > 0 and self._stopped_while_ready and not self._fast_stop:
            log.info("not ready; serving %.1f s more before the drain", delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._fast_requested.wait(), delay)

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

    async def _drain(self, servers: list[asyncio.Server], state: WorkerShared) -> None:
        state.draining = True  # from here on a new connection asks itself (state rule 4)
        for server in servers:
            server.close()
        # A connection accepted before the close gets its connection_made a loop turn
        # later: one turn, and it is counted in `connections`, so the wait below waits
        # for it too instead of finding none and ending the worker under it.
        await asyncio.sleep(0)
        for conn in list(state.connections):
            conn.abort() if self._fast_stop else conn.shutdown()
        deadline = asyncio.get_running_loop().time() + self.config.server.graceful_timeout
        while state.connections and not self._fast_stop:
            if await _wait_for_change(state, deadline):
                break
        for conn in list(state.connections):
            conn.abort()
        await _cancel_apps(state.websocket_tasks)

    def retire_after(self, limit: int, retire: Callable[[], object]) -> None:
        """Call `retire` as the request that makes `limit` ends (0: never); set before
        `serve`."""
        self._request_limit = (limit, retire)

    def request_stop(self, fast: bool = False) -> None:
        """Begin a graceful stop; called again (or with fast=True), stop at once."""
        if not self._stopping:
            self._stopped_while_ready = self.ready
        self._stopping = True
        if self._stop.is_set() or fast:
            self._fast_stop = True
            self._fast_requested.set()
            log.info("fast stop")
            for conn in list(self._state.connections if self._state else ()):
                conn.abort()
        else:
            log.info("stopping: finishing in-flight requests")
        self._stop.set()


def _freeze_startup_objects() -> None:
    """Move what importing the apps and their lifespan startup made (modules, routes,
    models: hundreds of thousands of objects for a FastAPI or Django app) out of the
    garbage collector's sight. They live as long as the worker, yet every full
    collection would walk them again: under load that cost ~10% CPU per request and
    tens of milliseconds at p99 on FastAPI JSON (benchmarks/). It also keeps their pages
    shared after a fork (the `gc.freeze` docs recommend it for pre-fork servers)."""
    gc.collect()
    gc.freeze()


async def _wait_for_change(state: WorkerShared, deadline: float) -> bool:
    """Wait until a connection closes or the deadline passes; True once past it."""
    loop = asyncio.get_running_loop()
    remaining = deadline - loop.time()
    if remaining <= 0:
        return True
    changed: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not changed.done():
            changed.set_result(None)

    state.on_connection_closed = wake
    try:
        await asyncio.wait_for(changed, remaining)
    except TimeoutError:
        return True
    finally:
        state.on_connection_closed = None
    return False


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


def _route(mount: LoadedMount, rules: list[Rule]) -> Mount:
    config = mount.config
    app, interface = mount.loaded.app, mount.loaded.interface
    max_body = config.max_body_bytes
    return Mount(config.prefix, app, max_body, interface, name=config.name, rules=rules)


def _rules(config: MountConfig, metrics: RoutingCounters | None) -> list[Rule]:
    """The mount's fallback and canary as the router's rules (gateway/migration/rules.py),
    counted under its label when metrics are on."""
    rules: list[Rule] = []
    label = config.label  # the metrics' mount label
    if config.fallback:
        statuses = frozenset(config.fallback_on)
        body_bytes = config.fallback_body_bytes
        rules.append(FallbackRule(config.fallback, statuses, body_bytes, label, metrics))
    if config.canary:
        percent, sticky, header = config.canary_percent, config.canary_sticky, config.canary_header
        rules.append(CanaryRule(config.canary, percent, sticky, header, label, metrics))
    return rules


def _lifespan_mount(mount: LoadedMount, route: Mount) -> LifespanMount:
    return LifespanMount(
        label=f"mount {route.label} ({mount.config.app})",
        app=mount.loaded.app,
        policy=mount.config.lifespan,
        supports_lifespan=mount.loaded.supports_lifespan,
        state=route.state,
    )


def _describe(sock: socket.socket, scheme: str) -> str:
    address = sock.getsockname()
    if sock.family == socket.AF_INET6:
        return f"{scheme}://[{address[0]}]:{address[1]}"
    if sock.family == socket.AF_INET:
        return f"{scheme}://{address[0]}:{address[1]}"
    return f"unix:{address}" + (" (TLS)" if scheme == "https" else "")


@functools.cache
def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    """uvloop's event loop, or asyncio's own where uvloop cannot be imported (rule 5).

    Asked once the apps are loaded, so an error that stops the start stays the one line
    it is; cached, so the warning is one line per server: the supervisor asks before it
    forks, and its workers inherit the answer.
    """
    try:
        import uvloop
    except ImportError:
        log.warning("uvloop cannot be imported here: running on asyncio's own event loop")
        return asyncio.new_event_loop
    return uvloop.new_event_loop


def new_event_loop() -> asyncio.AbstractEventLoop:
    """The loop a worker serves on, for code that runs one elsewhere (gateway/api.py's
    TestServer): the choice of loop stays this module's own (rule 5)."""
    return event_loop_factory()()


def run(
    config: Config, sockets: Sequence[socket.socket], ready: Callable[[], None] | None = None
) -> int:
    """Serve in this process until SIGTERM/SIGINT; return the exit status. `ready` is
    called once the apps have started and the sockets listen.

    This is `workers = 1` (container mode): no supervisor, so nothing would start a
    replacement for a worker that retires; max_requests is not applied.
    An app that fails to load or to start raises StartupError (exit status 3).
    """
    if config.server.max_requests:
        log.warning("max_requests applies with workers > 1 only; ignored")
    worker = Worker(config, sockets, load_mounts(config), owns_process=True)
    with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
        runner.run(_serve_with_signals(worker, ready))
    return 0


async def _serve_with_signals(worker: Worker, ready: Callable[[], None] | None) -> None:
    loop = asyncio.get_running_loop()
    stop_signals = StopSignals(worker)
    loop.add_signal_handler(signal.SIGTERM, stop_signals, signal.SIGTERM)
    loop.add_signal_handler(signal.SIGINT, stop_signals, signal.SIGINT)
    loop.add_signal_handler(signal.SIGUSR1, reopen_log_files)
    await worker.serve(ready)


class StopSignals:
    """SIGTERM and SIGINT for a server that runs alone (`workers = 1`).

    The first begins a graceful stop; a second of the same kind makes it a fast stop;
    one of the other kind changes nothing. A Ctrl-C reaches the whole process group, and
    a parent in that group that passes it on as a SIGTERM (`--reload`, a process
    manager, a shell script's trap) sends one of each, in either order: that must stay
    one graceful stop, or a single Ctrl-C would cut the in-flight requests.
    """

    def __init__(self, worker: Worker) -> None:
        self._worker = worker
        self._received: set[int] = set()

    def __call__(self, signum: int) -> None:
        repeated = signum in self._received
        self._received.add(signum)
        if not repeated and len(self._received) > 1:
            name = signal.Signals(signum).name
            log.info("%s during a stop another signal began: the stop stays graceful", name)
            return
        self._worker.request_stop()


# -- a worker under the supervisor -------------------------------------------------------

# One byte per message on the worker's pipe to the supervisor (gateway/process/supervisor.py).
MESSAGE_READY = b"r"  # lifespan done in every mount, listening
MESSAGE_BEAT = b"b"  # the loop is alive
MESSAGE_RETIRE = b"m"  # max_requests reached: start my replacement, then stop me
# A beat this often, at most; a quarter of worker_timeout when that is shorter, so a
# late beat or two never looks like a stuck loop.
MAX_BEAT_INTERVAL_S = 1.0


class SupervisorLink:
    """The worker's end of its pipe to the supervisor; written from the loop only, so a
    beat proves the loop runs (never from a side thread, which would beat on while the
    loop is stuck).

    It is also how a worker learns that its supervisor is gone (killed with SIGKILL, so
    it could stop nobody): the pipe's read end closed, so a write fails with EPIPE, or
    the worker was re-parented (to init or a subreaper), so its parent pid changed. A
    worker that outlived its supervisor would hold the port and keep serving a config
    nobody supervises, and a restart could not bind.
    """

    def __init__(self, fd: int, supervisor_pid: int) -> None:
        self.fd = fd
        self._supervisor_pid = supervisor_pid  # taken before the fork: no race with its death
        self._pipe_broken = False
        os.set_blocking(fd, False)

    def send(self, message: bytes) -> None:
        try:
            os.write(self.fd, message)
        except BlockingIOError:
            pass  # a full pipe: the supervisor is behind, not gone; drop the message
        except BrokenPipeError:
            self._pipe_broken = True  # its read end closed: the supervisor is gone

    @property
    def supervisor_gone(self) -> bool:
        return self._pipe_broken or os.getppid() != self._supervisor_pid


# Ignored in a worker until its event loop runs. SIGINT, SIGHUP, SIGTTIN and SIGTTOU are
# the supervisor's alone (a Ctrl-C reaches the whole process group, and the supervisor
# turns it into one SIGTERM per worker). SIGUSR1's default action would kill a worker
# still importing its apps; the loop reopens the log files as it starts instead.
IGNORED_BEFORE_LOOP = (
    signal.SIGINT,
    signal.SIGHUP,
    signal.SIGTTIN,
    signal.SIGTTOU,
    signal.SIGUSR1,
)


def set_worker_signals() -> None:
    """In a freshly forked worker, while signals are still blocked: ignore the signals
    the event loop does not take over (or not yet)."""
    for signum in IGNORED_BEFORE_LOOP:
        signal.signal(signum, signal.SIG_IGN)


def run_supervised(
    config: Config,
    sockets: Sequence[socket.socket],
    mounts: list[LoadedMount] | None,
    link: SupervisorLink,
) -> int:
    """A worker process forked by the supervisor, after `set_worker_signals`: serve until
    SIGTERM (graceful) or SIGQUIT (fast). `mounts` are the apps the supervisor preloaded,
    or None to import them here. Raises StartupError (exit status 3) when an app fails
    to load or start.
    """
    loaded = mounts if mounts is not None else load_mounts(config)
    worker = Worker(config, sockets, loaded, owns_process=True)
    with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
        runner.run(_serve_supervised(worker, link, request_limit(config)))
    return 0


def request_limit(config: Config) -> int:
    """This worker's max_requests plus its own share of the jitter (0: no limit), so
    workers started together do not all retire together."""
    limit = config.server.max_requests
    if limit:
        limit += random.randint(0, config.server.max_requests_jitter)
        log.info("recycling after %d requests (max_requests plus jitter)", limit)
    return limit


async def _serve_supervised(worker: Worker, link: SupervisorLink, max_requests: int) -> None:
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, worker.request_stop)
    loop.add_signal_handler(signal.SIGQUIT, worker.request_stop, True)
    loop.add_signal_handler(signal.SIGUSR1, reopen_log_files)
    reopen_log_files()  # a SIGUSR1 may have come, and been ignored, during the imports
    worker.retire_after(max_requests, lambda: _retire(link, max_requests))
    heartbeat = Heartbeat(worker, link)
    try:
        await worker.serve(ready=lambda: link.send(MESSAGE_READY))
    finally:
        heartbeat.stop()


def _retire(link: SupervisorLink, served: int) -> None:
    """max_requests reached: the supervisor starts a replacement, then stops this worker
    (gateway/process/supervisor.py rule 6), which serves on meanwhile."""
    log.info("served %d requests (max_requests): asking for a replacement", served)
    link.send(MESSAGE_RETIRE)


class Heartbeat:
    """A beat from the event loop every interval. A beat that finds the supervisor gone
    begins a graceful stop: so an orphan stops within one interval."""

    def __init__(self, worker: Worker, link: SupervisorLink) -> None:
        self._worker = worker
        self._link = link
        self._orphaned = False
        self._interval_s = min(MAX_BEAT_INTERVAL_S, worker.config.server.worker_timeout / 4)
        self._loop = asyncio.get_running_loop()
        self._timer = self._loop.call_soon(self._beat)

    def _beat(self) -> None:
        self._link.send(MESSAGE_BEAT)
        if not self._orphaned and self._link.supervisor_gone:
            self._orphaned = True
            log.warning("the supervisor is gone: stopping gracefully")
            if not self._worker.stopping:  # a second request_stop would be a fast stop
                self._worker.request_stop()
        self._timer = self._loop.call_later(self._interval_s, self._beat)

    def stop(self) -> None:
        self._timer.cancel()


def reopen_log_files() -> None:
    """SIGUSR1: reopen every log file (after logrotate moved it away)."""
    for name in ("gateway", "gateway.access"):
        for handler in logging.getLogger(name).handlers:
            if isinstance(handler, logging.FileHandler):
                stream = open(handler.baseFilename, "a", encoding=handler.encoding)  # noqa: SIM115
                old = handler.setStream(stream)
                if old is not None:
                    old.close()
