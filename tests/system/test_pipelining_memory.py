"""A client that pipelines thousands of requests and never reads its responses cannot
grow the worker's memory past a small bound (issue 13, point 1), whichever kind of
response it asks for: an ASGI app's, a WSGI app's or a static file, each 64 KiB in one
piece. The worker is `gateway serve` in a subprocess; its resident memory is read from
/proc.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from support.deadlines import wait_until
from support.paths import APPS_DIR
from support.processes import GatewayProcess

RESPONSE_BYTES = 64 * 1024
# Requests the client pipelines: 6,000 responses of 64 KiB are 375 MiB, what the worker
# would hold if it answered every one without waiting for the client to read.
REQUESTS = 6000
# Each request carries this much padding, so that the requests themselves fill the
# socket buffers (a few MiB each way on loopback) and the client's sending stops once
# the server stops reading; without it the whole pipeline would fit in the kernel.
PADDING_BYTES = 4096
# A send that makes no progress for this long: the server has stopped reading.
SEND_STALL_S = 2.0
# The whole pipeline goes out well within this on a loaded machine when the server
# reads it all (the broken case); it bounds the test either way.
SEND_DEADLINE_S = 120.0
# What the worker may grow by: one response and the transport's 64 KiB high-water mark,
# the session's one read of pipelined requests (256 KiB), and allocator noise (under
# 1 MiB measured). Far below the hundreds of MiB of one buffered response per request.
RSS_GROWTH_BOUND_BYTES = 16 * 1024 * 1024


def mount_text(static_dir: Path) -> str:
    return f"""
[server]
pythonpath = [{str(APPS_DIR)!r}]
graceful_timeout = 5
keep_alive_timeout = 300
# Far above one read (256 KiB): with httptools a read of many pipelined heads is
# counted as one head until point 2 of issue 13 is fixed, which would close the
# connection before the responses pile up.
max_header_bytes = 4194304

[[mount]]
prefix = "/asgi"
app = "pipeline_apps:asgi_app"
interface = "asgi"

[[mount]]
prefix = "/wsgi"
app = "pipeline_apps:wsgi_app"
interface = "wsgi"
threads = 2

[[mount]]
prefix = "/static"
static = {str(static_dir)!r}
"""


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def pipeline(path: str) -> bytes:
    request = (
        f"GET {path} HTTP/1.1\r\nHost: x\r\nX-Padding: {'p' * PADDING_BYTES}\r\n\r\n"
    ).encode()
    return request * REQUESTS


def send_until_stalled(sock: socket.socket, data: bytes, sent: list[int]) -> None:
    """Send `data`, never reading; stop when a send stalls, the data is out, or the
    deadline passes. `sent` holds the bytes sent so far."""
    sock.settimeout(SEND_STALL_S)
    view = memoryview(data)
    end = time.monotonic() + SEND_DEADLINE_S
    try:
        while sent[0] < len(data) and time.monotonic() < end:
            sent[0] += sock.send(view[sent[0] : sent[0] + 65536])
    except (TimeoutError, OSError):
        pass


@pytest.fixture(scope="module")
def gateways(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[[str], GatewayProcess]]:
    """One `gateway serve` per parser, started when first asked for."""
    directory = tmp_path_factory.mktemp("pipelining")
    static_dir = directory / "static"
    static_dir.mkdir()
    (static_dir / "file.bin").write_bytes(b"s" * RESPONSE_BYTES)
    running: dict[str, GatewayProcess] = {}

    def start(http: str) -> GatewayProcess:
        if http not in running:
            config = directory / f"{http}.toml"
            config.write_text(
                mount_text(static_dir).replace("[server]", f"[server]\nhttp = {http!r}")
            )
            running[http] = GatewayProcess(config, "--workers", "1")
            running[http].wait_for_line("serving on")
        return running[http]

    yield start
    for process in running.values():
        process.stop()


@pytest.mark.parametrize("path", ["/asgi/x", "/wsgi/x", "/static/file.bin"])
@pytest.mark.parametrize("http", ["h11", "httptools"])
def test_a_client_that_never_reads_cannot_grow_the_worker(
    gateways: Callable[[str], GatewayProcess], http: str, path: str
) -> None:
    gateway = gateways(http)
    # Warm up this kind of response (imports, the WSGI threads), then measure from here.
    response = httpx.get(gateway.url + path, timeout=30)
    assert response.status_code == 200 and len(response.content) == RESPONSE_BYTES
    before = rss_bytes(gateway.proc.pid)

    data = pipeline(path)
    sent = [0]
    host, port = gateway.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sender = threading.Thread(target=send_until_stalled, args=(sock, data, sent))
        sender.start()
        sender.join(SEND_DEADLINE_S + SEND_STALL_S + 10)
        assert not sender.is_alive()
        # The worker is done with what it read: another client is served.
        assert httpx.get(gateway.url + path, timeout=30).status_code == 200
        grown = rss_bytes(gateway.proc.pid) - before
        requests_sent = sent[0] // (len(data) // REQUESTS)
        assert grown < RSS_GROWTH_BOUND_BYTES, (grown, requests_sent)
        # The server stopped reading, so the client's sending stalled: flow control,
        # not the kernel's buffers, held the pipeline back.
        assert requests_sent < REQUESTS
    # The worker lets go of the connection, and serves on.
    wait_until(lambda: httpx.get(gateway.url + path, timeout=30).status_code == 200)
