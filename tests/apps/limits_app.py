"""Apps for the limits tests (tests/integration/test_limits.py): requests held until the
test opens a gate, streams that count what the server took, bodies read on demand.

Routes are `/ROUTE/NAME` below the mount; NAME picks a `Gate` (or an `outcomes` key),
so each test (and each HTTP session it runs under) uses its own.

Module-level state is shared with the tests on purpose: the `serve` fixture runs the
server in the test process, so a test reads `gates`, `outcomes` and `streamed` directly
(`importlib.import_module("limits_app")` is the module the server imported) and opens a
gate from its own thread. Every wait here has a deadline (HOLD_DEADLINE_S), so a test
that fails before opening its gate cannot leave a request (or a pool thread) behind.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from typing import Any

Scope = dict[str, Any]
StartResponse = Callable[..., Any]

HOLD_DEADLINE_S = 30.0
# /stream: 1024 pieces of 64 KiB, 64 MiB in all: far more than the kernel's socket
# buffers and the server's own buffers together, so a send that never waits would be
# seen to run ahead of a client that does not read.
STREAM_PIECE = b"x" * (64 * 1024)
STREAM_PIECES = 1024

streamed = {"asgi": 0, "wsgi": 0}  # pieces handed to the server so far
outcomes: dict[str, str] = {}  # what reading the body ended with, per NAME


class Gate:
    """Requests wait here, on the loop or in a WSGI thread, until the test opens it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._opened = threading.Event()
        self._futures: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self.arrived = 0  # requests that reached the app
        self.waiting = 0  # requests waiting at the gate now

    async def wait_async(self) -> None:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        with self._lock:
            self.arrived += 1
            if self._opened.is_set():
                return
            self._futures.append((loop, future))
            self.waiting += 1
        try:
            await asyncio.wait_for(future, HOLD_DEADLINE_S)
        finally:
            with self._lock:
                self.waiting -= 1

    def wait_blocking(self) -> None:
        with self._lock:
            self.arrived += 1
            self.waiting += 1
        try:
            self._opened.wait(HOLD_DEADLINE_S)
        finally:
            with self._lock:
                self.waiting -= 1

    def open(self) -> None:
        """From any thread: release every waiter, and let later arrivals through."""
        with self._lock:
            self._opened.set()
            futures, self._futures = self._futures, []
        for loop, future in futures:
            loop.call_soon_threadsafe(_resolve, future)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


_gates_lock = threading.Lock()
gates: dict[str, Gate] = {}


def gate(name: str) -> Gate:
    with _gates_lock:
        return gates.setdefault(name, Gate())


def _route(path: str) -> tuple[str, str]:
    _, route, name = [*path.split("/", 2), "", ""][:3]
    return route, name


# -- ASGI ---------------------------------------------------------------------------


async def app(scope: Scope, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    route, name = _route(scope["path"][len(scope["root_path"]) :])
    if scope["type"] == "websocket":
        await _websocket(receive, send)
    elif route == "hold":
        await gate(name).wait_async()
        await _respond(send, b"released")
    elif route == "poll":
        await _long_poll(name, receive, send)
    elif route == "read-body":
        await _read_body(name, receive, send)
    elif route == "gated-read":  # reads nothing until the gate opens
        await gate(name).wait_async()
        await _read_body(name, receive, send)
    elif route == "stream":
        await _stream(send)
    elif route == "answer-then-read":  # its response begins before it reads the body
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"begun", "more_body": True})
        await _read_body(name, receive, send)
    else:
        await _respond(send, b"ok")


async def _respond(send: Any, body: bytes) -> None:
    length = str(len(body)).encode()
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", length)]}
    )
    await send({"type": "http.response.body", "body": body})


async def _long_poll(name: str, receive: Any, send: Any) -> None:
    """Reads the whole body, then waits for the gate while `receive` waits for a
    disconnect: a wait that body_timeout must leave alone."""
    while (await receive()).get("more_body"):
        pass
    disconnect = asyncio.ensure_future(receive())
    await gate(name).wait_async()
    if disconnect.done():
        outcomes[name] = disconnect.result()["type"]
        return
    disconnect.cancel()
    await _respond(send, b"polled")


async def _read_body(name: str, receive: Any, send: Any) -> None:
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            outcomes[name] = "http.disconnect"
            return
        size += len(message.get("body", b""))
        if not message.get("more_body"):
            break
    outcomes[name] = "complete"
    await _respond(send, str(size).encode())


async def _stream(send: Any) -> None:
    streamed["asgi"] = 0
    await send({"type": "http.response.start", "status": 200, "headers": []})
    for _ in range(STREAM_PIECES):
        await send({"type": "http.response.body", "body": STREAM_PIECE, "more_body": True})
        streamed["asgi"] += 1
    await send({"type": "http.response.body", "body": b""})


async def _websocket(receive: Any, send: Any) -> None:
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    while (await receive())["type"] != "websocket.disconnect":
        pass


# -- WSGI ---------------------------------------------------------------------------


def wsgi_app(
    environ: dict[str, Any], start_response: StartResponse
) -> Iterator[bytes] | list[bytes]:
    route, name = _route(environ["PATH_INFO"])
    if route == "hold":
        gate(name).wait_blocking()
        return _plain(start_response, b"released")
    if route == "read-body":
        return _wsgi_read_body(name, environ, start_response)
    if route == "gated-read":
        gate(name).wait_blocking()
        return _wsgi_read_body(name, environ, start_response)
    if route == "stream":
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return _wsgi_stream()
    return _plain(start_response, b"ok")


def _plain(start_response: StartResponse, body: bytes) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def _wsgi_read_body(
    name: str, environ: dict[str, Any], start_response: StartResponse
) -> list[bytes]:
    try:
        size = sum(len(chunk) for chunk in iter(lambda: environ["wsgi.input"].read(65536), b""))
    except OSError as exc:  # what a WSGI app sees when the body stops coming
        outcomes[name] = type(exc).__name__
        raise
    outcomes[name] = "complete"
    return _plain(start_response, str(size).encode())


def _wsgi_stream() -> Iterator[bytes]:
    streamed["wsgi"] = 0
    for _ in range(STREAM_PIECES):
        yield STREAM_PIECE
        streamed["wsgi"] += 1
