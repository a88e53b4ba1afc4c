"""A real server in the test's own process: a worker on a socket the test bound itself.

`Server` serves a mount file in a background thread on its own uvloop loop, on a socket
bound to 127.0.0.1:0 here and handed to the worker (never bind-then-close port picking).

Rules:
1. Readiness is the worker's `ready` callback, waited on with a deadline; stopping is the
   same `request_stop` that SIGTERM triggers.
2. An exception the server thread ends with is raised in the test thread, by `start` or
   `stop`: a server that fails never passes silently.
3. A mount file written here puts tests/apps on its pythonpath unless it names its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import uvloop

from gateway.config.loader import Config, load_config
from gateway.process.mounts import load_mounts
from gateway.process.worker import Worker
from support.deadlines import START_DEADLINE_S
from support.paths import APPS_DIR

# The values of `[server] http`: tests that serve run once per parser (the `serve`
# fixture in tests/conftest.py), since the two must behave the same.
HTTP_SESSIONS = ["h11", "httptools"]


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
            # The worker may have stopped on its own a moment ago (a test that stopped it):
            # its loop is then closed or closing, and there is nothing left to ask.
            with contextlib.suppress(RuntimeError):
                self.loop.call_soon_threadsafe(self.worker.request_stop)
            self._thread.join(timeout_s)
        self.sock.close()
        assert not self._thread.is_alive(), "server did not stop"

    def connect(self) -> socket.socket:
        """A raw client socket, for tests that speak HTTP byte by byte."""
        return socket.create_connection(("127.0.0.1", self.port), timeout=10)


def requests_in_flight(server: Server) -> int:
    """Requests the worker has begun and not finished: its own count, read from the
    test's thread (an int, so the read is whole)."""
    state = server.worker._state
    return 0 if state is None else state.in_flight


def write_config(directory: Path, text: str) -> Config:
    """Write a mount file; its pythonpath defaults to the test apps directory."""
    if "pythonpath" not in text:
        text = text.replace("[server]", f"[server]\npythonpath = [{str(APPS_DIR)!r}]", 1)
    path = directory / "gateway.toml"
    path.write_text(text)
    return load_config(path)


@contextmanager
def served_with_admin(config: Config) -> Iterator[tuple[Server, str]]:
    """A Server of `config` (which sets admin_bind) started with its admin listener on a
    socket bound here, as the parent binds it (gateway/process/worker.py, rule "the
    worker never binds"); yields the server and the listener's URL."""
    server = Server(config)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    server.worker.admin_socket = sock  # before start()
    try:
        yield server.start(), f"http://127.0.0.1:{sock.getsockname()[1]}/"
    finally:
        server.stop()
        sock.close()
