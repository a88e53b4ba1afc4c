"""The supervisor (`workers > 1`): N worker processes (gateway/process/children.py) that
inherit the parent's sockets, started, watched, replaced and stopped here (DESIGN §4).
The parent binds the sockets and chooses a supervisor over serving alone
(gateway/process/launcher.py).

Rules:
1. Signal handlers only queue: the C-level handler writes the signal number to a wake-up
   pipe (signal.set_wakeup_fd) and the loop reads it. The loop waits on that pipe and on
   each worker's pipe, with a timeout set by the nearest deadline (a heartbeat, the end
   of a graceful stop): never a sleep-poll. SIGCHLD comes through the same pipe, and
   every wake-up reaps whatever exited (waitpid WNOHANG).
2. A worker's messages (gateway/process/pipe.py): READY once lifespan is done and it listens,
   BEAT from its event loop every second or so, RETIRE at max_requests. A worker that
   has not beaten for `worker_timeout` (from its start, so imports count) is killed with
   SIGKILL and replaced; its pipe is read once more first, since beats may wait there
   unread while the supervisor was busy (importing the apps for a reload, `preload`).
   The pipe also tells a worker when the supervisor is gone (killed with SIGKILL, so it
   could stop nobody): its next beat finds the pipe broken, or a new parent pid, and it
   stops gracefully, freeing the port for a restart (gateway/process/pipe.py SupervisorLink).
3. TERM and INT: a graceful stop. Workers get SIGTERM, finish in-flight requests within
   `graceful_timeout`, run lifespan shutdown and exit; after that bound (plus
   `shutdown_delay` and a margin for lifespan shutdown) the rest are killed. A second
   INT sends SIGQUIT: a fast stop. A worker gets SIGTERM once, however many stops
   overlap: a second one would be a fast stop for it, cutting its in-flight requests.
4. HUP: re-read the mount file (with the same command-line overrides). If it does not
   validate, log why and change nothing. Otherwise start a new generation of workers;
   once every one of them is ready, stop the old ones gracefully. If one of the new
   generation fails at boot, the new generation is stopped and the old one stays (and
   is brought back to its number of workers). A HUP while a reload still boots
   supersedes it: that generation is stopped, the one that serves keeps serving, and
   the newest file boots. Bind addresses are not re-bound (that needs a restart).
5. A worker that exits 3 before it was ready (an app failed to import or to start) stops
   the server with exit status 3, rather than respawning it forever. Any other
   unexpected exit is replaced at once, unless CRASH_LIMIT exits happened within
   CRASH_WINDOW_S: a crash loop, which also stops the server with exit status 3.
6. RETIRE (max_requests): a replacement starts first; the retiring worker is stopped
   gracefully once `workers` other ready workers serve, whichever worker made up the
   number (its replacement, or the replacement's own replacement if that one died).
   TTIN and TTOU add and remove a worker (the newest goes first; never below one),
   until a reload starts the file's `workers` again. USR1 reopens the log files here
   and in every worker (one still importing its apps reopens them once its loop runs).
7. Hooks (gateway/process/hooks.py), imported and on_starting run by the parent before
   anything binds (gateway/process/launcher.py): when_ready runs once, when the first
   generation's workers are all ready; on_reload on a HUP whose file validated, before
   the new workers start (with the new settings). post_fork and worker_exit run in each
   worker (children.py).
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import selectors
import signal
import socket
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from gateway.config.loader import Config, load_config
from gateway.errors import GatewayError, StartupError
from gateway.logs import reopen_log_files
from gateway.process.children import SUPERVISOR_SIGNALS, Progress, WorkerProcess, fork_worker
from gateway.process.ending import Ending
from gateway.process.hooks import Hooks, ServerInfo
from gateway.process.mounts import LoadedMount, load_mounts
from gateway.process.pipe import Message, decode
from gateway.process.wakeup import SignalPipe, describe_exit
from gateway.process.worker import event_loop_factory
from gateway.server import metrics
from gateway.server.tls import server_context

log = logging.getLogger("gateway.supervisor")

# A crash loop: this many unexpected worker exits within the window stop the server. Five
# in ten seconds is far beyond a worker killed now and then (OOM killer, an operator's
# kill -9) and well short of respawning a broken worker for minutes.
CRASH_LIMIT = 5
CRASH_WINDOW_S = 10.0
# After shutdown_delay and graceful_timeout, a stopping worker still gets this long for
# lifespan shutdown before the supervisor kills it.
STOP_MARGIN_S = 5.0
# Worker exit status for an app that failed to load or start (DESIGN §1).
EXIT_STARTUP = StartupError.exit_status


@dataclass
class Generation:
    """The config a set of workers was started with (a new one on each reload)."""

    number: int
    config: Config
    mounts: list[LoadedMount] | None  # preloaded apps, or None
    target: int  # how many workers it runs, retiring ones aside (TTIN, TTOU change it)
    workers: list[WorkerProcess] = field(default_factory=list)


class Supervisor:
    """Starts, watches, replaces and stops worker processes (module rules)."""

    def __init__(
        self,
        config: Config,
        overrides: Mapping[str, object],
        sockets: Sequence[socket.socket],
        hooks: Hooks,
        admin: socket.socket | None = None,
    ) -> None:
        self.overrides = dict(overrides)
        self.sockets = list(sockets)
        self.admin = admin  # the admin listener's socket (admin_bind), or None
        self.hooks = hooks
        self.announced_ready = False  # when_ready runs once, for the first generation
        # Before any app is imported (preload) or worker forked
        # (gateway/server/metrics.py, rule "several workers sum").
        self.metrics = metrics.SupervisorMetrics()
        self.metrics.enable(config.server)
        self.current = Generation(1, config, self._preload(config), config.server.workers)
        # Every generation with a live worker, oldest first; `current` is the last.
        self.generations = [self.current]
        # While a reload boots (`current` not ready yet): the generation that serves.
        self.previous: Generation | None = None
        self.crashes: collections.deque[float] = collections.deque()
        self.status = 0
        self.shutting_down = False
        self.interrupts = 0
        self._selector = selectors.DefaultSelector()
        self._signals = SignalPipe(SUPERVISOR_SIGNALS)

    # -- the loop --------------------------------------------------------------------

    def run(self) -> int:
        event_loop_factory()  # its warning (no uvloop) here, once, not in every worker
        self._install_signals()
        try:
            self._fill()
            while self._all_workers() or not self.shutting_down:
                self._wait()
                self._reap()
                self._check_deadlines()
        finally:
            self._kill_all()
            self._signals.restore()
            self.metrics.close()
            self._selector.close()
        log.info("stopped")
        return self.status

    def _wait(self) -> None:
        """Block until a signal, a worker message or the nearest deadline."""
        for key, _ in self._selector.select(self._timeout()):
            if key.fd == self._signals.read_fd:
                for signum in self._signals.take():
                    self._on_signal(signum)
            else:
                self._read_worker(key.data)

    def _read_worker(self, process: WorkerProcess) -> bool:
        """Handle what the worker sent, if anything; True if it sent a message."""
        data = process.link.read()
        if data == b"":  # EOF: the worker is exiting; SIGCHLD will tell
            self._selector.unregister(process.link.fd)
        elif data is not None:
            self._on_messages(process, decode(data))
        return bool(data)

    def _timeout(self) -> float | None:
        watched = [process.deadline for process in self._all_workers() if process.watched]
        return max(0.0, min(watched) - time.monotonic()) if watched else None

    # -- signals ---------------------------------------------------------------------

    def _install_signals(self) -> None:
        self._selector.register(self._signals.read_fd, selectors.EVENT_READ)
        self._signals.install()

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
            reopen_log_files()
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

    def _spawn(self, generation: Generation) -> None:
        number, config, mounts = generation.number, generation.config, generation.mounts
        process = fork_worker(
            number, config, mounts, self.sockets, self._forget_in_child, self.hooks, self.admin
        )
        generation.workers.append(process)
        self._selector.register(process.link.fd, selectors.EVENT_READ, process)
        log.info("started worker %d (generation %d)", process.pid, number)

    def _forget_in_child(self) -> None:
        """In a forked worker: close the supervisor's selector and pipes."""
        self._selector.close()
        pipes = [process.link.fd for process in self._all_workers()]
        for fd in [*self._signals.fds, *pipes]:
            with contextlib.suppress(OSError):
                os.close(fd)

    def _on_messages(self, process: WorkerProcess, messages: frozenset[Message]) -> None:
        if process.ending is Ending.NOT_ASKED:  # held to the heartbeat
            timeout = self._generation_of(process).config.server.worker_timeout
            process.deadline = time.monotonic() + timeout
        if Message.READY in messages and process.progress is Progress.BOOTING:
            process.advance(Progress.READY)
            log.info("worker %d ready", process.pid)
            self._after_ready(process)
        retire = Message.RETIRE in messages and process.progress is Progress.READY
        if retire and not process.stopping:
            process.advance(Progress.RETIRING)  # no longer counted: _fill starts its replacement
            if not self.shutting_down and self._generation_of(process) is self.current:
                self.metrics.count_restart("max_requests")
                self._fill()

    def _after_ready(self, process: WorkerProcess) -> None:
        if self.previous is not None and self._generation_ready(self.current):
            self.previous = None
            log.info("generation %d ready; stopping the old", self.current.number)
            for old in self._all_workers():
                if old not in self.current.workers:
                    self._terminate(old)
        self._stop_retired()
        serving = [w for w in self._all_workers() if not w.stopping]
        if all(w.ready for w in serving):
            log.info("%d workers ready", len(serving))
            if not self.announced_ready:
                self.announced_ready = True
                self.hooks.run("when_ready", ServerInfo(self.current.config, os.getpid()))

    def _generation_ready(self, generation: Generation) -> bool:
        active = [w for w in generation.workers if not w.stopping]
        return len(active) >= generation.target and all(w.ready for w in active)

    def _stop_retired(self) -> None:
        """Stop retiring workers while more than `target` ready ones serve (rule "RETIRE")."""
        serving = [w for w in self.current.workers if w.ready and not w.stopping]
        surplus = len(serving) - self.current.target
        for process in [w for w in serving if w.retiring][: max(0, surplus)]:
            self._terminate(process)

    def _terminate(self, process: WorkerProcess) -> None:
        """A graceful stop, sent once (rule "TERM and INT"); past graceful_timeout and a
        margin, the worker is killed."""
        if process.stopping:
            return
        server = self._generation_of(process).config.server
        bound = server.shutdown_delay + server.graceful_timeout + STOP_MARGIN_S
        process.deadline = time.monotonic() + bound
        process.end(Ending.STOPPING)

    def _signal_all(self, signum: int) -> None:
        for process in self._all_workers():
            process.send_signal(signum)

    def _kill_all(self) -> None:
        """Last resort, on the way out: nothing may outlive the supervisor."""
        for process in self._all_workers():
            process.send_signal(signal.SIGKILL)
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
        self.metrics.worker_exited(process.pid)
        if not generation.workers and generation is not self.current:
            self.generations.remove(generation)
        if process.link.open:
            self._selector.unregister(process.link.fd)
        process.link.close()
        if process.stopping or self.shutting_down:
            log.info("worker %d exited (%s)", process.pid, describe_exit(code))
            return
        log.error("worker %d died unexpectedly (%s)", process.pid, describe_exit(code))
        if generation is not self.current:
            return  # being replaced anyway
        if code == EXIT_STARTUP and not process.ready:
            self._boot_failed()
        elif self._crash_loop():
            log.error("%d worker exits in %.0f s: stopping", CRASH_LIMIT, CRASH_WINDOW_S)
            self._stop(EXIT_STARTUP)
        else:  # a retiring worker's replacement already counts: none is added for it
            if not process.retiring:
                self.metrics.count_restart("exited")
            self._fill()

    def _boot_failed(self) -> None:
        if self.previous is None:
            log.error("a worker failed to start its apps: stopping (exit 3)")
            self._stop(EXIT_STARTUP)
            return
        log.error("the reloaded mount file failed to start; keeping the old workers")
        for process in self.current.workers:
            self._terminate(process)
        self._make_current(self.previous)
        self.previous = None
        self._fill()  # the old generation may have lost workers meanwhile
        self._stop_retired()

    def _make_current(self, generation: Generation) -> None:
        """`current` becomes the last generation; those left without workers go."""
        others = [g for g in self.generations if g.workers and g is not generation]
        self.generations = [*others, generation]
        self.current = generation

    def _crash_loop(self) -> bool:
        now = time.monotonic()
        self.crashes.append(now)
        while self.crashes and self.crashes[0] < now - CRASH_WINDOW_S:
            self.crashes.popleft()
        return len(self.crashes) >= CRASH_LIMIT

    def _check_deadlines(self) -> None:
        now = time.monotonic()
        for process in self._all_workers():
            if not process.watched or now < process.deadline:
                continue
            if process.ending is Ending.STOPPING:
                log.error("worker %d did not stop in time: killing", process.pid)
                process.end(Ending.KILLED)  # killed once; SIGCHLD follows
            elif not self._read_worker(process):
                # HUNG, not stopping: its exit counts as a failure, and it is replaced.
                timeout = self._generation_of(process).config.server.worker_timeout
                log.error(
                    "worker %d silent for %.0f s (worker_timeout): killing",
                    process.pid,
                    timeout,
                )
                process.end(Ending.HUNG)

    # -- reload and scaling ----------------------------------------------------------

    def _reload(self) -> None:
        if self.shutting_down:
            return
        try:
            config = load_config(self.current.config.path, self.overrides)
            server_context(config)  # the new certificate, if any, must load
            self.metrics.enable(config.server)  # metrics turned on: before the imports
            mounts = self._preload(config)
        except GatewayError as exc:
            log.error("reload refused, the workers keep running: %s", exc)
            return
        server, serving = config.server, self.current.config.server
        if server.bind != serving.bind or server.admin_bind != serving.admin_bind:
            log.warning("bind or admin_bind changed in the mount file; that needs a restart")
        log.info("reloading %s", config.path)
        self.hooks.run("on_reload", ServerInfo(config, os.getpid()))  # rule "hooks"
        if self.previous is None:
            self.previous = self.current
        else:  # superseded before it was ready (rule "HUP")
            log.info("stopping generation %d, not ready yet", self.current.number)
            for process in self.current.workers:
                self._terminate(process)
        number = self.current.number + 1
        self._make_current(Generation(number, config, mounts, config.server.workers))
        self._fill()

    def _active(self) -> list[WorkerProcess]:
        """The current generation's workers that count towards its target."""
        return [w for w in self.current.workers if not (w.stopping or w.retiring)]

    def _fill(self) -> None:
        """Start workers of the current generation until `target` are active."""
        for _ in range(self.current.target - len(self._active())):
            self._spawn(self.current)

    def _scale(self, change: int) -> None:
        if self.shutting_down:
            return
        generation = self.current
        if change < 0 and generation.target == 1:
            log.info("one worker left: TTOU ignored")
            return
        generation.target += change
        log.info("scaling to %d workers", generation.target)
        self._fill()
        for process in self._active()[generation.target :]:  # the newest go first
            self._terminate(process)
        self._stop_retired()

    def _preload(self, config: Config) -> list[LoadedMount] | None:
        """The apps imported here, before forking (`preload`), or None."""
        if not config.server.preload:
            return None
        return load_mounts(config)

    # -- lookups ---------------------------------------------------------------------

    def _all_workers(self) -> list[WorkerProcess]:
        return [w for generation in self.generations for w in generation.workers]

    def _find(self, pid: int) -> WorkerProcess | None:
        return next((w for w in self._all_workers() if w.pid == pid), None)

    def _generation_of(self, process: WorkerProcess) -> Generation:
        return next(g for g in self.generations if process in g.workers)
