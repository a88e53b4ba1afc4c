"""Slow clients and overload, over real sockets (issue 6, points 1 and 2).

The apps are tests/apps/limits_app.py: requests held at a gate the test opens, streams
that count what the server took, bodies read on demand. The server runs in this process,
so a test reads the app's state directly (`limits()`). The bounds are short (one second)
so that each test takes about that long; every wait has a deadline.
"""

from __future__ import annotations

import importlib
import select
import socket
import struct
import sys
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from support.deadlines import read_response, settled, wait_until
from support.mount_files import LIMITS_MOUNTS
from support.servers import Server
from support.ws_clients import rejection, ws_connect

from gateway.config.bind import Bind
from gateway.process.sockets import bind_socket

Serve = Callable[[str], Server]

TIMEOUT_S = 1.0  # keep_alive_timeout, header_timeout and body_timeout alike
# A bound is met between itself and itself plus one sweep (half the bound): allow that,
# and a margin for a busy machine.
LATE_S = 1.5
# How much earlier than this side the server may start a timer's clock (see the Slowloris
# test): one loop turn on a busy machine, far below the timeout itself.
CLOCK_SLACK_S = 0.5
# Far below the 64 MiB a stream sends: what the kernel's socket buffers (a few MiB on
# loopback), the transport's and the WSGI channel's high-water marks can hold together.
STALLED_STREAM_BOUND_BYTES = 16 * 1024 * 1024


def mounts(*server_settings: str) -> str:
    settings = [
        f"keep_alive_timeout = {TIMEOUT_S}",
        f"header_timeout = {TIMEOUT_S}",
        f"body_timeout = {TIMEOUT_S}",
        "graceful_timeout = 5",
        *server_settings,
    ]
    return "\n".join(["[server]", *settings, LIMITS_MOUNTS])


@pytest.fixture
def server(serve: Serve) -> Server:
    return serve(mounts())


def limits() -> Any:
    """The limits_app module the server imported (the same object: one process)."""
    return importlib.import_module("limits_app")


def new_name() -> str:
    return uuid.uuid4().hex


# --- slow and stuck clients --------------------------------------------------------------


def test_slowloris_gets_408_and_the_worker_serves_others(server: Server) -> None:
    """A head trickled faster than any idle bound still ends at header_timeout."""
    with server.connect() as sock:
        sock.sendall(b"GET /asgi/ HTTP/1.1\r\nHost: t\r\n")
        started = time.monotonic()
        reply = b""
        for n in range(50):  # one field every 0.2 s: 10 s at most
            if select.select([sock], [], [], 0.2)[0]:
                reply = read_response(sock)
                break
            sock.sendall(b"x-slow-%d: y\r\n" % n)
            assert httpx.get(server.url + "/asgi/", timeout=5).status_code == 200
        elapsed = time.monotonic() - started
    assert reply.startswith(b"HTTP/1.1 408 ")
    assert b"connection: close" in reply.lower()
    # Not early: the server's clock for the head's first byte is the loop's, read at the
    # start of the loop turn that received it, which may come before this side's
    # `started`; CLOCK_SLACK_S covers that, never a real early 408 (half the timeout).
    assert TIMEOUT_S - CLOCK_SLACK_S <= elapsed < TIMEOUT_S + LATE_S


def test_a_head_that_stops_midway_gets_408(server: Server) -> None:
    with server.connect() as sock:
        sock.sendall(b"GET /asgi/ HTTP/1.1\r\nHost: t\r\n")
        started = time.monotonic()
        reply = read_response(sock)
        assert time.monotonic() - started < TIMEOUT_S + LATE_S
    assert reply.startswith(b"HTTP/1.1 408 ")


def test_a_connection_that_sends_nothing_is_closed_without_a_response(server: Server) -> None:
    """keep_alive_timeout bounds a connection before its first request too; no 408 for a
    request that never began (a client could take it for the answer to its next one)."""
    with server.connect() as sock:
        started = time.monotonic()
        assert read_response(sock) == b""
        assert 0.5 < time.monotonic() - started < TIMEOUT_S + LATE_S


