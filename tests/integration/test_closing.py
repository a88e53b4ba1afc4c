"""Closing in stages (RFC 9112 "Tearing Down Connections"), over real sockets: an error
reply sent while the client is still sending its body reaches a client that sends
everything before it reads, over TCP and over TLS (issue 13, point 3).

Closing a socket with unread bytes in it makes the kernel send a reset, which throws
away the reply the client has not read yet; the server must flush the reply, stop
sending, and read and discard what the client still sends before it closes.
"""

from __future__ import annotations

import http.client
import socket
import urllib.error
import urllib.request
from collections.abc import Callable

import pytest
from support.deadlines import read_until_closed
from support.servers import Server
from support.tls_certs import Certs, make_certs

import gateway.server.closing

Serve = Callable[[str], Server]
DEADLINE_S = 30.0
LIMIT_BYTES = 1024 * 1024
# Four times the mount's limit, as in the report: more than the kernel's socket buffers
# hold on loopback once the server stops reading, so without lingering the reset comes
# while the client is still sending.
BODY_BYTES = 4 * 1024 * 1024
TRIES = 5
MOUNTS = f"""
[[mount]]
prefix = "/asgi"
app = "probe_asgi:app"
interface = "asgi"
max_body_bytes = {LIMIT_BYTES}
"""


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("certs"))


def plain_server(serve: Serve) -> Server:
    return serve("[server]\n" + MOUNTS)


def tls_server(serve: Serve, certs: Certs) -> Server:
    settings = f"certfile = {str(certs.cert)!r}\nkeyfile = {str(certs.key)!r}"
    return serve(f"[server]\n{settings}\n{MOUNTS}")


def upload_then_read(sock: socket.socket, head: bytes, body: bytes) -> bytes:
    """Send the whole request before reading a byte, as simple clients do."""
    sock.settimeout(DEADLINE_S)
    sock.sendall(head + body)
    data, closed = read_until_closed(sock, DEADLINE_S)
    assert closed, "the server did not close after its error reply"
    return data


def oversized_head(length: int = BODY_BYTES) -> bytes:
    return b"POST /asgi/echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % length


def chunked_body(size: int, piece: int = 64 * 1024) -> bytes:
    chunk = b"%x\r\n%s\r\n" % (piece, b"b" * piece)
    return chunk * (size // piece) + b"0\r\n\r\n"


CHUNKED_HEAD = b"POST /asgi/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_an_oversized_upload_reads_its_413_over_tcp(serve: Serve, framing: str) -> None:
    server = plain_server(serve)
    if framing == "chunked":  # the limit is found mid-body, by the app's receive
        head, body = CHUNKED_HEAD, chunked_body(BODY_BYTES)
    else:  # the limit is found from the head, before the app runs
        head, body = oversized_head(), b"a" * BODY_BYTES
    for _ in range(TRIES):
        with server.connect() as sock:
            reply = upload_then_read(sock, head, body)
        assert reply.startswith(b"HTTP/1.1 413 "), reply[:200]


def test_an_oversized_head_reads_its_431_over_tcp(serve: Serve) -> None:
    """A head rejected by the parser (the connection's own reply, not the app's)."""
    server = plain_server(serve)
    head = b"GET /asgi/echo HTTP/1.1\r\nHost: x\r\nX-Big: "
    for _ in range(TRIES):
        with server.connect() as sock:
            reply = upload_then_read(sock, head, b"h" * BODY_BYTES + b"\r\n\r\n")
        assert reply.startswith(b"HTTP/1.1 431 "), reply[:200]


def test_an_oversized_upload_reads_its_413_over_tls(serve: Serve, certs: Certs) -> None:
    server = tls_server(serve, certs)
    context = certs.client_context()
    for _ in range(TRIES):
        raw = socket.create_connection(("127.0.0.1", server.port), timeout=DEADLINE_S)
        with context.wrap_socket(raw, server_hostname="127.0.0.1") as sock:
            reply = upload_then_read(sock, oversized_head(), b"a" * BODY_BYTES)
        assert reply.startswith(b"HTTP/1.1 413 "), reply[:200]


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_http_client_sees_the_413(serve: Serve, certs: Certs, scheme: str) -> None:
    """The stdlib client (what urllib uses) sends the whole body, then reads."""
    connection: http.client.HTTPConnection
    if scheme == "https":
        server = tls_server(serve, certs)
        connection = http.client.HTTPSConnection(
            "127.0.0.1", server.port, timeout=DEADLINE_S, context=certs.client_context()
        )
    else:
        server = plain_server(serve)
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=DEADLINE_S)
    try:
        for _ in range(TRIES):
            connection.request("POST", "/asgi/echo", body=b"a" * BODY_BYTES)
            response = connection.getresponse()
            assert response.status == 413
            response.read()
            connection.close()
    finally:
        connection.close()


def test_urllib_sees_the_413(serve: Serve) -> None:
    server = plain_server(serve)
    for _ in range(TRIES):
        request = urllib.request.Request(server.url + "/asgi/echo", data=b"a" * BODY_BYTES)
        with pytest.raises(urllib.error.HTTPError) as error:
            urllib.request.urlopen(request, timeout=DEADLINE_S)
        assert error.value.code == 413
        error.value.close()


def test_lingering_ends_at_its_byte_bound(serve: Serve) -> None:
    """A client that never stops sending is not read forever: past the discard bound,
    the server closes (and the kernel may then reset), so a flood costs it little."""
    server = plain_server(serve)
    piece = b"a" * (1024 * 1024)
    sent = 0
    with server.connect() as sock:
        sock.settimeout(DEADLINE_S)
        try:
            sock.sendall(oversized_head(1 << 40))
            # Far past any discard bound: the server must end it before this does.
            for _ in range(1024):
                sock.sendall(piece)
                sent += len(piece)
        except (ConnectionResetError, BrokenPipeError):
            pass
    assert sent < 1024 * len(piece)


def test_lingering_ends_at_its_time_bound(serve: Serve, monkeypatch: pytest.MonkeyPatch) -> None:
    """A client that neither sends nor closes after its error reply is closed once the
    linger's time is up (shortened here so that the test is quick)."""
    monkeypatch.setattr(gateway.server.closing, "LINGER_TIME_S", 0.5)
    server = plain_server(serve)
    with server.connect() as sock:
        sock.sendall(oversized_head() + b"a" * 1024)  # then silence, the socket open
        reply, closed = read_until_closed(sock, DEADLINE_S)
    assert reply.startswith(b"HTTP/1.1 413 ")
    assert closed
