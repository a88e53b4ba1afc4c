"""Development reload (`gateway serve --reload`): restart the server when a file changes.

Rules:
1. This process never imports an app (DESIGN §3: a parent, like the supervisor). It binds
   every socket once and runs the real server as a child process, `python -m gateway
   serve CONFIG --bind fd://N ...`, with the same command-line settings and without
   `--reload`. The sockets stay open here across restarts, so a client that connects
   while the server restarts waits in the kernel's queue instead of being refused.
   Secrets (SECRETS: the admin token) go in its environment, never its command line;
   the admin listener (`admin_bind`) is the server's own to bind, at each start.
2. Watched: the mount file, and every `*.py` file under each `pythonpath` directory,
   except under tool and environment directories (IGNORED_DIRS) and hidden files (editor
   locks). watchfiles runs in a thread that only queues what changed and wakes the loop.
3. Signal handlers only queue (signal.set_wakeup_fd); one loop waits on that pipe and on
   the watcher's, with the server's stop deadline as its timeout: never a sleep-poll.
4. A change re-reads the mount file (with the same command-line settings). If it does
   not validate, the reason is logged and the running server is left alone. Otherwise
   the server is stopped gracefully (TERM; killed past graceful_timeout + STOP_MARGIN_S)
   and a new one started.
5. A server that exits by itself (exit status 3: an app failed to import, a syntax error)
   is logged and started again at the next change only; the reloader does not exit.
6. TERM, INT and HUP stop the server gracefully (TERM) and then the reloader, with exit
   status 0. The server stays in the reloader's process group, so a debugger in an app
   can read the terminal; a Ctrl-C therefore reaches the server directly too, beside our
   TERM. That TERM is still sent, since an INT for this process alone (`kill -INT`)
   reaches no one else; and it is harmless, since a server takes one INT and one TERM,
   in either order, as one graceful stop (gateway/process/single.py StopSignals; a
   supervisor makes only a second INT fast). An INT that comes once the stop has begun
   (a second one, say) is passed on as a second TERM: a fast stop for a `workers = 1`
   server even when the INTs reached this process alone. (A second Ctrl-C reaches the
   server directly, as its own second INT.)
7. watchfiles is an optional extra: without it, ReloadUnavailable (exit status 1) is
   raised before anything is bound.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gateway.config.loader import Config, load_config
from gateway.config.options import CliOption, cli_options
from gateway.config.settings import OptionKind
from gateway.errors import GatewayError
from gateway.process.ending import ENDING, ENDING_SIGNALS, Ending
from gateway.process.sockets import close_sockets, listening_sockets, socket_files
from gateway.process.wakeup import SignalPipe, describe_exit, read_ready

log = logging.getLogger("gateway.reload")

WatchFunction = Callable[..., Iterable[Collection[tuple[Any, str]]]]
"""watchfiles.watch: yields, per batch of changes, a set of (change, path)."""

# After graceful_timeout, the server still gets this long for lifespan shutdown. It is
# twice the supervisor's own margin, so a server with workers > 1 has killed its own
# workers first: killing it earlier would orphan them, still holding the sockets.
STOP_MARGIN_S = 10.0
# How long stopping the watcher may take; it checks its stop event every 50 ms.
WATCHER_JOIN_S = 5.0
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
HANDLED_SIGNALS = (*STOP_SIGNALS, signal.SIGCHLD)
# Directories whose files are never app sources: tools' caches, virtual environments,
# version control. A pip install into a .venv under the pythonpath restarts nothing.
IGNORED_DIRS = frozenset(
    {"__pycache__", ".git", ".hg", ".svn", ".tox", ".nox", ".venv", "venv", "site-packages"}
    | {"node_modules", ".mypy_cache", ".pytest_cache", ".ruff_cache", ".idea", ".vscode"}
)
# Settings the server command line does not carry over: the server serves on the
# reloader's sockets (fd://N), and it must not reload itself.
NOT_PASSED_ON = frozenset({"bind", "reload", "admin_token"})
# Passed on in the server's environment, never on its command line, which any local
# user can read (ps): the admin listener's bearer token.
SECRETS = ("admin_token",)


class ReloadUnavailable(GatewayError):
    """`--reload` without watchfiles installed (exit status 1)."""

    exit_status = 1


def run(config: Config, overrides: Mapping[str, object]) -> int:
    """Serve `config`, restarting whenever an app's source or the mount file changes."""
    watch = _import_watch()
    sockets = listening_sockets(config.server)
    files = socket_files(sockets, config.server.bind)
    try:
        return Reloader(config, overrides, sockets, watch).run()
    finally:
        close_sockets(sockets, files)


