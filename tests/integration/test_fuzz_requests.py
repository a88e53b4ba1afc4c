"""Mutated requests against a live server, once per HTTP session (hypothesis).

Each example takes a valid request (or a pipelined pair), mutates its bytes (flips,
insertions of bytes that matter to HTTP, deletions, a line duplicated, a random field
added), cuts it into pieces sent one by one, then half-closes. Three things must hold:
1. The server answers with a well-formed HTTP/1.1 status line (status 1xx-5xx) and a
   complete head, or closes without a word; never a traceback.
2. It never hangs: the connection ends within DEADLINE_S of the client's EOF.
3. The worker lives: a normal request on a new connection gets a 200 after each example.

Bounded for CI (FUZZ_EXAMPLES examples, derandomized, no example database, so a run is
reproducible). A longer, random run: GATEWAY_FUZZ_EXAMPLES=100000 (see README, Fuzzing).
"""

from __future__ import annotations

import itertools
import os
import re
import socket
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.deadlines import read_until_closed
from support.servers import Server

MOUNTS = """
[server]
max_header_bytes = 4096
max_target_bytes = 1024

[[mount]]
prefix = "/"
app = "fuzz_echo:asgi_app"
interface = "asgi"

[[mount]]
prefix = "/wsgi"
app = "fuzz_echo:wsgi_app"
interface = "wsgi"
threads = 2
"""
# Examples per session in CI: enough to reach each mutation on each seed, and well under
# a minute for both sessions together (a few milliseconds an example).
FUZZ_EXAMPLES = 200
LONG_RUN = "GATEWAY_FUZZ_EXAMPLES"
# Far above any answer's time on 127.0.0.1; a server slower than this is stuck.
DEADLINE_S = 5.0
MAX_MUTATIONS = 4
MAX_PIECES = 5
STATUS_LINE = re.compile(rb"HTTP/1\.1 [1-5]\d\d [^\r\n]*\r\n")
HEALTH_CHECK = b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"

SEEDS = [
    b"GET /echo?q=1 HTTP/1.1\r\nHost: x\r\nUser-Agent: fuzz\r\nAccept: */*\r\n\r\n",
    b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 11\r\n"
    b"\r\nhello world",
    b"POST /wsgi/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5;a=b\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n",
    b"GET /wsgi/ HTTP/1.0\r\n\r\n",
    b"HEAD /echo HTTP/1.1\r\nHost: x\r\n\r\nGET /wsgi/a HTTP/1.1\r\nHost: x\r\n\r\n",
    b"PUT /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc",
]
# Bytes that mean something to an HTTP/1.1 parser, inserted more often than random ones.
TOKENS = [
    b"\r", b"\n", b"\r\n", b" ", b"\t", b"\x00", b"\x7f", b"\xff", b":", b";", b",",
    b'"', b"0", b"f" * 17, b"-1", b"chunked", b"Content-Length: 5\r\n",
    b"Transfer-Encoding: chunked\r\n", b"Host: y\r\n", b"HTTP/1.1", b"\r\n\r\n",
]  # fmt: skip


@dataclass(frozen=True)
class Flip:
    at: int
    xor: int

    def apply(self, raw: bytearray) -> None:
        if raw:
            raw[self.at % len(raw)] ^= self.xor


@dataclass(frozen=True)
class Insert:
    at: int
    data: bytes

    def apply(self, raw: bytearray) -> None:
        at = self.at % (len(raw) + 1)
        raw[at:at] = self.data


@dataclass(frozen=True)
class Delete:
    at: int
    size: int

    def apply(self, raw: bytearray) -> None:
        at = self.at % (len(raw) + 1)
        del raw[at : at + self.size]


@dataclass(frozen=True)
class DuplicateLine:
    line: int

    def apply(self, raw: bytearray) -> None:
        lines = bytes(raw).split(b"\r\n")
        at = self.line % len(lines)
        lines.insert(at, lines[at])
        raw[:] = b"\r\n".join(lines)


@dataclass(frozen=True)
class AddField:
    name: bytes
    value: bytes

    def apply(self, raw: bytearray) -> None:
        at = raw.find(b"\r\n") + 2 if b"\r\n" in raw else 0
        raw[at:at] = self.name + b": " + self.value + b"\r\n"


positions = st.integers(min_value=0, max_value=4096)
some_bytes = st.sampled_from(TOKENS) | st.binary(min_size=1, max_size=8)
mutations = st.one_of(
    st.builds(Flip, positions, st.integers(min_value=1, max_value=255)),
    st.builds(Insert, positions, some_bytes),
    st.builds(Delete, positions, st.integers(min_value=1, max_value=16)),
    st.builds(DuplicateLine, positions),
    st.builds(
        AddField, st.binary(max_size=12) | st.just(b"Content-Length"), st.binary(max_size=24)
    ),
)


@st.composite
def mutated_requests(draw: st.DrawFn) -> list[bytes]:
    """A seed request, mutated, cut into the pieces it is sent in."""
    raw = bytearray(draw(st.sampled_from(SEEDS)))
    for mutation in draw(st.lists(mutations, max_size=MAX_MUTATIONS)):
        mutation.apply(raw)
    cuts = draw(st.lists(st.integers(min_value=1, max_value=max(1, len(raw))), max_size=MAX_PIECES))
    edges = [0, *sorted(set(cuts)), len(raw)]
    return [bytes(raw[a:b]) for a, b in itertools.pairwise(edges) if b > a]


def exchange(server: Server, pieces: list[bytes]) -> tuple[bytes, bool]:
    """Send the pieces, half-close, read to EOF; the reply and whether it ended in time."""
    with server.connect() as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            for piece in pieces:
                sock.sendall(piece)
            sock.shutdown(socket.SHUT_WR)
        except OSError:  # the server answered and closed before all was sent
            pass
        return read_until_closed(sock, DEADLINE_S)


def examples() -> int:
    return int(os.environ.get(LONG_RUN, FUZZ_EXAMPLES))


@pytest.fixture
def fuzz_server(serve: Callable[[str], Server]) -> Server:
    return serve(MOUNTS)  # one server for all of a session's examples


@settings(
    max_examples=examples(),
    derandomize=LONG_RUN not in os.environ,
    database=None,
    deadline=None,  # timing is held by DEADLINE_S, on the server's side
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(pieces=mutated_requests())
def test_mutated_requests_are_answered_or_closed(fuzz_server: Server, pieces: list[bytes]) -> None:
    reply, ended = exchange(fuzz_server, pieces)
    assert ended, f"no answer and no close within {DEADLINE_S} s"
    assert b"Traceback" not in reply
    if reply:
        assert STATUS_LINE.match(reply), f"not an HTTP/1.1 status line: {reply[:80]!r}"
        assert b"\r\n\r\n" in reply, f"an incomplete head: {reply[:200]!r}"
    health, _ = exchange(fuzz_server, [HEALTH_CHECK])
    assert health.startswith(b"HTTP/1.1 200 "), f"the next request got {health[:80]!r}"
