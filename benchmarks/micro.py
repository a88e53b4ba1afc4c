"""The gateway's own Python work per request, in-process: for A/B runs of a hot-path change.

wrk runs on a shared VM move by ±10% from one run to the next, more than most changes to
the hot path are worth. This tool leaves the kernel out: it drives HTTPConnection (the
real session, router, cycle and app) over 64 in-memory connections whose transport only
counts writes, feeds each a request, lets the loop run until every response is written,
and repeats. It prints the best of `--reps` repetitions in microseconds per request,
which moves by about ±2% between runs. It is no replacement for `run.py`: no peer, no
syscalls, no backpressure. The `h2-` cases do the same over HTTP/2: each connection
opens with an h2 client's preface (handed to H2Connection as a real one is), then gets
H2_STREAMS requests a round, each a HEADERS frame built by that client, as h2load's
`-m 10` sends them. Rules:
1. Only the gateway's own parts are measured; nothing here stands in for them.
2. A repetition ends when every connection has written every response (each response
   is one write on this path; over HTTP/2, every stream's cycle has ended, and the loop
   turn after it has written what its streams sent), so no request is left out of the
   time.
3. Run it twice from two source trees to compare them (PYTHONPATH picks the tree):

   PYTHONPATH=/tmp/before python benchmarks/micro.py asgi-hello
   PYTHONPATH=. python benchmarks/micro.py asgi-hello
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import time
from pathlib import Path
from typing import Any

import h2.config
import h2.connection
import h2.settings
import uvloop

from gateway.adapters.wsgi import WSGIAdapter
from gateway.asgi import ASGIApp
from gateway.config.server_table import ServerConfig
from gateway.routing.router import Mount, Router
from gateway.server.connection import HTTPConnection
from gateway.server.shared import WorkerShared

sys.path.insert(0, str(Path(__file__).parent / "apps"))  # the cases' apps, imported below

CONNECTIONS = 64
H2_STREAMS = 10  # concurrent streams per HTTP/2 connection, as the run.py h2- cases
CASES = ("asgi-hello", "fastapi-json", "wsgi-hello", "flask-json", "mixed")
H2_CASES = ("h2-asgi-hello", "h2-fastapi-json")
MAX_WINDOW = 2**31 - 1  # RFC 9113 §6.9.1: the client never holds a response back
MAX_BODY_BYTES = 1 << 20
REQUEST = b"GET %s HTTP/1.1\r\nHost: 127.0.0.1:8000\r\nUser-Agent: micro\r\n\r\n"


class CountingTransport:
    """Takes the bytes a connection writes and counts the writes (rule "a repetition
    ends")."""

    def __init__(self, keep: bool = False) -> None:
        self.writes = 0
        self._closing = False
        self.protocol: Any = None  # the H2Connection an HTTP/2 preface handed it to
        self.kept: list[bytes] | None = [] if keep else None  # for the h2 cases' check

    def write(self, data: bytes) -> None:
        self.writes += 1
        if self.kept is not None:
            self.kept.append(data)

    def set_protocol(self, protocol: Any) -> None:
        self.protocol = protocol

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        addresses = {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 8000)}
        return addresses.get(name, default)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        self._closing = True


def load_case(case: str) -> tuple[list[Mount], bytes]:
    """The mounts and the request path of a case (the run.py cases' apps)."""
    if case == "mixed":  # configs/mixed.toml: FastAPI at /api beside two WSGI mounts
        import bench_fastapi
        import bench_flask
        import bench_wsgi

        mounts = [
            Mount("/api", bench_fastapi.app, MAX_BODY_BYTES, "asgi"),
            Mount("/flask", WSGIAdapter(bench_flask.app, 10, "/flask"), MAX_BODY_BYTES, "wsgi"),
            Mount("/", WSGIAdapter(bench_wsgi.hello, 10, "/"), MAX_BODY_BYTES, "wsgi"),
        ]
        return mounts, b"/api/json"
    app, interface, path = _load_app(case)
    return [Mount("/", app, MAX_BODY_BYTES, interface)], path


def _load_app(case: str) -> tuple[ASGIApp, str, bytes]:
    if case == "asgi-hello":
        import bench_asgi

        return bench_asgi.hello, "asgi", b"/"
    if case == "fastapi-json":
        import bench_fastapi

        return bench_fastapi.app, "asgi", b"/json"
    if case == "wsgi-hello":
        import bench_wsgi

        return WSGIAdapter(bench_wsgi.hello, 10, "/"), "wsgi", b"/"
    if case == "flask-json":
        import bench_flask

        return WSGIAdapter(bench_flask.app, 10, "/"), "wsgi", b"/json"
    raise SystemExit(f"unknown case {case!r}: {', '.join(CASES)}")