def _import_watch() -> WatchFunction:
    try:
        from watchfiles import watch
    except ImportError:
        message = "--reload needs watchfiles: pip install 'gateway[reload]'"
        raise ReloadUnavailable(message) from None
    return watch


def server_command(
    config_path: str, overrides: Mapping[str, object], fds: Sequence[int]
) -> list[str]:
    """The child's command line: `gateway serve` with the same settings, on `fds`."""
    command = [sys.executable, "-m", "gateway", "serve", config_path]
    for option in cli_options():
        if option.setting in overrides and option.setting not in NOT_PASSED_ON:
            command += _flag_arguments(option, overrides[option.setting])
    for fd in fds:
        command += ["--bind", f"fd://{fd}"]
    return command


def server_environment(overrides: Mapping[str, object]) -> dict[str, str]:
    """This process's environment, and the command line's SECRETS as their variables."""
    environment = dict(os.environ)
    for option in cli_options():
        if option.setting in SECRETS and option.setting in overrides:
            environment[option.env] = str(overrides[option.setting])
    return environment


def _flag_arguments(option: CliOption, value: object) -> list[str]:
    """The arguments that give `value` to `option` (the inverse of the CLI's parsing)."""
    if option.kind == OptionKind.BOOL_ON:
        return [option.flag] if value is True else []
    if option.kind == OptionKind.BOOL_OFF:
        return [option.flag] if value is False else []
    if option.kind == OptionKind.LIST and isinstance(value, list | tuple):
        return [argument for item in value for argument in (option.flag, str(item))]
    return [option.flag, str(value)]


# -- what is watched ---------------------------------------------------------------------


@dataclass(frozen=True)
class WatchPlan:
    """The directories handed to watchfiles, and which of their files count (rule
    "watched")."""

    mount_file: str  # absolute
    source_dirs: tuple[str, ...]  # the pythonpath directories that exist
    roots: tuple[str, ...]  # source_dirs and the mount file's directory, none nested

    def __call__(self, change: object, path: str) -> bool:
        """watchfiles' filter: True for the files whose change restarts the server."""
        return path == self.mount_file or any(_is_source(path, d) for d in self.source_dirs)


def watch_plan(config: Config) -> WatchPlan:
    mount_file = os.path.abspath(config.path)
    source_dirs = []
    for directory in config.server.pythonpath:
        if os.path.isdir(directory):
            source_dirs.append(directory)
        else:
            log.warning("pythonpath %s is not a directory; not watched", directory)
    # The directory, not the file: an editor that saves by renaming a new file over the
    # old one would end a watch on the file itself.
    candidates = sorted({*source_dirs, os.path.dirname(mount_file)}, key=len)
    roots: list[str] = []
    for directory in candidates:
        if not any(_is_within(directory, root) for root in roots):
            roots.append(directory)
    return WatchPlan(mount_file, tuple(source_dirs), tuple(roots))


def _is_source(path: str, directory: str) -> bool:
    if not _is_within(path, directory):
        return False
    *parents, name = os.path.relpath(path, directory).split(os.sep)
    # Hidden names are editor lock and temporary files (".#app.py"), never modules.
    visible = not name.startswith(".")
    return visible and name.endswith(".py") and IGNORED_DIRS.isdisjoint(parents)


def _is_within(path: str, directory: str) -> bool:
    return os.path.commonpath([path, directory]) == directory


