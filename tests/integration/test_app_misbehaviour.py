"""Apps that break the ASGI spec or PEP 3333: the server answers 500, or closes the
connection when the response has begun, logs the error, and goes on serving (DESIGN §5).
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable

import httpx
import pytest
from support.deadlines import read_response
from support.servers import Server

MOUNTS = """
[server]

[[mount]]
prefix = "/asgi"
app = "misbehaving_apps:asgi_app"
interface = "asgi"

[[mount]]
prefix = "/wsgi"
app = "misbehaving_apps:wsgi_app"
interface = "wsgi"
threads = 2
"""
BEGUN = None  # the expected status of a response that had begun: none, a cut instead


@pytest.fixture
def server(serve: Callable[[str], Server]) -> Server:
    return serve(MOUNTS)


def exchange(server: Server, path: str) -> bytes:
    """One request on a new connection; everything until the server closes."""
    with server.connect() as sock:
        sock.sendall(b"GET %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n" % path.encode())
        sock.shutdown(socket.SHUT_WR)
        return read_response(sock)


@pytest.mark.parametrize(
    ("path", "status", "logged"),
    [
        ("/asgi/body-before-start", 500, "body sent before http.response.start"),
        ("/asgi/start-twice", 500, "http.response.start sent twice"),
        ("/asgi/wrong-type", 500, "unexpected ASGI message type 'http.response.begin'"),
        ("/asgi/str-header-name", 500, "header names and values must be bytes"),
        ("/asgi/str-header-value", 500, "header names and values must be bytes"),
        ("/asgi/no-response", 500, "returned without a response"),
        ("/asgi/start-only", 500, "returned without a response"),
        ("/asgi/start-twice-mid-response", BEGUN, "http.response.start sent twice"),
        ("/asgi/wrong-type-mid-response", BEGUN, "unexpected ASGI message type"),
        ("/asgi/short-body", 500, "too little data for declared Content-Length"),
        ("/asgi/long-body", 500, "too much data for declared Content-Length"),
        ("/asgi/short-body-mid-response", BEGUN, "too little data for declared Content-Length"),
        ("/wsgi/start-twice", 500, "start_response() called a second time"),
        ("/wsgi/start-twice-mid-response", BEGUN, "start_response() called a second time"),
    ],
)
def test_misbehaving_app_gets_500_or_a_cut_and_a_logged_error(
    server: Server, caplog: pytest.LogCaptureFixture, path: str, status: int | None, logged: str
) -> None:
    caplog.set_level(logging.ERROR, logger="gateway.error")
    reply = exchange(server, path)
    assert b"Traceback" not in reply
    if status is BEGUN:
        # The head and a part went out; the missing last chunk tells the client it is cut.
        assert reply.startswith(b"HTTP/1.1 200 "), reply[:80]
        assert b"part" in reply
        assert not reply.endswith(b"0\r\n\r\n"), reply
    else:
        assert reply.startswith(b"HTTP/1.1 %d " % status), reply[:80]
    errors = [r for r in caplog.records if r.name == "gateway.error" and r.levelno >= logging.ERROR]
    assert any(logged in _text(record) for record in errors), [_text(r) for r in errors]
    for ok in ("/asgi/ok", "/wsgi/ok"):  # new connections: the worker goes on
        assert httpx.get(server.url + ok).status_code == 200


def _text(record: logging.LogRecord) -> str:
    """The record's message and its exception's, where the app's error is named."""
    error = record.exc_info[1] if record.exc_info else None
    return f"{record.getMessage()} {error!r}"


def test_the_access_log_counts_the_gateways_own_500(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.access")
    reply = exchange(server, "/asgi/no-response")
    body = reply.partition(b"\r\n\r\n")[2]
    assert reply.startswith(b"HTTP/1.1 500 ") and body
    lines = [r.getMessage() for r in caplog.records if r.name == "gateway.access"]
    logged = f'/asgi/no-response HTTP/1.1" 500 {len(body)}B'
    assert any(logged in line for line in lines), lines


def test_a_body_that_broke_its_length_can_be_sent_again(server: Server) -> None:
    """Nothing of it went out, so the head is still to come with the corrected body."""
    reply = exchange(server, "/asgi/short-body-corrected")
    assert reply.startswith(b"HTTP/1.1 200 "), reply[:80]
    assert reply.endswith(b"\r\n\r\n0123456789")
