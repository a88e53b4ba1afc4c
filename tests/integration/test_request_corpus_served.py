"""The request corpus (tests/corpus/) sent to a real server, once per HTTP session.

Each file's bytes go out whole on a fresh connection. An error file must be answered
with its status (no traceback) and the connection closed by the server, while the
client keeps its side open; an ok file's connection is then half-closed, and it gets
one final response per request, its body echoed back. After each file, a normal request
on a new connection to the same server still gets a 200: bad input never takes the
worker down. One server per session serves the whole list.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Callable

from conftest import Server, read_until_closed
from corpus import CORPUS_MAX_HEADER_BYTES, CORPUS_MAX_TARGET_BYTES, Case, load_corpus

CASES = load_corpus()
MOUNTS = f"""
[server]
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
        if not reply.startswith(b"HTTP/1.1 %d " % case.status):
            found.append(f"expected {case.status}, got {reply[:60]!r}")
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