async def measure(case: str, http: str, reps: int, rounds: int) -> float:
    """The best repetition's time per request, in seconds."""
    mounts, path = load_case(case)
    router = Router(mounts)
    state = WorkerShared(router, ServerConfig(access_log=False, http=http))
    transports = []
    for _ in range(CONNECTIONS):
        transport = CountingTransport()
        HTTPConnection(state).connection_made(transport)  # type: ignore[arg-type]
        transports.append(transport)
    connections = [conn for conn in state.connections if isinstance(conn, HTTPConnection)]
    request = REQUEST % path
    gc.freeze()  # as a worker does after startup
    written = 0
    best = float("inf")
    for _ in range(reps):
        started = time.perf_counter()
        for _ in range(rounds):
            for conn in connections:
                conn.data_received(request)
            written += CONNECTIONS
            while sum(t.writes for t in transports) < written:
                await asyncio.sleep(0)
        best = min(best, (time.perf_counter() - started) / (rounds * CONNECTIONS))
    return best


class H2Client:
    """An h2 client's bytes for one connection: its preface, then a HEADERS frame per
    request. After the first request HPACK refers to every field by index, so later
    frames differ only in their stream id: they are built ahead, out of the time."""

    def __init__(self, path: bytes) -> None:
        self._h2 = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        self._h2.initiate_connection()
        self._h2.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: MAX_WINDOW})
        self._h2.increment_flow_control_window(MAX_WINDOW - 65535)
        self._headers = [(b":method", b"GET"), (b":scheme", b"http"), (b":path", path),
                         (b":authority", b"127.0.0.1:8000"), (b"user-agent", b"micro")]  # fmt: skip
        self._h2.send_headers(1, self._headers, end_stream=True)
        self.opening = self._h2.data_to_send()  # preface, SETTINGS, WINDOW_UPDATE, stream 1
        self._h2.send_headers(3, self._headers, end_stream=True)
        # A 9-byte frame header, then the block: a template, never sent itself.
        self._indexed = self._h2.data_to_send()
        self.next_stream = 5

    def requests(self, count: int) -> bytes:
        """`count` requests on the streams after the last ones, in one read."""
        frames = []
        for _ in range(count):
            frames.append(self._indexed[:5] + self.next_stream.to_bytes(4) + self._indexed[9:])
            self.next_stream += 2
        return b"".join(frames)


def streams_ended(data: bytes) -> int:
    """How many streams the server's bytes end: its DATA and HEADERS frames with
    END_STREAM (RFC 9113 §4.1, §6.1, §6.2), read from their 9-byte frame headers (the
    client's h2 state does not know the streams built ahead)."""
    ended, at = 0, 0
    while at + 9 <= len(data):
        length = int.from_bytes(data[at : at + 3])
        kind, flags = data[at + 3], data[at + 4]
        if kind in (0x0, 0x1) and flags & 0x1:
            ended += 1
        at += 9 + length
    return ended


async def measure_h2(case: str, reps: int, rounds: int) -> float:
    """The best repetition's time per request over HTTP/2, in seconds."""
    mounts, path = load_case(case.removeprefix("h2-"))
    state = WorkerShared(Router(mounts), ServerConfig(access_log=False))
    clients = [H2Client(path) for _ in range(CONNECTIONS)]
    transports = [CountingTransport(keep=i == 0) for i in range(CONNECTIONS)]
    for client, transport in zip(clients, transports, strict=True):
        conn = HTTPConnection(state)
        conn.connection_made(transport)  # type: ignore[arg-type]
        conn.data_received(client.opening)  # the preface hands it to an H2Connection
    connections = [transport.protocol for transport in transports]
    batches = [[client.requests(H2_STREAMS) for _ in range(rounds * reps)] for client in clients]
    while state.in_flight:  # stream 1, in the opening
        await asyncio.sleep(0)
    gc.freeze()  # as a worker does after startup
    best = float("inf")
    for rep in range(reps):
        started = time.perf_counter()
        for round_ in range(rep * rounds, (rep + 1) * rounds):
            for conn, batch in zip(connections, batches, strict=True):
                conn.data_received(batch[round_])
            while state.in_flight:
                await asyncio.sleep(0)
            # The streams' sends are written once per loop turn (h2_connection.py,
            # `flush_soon`): the last turn's go out in the next (rule "a repetition ends").
            await asyncio.sleep(0)
        best = min(best, (time.perf_counter() - started) / (rounds * CONNECTIONS * H2_STREAMS))
    kept = transports[0].kept
    assert kept is not None
    ended = streams_ended(b"".join(kept))
    if ended != 1 + reps * rounds * H2_STREAMS:  # rule "a repetition ends"
        raise SystemExit(f"{case}: {ended} responses ended, not every request's")
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("case", choices=CASES + H2_CASES)
    parser.add_argument("--http", default="httptools", help="the [server] http setting")
    parser.add_argument("--reps", type=int, default=7, help="repetitions; the best counts")
    parser.add_argument("--rounds", type=int, default=300, help="requests per connection")
    args = parser.parse_args()
    if args.case in H2_CASES:
        best = uvloop.run(measure_h2(args.case, args.reps, args.rounds))
        label = f"{args.case} ({H2_STREAMS} streams per connection)"
    else:
        best = uvloop.run(measure(args.case, args.http, args.reps, args.rounds))
        label = f"{args.case} (http={args.http})"
    print(f"{label}: {best * 1e6:.2f} us per request, best of {args.reps}")


if __name__ == "__main__":
    main()