class Watcher:
    """watchfiles in a thread: each batch of changed paths (or the error that ended the
    watch) goes to `changes`, and one byte to the loop's wake-up pipe."""

    def __init__(
        self,
        watch: WatchFunction,
        plan: WatchPlan,
        changes: queue.SimpleQueue[list[str] | Exception],
        wake_fd: int,
    ) -> None:
        self.plan = plan
        self._watch = watch
        self._changes = changes
        self._wake_fd = wake_fd
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="gateway-reload", daemon=True)

    def start(self) -> None:
        self._thread.start()
        log.info("watching %s for changes", ", ".join(self.plan.roots))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(WATCHER_JOIN_S)

    def _run(self) -> None:
        try:
            batches = self._watch(
                *self.plan.roots,
                watch_filter=self.plan,
                stop_event=self._stop,
                raise_interrupt=False,  # the loop's (rule "signal handlers only queue")
            )
            for batch in batches:
                self._changes.put(sorted({path for _, path in batch}))
                self._wake()
        except Exception as exc:  # handed to the loop, which stops (nothing else can)
            self._changes.put(exc)
            self._wake()

    def _wake(self) -> None:
        # A full pipe already holds a wake-up; the loop drains the whole queue at once.
        with contextlib.suppress(BlockingIOError):
            os.write(self._wake_fd, b"c")


# -- the loop ----------------------------------------------------------------------------


@dataclass(eq=False)
class ServerProcess:
    """The running `gateway serve` child."""

    process: subprocess.Popen[bytes]
    graceful_timeout: float  # from the mount file it was started with
    ending: Ending = Ending.NOT_ASKED  # STOPPING and KILLED: its exit is expected
    deadline: float = 0.0  # while STOPPING: killed past this (monotonic)


