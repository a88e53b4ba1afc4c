"""The request corpus (tests/corpus/) sent to a real server, once per HTTP session.

Each file's bytes go out whole on a fresh connection. An error file must be answered
with its status (after 200s for any good requests before the bad one; no traceback),
and the connection closed by the server, while the client keeps its side open; an ok
file's connection is then half-closed, and it gets one final response per request, its
body echoed back. After each file, a normal request on a new connection to the same
server still gets a 200: bad input never takes the worker down. One server per session
serves the whole list.

Beside the corpus, what its files cannot show: an absolute-form target reaching the app
by its path with its host (issue 13, point 4); a bad request pipelined behind a good
one answered, and logged, after it; a large head sent in real segments (point 2).
"""

from __future__ import annotations

import json
import logging
import re
import socket
import threading
from collections.abc import Callable

import pytest
from support.corpus import CORPUS_MAX_HEADER_BYTES, CORPUS_MAX_TARGET_BYTES, Case, load_corpus
from support.deadlines import read_until_closed
from support.servers import Server

CASES = load_corpus()
MOUNTS = f"""
[server]
# The corpus is HTTP/1.1's: its HTTP/2 preface must get HTTP/1.1's answer (a 505).
http2 = false
max_header_bytes = {CORPUS_MAX_HEADER_BYTES}
max_target_bytes = {CORPUS_MAX_TARGET_BYTES}

[[mount]]
prefix = "/"
app = "probe_asgi:app"
interface = "asgi"
"""
DEADLINE_S = 5.0
# Final responses only: a `100 Continue` may precede the answer to an Expect request.
FINAL_STATUS_LINE = re.compile(rb"(?:^|\r\n)HTTP/1\.1 [2-5]\d\d ")
# Any status line, even one right after a body without a line end.
ANY_STATUS_LINE = re.compile(rb"HTTP/1\.1 (\d{3}) ")
HEALTH_CHECK = b"GET /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"

Serve = Callable[[str], Server]


def exchange(server: Server, raw: bytes, half_close: bool = True) -> tuple[bytes, bool]:
    """Send `raw`, half-close unless told not to, read to EOF; the reply and whether the
    server closed."""
    with server.connect() as sock:
        sock.sendall(raw)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        return read_until_closed(sock, DEADLINE_S)


def problems(server: Server, case: Case) -> list[str]:
    # An error must close the connection by itself: the client's EOF must not be what
    # ends it.
    reply, closed = exchange(server, case.raw, half_close=case.status is None)
    found = []
    if b"Traceback" in reply:
        found.append("the reply holds a traceback")
    if not closed:
        found.append(f"the connection was still open after {DEADLINE_S} s")
    if case.status is not None:
        # Good requests pipelined before the bad one are answered first, with 200s.
        statuses = [int(code) for code in ANY_STATUS_LINE.findall(reply)]
        if not reply.startswith(b"HTTP/1.1 ") or statuses[-1:] != [case.status]:
            found.append(f"expected {case.status}, got {reply[:60]!r}")
        elif any(status != 200 for status in statuses[:-1]):
            found.append(f"expected 200s before the {case.status}, got {statuses}")
    else:
        answered = len(FINAL_STATUS_LINE.findall(reply))
        if answered != case.requests:
            found.append(f"expected {case.requests} response(s), got {answered}: {reply!r}")
        if case.body not in reply:  # the probe's "/" and "/echo" echo the body
            found.append(f"the body {case.body!r} was not echoed: {reply!r}")
    health, _ = exchange(server, HEALTH_CHECK)
    if not health.startswith(b"HTTP/1.1 200 "):
        found.append(f"the next request got {health[:60]!r}")
    return [f"{case.name}: {text}" for text in found]


def test_every_request_file_against_a_live_server(serve: Serve) -> None:
    server = serve(MOUNTS)
    failures = [text for case in CASES for text in problems(server, case)]
    assert not failures, "\n".join(failures)


# The default limits (no `max_header_bytes` line): the head sizes of issue 13, point 2.
DEFAULT_LIMIT_MOUNTS = MOUNTS.replace(f"max_header_bytes = {CORPUS_MAX_HEADER_BYTES}\n", "")
# An Ethernet segment's payload (the usual MSS): how a large head crosses a real network.
SEGMENT_BYTES = 1460


