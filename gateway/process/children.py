"""The supervisor's worker processes: how one is forked, what the child does until it
serves and as it leaves, and the record the supervisor keeps of each
(gateway/process/supervisor.py decides when).

Rules:
1. The supervisor's signals are blocked across fork(): until the child has put back the
   default dispositions and ignored IGNORED_BEFORE_LOOP, a signal sent to it would run
   the supervisor's handler and land in the supervisor's wake-up pipe, or kill a worker
   still importing its apps.
2. The child drops what it inherited from the supervisor (the wake-up pipe, the
   selector, the other workers' pipes) before it serves, and never returns from
   `fork_worker`: it leaves through os._exit with the worker's exit status (3 when an
   app failed to load or start), so nothing of the parent's is cleaned up twice.
3. A worker's pid is signalled only while the supervisor holds its record, that is until
   it is reaped, so the pid cannot belong to another process yet; a worker that already
   exited (a zombie) is not an error.
4. Hooks (gateway/process/hooks.py): post_fork runs in the child once it has dropped the
   supervisor's state, before its apps load (after, with `preload`: they came with the
   fork); a post_fork that raises fails the worker's start (exit status 3), and no
   worker_exit follows. Once post_fork has returned, worker_exit runs as the worker
   leaves, whether it served or its apps failed to load or start; a worker killed by a
   signal runs no worker_exit.
5. A record's lifecycle is two enums, one per party, as h11 keeps one state per role:
   Progress is what the worker has said (its messages, gateway/process/pipe.py), Ending
   what the supervisor has done to end it (its signals, gateway/process/ending.py). Each
   has its table (gateway/lifecycle.py); the supervisor reads the record's properties.
6. Under the supervisor the worker stops gracefully on SIGTERM and fast on SIGQUIT, and
   asks for its replacement as the request that reaches max_requests (plus its own
   share of the jitter) ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import signal
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import NoReturn

from gateway.config.loader import Config
from gateway.errors import GatewayError
from gateway.lifecycle import Transitions
from gateway.logs import reopen_log_files
from gateway.process.ending import ENDING, ENDING_SIGNALS, Ending
from gateway.process.hooks import Hooks, WorkerInfo
from gateway.process.mounts import LoadedMount, load_mounts
from gateway.process.pipe import Heartbeat, Message, Pipe, SupervisorLink, WorkerLink
from gateway.process.worker import Worker, event_loop_factory

log = logging.getLogger("gateway.supervisor")
worker_log = logging.getLogger("gateway.server")

# The signals the supervisor handles (through its wake-up pipe).
SUPERVISOR_SIGNALS = (
    signal.SIGTERM,
    signal.SIGINT,
    signal.SIGHUP,
    signal.SIGTTIN,
    signal.SIGTTOU,
    signal.SIGUSR1,
    signal.SIGCHLD,
)
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


# -- the supervisor's record of a worker --------------------------------------------------


class Progress(Enum):
    """How far a worker has come, by its own messages (rule "a record's lifecycle is
    two enums")."""

    BOOTING = "booting"  # forked: importing and starting its apps
    READY = "ready"  # said READY: serving
    RETIRING = "retiring"  # said RETIRE: its replacement starts, then it is stopped


PROGRESS = Transitions(
    "worker progress",
    {
        Progress.BOOTING: {Progress.READY},
        # READY comes first: the worker sends it as it begins to serve, and a RETIRE read
        # before it is ignored (gateway/process/supervisor.py `_on_messages`).
        Progress.READY: {Progress.RETIRING},
        Progress.RETIRING: (),
    },
)


@dataclass(eq=False)
class WorkerProcess:
    """The supervisor's record of one forked worker."""

    pid: int
    generation: int
    link: WorkerLink  # the supervisor's end of the worker's pipe
    # Monotonic time by which it must next be heard from (heartbeat), or, once stopping,
    # by which it must have exited; past it, it is killed. Read while `watched`.
    deadline: float
    progress: Progress = Progress.BOOTING
    ending: Ending = Ending.NOT_ASKED

    @property
    def watched(self) -> bool:
        """Held to a deadline: the heartbeat's, then the stop's. Once it was sent
        SIGKILL, only SIGCHLD is awaited."""
        return self.ending is Ending.NOT_ASKED or self.ending is Ending.STOPPING

    @property
    def ready(self) -> bool:
        """It said READY (a retiring worker did too)."""
        return self.progress is not Progress.BOOTING

    @property
    def retiring(self) -> bool:
        return self.progress is Progress.RETIRING

    @property
    def stopping(self) -> bool:
        """Asked to stop (SIGTERM, and SIGKILL after): its exit is expected."""
        return self.ending.exit_expected

    def advance(self, progress: Progress) -> None:
        self.progress = PROGRESS.move(self.progress, progress)

    def end(self, ending: Ending) -> None:
        """Move to `ending` and send its signal (ENDING_SIGNALS)."""
        self.ending = ENDING.move(self.ending, ending)
        self.send_signal(ENDING_SIGNALS[ending])

    def send_signal(self, signum: int) -> None:
        # Its pid is still its own, a zombie at worst (rule "a worker's pid is signalled
        # only while the supervisor holds its record").
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signum)


# -- the fork -----------------------------------------------------------------------------


