"""The parent process: bind every socket once, then serve in this process or supervise N
workers that inherit the sockets (DESIGN §4).

`workers = 1` serves in this process: container mode, where the orchestrator replicates.
`workers > 1` forks that many workers and watches them. Rules:
1. Signal handlers only queue: the C-level handler writes the signal number to a wake-up
   pipe (signal.set_wakeup_fd) and the loop reads it. The loop waits on that pipe and on
   each worker's pipe, with a timeout set by the nearest deadline (a heartbeat, the end
   of a graceful stop): never a sleep-poll. SIGCHLD comes through the same pipe, and
   every wake-up reaps whatever exited (waitpid WNOHANG).
2. A worker's messages (gateway/worker.py): READY once lifespan is done and it listens,
   BEAT from its event loop every second or so, RETIRE at max_requests. A worker that
   has not beaten for `worker_timeout` (from its start, so imports count) is killed with
   SIGKILL and replaced.
3. TERM and INT: a graceful stop. Workers get SIGTERM, finish in-flight requests within
   `graceful_timeout`, run lifespan shutdown and exit; after that bound (plus a margin
   for lifespan shutdown) the rest are killed. A second INT sends SIGQUIT: a fast stop.
4. HUP: re-read the mount file (with the same command-line overrides). If it does not
   validate, log why and change nothing. Otherwise start a new generation of workers;
   once every one of them is ready, stop the old ones gracefully. If one of the new
   generation fails at boot, the new generation is stopped and the old one stays.
   Bind addresses are not re-bound (that needs a restart).
5. A worker that exits 3 before it was ready (an app failed to import or to start) stops
   the server with exit status 3, rather than respawning it forever. Any other
   unexpected exit is replaced at once, unless CRASH_LIMIT exits happened within
   CRASH_WINDOW_S: a crash loop, which also stops the server with exit status 3.
6. RETIRE (max_requests): a replacement starts first; once it is ready, the retiring
   worker is stopped gracefully. TTIN and TTOU add and remove a worker. USR1 reopens the
   log files here and in every worker.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import math
import os
import selectors
import signal
import socket
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from gateway import worker
from gateway.config import Config, load_config
from gateway.errors import GatewayError, StartupError
from gateway.sockets import listening_sockets

log = logging.getLogger("gateway.supervisor")

# A crash loop: this many unexpected worker exits within the window stop the server. Five
# in ten seconds is far beyond a worker killed now and then (OOM killer, an operator's
# kill -9) and well short of respawning a broken worker for minutes.
CRASH_LIMIT = 5
CRASH_WINDOW_S = 10.0
# After graceful_timeout, workers still get this long for lifespan shutdown before the
# supervisor kills them.
STOP_MARGIN_S = 5.0
# Bytes read from a pipe at once; messages are one byte each.
READ_BYTES = 4096
HANDLED_SIGNALS = (
    signal.SIGTERM,
    signal.SIGINT,
    signal.SIGHUP,
    signal.SIGTTIN,
    signal.SIGTTOU,
    signal.SIGUSR1,
    signal.SIGCHLD,
)
# Worker exit status for an app that failed to load or start (DESIGN §1).
EXIT_STARTUP = StartupError.exit_status


def serve(config: Config, overrides: Mapping[str, object] | None = None) -> int:
    """Bind, then serve (one worker) or supervise (several); return the exit status.

    `overrides` are the command line's settings, applied again when the mount file is
    re-read (SIGHUP).
    """
    sockets = listening_sockets(config.server)
    try:
        if config.server.workers == 1:
            return worker.run(config, sockets)
        return Supervisor(config, overrides or {}, sockets).run()
    finally:
        for sock in sockets:
            sock.close()


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
    replaces: WorkerProcess | None = None  # stop that one once this one is ready


@dataclass
class Generation:
    """The config a set of workers was started with (a new one on each reload)."""

    number: int
    config: Config
    mounts: list[worker.LoadedMount] | None  # preloaded apps, or None
    workers: list[WorkerProcess] = field(default_factory=list)


class Supervisor:
    """Starts, watches, replaces and stops worker processes (module rules)."""

    def __init__(
        self, config: Config, overrides: Mapping[str, object], sockets: Sequence[socket.socket]
    ) -> None:
        self.overrides = dict(overrides)
        self.sockets = list(sockets)
        self.target = config.server.workers
        self.current = Generation(1, config, self._preload(config))
        # Every generation with a live worker, oldest first; `current` is the last.
        self.generations = [self.current]
        self.swap_pending = False  # a reload waits for `current` to be ready
        self.crashes: collections.deque[float] = collections.deque()
        self.status = 0
        self.shutting_down = False
        self.interrupts = 0
        self._selector = selectors.DefaultSelector()
        self._wake_read, self._wake_write = os.pipe()

    # -- the loop --------------------------------------------------------------------

    def run(self) -> int:
        self._install_signals()
        try:
            self._fill()
            while self._all_workers() or not self.shutting_down:
                self._wait()
                self._reap()
                self._check_deadlines()
        finally:
            self._kill_all()
            signal.set_wakeup_fd(-1)
            self._selector.close()
            os.close(self._wake_read)
            os.close(self._wake_write)
        log.info("stopped")
        return self.status

    def _wait(self) -> None:
        """Block until a signal, a worker message or the nearest deadline."""
        for key, _ in self._selector.select(self._timeout()):
            data = self._read(key.fd)
            if key.fd == self._wake_read:
                for signum in data or b"":
                    self._on_signal(signum)
            elif data == b"":  # EOF: the worker is exiting; SIGCHLD will tell
                self._selector.unregister(key.fd)
                key.data.pipe_open = False
            elif data is not None:
                self._on_messages(key.data, data)

    def _timeout(self) -> float | None:
        nearest = min((process.deadline for process in self._all_workers()), default=math.inf)
        return None if nearest == math.inf else max(0.0, nearest - time.monotonic())

    def _read(self, fd: int) -> bytes | None:
        """What the pipe holds; b"" at end of file, None if nothing is there yet."""
        try:
            return os.read(fd, READ_BYTES)
        except (BlockingIOError, InterruptedError):
            return None

    # -- signals ---------------------------------------------------------------------

    def _install_signals(self) -> None:
        os.set_blocking(self._wake_read, False)
        os.set_blocking(self._wake_write, False)
        self._selector.register(self._wake_read, selectors.EVENT_READ)
        signal.set_wakeup_fd(self._wake_write, warn_on_full_buffer=False)
        for signum in HANDLED_SIGNALS:
            # The wake-up pipe carries the signal; the Python-level handler has nothing
            # left to do, but one must be installed for the pipe to be written.
            signal.signal(signum, _queued)

    def _on_signal(self, signum: int) -> None:
        if signum in (signal.SIGTERM, signal.SIGINT):
            self._on_stop_signal(signum)
        elif signum == signal.SIGHUP:
            self._reload()
        elif signum == signal.SIGTTIN:
            self._scale(+1)
        elif signum == signal.SIGTTOU:
            self._scale(-1)
        elif signum == signal.SIGUSR1:
            worker.reopen_log_files()
            self._signal_all(signal.SIGUSR1)

    def _on_stop_signal(self, signum: int) -> None:
        self.interrupts += signum == signal.SIGINT
        if not self.shutting_down:
            log.info("stopping %d workers gracefully", len(self._all_workers()))
            self._stop(self.status)
        elif signum == signal.SIGINT and self.interrupts > 1:
            log.info("fast stop")
            self._signal_all(signal.SIGQUIT)

    def _stop(self, status: int) -> None:
        """Begin a graceful stop of every worker; the loop ends when all have exited."""
        self.status = status
        self.shutting_down = True
        for process in self._all_workers():
            self._terminate(process)

    # -- workers ---------------------------------------------------------------------

    def _spawn(self, generation: Generation, replaces: WorkerProcess | None = None) -> None:
        read_end, write_end = os.pipe()
        # Blocked across the fork: until the child has dropped the supervisor's handlers,
        # a signal sent to it would be written to the supervisor's wake-up pipe.
        mask: set[int] = set(signal.pthread_sigmask(signal.SIG_BLOCK, HANDLED_SIGNALS))
        pid = os.fork()
        if pid == 0:  # the child never returns from here
            os.close(read_end)
            self._run_child(generation, write_end, mask)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        os.close(write_end)
        os.set_blocking(read_end, False)
        timeout = generation.config.server.worker_timeout  # imports count: rule 2
        process = WorkerProcess(pid, generation.number, read_end, time.monotonic() + timeout)
        process.replaces = replaces
        generation.workers.append(process)
        self._selector.register(read_end, selectors.EVENT_READ, process)
        log.info("started worker %d (generation %d)", pid, generation.number)

    def _run_child(self, generation: Generation, pipe: int, mask: set[int]) -> None:
        """In the forked child: drop the supervisor's state, serve, exit."""
        status = 1
        try:
            signal.set_wakeup_fd(-1)
            for signum in HANDLED_SIGNALS:
                signal.signal(signum, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
            self._selector.close()
            for fd in [self._wake_read, self._wake_write, *self._pipes()]:
                with contextlib.suppress(OSError):
                    os.close(fd)
            link = worker.SupervisorLink(pipe)
            status = worker.run_supervised(generation.config, self.sockets, generation.mounts, link)
        except GatewayError as exc:
            log.error("worker %d: %s", os.getpid(), exc)
            status = exc.exit_status
        except BaseException:
            log.exception("worker %d failed", os.getpid())
        finally:
            logging.shutdown()  # flush the handlers: os._exit skips that
            os._exit(status)

    def _pipes(self) -> list[int]:
        return [process.pipe for process in self._all_workers()]

    def _on_messages(self, process: WorkerProcess, messages: bytes) -> None:
        if not process.stopping:
            timeout = self._generation_of(process).config.server.worker_timeout
            process.deadline = time.monotonic() + timeout
        if worker.MESSAGE_READY in messages and not process.ready:
            process.ready = True
            log.info("worker %d ready", process.pid)
            self._after_ready(process)
        if worker.MESSAGE_RETIRE in messages and not (process.retiring or process.stopping):
            process.retiring = True
            generation = self._generation_of(process)
            if not self.shutting_down and generation is self.current:
                self._spawn(generation, replaces=process)

    def _after_ready(self, process: WorkerProcess) -> None:
        if process.replaces is not None:
            self._terminate(process.replaces)
            process.replaces = None
        if self.swap_pending and all(w.ready for w in self.current.workers):
            self.swap_pending = False
            log.info("generation %d ready; stopping the old", self.current.number)
            for old in self._all_workers():
                if old not in self.current.workers:
                    self._terminate(old)
        serving = [w for w in self._all_workers() if not w.stopping]
        if all(w.ready for w in serving):
            log.info("%d workers ready", len(serving))

    def _terminate(self, process: WorkerProcess) -> None:
        """A graceful stop; past graceful_timeout (and a margin) it is killed."""
        if not process.stopping:
            process.stopping = True
            config = self._generation_of(process).config
            process.deadline = time.monotonic() + config.server.graceful_timeout + STOP_MARGIN_S
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGTERM)

    def _signal_all(self, signum: int) -> None:
        for process in self._all_workers():
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signum)

    def _kill_all(self) -> None:
        """Last resort, on the way out: nothing may outlive the supervisor."""
        for process in self._all_workers():
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(process.pid, 0)

    def _reap(self) -> None:
        while True:
            try:
                pid, wait_status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            process = self._find(pid)
            if process is not None:
                self._on_exit(process, os.waitstatus_to_exitcode(wait_status))

    def _on_exit(self, process: WorkerProcess, code: int) -> None:
        generation = self._generation_of(process)
        generation.workers.remove(process)
        if not generation.workers and generation is not self.current:
            self.generations.remove(generation)
        if process.pipe_open:
            self._selector.unregister(process.pipe)
        os.close(process.pipe)
        if process.stopping or self.shutting_down:
            log.info("worker %d exited (%s)", process.pid, _describe_exit(code))
            return
        log.error("worker %d died unexpectedly (%s)", process.pid, _describe_exit(code))
        if generation is not self.current:
            return  # being replaced anyway
        if code == EXIT_STARTUP and not process.ready:
            self._boot_failed()
        elif self._crash_loop():
            log.error("%d worker exits in %.0f s: stopping", CRASH_LIMIT, CRASH_WINDOW_S)
            self._stop(EXIT_STARTUP)
        elif not process.retiring:  # a retiring worker's replacement is on its way
            self._fill()

    def _boot_failed(self) -> None:
        if self.swap_pending:
            log.error("the reloaded mount file failed to start; keeping the old workers")
            failed = self.current
            for process in failed.workers:
                self._terminate(process)
            self.current = self.generations[self.generations.index(failed) - 1]
            self.generations.remove(self.current)
            self.generations.append(self.current)  # `current` stays the last
            self.swap_pending = False
            return
        log.error("a worker failed to start its apps: stopping (exit 3)")
        self._stop(EXIT_STARTUP)

    def _crash_loop(self) -> bool:
        now = time.monotonic()
        self.crashes.append(now)
        while self.crashes and self.crashes[0] < now - CRASH_WINDOW_S:
            self.crashes.popleft()
        return len(self.crashes) >= CRASH_LIMIT

    def _check_deadlines(self) -> None:
        now = time.monotonic()
        for process in self._all_workers():
            if now < process.deadline:
                continue
            if process.stopping:
                log.error("worker %d did not stop in time: killing", process.pid)
            else:
                # Not `stopping`: its exit counts as a failure, and it is replaced.
                timeout = self._generation_of(process).config.server.worker_timeout
                log.error(
                    "worker %d silent for %.0f s (worker_timeout): killing",
                    process.pid,
                    timeout,
                )
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGKILL)
            process.deadline = math.inf  # killed once; SIGCHLD follows

    # -- reload and scaling ----------------------------------------------------------

    def _reload(self) -> None:
        if self.shutting_down:
            return
        try:
            config = load_config(self.current.config.path, self.overrides)
            mounts = self._preload(config)
        except GatewayError as exc:
            log.error("reload refused, the workers keep running: %s", exc)
            return
        if config.server.bind != self.current.config.server.bind:
            log.warning("bind changed in the mount file; that needs a restart")
        log.info("reloading %s", config.path)
        self.current = Generation(self.current.number + 1, config, mounts)
        self.generations.append(self.current)
        self.swap_pending = True
        self.target = config.server.workers
        self._fill()

    def _fill(self) -> None:
        """Start workers of the current generation until `target` are active."""
        active = [w for w in self.current.workers if not (w.stopping or w.retiring)]
        for _ in range(self.target - len(active)):
            self._spawn(self.current)

    def _scale(self, change: int) -> None:
        if self.shutting_down:
            return
        if change > 0:
            self.target += 1
            self._fill()
        elif self.target > 1:
            self.target -= 1
            running = [w for w in self.current.workers if not w.stopping]
            if running:
                self._terminate(running[-1])
        log.info("%d workers", self.target)

    def _preload(self, config: Config) -> list[worker.LoadedMount] | None:
        """The apps imported here, before forking (`preload`), or None."""
        if not config.server.preload:
            return None
        return worker.load_mounts(config)

    # -- lookups ---------------------------------------------------------------------

    def _all_workers(self) -> list[WorkerProcess]:
        return [w for generation in self.generations for w in generation.workers]

    def _find(self, pid: int) -> WorkerProcess | None:
        return next((w for w in self._all_workers() if w.pid == pid), None)

    def _generation_of(self, process: WorkerProcess) -> Generation:
        return next(g for g in self.generations if process in g.workers)


def _queued(signum: int, frame: object) -> None:
    """The Python-level handler: the wake-up pipe already carries the signal (rule 1)."""


def _describe_exit(code: int) -> str:
    return f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit status {code}"