@pytest.mark.parametrize(
    ("mount", "seen"), [("asgi", "http.disconnect"), ("wsgi", "ClientDisconnected")]
)
def test_a_stalled_body_gets_408_and_the_app_sees_a_disconnect(
    server: Server, mount: str, seen: str
) -> None:
    name = new_name()
    # 1 MiB: past a WSGI mount's body_buffer_bytes, so the body streams into the app's
    # thread; a smaller one is read before the app is called (test_wsgi_slow_clients.py).
    head = b"POST /%s/read-body/%s HTTP/1.1\r\nHost: t\r\nContent-Length: 1048576\r\n\r\n"
    with server.connect() as sock:
        sock.sendall(head % (mount.encode(), name.encode()) + b"0123456789")
        started = time.monotonic()
        reply = read_response(sock)
        assert time.monotonic() - started < TIMEOUT_S + LATE_S
    assert reply.startswith(b"HTTP/1.1 408 ")
    outcomes = limits().outcomes
    wait_until(lambda: name in outcomes)
    assert outcomes[name] == seen


def test_a_slow_but_steady_body_is_not_cut(server: Server) -> None:
    """body_timeout bounds each pause, not the whole upload."""
    head = b"POST /asgi/read-body/%s HTTP/1.1\r\nHost: t\r\nContent-Length: 6\r\n"
    with server.connect() as sock:
        sock.sendall(head % new_name().encode() + b"Connection: close\r\n\r\n")
        for _ in range(6):  # 1.8 s in all, more than body_timeout; no pause as long
            time.sleep(0.3)  # the client's pace, not synchronisation
            sock.sendall(b"x")
        reply = read_response(sock)
    assert reply.startswith(b"HTTP/1.1 200 ")
    assert reply.endswith(b"\r\n\r\n6")


def test_waiting_for_a_disconnect_is_not_a_stalled_body(server: Server) -> None:
    """A long poll's `receive` waits after the whole body: body_timeout leaves it alone."""
    name = new_name()
    gate = limits().gate(name)
    with ThreadPoolExecutor(1) as client:
        polling = client.submit(httpx.get, f"{server.url}/asgi/poll/{name}", timeout=10)
        wait_until(lambda: gate.waiting == 1)
        time.sleep(TIMEOUT_S + LATE_S)  # the bound and a sweep pass: nothing may happen
        gate.open()
        response = polling.result(10)
    assert (response.status_code, response.text) == (200, "polled")


def test_a_wsgi_stream_waits_for_a_client_that_does_not_read(server: Server) -> None:
    """The app's iteration stops at a bound (HIGH_WATER_BYTES of the WSGI channel, the
    transport's, the kernel's) until the client reads; then all of it arrives."""
    app = limits()
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        sock.connect(("127.0.0.1", server.port))
        sock.sendall(b"GET /wsgi/stream HTTP/1.1\r\nHost: t\r\n\r\n")
        wait_until(lambda: app.streamed["wsgi"] > 0)
        stalled = settled(lambda: app.streamed["wsgi"])
        assert stalled * len(app.STREAM_PIECE) < STALLED_STREAM_BOUND_BYTES
        total, received = app.STREAM_PIECES * len(app.STREAM_PIECE), 0
        sock.settimeout(20)
        while received < total:  # the body, plus its head and chunk framing
            chunk = sock.recv(1 << 20)
            assert chunk
            received += len(chunk)
    wait_until(lambda: app.streamed["wsgi"] == app.STREAM_PIECES)


