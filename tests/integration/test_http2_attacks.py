"""HTTP/2 limits and attacks over real sockets, each with a raw client on h2 (issue 16,
point 4): MAX_CONCURRENT_STREAMS, the WSGI queue counting streams, header list size,
the CONTINUATION flood, Rapid Reset (with the worker's CPU measured, `gateway serve` as
a subprocess), SETTINGS and PING floods, a zero window held forever, a client that
reads nothing (cut after send_timeout; reading held past MAX_UNREAD_OUTPUT_BYTES), the
handshake's and the idle connection's timeouts.

The apps are tests/apps/limits_app.py (requests held at a gate the test opens) and
tests/apps/worker_probe.py. Floods are bounded in frames; every wait has a deadline.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import socket
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import h2.errors
import h2.events
import httpx
import hyperframe.frame
import pytest
from support.deadlines import CLIENT_TIMEOUT_S, read_until_closed, settled, wait_until
from support.h2_clients import Frames, RawH2, frames, goaway_codes, goaways, rapid_reset
from support.mount_files import LIMITS_MOUNTS
from support.processes import GatewayProcess, mount_file
from support.servers import Server, requests_in_flight

from gateway.adapters.wsgi import HIGH_WATER_BYTES
from gateway.http.first_bytes import PREFACE
from gateway.http.h2_guard import (
    PING_BURST,
    RESET_BURST_PER_STREAM,
    RESETS_PER_S,
    SETTINGS_BURST,
)
from gateway.http.h2_session import HARD_BOUND_FACTOR, MAX_CONCURRENT_STREAMS
from gateway.server.h2_connection import MAX_UNREAD_OUTPUT_BYTES

Serve = Callable[[str], Server]
CALM = h2.errors.ErrorCodes.ENHANCE_YOUR_CALM
SETTINGS_CAME = h2.events.RemoteSettingsChanged
TIMEOUT_S = 1.0  # send_timeout, header_timeout or keep_alive_timeout, where a test sets one
# A bound is met between itself and itself plus one sweep (half the bound): allow that,
# and a margin for a busy machine.
LATE_S = 1.5
MAX_HEADER_BYTES = 8 * 1024
# How long a stream's head may wait unread before the test takes it as held: a server
# that reads it starts its stream within milliseconds, even on a busy machine.
HELD_S = 2.0
linux_only = pytest.mark.skipif(sys.platform != "linux", reason="reads Linux's /proc")
# Frames a flood sends at most: far past every bound here, and a few MiB at most.
FLOOD_FRAMES = 100_000
# Worker CPU time a Rapid Reset of FLOOD_FRAMES / 2 streams may cost: the streams served
# before its bound (RESET_BURST_PER_STREAM x MAX_CONCURRENT_STREAMS at most) take about
# 10 ms here, a hundred times less; a worker without the bound spends seconds on all of
# them (some 50 us of CPU per stream at least).
ATTACK_CPU_BOUND_S = 1.0


def config(*settings: str) -> str:
    return "\n".join(
        ["[server]", f"max_header_bytes = {MAX_HEADER_BYTES}", *settings, LIMITS_MOUNTS]
    )


@pytest.fixture
def server(serve: Serve) -> Server:
    return serve(config())


def limits() -> Any:
    """The limits_app module the server imported (the same object: one process)."""
    return importlib.import_module("limits_app")


def still_served(server: Server | GatewayProcess, path: str = "/asgi/") -> None:
    """Another client on another connection gets its answer."""
    url = f"http://127.0.0.1:{server.port}{path}"
    with httpx.Client(http1=False, http2=True, timeout=CLIENT_TIMEOUT_S) as client:
        assert client.get(url).status_code == 200


# -- concurrency ----------------------------------------------------------------------


@pytest.fixture
def held(server: Server) -> Iterator[tuple[RawH2, Any]]:
    """A connection with MAX_CONCURRENT_STREAMS streams (1, 3, ...) held at a gate;
    the gate opens at the end whatever happened."""
    name = uuid.uuid4().hex
    gate = limits().gate(name)
    client = RawH2(server.port)
    try:
        client.read_until(lambda events: any(isinstance(e, SETTINGS_CAME) for e in events))
        for n in range(MAX_CONCURRENT_STREAMS):
            client.get(1 + 2 * n, f"/asgi/hold/{name}")
        wait_until(lambda: gate.waiting == MAX_CONCURRENT_STREAMS)
        client.ignore_stream_limit()
        yield client, gate
    finally:
        gate.open()
        client.sock.close()


def test_a_stream_past_max_concurrent_streams_is_refused_and_the_rest_go_on(
    held: tuple[RawH2, Any],
) -> None:
    client, gate = held
    over = 1 + 2 * MAX_CONCURRENT_STREAMS
    client.get(over, "/asgi/")
    client.read_until(lambda events: client.reset_code(over) is not None)
    assert client.reset_code(over) == h2.errors.ErrorCodes.REFUSED_STREAM
    assert gate.arrived == MAX_CONCURRENT_STREAMS  # the refused one never reached the app
    gate.open()
    client.read_until(
        lambda events: all(client.ended(1 + 2 * n) for n in range(MAX_CONCURRENT_STREAMS))
    )
    assert {client.status(1 + 2 * n) for n in range(MAX_CONCURRENT_STREAMS)} == {b"200"}
    client.get(over + 2, "/asgi/")  # the connection is as good as new
    client.read_until(lambda events: client.ended(over + 2))
    assert client.status(over + 2) == b"200"


def test_a_reset_stream_keeps_its_place_until_its_app_returns(
    server: Server, held: tuple[RawH2, Any]
) -> None:
    """Resetting streams buys no more apps running at once (Rapid Reset's lever)."""
    client, gate = held
    for n in range(MAX_CONCURRENT_STREAMS):
        client.conn.reset_stream(1 + 2 * n)
    over = 1 + 2 * MAX_CONCURRENT_STREAMS
    client.get(over, "/asgi/")
    client.read_until(lambda events: client.reset_code(over) is not None)
    assert client.reset_code(over) == h2.errors.ErrorCodes.REFUSED_STREAM
    gate.open()  # the apps return: their places are free again
    wait_until(lambda: requests_in_flight(server) == 0)
    client.get(over + 2, "/asgi/")
    client.read_until(lambda events: client.ended(over + 2))
    assert client.status(over + 2) == b"200"


def test_the_wsgi_queue_counts_streams(server: Server) -> None:
    """threads = 2 and max_queue = 2: four streams of one connection in the mount, the
    rest refused at once with a 503, and the refused never reach the app."""
    name = uuid.uuid4().hex
    gate = limits().gate(name)
    client = RawH2(server.port)
    streams = [1 + 2 * n for n in range(8)]
    with client.sock:
        for stream in streams:
            client.get(stream, f"/wsgi/hold/{name}")
        client.read_until(lambda events: sum(client.ended(s) for s in streams) == 4)
        refused = [s for s in streams if client.ended(s)]
        assert {client.status(s) for s in refused} == {b"503"}
        wait_until(lambda: gate.waiting == 2)
        assert gate.arrived == 2  # two in the threads, two in the queue
        gate.open()
        client.read_until(lambda events: all(client.ended(s) for s in streams))
    assert sorted(client.status(s) for s in streams) == [b"200"] * 4 + [b"503"] * 4


# -- header list size -----------------------------------------------------------------


def test_fields_over_max_header_bytes_get_431_and_the_connection_goes_on(server: Server) -> None:
    client = RawH2(server.port)
    with client.sock:
        client.get(1, "/asgi/", x_big="v" * (MAX_HEADER_BYTES + 1))
        client.get(3, "/asgi/")
        client.read_until(lambda events: client.ended(1) and client.ended(3))
    assert (client.status(1), client.status(3)) == (b"431", b"200")


def test_a_continuation_flood_is_cut_off_long_before_h2s_own_bound(server: Server) -> None:
    """HEADERS without END_HEADERS, then CONTINUATION frames (CVE-2024-27316): h2 alone
    would take 64 full frames (1 MiB); the connection ends after a few."""
    client = RawH2(server.port)
    piece = 16 * 1024
    crossing = HARD_BOUND_FACTOR * MAX_HEADER_BYTES // piece + 2  # far fewer than h2's 64
    wire = hyperframe.frame.HeadersFrame(1, data=b"\x00" * piece).serialize()
    wire += hyperframe.frame.ContinuationFrame(1, data=b"\x00" * piece).serialize() * crossing
    with client.sock:
        flood(client, wire, batch_bytes=9 + piece)  # only the guard can end this one
    still_served(server)


# -- floods ---------------------------------------------------------------------------


def flood(client: RawH2, wire: bytes, batch_bytes: int = 64 * 1024) -> Frames:
    """Send `wire` in batches, reading nothing, until the server ends the connection
    or all of it went; the server must have ended it with ENHANCE_YOUR_CALM. What the
    server sent, as frames."""
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # ended meanwhile
        for start in range(0, len(wire), batch_bytes):
            client.sock.sendall(wire[start : start + batch_bytes])
            if calmed_down(client.sock):
                break
    received, closed = read_until_closed(client.sock, CLIENT_TIMEOUT_S)
    sent = frames(received)
    assert closed and goaway_codes(sent) == [CALM], goaway_codes(sent)
    return sent


def calmed_down(sock: socket.socket) -> bool:
    """Whether the server's GOAWAY ENHANCE_YOUR_CALM has come: a peek, reading nothing."""
    try:
        waiting = sock.recv(1 << 22, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except BlockingIOError:
        return False
    return CALM in goaway_codes(frames(waiting))


def test_a_ping_flood_ends_with_enhance_your_calm(server: Server) -> None:
    client = RawH2(server.port)
    ping = hyperframe.frame.PingFrame(0)
    ping.opaque_data = b"flooding"
    with client.sock:
        sent = flood(client, ping.serialize() * FLOOD_FRAMES)
    acks = [f for f in sent if isinstance(f, hyperframe.frame.PingFrame)]
    assert len(acks) <= PING_BURST + 1  # our output grew by the bound, no more
    still_served(server)


def test_a_settings_flood_ends_with_enhance_your_calm(server: Server) -> None:
    client = RawH2(server.port)
    settings = hyperframe.frame.SettingsFrame(0, settings={0x4: 65535}).serialize()
    with client.sock:
        sent = flood(client, settings * FLOOD_FRAMES)
    acks = [f for f in sent if isinstance(f, hyperframe.frame.SettingsFrame) and "ACK" in f.flags]
    assert len(acks) <= SETTINGS_BURST + 1  # our output grew by the bound, no more
    still_served(server)


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of process `pid` so far, from the kernel (proc(5))."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_rapid_reset_ends_with_enhance_your_calm_and_bounded_cpu(tmp_path: Path) -> None:
    """Streams opened and reset at once (CVE-2023-44487), by the thousand: the worker
    ends the connection after its burst, spends little CPU on it, and serves others.
    Its access log (stdout) counts the streams it served: the burst, not the flood."""
    server = GatewayProcess(mount_file(tmp_path / "gateway.toml"))
    try:
        server.wait_for_line("serving on")
        still_served(server, "/pid")
        client = RawH2(server.port)
        attack = rapid_reset(1, FLOOD_FRAMES // 2, "/pid")
        before = cpu_seconds(server.proc.pid)
        with client.sock:
            flood(client, attack, batch_bytes=2048)  # small reads: some streams are served
        spent = cpu_seconds(server.proc.pid) - before
        assert spent < ATTACK_CPU_BOUND_S, spent
        still_served(server, "/pid")
    finally:
        server.stop()
    served = sum("/pid" in line for line in server.stdout) - 2  # less still_served's
    # At most the burst, and what the bucket drained during the attack, which ends
    # within the client's deadline; a read that crosses the bound is not served at all.
    burst = RESET_BURST_PER_STREAM * MAX_CONCURRENT_STREAMS
    assert served <= burst + RESETS_PER_S * CLIENT_TIMEOUT_S, served


# -- slow and stuck clients -----------------------------------------------------------


@pytest.mark.parametrize("interface", ["asgi", "wsgi"])
def test_a_zero_window_held_forever_resets_the_stream_after_send_timeout(
    serve: Serve, interface: str
) -> None:
    """An ASGI app's send, and a WSGI thread's write, wait on the window, and the wait
    is bounded by send_timeout."""
    server = serve(config(f"send_timeout = {TIMEOUT_S}"))
    client = RawH2(server.port, window=0)  # no stream may receive a byte until we say so
    with client.sock:
        client.get(1, f"/{interface}/stream")  # 64 MiB, from an app that counts what it sent
        started = time.monotonic()
        client.read_until(lambda events: client.reset_code(1) is not None)
        assert client.reset_code(1) == h2.errors.ErrorCodes.CANCEL
        assert time.monotonic() - started < TIMEOUT_S + LATE_S
        # Its first piece never went out: the ASGI send waited; the WSGI thread waited
        # once its channel held HIGH_WATER_BYTES (adapters/wsgi.py)...
        held = 0 if interface == "asgi" else HIGH_WATER_BYTES // len(limits().STREAM_PIECE) + 1
        assert limits().streamed[interface] <= held
        wait_until(lambda: requests_in_flight(server) == 0)  # ...and the wait ended: done
        client.get(3, "/asgi/")  # the connection goes on
        client.conn.increment_flow_control_window(1024, 3)
        client.flush()
        client.read_until(lambda events: client.ended(3))
    assert client.status(3) == b"200"


def test_a_client_that_reads_nothing_is_cut_after_send_timeout(
    serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    server = serve(config(f"send_timeout = {TIMEOUT_S}"))
    client = RawH2(server.port, window=2**31 - 1)
    with caplog.at_level(logging.INFO, logger="gateway.error"), client.sock:
        client.conn.increment_flow_control_window(2**31 - 1 - 65535)  # the connection's
        client.get(1, "/asgi/stream")  # 64 MiB; the client reads none of it
        wait_until(lambda: "read nothing" in caplog.text, TIMEOUT_S + LATE_S + CLIENT_TIMEOUT_S)
        _, closed = read_until_closed(client.sock, CLIENT_TIMEOUT_S)
    assert closed
    assert limits().streamed["asgi"] < limits().STREAM_PIECES  # the app's send was cut
    still_served(server)


def unread_by_server(server_port: int, client_port: int) -> int:
    """Bytes of our connection that the server's kernel holds and the server has not
    read: its socket's rx_queue, from the kernel (proc(5), /proc/net/tcp)."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote = (int(address.split(":")[1], 16) for address in fields[1:3])
        if (local, remote) == (server_port, client_port):
            return int(fields[4].split(":")[1], 16)
    return 0


def reaches(read: Callable[[], int], value: int, deadline_s: float) -> bool:
    """Whether `read()` comes to `value` before the deadline (polled, as wait_until)."""
    end = time.monotonic() + deadline_s
    while read() != value:
        if time.monotonic() > end:
            return False
        time.sleep(0.01)
    return True


@linux_only
def test_reading_pauses_while_much_waits_for_a_client_that_reads_nothing(server: Server) -> None:
    """Streams whose bodies the client does not read: past MAX_UNREAD_OUTPUT_BYTES what
    it sends next waits in the kernel, unread, instead of adding to our output."""
    client = RawH2(server.port, window=2**31 - 1)
    port = client.sock.getsockname()[1]
    piece = len(limits().STREAM_PIECE)
    with client.sock:
        client.conn.increment_flow_control_window(2**31 - 1 - 65535)  # the connection's
        client.get(1, "/asgi/stream")  # 64 MiB: it fills the kernel's buffers, then waits
        wait_until(lambda: limits().streamed["asgi"] > 0)
        settled(lambda: limits().streamed["asgi"])  # writing is paused
        streams = 2 * MAX_UNREAD_OUTPUT_BYTES // piece  # each writes 64 KiB, then waits
        for n in range(1, streams):  # one read each, so that a hold shows between them
            client.get(1 + 2 * n, "/asgi/stream")
            if not reaches(lambda: requests_in_flight(server), n + 1, HELD_S):
                break
        started = requests_in_flight(server)
        # Reading stopped once the bound was past (as many streams started as its worth
        # of first pieces), and what came after waits in the kernel.
        assert MAX_UNREAD_OUTPUT_BYTES // piece <= started < streams
        assert unread_by_server(server.port, port) > 0


def test_a_preface_without_settings_is_closed_after_header_timeout(serve: Serve) -> None:
    server = serve(config(f"header_timeout = {TIMEOUT_S}", "keep_alive_timeout = 60"))
    with server.connect() as sock:
        sock.sendall(PREFACE)  # and no SETTINGS frame
        started = time.monotonic()
        _, closed = read_until_closed(sock, CLIENT_TIMEOUT_S)
        assert closed and time.monotonic() - started < TIMEOUT_S + LATE_S


def test_part_of_a_preface_is_closed_after_header_timeout(serve: Serve) -> None:
    server = serve(config(f"header_timeout = {TIMEOUT_S}", "keep_alive_timeout = 60"))
    with server.connect() as sock:
        sock.sendall(PREFACE[:10])
        started = time.monotonic()
        _, closed = read_until_closed(sock, CLIENT_TIMEOUT_S)
        assert closed and time.monotonic() - started < TIMEOUT_S + LATE_S


def test_an_idle_connection_gets_goaway_then_closes_after_keep_alive_timeout(
    serve: Serve,
) -> None:
    server = serve(config(f"keep_alive_timeout = {TIMEOUT_S}"))
    client = RawH2(server.port)
    with client.sock:
        client.get(1, "/asgi/")
        client.read_until(lambda events: client.ended(1))
        started = time.monotonic()
        received, closed = read_until_closed(client.sock, CLIENT_TIMEOUT_S)
        assert closed and time.monotonic() - started < TIMEOUT_S + LATE_S
    assert goaways(frames(received)) == [(1, 0)]