def test_absolute_form_reaches_the_app_by_its_path_and_host(serve: Serve) -> None:
    server = serve(MOUNTS)
    request = (
        b"GET http://example.test:8080/scope?q=1 HTTP/1.1\r\n"
        b"Host: other.test\r\nConnection: close\r\n\r\n"
    )
    reply, closed = exchange(server, request, half_close=False)
    assert closed and reply.startswith(b"HTTP/1.1 200 "), reply[:80]
    scope = json.loads(reply.partition(b"\r\n\r\n")[2])
    assert (scope["path"], scope["raw_path"], scope["query_string"]) == ("/scope", "/scope", "q=1")
    assert [value for name, value in scope["headers"] if name == "host"] == ["example.test:8080"]


@pytest.mark.parametrize(
    ("bad", "status"),
    [
        (b"GET /echo HTTP/1.1\r\nHost: x\r\nX-A: \x01\r\n\r\n", 400),
        (b"FOO /echo HTTP/1.1\r\nHost: x\r\n\r\n", 501),
        (b"GET /echo HTTP/1.1\r\nHost: x\r\nX-A: " + b"b" * 4096 + b"\r\n\r\n", 431),
    ],
)
def test_a_bad_request_behind_a_good_one_is_answered_after_it_and_logged(
    serve: Serve, caplog: pytest.LogCaptureFixture, bad: bytes, status: int
) -> None:
    """Both in one write: the good request gets its 200, then the bad one its status
    (RFC 9112 "Pipelining": responses in the order of the requests), and the error log
    says why the connection closed."""
    caplog.set_level(logging.INFO, logger="gateway.error")
    server = serve(MOUNTS)
    good = b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nping"
    reply, closed = exchange(server, good + bad, half_close=False)
    assert closed, "the server must close after the error reply"
    statuses = [int(code) for code in ANY_STATUS_LINE.findall(reply)]
    assert statuses == [200, status], reply
    assert b"ping" in reply
    refused = [r for r in caplog.records if r.name == "gateway.error" and "refused" in r.message]
    assert len(refused) == 1 and f"({status})" in refused[0].message


def test_a_large_head_sent_in_segments_is_served(serve: Serve) -> None:
    """The 9,143-byte cookie head of issue 13, point 2, under the default 16 KiB limit,
    sent in 1,460-byte segments without Nagle's delay (so reads may end anywhere)."""
    server = serve(DEFAULT_LIMIT_MOUNTS)
    start = b"GET /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\nCookie: "
    head = start + b"a" * (9143 - len(start) - 4) + b"\r\n\r\n"
    assert len(head) == 9143
    with server.connect() as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for offset in range(0, len(head), SEGMENT_BYTES):
            sock.sendall(head[offset : offset + SEGMENT_BYTES])
        reply, closed = read_until_closed(sock, DEADLINE_S)
    assert closed and reply.startswith(b"HTTP/1.1 200 "), reply[:80]


def test_many_pipelined_requests_in_one_write_are_all_answered(serve: Serve) -> None:
    """Pipelined GETs in one write, more than one read holds: the server's reads end
    inside heads, and each head is held to the corpus's 2 KiB limit by its own bytes,
    not by the requests before it in the read (issue 13, point 2)."""
    server = serve(MOUNTS)
    # About 300 KiB, more than uvloop's 256 KiB read, so at least one read ends inside
    # a head, wherever the kernel splits the stream.
    count = 2500
    requests = b"".join(
        b"GET /echo?n=%d HTTP/1.1\r\nHost: x\r\nX-Filler: %s\r\n\r\n" % (n, b"f" * 64)
        for n in range(count)
    )
    with server.connect() as sock:
        # Written from a thread while this one reads: a server that holds back while
        # its replies go unread (the write high-water mark) must not stall the test.
        sender = threading.Thread(target=send_then_half_close, args=(sock, requests))
        sender.start()
        reply, closed = read_until_closed(sock, DEADLINE_S * 4)
        sender.join(DEADLINE_S)
    statuses = [int(code) for code in ANY_STATUS_LINE.findall(reply)]
    assert closed and statuses == [200] * count, f"{len(statuses)} replies, last {statuses[-3:]}"


def send_then_half_close(sock: socket.socket, data: bytes) -> None:
    try:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
    except OSError:
        pass  # the server closed early: the reader's assertion says so
