"""Every wait a test makes has a deadline: the deadlines, and the waits that keep them.

Rules:
1. No bare sleep as synchronisation: `wait_until` polls a condition and fails the test
   once its deadline passes, so a broken server fails in seconds and never hangs the suite.
2. The deadlines are far above any healthy answer here: only a hung server reaches them,
   and a slow shared machine does not make a test flaky.
3. A socket read ends at the peer's close or at its deadline, whichever comes first.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

# What a test client waits for one answer: far above any response here, so only a hung
# server reaches it.
CLIENT_TIMEOUT_S = 10.0
# What a test waits for a server (a thread or a process) to be ready, or to stop.
START_DEADLINE_S = 30.0


def wait_until(condition: Callable[[], bool], deadline_s: float = START_DEADLINE_S) -> None:
    """Poll a condition until it holds; fail the test once the deadline passes."""
    end = time.monotonic() + deadline_s
    while not condition():
        if time.monotonic() > end:
            raise AssertionError("condition not met before the deadline")
        time.sleep(0.01)


def read_response(sock: socket.socket, deadline_s: float = 10.0) -> bytes:
    """Read until the peer closes (or the deadline passes); for raw-socket tests."""
    sock.settimeout(deadline_s)
    chunks = []
    try:
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    except TimeoutError:
        pass
    return b"".join(chunks)


def receive(sock: socket.socket, deadline: float) -> bytes | None:
    """One read, waiting until `deadline` (time.monotonic()) at most: what came, b"" once
    the peer closed or reset the connection, None if nothing came in time."""
    sock.settimeout(max(deadline - time.monotonic(), 0.01))
    try:
        return sock.recv(65536)
    except TimeoutError:
        return None
    except ConnectionResetError:
        return b""


def read_until_closed(sock: socket.socket, deadline_s: float = 10.0) -> tuple[bytes, bool]:
    """Read until the peer closes or resets, or the deadline passes: what came, and
    whether the peer ended the connection in time (a server that hangs says False)."""
    chunks: list[bytes] = []
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        chunk = receive(sock, end)
        if chunk is None:
            break
        if not chunk:
            return b"".join(chunks), True
        chunks.append(chunk)
    return b"".join(chunks), False


def settled(read: Callable[[], int], quiet_s: float = 0.5, deadline_s: float = 10.0) -> int:
    """`read()` once it has not changed for `quiet_s`; fail if it never settles."""
    end = time.monotonic() + deadline_s
    value, since = read(), time.monotonic()
    while time.monotonic() - since < quiet_s:
        assert time.monotonic() < end, f"still changing at the deadline: {value}"
        time.sleep(0.05)
        if (now := read()) != value:
            value, since = now, time.monotonic()
    return value