class Reloader:
    """Runs the server as a child process and restarts it on changes (module rules)."""

    def __init__(
        self,
        config: Config,
        overrides: Mapping[str, object],
        sockets: Sequence[socket.socket],
        watch: WatchFunction,
    ) -> None:
        self.config = config
        self.overrides = dict(overrides)
        self.sockets = list(sockets)
        self.server: ServerProcess | None = None
        self.restart_pending = False  # start a server once the stopping one has exited
        self.shutting_down = False
        self.status = 0
        self._selector = selectors.DefaultSelector()
        self._signals = SignalPipe(HANDLED_SIGNALS)
        self._change_read, self._change_write = os.pipe()
        self._changes: queue.SimpleQueue[list[str] | Exception] = queue.SimpleQueue()
        self._watch = watch
        self.watcher = Watcher(watch, watch_plan(config), self._changes, self._change_write)

    def run(self) -> int:
        self._install_signals()
        try:
            self.watcher.start()  # first, so no change made while the server boots is missed
            self._start_server()
            while self.server is not None or not self.shutting_down:
                self._wait()
                self._reap()
                self._check_deadline()
        finally:
            self.watcher.stop()
            self._kill_server()
            self._restore_signals()
        log.info("stopped")
        return self.status

    def _wait(self) -> None:
        """Block until a signal, a change or the server's stop deadline."""
        for key, _ in self._selector.select(self._timeout()):
            if key.fd == self._signals.read_fd:
                for signum in self._signals.take():
                    self._on_signal(signum)
            elif read_ready(key.fd):
                self._on_changes()

    def _timeout(self) -> float | None:
        if self.server is None or self.server.ending is not Ending.STOPPING:
            return None
        return max(0.0, self.server.deadline - time.monotonic())

    # -- signals -----------------------------------------------------------------------

    def _install_signals(self) -> None:
        for fd in (self._change_read, self._change_write):
            os.set_blocking(fd, False)
        self._selector.register(self._signals.read_fd, selectors.EVENT_READ)
        self._selector.register(self._change_read, selectors.EVENT_READ)
        self._signals.install()

    def _restore_signals(self) -> None:
        self._signals.restore()
        self._selector.close()
        for fd in (self._change_read, self._change_write):
            os.close(fd)

    def _on_signal(self, signum: int) -> None:
        if signum not in STOP_SIGNALS:
            return  # SIGCHLD: the reap that follows every wake-up handles it
        if not self.shutting_down:
            log.info("stopping (%s)", signal.Signals(signum).name)
            self._shut_down(0)
        elif signum == signal.SIGINT and self.server is not None:
            log.info("fast stop")
            self._signal_server(signal.SIGTERM)  # its second TERM (rule "TERM, INT and HUP")

    def _shut_down(self, status: int) -> None:
        self.status = status
        self.shutting_down = True
        self.restart_pending = False
        self._stop_server()

    # -- changes -----------------------------------------------------------------------

    def _on_changes(self) -> None:
        paths: set[str] = set()
        while True:
            try:
                item = self._changes.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, Exception):
                log.error("watching for changes failed: %s", item)
                self._shut_down(1)
                return
            paths.update(item)
        if paths and not self.shutting_down:
            log.info("reloading: %s", _describe_changes(sorted(paths)))
            self._reload()

    def _reload(self) -> None:
        try:
            config = load_config(self.config.path, self.overrides)
        except GatewayError as exc:
            log.error("not reloading, fix the mount file: %s", exc)
            return
        self._adopt(config)
        if self.server is None:
            self._start_server()
        else:
            self.restart_pending = True
            self._stop_server()

    def _adopt(self, config: Config) -> None:
        if config.server.bind != self.config.server.bind:
            log.warning("bind changed in the mount file; that needs a restart")
        self.config = config
        plan = watch_plan(config)
        if plan != self.watcher.plan:  # pythonpath changed: watch the new directories
            self.watcher.stop()
            self.watcher = Watcher(self._watch, plan, self._changes, self._change_write)
            self.watcher.start()

    # -- the server --------------------------------------------------------------------

    def _start_server(self) -> None:
        fds = [sock.fileno() for sock in self.sockets]
        command = server_command(self.config.path, self.overrides, fds)
        process = subprocess.Popen(command, pass_fds=fds, env=server_environment(self.overrides))
        self.server = ServerProcess(process, self.config.server.graceful_timeout)
        log.info("server %d started", self.server.process.pid)

    def _stop_server(self) -> None:
        """A graceful stop; past graceful_timeout (and a margin) it is killed."""
        server = self.server
        if server is None or server.ending.exit_expected:
            return
        server.deadline = time.monotonic() + server.graceful_timeout + STOP_MARGIN_S
        self._end_server(server, Ending.STOPPING)

    def _end_server(self, server: ServerProcess, ending: Ending) -> None:
        server.ending = ENDING.move(server.ending, ending)
        self._signal_server(ENDING_SIGNALS[ending])

    def _signal_server(self, signum: int) -> None:
        if self.server is not None:
            with contextlib.suppress(ProcessLookupError):
                self.server.process.send_signal(signum)

    def _reap(self) -> None:
        server = self.server
        if server is None:
            return
        code = server.process.poll()
        if code is None:
            return
        self.server = None
        pid = server.process.pid
        if not server.ending.exit_expected:
            log.error("server %d exited (%s); waiting for a change", pid, describe_exit(code))
            return
        log.info("server %d exited (%s)", pid, describe_exit(code))
        if self.restart_pending and not self.shutting_down:
            self.restart_pending = False
            self._start_server()

    def _check_deadline(self) -> None:
        server = self.server
        if server is None or server.ending is not Ending.STOPPING:
            return
        if time.monotonic() >= server.deadline:
            log.error("server %d did not stop in time: killing", server.process.pid)
            self._end_server(server, Ending.KILLED)  # killed once; SIGCHLD follows

    def _kill_server(self) -> None:
        """Last resort, on the way out: the server never outlives the reloader."""
        if self.server is not None and self.server.process.poll() is None:
            self.server.process.kill()
            self.server.process.wait()


def _describe_changes(paths: list[str]) -> str:
    first = _shown(paths[0])
    return first if len(paths) == 1 else f"{first} (and {len(paths) - 1} more)"


def _shown(path: str) -> str:
    """`path` relative to the working directory when it lies under it."""
    relative = os.path.relpath(path)
    return path if relative.split(os.sep)[0] == os.pardir else relative
