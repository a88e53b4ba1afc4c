"""What one WebSocket connection may make a worker hold (issue 13, point 1).

`ws_max_message_bytes` bounds one message; these tests bound a connection. A raw client
writes and never reads, to the `/deaf` route of tests/apps/ws_apps.py, whose app accepts
and never calls `receive` again. Each flood is of frames that are cheap on the wire and
were dear in the worker: pings whose pongs the client never reads, empty messages, and
one message in 2-byte fragments. The worker's RSS (one worker: the `gateway serve`
process itself) must stay within a bound far below what the flood would cost unbounded.
"""

from __future__ import annotations

import select
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.paths import APPS_DIR
from support.processes import GatewayProcess
from support.ws_clients import CONTINUATION, MIB, PING, TEXT, UPGRADE_FIELDS, client_frame

# How much one flood writes at most, and for how long: enough that an unbounded server
# grows by well over GROWTH_LIMIT_BYTES (pongs cost their size, an empty message some
# 40 times its 6 bytes, a 2-byte fragment about 8 times its 8), few enough to stay
# gentle on a shared machine when the server is bounded and the flood stalls at once.
FLOOD_CAP_BYTES = {"pings": 96 * MIB, "empty messages": 8 * MIB, "2-byte fragments": 16 * MIB}
FLOOD_DEADLINE_S = 60.0
# The client stops once the server has taken nothing for this long: it stopped reading.
# Generous, so that a busy machine's scheduling delay is not mistaken for it.
STALL_S = 3.0
# What the worker may grow by for one such connection: the inbox's mark (64 KiB), one
# read, a few MiB of reassembled message and the allocator's slack; an unbounded
# server passes it within the first few MiB of each flood.
GROWTH_LIMIT_BYTES = 48 * MIB
BLOCK_BYTES = 64 * 1024  # what the client writes per call


def pings() -> bytes:
    return client_frame(PING, b"p" * 125) * (BLOCK_BYTES // 131)


def empty_messages() -> bytes:
    return client_frame(TEXT, b"") * (BLOCK_BYTES // 6)


def two_byte_fragments() -> bytes:
    return client_frame(CONTINUATION, b"ab", fin=False) * (BLOCK_BYTES // 8)


FLOODS = {
    "pings": (b"", pings),
    "empty messages": (b"", empty_messages),
    "2-byte fragments": (client_frame(TEXT, b"ab", fin=False), two_byte_fragments),
}


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[GatewayProcess]:
    config = tmp_path / "gateway.toml"
    config.write_text(f"""
[server]
pythonpath = [{str(APPS_DIR)!r}]
graceful_timeout = 2
ws_ping_interval = 0

[[mount]]
prefix = "/ws"
app = "ws_apps:app"
interface = "asgi"
""")
    process = GatewayProcess(config)
    process.wait_for_line("serving on")
    yield process
    process.stop()


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def open_deaf_websocket(gateway: GatewayProcess) -> socket.socket:
    """A client socket, its handshake accepted, with a small receive buffer that the
    server's replies fill at once (set before connecting, so the kernel keeps it)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(10)
    sock.connect(("127.0.0.1", int(gateway.url.rsplit(":", 1)[1])))
    sock.sendall(b"GET /ws/deaf HTTP/1.1\r\n" + UPGRADE_FIELDS + b"\r\n")
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        assert chunk, head
        head += chunk
    assert head.startswith(b"HTTP/1.1 101 "), head
    return sock


def flood(sock: socket.socket, first: bytes, block: bytes, cap: int, pid: int) -> int:
    """Write `first`, then `block` again and again, never reading, until `cap` bytes,
    the deadline, or a stall; the worker's highest RSS seen meanwhile."""
    sock.sendall(first)
    sock.setblocking(False)
    sent, peak = 0, rss_bytes(pid)
    deadline, last_progress = time.monotonic() + FLOOD_DEADLINE_S, time.monotonic()
    pending = memoryview(b"")
    while sent < cap and time.monotonic() < deadline:
        if not pending:
            pending = memoryview(block)
        try:
            written = sock.send(pending)
        except BlockingIOError:
            if time.monotonic() - last_progress > STALL_S:
                break  # the server reads no more
            select.select([], [sock], [], 0.5)
            peak = max(peak, rss_bytes(pid))
            continue
        pending, sent, last_progress = pending[written:], sent + written, time.monotonic()
    return max(peak, rss_bytes(pid))


@pytest.mark.parametrize("kind", list(FLOODS))
def test_a_client_that_writes_and_never_reads_cannot_grow_the_worker(
    gateway: GatewayProcess, kind: str
) -> None:
    pid = gateway.proc.pid
    sock = open_deaf_websocket(gateway)
    try:
        before = rss_bytes(pid)
        first, make_block = FLOODS[kind]
        peak = flood(sock, first, make_block(), FLOOD_CAP_BYTES[kind], pid)
    finally:
        sock.close()
    growth = peak - before
    assert growth < GROWTH_LIMIT_BYTES, f"{kind}: the worker grew by {growth / MIB:.0f} MiB"