def test_an_upload_to_a_wsgi_app_that_does_not_read_is_paused(server: Server) -> None:
    """While the app's thread does not read wsgi.input, the server stops reading the
    socket (BODY_HIGH_WATER_BYTES): the client's send blocks instead."""
    name, total, piece = new_name(), 64 * 1024 * 1024, b"u" * 65536
    head = b"POST /wsgi/gated-read/%s HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n"
    with server.connect() as sock:
        sock.sendall(head % (name.encode(), total) + b"Connection: close\r\n\r\n")
        sock.setblocking(False)
        sent, deadline = 0, time.monotonic() + 10
        while sent < total and time.monotonic() < deadline:
            try:
                sent += sock.send(piece[: total - sent])
            except BlockingIOError:
                if not select.select([], [sock], [], 0.5)[1]:
                    break  # unwritable for half a second: the server stopped reading
        assert sent < total // 2, "the server read an unread body without bound"
        limits().gate(name).open()
        sock.setblocking(True)
        sock.settimeout(20)
        while sent < total:
            sent += sock.send(piece[: total - sent])
        reply = read_response(sock, deadline_s=20)
    assert reply.startswith(b"HTTP/1.1 200 ")
    assert reply.endswith(b"\r\n\r\n%d" % total)


# --- overload ------------------------------------------------------------------------------


def test_limit_concurrency_answers_503_at_once_without_the_app(serve: Serve) -> None:
    server = serve(mounts("limit_concurrency = 2"))
    name = new_name()
    gate = limits().gate(name)
    url = f"{server.url}/asgi/hold/{name}"
    with ThreadPoolExecutor(2) as clients:
        held = [clients.submit(httpx.get, url, timeout=10) for _ in range(2)]
        wait_until(lambda: gate.waiting == 2)
        started = time.monotonic()
        refused = httpx.get(url, timeout=10)
        assert time.monotonic() - started < TIMEOUT_S
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "1"
        assert refused.headers["connection"] == "close"
        assert gate.arrived == 2  # the third never reached the app
        gate.open()
        assert [response.result(10).status_code for response in held] == [200, 200]
    assert httpx.get(server.url + "/asgi/", timeout=5).status_code == 200  # counted down


def test_limit_concurrency_counts_websockets(serve: Serve) -> None:
    server = serve(mounts("limit_concurrency = 1"))
    with ws_connect(server, "/asgi/ws"):
        assert httpx.get(server.url + "/asgi/", timeout=5).status_code == 503
        assert rejection(server, "/asgi/ws").status_code == 503
    wait_until(lambda: httpx.get(server.url + "/asgi/", timeout=5).status_code == 200)


def test_a_full_wsgi_queue_answers_503_with_retry_after(server: Server) -> None:
    """threads = 2 and max_queue = 2: four requests in the mount, the rest refused at
    once, and the refused never reach the app."""
    name = new_name()
    gate = limits().gate(name)
    url = f"{server.url}/wsgi/hold/{name}"
    with ThreadPoolExecutor(8) as clients:
        requests = [clients.submit(httpx.get, url, timeout=20) for _ in range(8)]
        wait_until(lambda: sum(r.done() for r in requests) == 4 and gate.waiting == 2)
        refused = [r.result() for r in requests if r.done()]
        assert {response.status_code for response in refused} == {503}
        assert {response.headers["retry-after"] for response in refused} == {"1"}
        assert gate.arrived == 2  # two in the threads, two in the queue
        gate.open()
        statuses = sorted(r.result(20).status_code for r in requests)
    assert statuses == [200] * 4 + [503] * 4
    assert gate.arrived == 4


# --- backlog -------------------------------------------------------------------------------


def listen_backlog(sock: socket.socket) -> int:
    """The accept queue's limit of a listening TCP socket, as the kernel holds it: Linux
    reports it in tcp_info's `tcpi_sacked` for a listener (net/ipv4/tcp.c)."""
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
    return int(struct.unpack_from("I", info, 28)[0])  # after 8 one-byte fields, 5 u32s


linux_only = pytest.mark.skipif(sys.platform != "linux", reason="reads Linux's tcp_info")


@linux_only
def test_bind_listens_with_the_given_backlog() -> None:
    with bind_socket(Bind("tcp", host="127.0.0.1", port=0), backlog=7) as sock:
        assert listen_backlog(sock) == 7


@linux_only
def test_the_worker_listens_with_the_configured_backlog(serve: Serve) -> None:
    server = serve(mounts("backlog = 7"))
    assert listen_backlog(server.sock) == 7
