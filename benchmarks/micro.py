"""The gateway's own Python work per request, in-process: for A/B runs of a hot-path change.

wrk runs on a shared VM move by ±10% from one run to the next, more than most changes to
the hot path are worth. This tool leaves the kernel out: it drives HTTPConnection (the
real session, router, cycle and app) over 64 in-memory connections whose transport only
counts writes, feeds each a request, lets the loop run until every response is written,
and repeats. It prints the best of `--reps` repetitions in microseconds per request,
which moves by about ±2% between runs. It is no replacement for `run.py`: no peer, no
syscalls, no backpressure. Rules:
1. Only the gateway's own parts are measured; nothing here stands in for them.
2. A repetition ends when every connection has written every response (each response
   is one write on this path), so no request is left out of the time.
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

import uvloop

from gateway.adapters.wsgi import WSGIAdapter
from gateway.asgi import ASGIApp
from gateway.config.server_table import ServerConfig
from gateway.routing.router import Mount, Router
from gateway.server.connection import HTTPConnection
from gateway.server.shared import WorkerShared

sys.path.insert(0, str(Path(__file__).parent / "apps"))  # the cases' apps, imported below

CONNECTIONS = 64
CASES = ("asgi-hello", "fastapi-json", "wsgi-hello", "flask-json", "mixed")
MAX_BODY_BYTES = 1 << 20
REQUEST = b"GET %s HTTP/1.1\r\nHost: 127.0.0.1:8000\r\nUser-Agent: micro\r\n\r\n"


class CountingTransport:
    """Takes the bytes a connection writes and counts the writes (rule "a repetition
    ends")."""

    def __init__(self) -> None:
        self.writes = 0
        self._closing = False

    def write(self, data: bytes) -> None:
        self.writes += 1

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("case", choices=CASES)
    parser.add_argument("--http", default="httptools", help="the [server] http setting")
    parser.add_argument("--reps", type=int, default=7, help="repetitions; the best counts")
    parser.add_argument("--rounds", type=int, default=300, help="requests per connection")
    args = parser.parse_args()
    best = uvloop.run(measure(args.case, args.http, args.reps, args.rounds))
    print(f"{args.case} (http={args.http}): {best * 1e6:.2f} us per request, best of {args.reps}")


if __name__ == "__main__":
    main()