def fork_worker(
    generation: int,
    config: Config,
    mounts: list[LoadedMount] | None,
    sockets: Sequence[socket.socket],
    forget_parent: Callable[[], None],
    hooks: Hooks,
    admin: socket.socket | None = None,
) -> WorkerProcess:
    """Fork a worker that serves `config` on `sockets` (with `mounts` if preloaded), and
    the admin app on `admin` if there is one.

    In the child, `forget_parent` closes what belongs to the supervisor (rule "the child
    drops what it inherited"), and `hooks` post_fork and worker_exit run (rule "hooks").
    """
    pipe = Pipe.open()  # before the fork: the child checks the supervisor is its parent
    # Until the child has set its own (rule "the supervisor's signals are blocked").
    mask = set(signal.pthread_sigmask(signal.SIG_BLOCK, SUPERVISOR_SIGNALS))
    pid = os.fork()
    if pid == 0:
        info = WorkerInfo(config, os.getpid(), generation, preloaded=mounts is not None)
        _run_child(info, mounts, (sockets, admin), pipe, mask, forget_parent, hooks)
    signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    link = pipe.supervisor_end()
    # From its start, so its imports count against worker_timeout
    # (gateway/process/supervisor.py, rule "a worker's messages").
    deadline = time.monotonic() + config.server.worker_timeout
    return WorkerProcess(pid, generation, link, deadline)


# The apps' sockets, and the admin listener's (or None).
Listeners = tuple[Sequence[socket.socket], socket.socket | None]


def _run_child(
    info: WorkerInfo,
    mounts: list[LoadedMount] | None,
    sockets: Listeners,
    pipe: Pipe,
    mask: set[int],
    forget_parent: Callable[[], None],
    hooks: Hooks,
) -> NoReturn:
    """In the forked child: take the worker's signals, drop the parent's state, run
    post_fork, serve, run worker_exit, exit (rules "the child drops what it inherited"
    and "hooks")."""
    status = 1
    try:
        supervisor = pipe.worker_end()
        signal.set_wakeup_fd(-1)
        for signum in SUPERVISOR_SIGNALS:
            signal.signal(signum, signal.SIG_DFL)
        # Until the event loop takes them (rule "the supervisor's signals are blocked").
        for signum in IGNORED_BEFORE_LOOP:
            signal.signal(signum, signal.SIG_IGN)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        forget_parent()
        status = _serve_with_hooks(info, mounts, sockets, supervisor, hooks)
    except GatewayError as exc:
        log.error("worker %d: %s", os.getpid(), exc)
        status = exc.exit_status
    except BaseException:
        log.exception("worker %d failed", os.getpid())
    finally:
        logging.shutdown()  # flush the handlers: os._exit skips that
        os._exit(status)


def _serve_with_hooks(
    info: WorkerInfo,
    mounts: list[LoadedMount] | None,
    sockets: Listeners,
    supervisor: SupervisorLink,
    hooks: Hooks,
) -> int:
    """post_fork (its failure is the worker's failed start: exit status 3), serve, and
    worker_exit however serving ended (rule "hooks")."""
    hooks.run_before_serving("post_fork", info)
    apps, admin = sockets
    try:
        return serve_supervised(info.config, apps, mounts, supervisor, admin)
    finally:
        hooks.run("worker_exit", info)


# -- the child, serving -------------------------------------------------------------------


def serve_supervised(
    config: Config,
    sockets: Sequence[socket.socket],
    mounts: list[LoadedMount] | None,
    link: SupervisorLink,
    admin: socket.socket | None = None,
) -> int:
    """A forked worker, its signals set (rule "the supervisor's signals are blocked"):
    serve until SIGTERM (graceful) or SIGQUIT (fast). `mounts` are the apps the
    supervisor preloaded, or None to import them here; `admin` the admin listener's
    socket, if any. Raises StartupError (exit status 3) when an app fails to load or
    start.
    """
    loaded = mounts if mounts is not None else load_mounts(config)
    limit = request_limit(config)
    retire = (limit, lambda: _retire(link, limit))
    worker = Worker(
        config, sockets, loaded, owns_process=True, request_limit=retire, admin_socket=admin
    )
    with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
        runner.run(_serve_with_link(worker, link))
    return 0


def request_limit(config: Config) -> int:
    """This worker's max_requests plus its own share of the jitter (0: no limit), so
    workers started together do not all retire together (rule "under the supervisor")."""
    limit = config.server.max_requests
    if limit:
        limit += random.randint(0, config.server.max_requests_jitter)
        worker_log.info("recycling after %d requests (max_requests plus jitter)", limit)
    return limit


async def _serve_with_link(worker: Worker, link: SupervisorLink) -> None:
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, worker.request_stop)
    loop.add_signal_handler(signal.SIGQUIT, worker.request_stop, True)
    loop.add_signal_handler(signal.SIGUSR1, reopen_log_files)
    reopen_log_files()  # a SIGUSR1 may have come, and been ignored, during the imports
    heartbeat = Heartbeat(worker, link, worker.config.server.worker_timeout)
    try:
        await worker.serve(ready=lambda: link.send(Message.READY))
    finally:
        heartbeat.stop()


def _retire(link: SupervisorLink, served: int) -> None:
    """max_requests reached: the supervisor starts a replacement, then stops this worker
    (gateway/process/supervisor.py, rule "RETIRE"), which serves on meanwhile."""
    worker_log.info("served %d requests (max_requests): asking for a replacement", served)
    link.send(Message.RETIRE)
