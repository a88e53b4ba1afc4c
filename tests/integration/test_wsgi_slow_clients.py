"""Slow clients cannot hold a WSGI mount's threads (issue 13, point 6), over real sockets.

A body that trickles in is read on the event loop up to the mount's `body_buffer_bytes`
before the call takes a thread; a response whose client reads nothing is cut after
`send_timeout`, which frees its thread. The apps are tests/apps/limits_app.py, served in
this process, so a test reads the app's state directly.
"""

from __future__ import annotations

import importlib
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import httpx
import pytest
from support.deadlines import read_response, read_until_closed, wait_until
from support.servers import Server, requests_in_flight

Serve = Callable[[str], Server]

SEND_TIMEOUT_S = 1.0  # short, so that a test waits about that long
# Long enough that no trickling upload in these tests times out: what frees the threads
# must be the buffering, not body_timeout.
BODY_TIMEOUT_S = 120.0
TRICKLERS = 10  # the ten clients, against a pool of two threads
THREADS = 2
# Far above a served request's time, far below BODY_TIMEOUT_S: only a request stuck behind
# held threads reaches it.
CLIENT_TIMEOUT_S = 20.0
CONFIG = f"""
[server]
body_timeout = {BODY_TIMEOUT_S}
send_timeout = {SEND_TIMEOUT_S}
graceful_timeout = 5

[[mount]]
prefix = "/wsgi"
app = "limits_app:wsgi_app"
interface = "wsgi"
threads = {THREADS}
max_queue = {TRICKLERS + 10}
"""


@pytest.fixture
def server(serve: Serve) -> Server:
    return serve(CONFIG)


def limits() -> Any:
    """The limits_app module the server imported (the same object: one process)."""
    return importlib.import_module("limits_app")


@pytest.fixture
def tricklers(server: Server) -> Iterator[list[socket.socket]]:
    """TRICKLERS connections, each in the middle of a small POST body to a WSGI app that
    reads its body, the rest never sent (what trickling looks like between two bytes)."""
    head = b"POST /wsgi/read-body/slow%d HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n"
    head += b"Connection: close\r\n\r\n"
    with ExitStack() as stack:
        socks = [stack.enter_context(server.connect()) for _ in range(TRICKLERS)]
        for n, sock in enumerate(socks):
            sock.sendall(head % n + b"x" * 10)
        yield socks


def test_clients_trickling_small_bodies_hold_no_wsgi_thread(
    server: Server, tricklers: list[socket.socket]
) -> None:
    wait_until(lambda: requests_in_flight(server) == TRICKLERS)
    # Each trickler's request has begun; a fast request still finds a thread.
    response = httpx.get(f"{server.url}/wsgi/", timeout=CLIENT_TIMEOUT_S)
    assert response.status_code == 200
    # And a trickled body, once complete, reaches its app whole.
    tricklers[0].sendall(b"y" * 990)
    reply = read_response(tricklers[0])
    assert reply.startswith(b"HTTP/1.1 200 ")
    assert reply.endswith(b"\r\n\r\n1000")


def test_a_client_that_never_reads_frees_its_wsgi_thread_after_send_timeout(
    server: Server,
) -> None:
    app = limits()
    with ExitStack() as stack:
        stalled = []
        for _ in range(THREADS):  # one per thread: the pool is full of unread responses
            sock = stack.enter_context(socket.socket())
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
            sock.connect(("127.0.0.1", server.port))
            sock.sendall(b"GET /wsgi/stream HTTP/1.1\r\nHost: t\r\n\r\n")
            stalled.append(sock)
        wait_until(lambda: requests_in_flight(server) == THREADS and app.streamed["wsgi"] > 0)
        # Both threads are held in streams whose clients read nothing, until send_timeout.
        response = httpx.get(f"{server.url}/wsgi/", timeout=CLIENT_TIMEOUT_S)
        assert response.status_code == 200
        for sock in stalled:
            _, closed = read_until_closed(sock, deadline_s=CLIENT_TIMEOUT_S)
            assert closed, "the server kept a connection whose client read nothing"
    assert app.streamed["wsgi"] < app.STREAM_PIECES  # cut, not sent whole
    wait_until(lambda: requests_in_flight(server) == 0)


def test_a_client_that_reads_steadily_is_not_cut_by_send_timeout(server: Server) -> None:
    """send_timeout bounds a stall, not a download: a client that keeps reading for
    several times send_timeout gets the whole response."""
    app = limits()
    total = app.STREAM_PIECES * len(app.STREAM_PIECE)
    received = 0
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        sock.connect(("127.0.0.1", server.port))
        sock.sendall(b"GET /wsgi/stream HTTP/1.1\r\nHost: t\r\n\r\n")
        sock.settimeout(CLIENT_TIMEOUT_S)
        for _ in range(40):  # 256 KiB every 0.1 s for 4 s, four times send_timeout
            time.sleep(0.1)  # the client's pace, not synchronisation
            chunk = sock.recv(256 * 1024)
            assert chunk, "the server cut a client that was reading"
            received += len(chunk)
        while received < total:  # then the rest (its head and framing too) at full speed
            chunk = sock.recv(1 << 20)
            assert chunk, "the server cut a client that was reading"
            received += len(chunk)
    wait_until(lambda: app.streamed["wsgi"] == app.STREAM_PIECES)
