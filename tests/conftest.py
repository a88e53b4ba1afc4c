"""Shared test seams: run a real server on a socket the test bound itself.

`Server` serves a mount file in a background thread on its own uvloop loop, on a socket
bound to 127.0.0.1:0 here and handed to the worker (never bind-then-close port picking).
Readiness is the worker's `ready` callback; stopping is the same `request_stop` that
SIGTERM triggers.

`GatewayProcess` runs `gateway serve` as a subprocess on such a socket, passed with
`--bind fd://N`; readiness is the server's own "serving on" log line.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import uvloop

from gateway.config.loader import Config, load_config
from gateway.process.worker import Worker, load_mounts

APPS_DIR = Path(__file__).parent / "apps"
# What a test client waits for one answer: far above any response here, so only a hung
# server reaches it.
CLIENT_TIMEOUT_S = 10.0
EXAMPLES_DIR = Path(__file__).parent.parent / "examples"
START_DEADLINE_S = 30.0
GATEWAY = [sys.executable, "-m", "gateway"]


class Server:
    """A worker serving one mount file in a thread, for integration tests."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.port: int = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.worker = Worker(config, [self.sock], load_mounts(config))
        self.loop = uvloop.new_event_loop()
        self.error: BaseException | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Server:
        self._thread.start()
        if not self._ready.wait(START_DEADLINE_S):
            raise TimeoutError("server did not become ready")
        if self.error is not None:
            raise self.error
        return self

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self.worker.serve(ready=self._ready.set))
        except BaseException as exc:  # reported to the test thread by start()/stop()
            self.error = exc
        finally:
            self._ready.set()
            self.loop.close()

    def stop(self, timeout_s: float = 30.0) -> None:
        if self._thread.is_alive():
            self.loop.call_soon_threadsafe(self.worker.request_stop)
            self._thread.join(timeout_s)
        self.sock.close()
        assert not self._thread.is_alive(), "server did not stop"

    def connect(self) -> socket.socket:
        """A raw client socket, for tests that speak HTTP byte by byte."""
        return socket.create_connection(("127.0.0.1", self.port), timeout=10)


def write_config(directory: Path, text: str) -> Config:
    """Write a mount file; its pythonpath defaults to the test apps directory."""
    if "pythonpath" not in text:
        text = text.replace("[server]", f"[server]\npythonpath = [{str(APPS_DIR)!r}]", 1)
    path = directory / "gateway.toml"
    path.write_text(text)
    return load_config(path)


HTTP_SESSIONS = ["h11", "httptools"]


@pytest.fixture(params=HTTP_SESSIONS)
def serve(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Callable[[str], Server]]:
    """`serve(toml_text)` starts a server for the test and stops it afterwards.

    Parametrised over the HTTP sessions (`[server] http`), so every test that serves
    runs once per parser: the two must behave the same.
    """
    servers: list[Server] = []

    def start(text: str) -> Server:
        text = text.replace("[server]", f"[server]\nhttp = {request.param!r}", 1)
        server = Server(write_config(tmp_path, text)).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def client(server: Server) -> Iterator[httpx.Client]:
    """An httpx client for the module's `server` fixture (a module may define its own)."""
    with httpx.Client(base_url=server.url, timeout=CLIENT_TIMEOUT_S) as client:
        yield client


def wait_until(condition: Callable[[], bool], deadline_s: float = START_DEADLINE_S) -> None:
    """Poll a condition until it holds; fail the test once the deadline passes."""
    end = time.monotonic() + deadline_s
    while not condition():
        if time.monotonic() > end:
            raise AssertionError("condition not met before the deadline")
        time.sleep(0.01)


def child_pids(pid: int) -> list[int]:
    """The live child processes of `pid`, from the kernel (those being reaped too), as
    forked by any of its threads."""
    pids = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        # The thread (or the whole process) may end while we read.
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            pids += [int(child) for child in (task / "children").read_text().split()]
    return pids


def read_response(sock: socket.socket, deadline_s: float = 10.0) -> bytes:
    """Read until the peer closes (or the deadline passes); for raw-socket tests."""
    sock.settimeout(deadline_s)
    chunks = []
    try:
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    except TimeoutError:
        pass
    return b"".join(chunks)


def mount_file(
    path: Path, server: str = "", extra_mounts: str = "", app: str = "worker_probe:app"
) -> Path:
    """Write a mount file serving `app` (tests/apps) at "/", with `server` lines in
    [server] and `extra_mounts` after; for system tests of the process model."""
    path.write_text(f"""
[server]
pythonpath = [{str(APPS_DIR)!r}]
graceful_timeout = 10
{server}

[[mount]]
prefix = "/"
app = "{app}"
interface = "asgi"
{extra_mounts}
""")
    return path


def read_until_closed(sock: socket.socket, deadline_s: float = 10.0) -> tuple[bytes, bool]:
    """Read until the peer closes or resets, or the deadline passes: what came, and
    whether the peer ended the connection in time (a server that hangs says False)."""
    chunks: list[bytes] = []
    end = time.monotonic() + deadline_s
    while (left := end - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            break
        except ConnectionResetError:
            return b"".join(chunks), True
        if not chunk:
            return b"".join(chunks), True
        chunks.append(chunk)
    return b"".join(chunks), False


class GatewayProcess:
    """`gateway serve` on a socket bound here; its stderr and stdout read line by line."""

    def __init__(
        self,
        config: Path | str,
        *args: str,
        env: dict[str, str] | None = None,
        new_session: bool = False,
        cwd: Path | None = None,
    ) -> None:
        """`new_session`: the server leads a process group of its own, which a test can
        signal as a whole (os.killpg), as a terminal's Ctrl-C does. `config` may be an
        app reference ("main:app"), which `cwd` may hold."""
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        fd = self.sock.fileno()
        self.proc = subprocess.Popen(
            [*GATEWAY, "serve", str(config), "--bind", f"fd://{fd}", *args],
            pass_fds=[fd],
            stdin=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, **(env or {})},
            start_new_session=new_session,
            cwd=cwd,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        self.stdout: list[str] = []
        # Both pipes are always drained, so a chatty server never blocks on a full pipe.
        self._readers = [
            threading.Thread(target=self._read_stderr, daemon=True),
            threading.Thread(target=self._read_stdout, daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.put(line)

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        self.stdout.extend(self.proc.stdout)

    def wait_for_line(self, text: str, deadline_s: float = START_DEADLINE_S) -> str:
        """Wait for a stderr line containing `text`; fail with the log at the deadline."""
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            try:
                line = self.lines.get(timeout=max(0.0, end - time.monotonic()))
            except queue.Empty:
                break
            self.seen.append(line)
            if text in line:
                return line
        raise AssertionError(f"no line with {text!r}; saw: {''.join(self.seen)}")

    def stop(self, deadline_s: float = START_DEADLINE_S) -> int:
        """SIGTERM (if still running), then the exit status; kill past the deadline."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(deadline_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(deadline_s)
            raise
        finally:
            for reader in self._readers:
                reader.join(deadline_s)
            self.sock.close()

    def all_lines(self) -> list[str]:
        """Everything seen on stderr so far (all of it, once the process has stopped)."""
        while not self.lines.empty():
            self.seen.append(self.lines.get_nowait())
        return self.seen
