"""One serving process: load the apps, run lifespan, serve on given sockets, drain, stop.

Rules:
1. The worker never binds: it serves on sockets it is handed (bound by the supervisor,
   the CLI, or a test that bound 127.0.0.1:0), so a later supervisor can bind once and
   hand the same sockets to many workers.
2. Start in order: import every app, lifespan startup for every mount, then accept.
   An app that fails to import or to start raises StartupError (exit status 3).
3. Stop in a known order (DESIGN §4): stop accepting, let in-flight responses finish
   within `graceful_timeout` while idle keep-alive connections close, drop the rest,
   then lifespan shutdown, then the WSGI pools.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import uvloop

from adapters import LoadedApp, load_app
from gateway.config import DEFAULT_WSGI_THREADS, LISTEN_BACKLOG, Config, MountConfig
from gateway.connection import HTTPConnection, ServerState
from gateway.lifespan import LifespanFanout, LifespanTarget
from gateway.router import Mount, Router

log = logging.getLogger("gateway.server")



@dataclass
class LoadedMount:
    """A mount's settings next to the app they produced."""

    config: MountConfig
    loaded: LoadedApp


def load_mounts(config: Config) -> list[LoadedMount]:
    """Import every app in the mount file (after putting `pythonpath` on sys.path)."""
    for entry in reversed(config.server.pythonpath):
        if entry not in sys.path:
            sys.path.insert(0, entry)
    mounts = []
    for mount in config.mounts:
        threads = mount.threads or DEFAULT_WSGI_THREADS
        loaded = load_app(mount.app, mount.interface, threads, mount.prefix)
        mounts.append(LoadedMount(mount, loaded))
    return mounts


class Worker:
    """Serves loaded mounts on pre-bound sockets inside a running event loop.

    The apps are imported before the loop runs (`load_mounts`): code that runs at import
    (Django's ORM, say) may refuse to run inside an event loop's thread.
    """

    def __init__(
        self, config: Config, sockets: Sequence[socket.socket], mounts: list[LoadedMount]
    ) -> None:
        self.config = config
        self.sockets = list(sockets)
        self.mounts = mounts
        self._stop = asyncio.Event()  # binds to a loop only when first awaited
        self._fast_stop = False
        self._state: ServerState | None = None

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
        router = Router([_route(m) for m in mounts])
        fanout = LifespanFanout(
            [_lifespan_target(m, r) for m, r in zip(mounts, router.mounts, strict=True)]
        )
        timeout_s = self.config.server.graceful_timeout
        await fanout.startup(timeout_s)
        state = self._state = ServerState(router, self.config.server)
        state.start_idle_sweep()
        servers = await self._listen(state)
        if ready is not None:
            ready()
        await self._stop.wait()
        await self._drain(servers, state)
        state.stop_idle_sweep()
        await fanout.shutdown(timeout_s)

    async def _listen(self, state: ServerState) -> list[asyncio.Server]:
        loop = asyncio.get_running_loop()
        servers = []
        for sock in self.sockets:
            # asyncio calls listen() again on a given socket, with its own default of 100.
            server = await loop.create_server(
                lambda: HTTPConnection(state), sock=sock, backlog=LISTEN_BACKLOG
            )
            servers.append(server)
            log.info("serving on %s", _describe(sock))
        return servers

    async def _drain(self, servers: list[asyncio.Server], state: ServerState) -> None:
        for server in servers:
            server.close()
        for conn in list(state.connections):
            conn.abort() if self._fast_stop else conn.shutdown()
        deadline = asyncio.get_running_loop().time() + self.config.server.graceful_timeout
        while state.connections and not self._fast_stop:
            if await _wait_for_change(state, deadline):
                break
        for conn in list(state.connections):
            conn.abort()

    def request_stop(self, fast: bool = False) -> None:
        """Begin a graceful stop; called again (or with fast=True), stop at once."""
        if self._stop.is_set() or fast:
            self._fast_stop = True
            log.info("fast stop")
            for conn in list(self._state.connections if self._state else ()):
                conn.abort()
        else:
            log.info("stopping: finishing in-flight requests")
        self._stop.set()


async def _wait_for_change(state: ServerState, deadline: float) -> bool:
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


def _route(mount: LoadedMount) -> Mount:
    config = mount.config
    return Mount(config.prefix, mount.loaded.app, config.max_body_bytes, mount.loaded.interface)


def _lifespan_target(mount: LoadedMount, route: Mount) -> LifespanTarget:
    return LifespanTarget(
        label=f"mount {route.prefix} ({mount.config.app})",
        app=mount.loaded.app,
        policy=mount.config.lifespan,
        supports_lifespan=mount.loaded.supports_lifespan,
        state=route.state,
    )


def _describe(sock: socket.socket) -> str:
    address = sock.getsockname()
    if sock.family == socket.AF_INET6:
        return f"http://[{address[0]}]:{address[1]}"
    if sock.family == socket.AF_INET:
        return f"http://{address[0]}:{address[1]}"
    return f"unix:{address}"


def run(config: Config, sockets: Sequence[socket.socket]) -> int:
    """Serve in this process until SIGTERM/SIGINT; return the exit status.

    An app that fails to load or to start raises StartupError (exit status 3).
    """
    worker = Worker(config, sockets, load_mounts(config))
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(_serve_with_signals(worker))
    return 0


async def _serve_with_signals(worker: Worker) -> None:
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, worker.request_stop)
    loop.add_signal_handler(signal.SIGINT, worker.request_stop)
    await worker.serve()
