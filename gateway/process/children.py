"""The supervisor's worker processes: how one is forked, what the child does before it
serves, and the record the supervisor keeps of each (gateway/process/supervisor.py decides when).

Rules:
1. The supervisor's signals are blocked across fork(): until the child has put back the
   default dispositions and the worker's own (gateway/process/worker.py `set_worker_signals`),
   a signal sent to it would run the supervisor's handler and land in the supervisor's
   wake-up pipe, or kill a worker still importing its apps.
2. The child drops what it inherited from the supervisor (the wake-up pipe, the
   selector, the other workers' pipes) before it serves, and never returns from
   `fork_worker`: it leaves through os._exit with the worker's exit status (3 when an
   app failed to load or start), so nothing of the parent's is cleaned up twice.
3. A worker's pid is signalled only while the supervisor holds its record, that is until
   it is reaped, so the pid cannot belong to another process yet; a worker that already
   exited (a zombie) is not an error.
4. Hooks (gateway/process/hooks.py): post_fork runs in the child once it has dropped the
   supervisor's state, before its apps load (after, with `preload`: they came with the
   fork); a post_fork that raises fails the worker's start (exit status 3). worker_exit
   runs as the worker leaves, whether it served or failed to start; a worker killed by
   a signal runs neither.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NoReturn

from gateway.config.loader import Config
from gateway.errors import GatewayError
from gateway.process import worker
from gateway.process.hooks import Hooks, WorkerInfo

log = logging.getLogger("gateway.supervisor")

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


@dataclass(eq=False)
class WorkerProcess:
    """The supervisor's record of one forked worker."""

    pid: int
    generation: int
    pipe: int  # read end of the worker's message pipe
    # Monotonic time by which it must next be heard from (heartbeat), or, once stopping,
    # by which it must have exited; past it, it is killed.
    deadline: float
    ready: bool = False
    pipe_open: bool = True  # until its end of the pipe closes (it exited, mostly)
    retiring: bool = False  # asked for a replacement (max_requests)
    stopping: bool = False  # we sent it TERM, QUIT or KILL: its exit is expected

    def send_signal(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):  # rule 3
            os.kill(self.pid, signum)


def fork_worker(
    generation: int,
    config: Config,
    mounts: list[worker.LoadedMount] | None,
    sockets: Sequence[socket.socket],
    forget_parent: Callable[[], None],
    hooks: Hooks,
) -> WorkerProcess:
    """Fork a worker that serves `config` on `sockets` (with `mounts` if preloaded).

    In the child, `forget_parent` closes what belongs to the supervisor (rule 2), and
    `hooks` post_fork and worker_exit run (rule 4).
    """
    read_end, write_end = os.pipe()
    supervisor_pid = os.getpid()  # before the fork: the child checks it is still its parent
    mask = set(signal.pthread_sigmask(signal.SIG_BLOCK, SUPERVISOR_SIGNALS))  # rule 1
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        info = WorkerInfo(config, os.getpid(), generation, preloaded=mounts is not None)
        link = (write_end, supervisor_pid)
        _run_child(info, mounts, sockets, link, mask, forget_parent, hooks)
    signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    os.close(write_end)
    os.set_blocking(read_end, False)
    # From its start, so its imports count against worker_timeout (supervisor rule 2).
    deadline = time.monotonic() + config.server.worker_timeout
    return WorkerProcess(pid, generation, read_end, deadline)


def _run_child(
    info: WorkerInfo,
    mounts: list[worker.LoadedMount] | None,
    sockets: Sequence[socket.socket],
    link: tuple[int, int],  # the message pipe's write end, and the supervisor's pid
    mask: set[int],
    forget_parent: Callable[[], None],
    hooks: Hooks,
) -> NoReturn:
    """In the forked child: take the worker's signals, drop the parent's state, run
    post_fork, serve, run worker_exit, exit (rules 2 and 4)."""
    status = 1
    try:
        signal.set_wakeup_fd(-1)
        for signum in SUPERVISOR_SIGNALS:
            signal.signal(signum, signal.SIG_DFL)
        worker.set_worker_signals()
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        forget_parent()
        supervisor = worker.SupervisorLink(*link)
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
    mounts: list[worker.LoadedMount] | None,
    sockets: Sequence[socket.socket],
    supervisor: worker.SupervisorLink,
    hooks: Hooks,
) -> int:
    """post_fork (its failure is the worker's failed start: exit status 3), serve, and
    worker_exit however serving ended (rule 4)."""
    hooks.run_before_serving("post_fork", info)
    try:
        return worker.run_supervised(info.config, sockets, mounts, supervisor)
    finally:
        hooks.run("worker_exit", info)
