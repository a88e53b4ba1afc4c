"""A graceful stop reaches every connection made before it (issue 13, point 9).

A connection's `connection_made` runs after its accept: a loop turn later for TCP, and
only once the handshake is done for TLS. The drain must still ask such a connection to
finish. Over TLS the test holds that moment open for as long as it likes: the client
sends everything but its last handshake flight (TLS 1.3's client Finished), so the
server has accepted the connection but not yet made it; the stop begins; then the
client finishes the handshake and asks a request on the connection. It must be answered
with `Connection: close` and closed (RFC 9112 "Tearing Down Connections"), not kept
alive until graceful_timeout cuts it under a client that believes it may reuse it.
"""

from __future__ import annotations

import importlib
import socket
import ssl
import threading
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from support.deadlines import wait_until
from support.servers import Server
from support.tls_certs import Certs, make_certs

Serve = Callable[[str], Server]
DEADLINE_S = 10.0
# The request in flight that keeps the drain going while the late connection is made;
# far shorter than graceful_timeout, so the drain ends as soon as both connections do.
SLOW_REQUEST_S = 2.0
GRACEFUL_TIMEOUT_S = 10.0


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("certs"))


def mount_file(certs: Certs) -> str:
    return f"""
[server]
certfile = {str(certs.cert)!r}
keyfile = {str(certs.key)!r}
graceful_timeout = {GRACEFUL_TIMEOUT_S}

[[mount]]
prefix = "/"
app = "worker_probe:app"
interface = "asgi"
"""


class HeldHandshake:
    """A TLS client over a raw socket that stops before its last handshake flight."""

    def __init__(self, port: int, context: ssl.SSLContext) -> None:
        context.maximum_version = context.minimum_version = ssl.TLSVersion.TLSv1_3
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=DEADLINE_S)
        self._in, self._out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = context.wrap_bio(self._in, self._out, server_hostname="127.0.0.1")
        while not self._step():  # ClientHello out, the server's whole flight in
            self.sock.sendall(self._out.read())
            self._in.write(self.sock.recv(65536))
        self.held = self._out.read()  # the client Finished: the server is not done yet

    def _step(self) -> bool:
        try:
            self.tls.do_handshake()
        except ssl.SSLWantReadError:
            return False
        return True

    def finish_and_ask(self, request: bytes) -> bytes:
        """Send the held flight and `request`; read until the server closes."""
        self.tls.write(request)
        self.sock.sendall(self.held + self._out.read())
        received = b""
        while chunk := self.sock.recv(65536):
            self._in.write(chunk)
            try:
                while data := self.tls.read(65536):
                    received += data
            except ssl.SSLWantReadError:
                continue  # the rest of a record is still on its way
            return received  # b"" from read(): the server's close_notify
        return received


def test_a_connection_made_after_the_stop_began_is_told_to_close(
    serve: Serve, certs: Certs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    probe_log = tmp_path / "probe.log"  # tests/apps/worker_probe.py: "sleep-start PID"
    monkeypatch.setenv("WORKER_PROBE_LOG", str(probe_log))
    server = serve(mount_file(certs))
    url = f"https://127.0.0.1:{server.port}/sleep?{SLOW_REQUEST_S}"
    context = certs.client_context()
    slow: list[int] = []
    in_flight = threading.Thread(
        target=lambda: slow.append(httpx.get(url, verify=context, timeout=DEADLINE_S).status_code)
    )
    in_flight.start()
    late = HeldHandshake(server.port, certs.client_context())
    wait_until(lambda: probe_log.exists() and "sleep-start" in probe_log.read_text())
    server.loop.call_soon_threadsafe(server.worker.request_stop)
    wait_until(lambda: not server.worker.ready, DEADLINE_S)

    with late.sock:
        response = late.finish_and_ask(b"GET /pid HTTP/1.1\r\nhost: localhost\r\n\r\n")
    in_flight.join(DEADLINE_S)
    head = response.split(b"\r\n\r\n")[0].lower()
    assert head.startswith(b"http/1.1 200"), response
    assert b"connection: close" in head.split(b"\r\n"), response
    assert slow == [200]


def read_until(sock: socket.socket, end: bytes, received: bytes = b"") -> bytes:
    """Read until `end` is in what came (or the peer closes: then it is not)."""
    while end not in received and (chunk := sock.recv(65536)):
        received += chunk
    return received


def test_a_response_that_began_before_the_stop_leaves_its_connection_reusable_briefly(
    serve: Serve,
) -> None:
    # Its head went out without `Connection: close`, so its client may send the next
    # request the moment the response ends; that request must be answered (with
    # `Connection: close`), not met by a close (RFC 9112 "Persistence": a client
    # that sees no close may reuse the connection).
    server = serve('[server]\n[[mount]]\nprefix = "/"\napp = "drain_probe:app"\n')
    with server.connect() as sock:
        sock.sendall(b"GET /held HTTP/1.1\r\nhost: x\r\n\r\n")
        first = read_until(sock, b"head sent\n")
        assert b"connection: close" not in first.lower()
        server.loop.call_soon_threadsafe(server.worker.request_stop)
        wait_until(lambda: not server.worker.ready, DEADLINE_S)
        gate = importlib.import_module("drain_probe").gates[-1]  # the app's, as served
        server.loop.call_soon_threadsafe(gate.set)  # after the drain's start, on the loop
        read_until(sock, b"0\r\n\r\n", first)
        sock.sendall(b"GET /next HTTP/1.1\r\nhost: x\r\n\r\n")
        second = read_until(sock, b"ok\n")
    head = second.split(b"\r\n\r\n")[0].lower()
    assert head.startswith(b"http/1.1 200"), second
    assert b"connection: close" in head.split(b"\r\n"), second
