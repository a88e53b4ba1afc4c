"""Pipelined requests are answered in order, and the worker's log stays clean: no
traceback from the request that follows another on the connection (RFC 9112 "Pipelining").

Run as `gateway serve`, so that the form CI installs (compiled by mypyc) is the one that
serves. In that form a narrowed read in `HTTPConnection.end_cycle` raised TypeError once
the next pipelined request's cycle had started, and every such request left a traceback.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.paths import APPS_DIR
from support.processes import GatewayProcess

PIPELINED = 5


@pytest.fixture(params=["h11", "httptools"])
def gateway(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[GatewayProcess]:
    config = tmp_path / "gateway.toml"
    config.write_text(f"""
[server]
pythonpath = [{str(APPS_DIR)!r}]
http = {request.param!r}
graceful_timeout = 5

[[mount]]
prefix = "/asgi"
app = "pipeline_apps:asgi_app"
interface = "asgi"

[[mount]]
prefix = "/wsgi"
app = "pipeline_apps:wsgi_app"
interface = "wsgi"
threads = 2
""")
    process = GatewayProcess(config, "--workers", "1")
    process.wait_for_line("serving on")
    yield process
    process.stop()


def read_until_closed(sock: socket.socket) -> bytes:
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


@pytest.mark.parametrize("path", ["/asgi/x", "/wsgi/x"])
def test_pipelined_requests_are_answered_without_a_traceback(
    gateway: GatewayProcess, path: str
) -> None:
    head = f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    last = f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
    host, port = gateway.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(head * (PIPELINED - 1) + last)  # in one write: one read, all of them
        received = read_until_closed(sock)
    assert received.count(b"HTTP/1.1 200 OK\r\n") == PIPELINED
    # The stop flushes the worker's log, including asyncio's "Task exception was never
    # retrieved" for a cycle's task that raised.
    assert gateway.stop() == 0
    problems = [line for line in gateway.all_lines() if "Traceback" in line or "Error" in line]
    assert problems == []
