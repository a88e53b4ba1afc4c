"""`workers = 1`: this process is the one worker (container mode, where the orchestrator
replicates), with no supervisor above it.

Rules:
1. The same Worker as under a supervisor (gateway/process/worker.py), on the same event
   loop, after the same binding (gateway/process/launcher.py `serve`).
2. Hooks (gateway/process/hooks.py): when_ready runs here once the apps have started and
   the sockets listen, worker_exit as this process stops serving; nothing is forked, so
   post_fork never runs.
3. SIGTERM and SIGINT stop it (StopSignals): the first gracefully; a second of the same
   kind makes the stop fast; one of the other kind changes nothing, since a Ctrl-C
   reaches the whole process group and a parent in it (`--reload`, a process manager, a
   shell script's trap) may pass it on as a SIGTERM, in either order. SIGUSR1 reopens
   the log files.
4. Nothing would start a replacement for a worker that retires: max_requests is not
   applied (a warning says so).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
from collections.abc import Callable, Sequence

from gateway.config.loader import Config
from gateway.logs import reopen_log_files
from gateway.process.hooks import Hooks, ServerInfo, WorkerInfo
from gateway.process.mounts import load_mounts
from gateway.process.worker import Worker, event_loop_factory

log = logging.getLogger("gateway.server")


def serve_alone(
    config: Config,
    sockets: Sequence[socket.socket],
    hooks: Hooks,
    admin: socket.socket | None = None,
) -> int:
    """Serve in this process until SIGTERM/SIGINT; return the exit status, with the
    hooks of rule "hooks". `admin` is the admin listener's socket, if any. An app that
    fails to load or to start raises StartupError (exit status 3)."""
    pid = os.getpid()
    try:

        def when_ready() -> None:
            hooks.run("when_ready", ServerInfo(config, pid))

        return _run(config, sockets, when_ready, admin)
    finally:
        hooks.run("worker_exit", WorkerInfo(config, pid, generation=1, preloaded=False))


def _run(
    config: Config,
    sockets: Sequence[socket.socket],
    ready: Callable[[], None] | None = None,
    admin: socket.socket | None = None,
) -> int:
    """Serve in this process until SIGTERM/SIGINT; return the exit status. `ready` is
    called once the apps have started and the sockets listen."""
    if config.server.max_requests:
        log.warning("max_requests applies with workers > 1 only; ignored")
    worker = Worker(config, sockets, load_mounts(config), owns_process=True, admin_socket=admin)
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
    """SIGTERM and SIGINT for a server that runs alone (rule "SIGTERM and SIGINT"): a
    repeat makes the stop fast, one of the other kind keeps it graceful."""

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
