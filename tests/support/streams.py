"""An in-memory stream: the cycles' seam (gateway/server/stream.py) without a socket.

As httpcore's `MockBackend` stands in for the network under its connection pool,
MemoryStream stands in for the connection under an ASGI cycle, so the cycles are unit
tested (DESIGN §6: no sockets, no processes). Rules:
1. It frames nothing: it records what the cycle hands it (heads, body parts, error
   replies, tunnel bytes) as data the test reads directly.
2. Writing pauses only when the test says so (`pause_writing`); `drain` then waits until
   `resume_writing`, or raises ClientDisconnected once the test calls `lose`, as a
   connection's does.
3. Waits are on conditions with a deadline (`settle`), never on a bare sleep.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from gateway.errors import AppProtocolError, ClientDisconnected
from gateway.http.response import interim_head

# How long a test waits for a cycle to reach a condition: generous for a loaded
# machine, and still a quick failure when the condition never comes.
SETTLE_DEADLINE_S = 5.0
DEFAULT_FIELDS = [(b"server", b"gateway")]


@dataclass
class Head:
    """A response head as the cycle handed it to the stream."""

    status: int
    headers: list[tuple[bytes, bytes]]


@dataclass
class MemoryStream:
    """A Stream and a TunnelStream in memory (rule 1)."""

    upgraded: bytes = b""  # what followed the head of an upgrade request
    heads: list[Head] = field(default_factory=list)
    body: bytearray = field(default_factory=bytearray)
    body_parts: int = 0
    ended: bool = False  # the last body part came
    errors: list[int] = field(default_factory=list)  # statuses of error replies sent
    written: bytearray = field(default_factory=bytearray)  # tunnel bytes
    continues: int = 0
    consumed: int = 0  # `body_consumed` calls
    reading_paused: bool = False
    closed: bool = False  # the connection has gone (`lose`)
    closing: bool = False  # the cycle closed the stream
    aborted: bool = False
    cycle_ended: bool = False
    # A check run on every head before it counts as sent: raising AppProtocolError
    # there is a head the session refuses to frame (rule 1 of gateway/http/response.py).
    check_head: Callable[[int, list[tuple[bytes, bytes]]], None] | None = None
    _paused: bool = False
    _drain_waiter: asyncio.Future[None] | None = None

    # -- Stream ----------------------------------------------------------------------

    @property
    def writing_paused(self) -> bool:
        return self._paused or self.closed

    async def drain(self) -> None:
        while self._paused and not self.closed:
            self._drain_waiter = asyncio.get_running_loop().create_future()
            await self._drain_waiter
        if self.closed:
            raise ClientDisconnected("client went away")

    def send_head(
        self, status: int, headers: Iterable[tuple[bytes, bytes]], body: bytes, more_body: bool
    ) -> None:
        fields = list(headers)
        if self.check_head is not None:
            self.check_head(status, fields)
        if self.heads or self.errors:
            raise AssertionError("a second response head on one stream")
        self.heads.append(Head(status, fields))
        self.send_body(body, more_body)

    def send_body(self, body: bytes, more_body: bool) -> None:
        if self.ended:
            raise AssertionError("body after the end of the response")
        self.body += body
        self.body_parts += 1
        self.ended = not more_body

    def send_error(self, status: int, headers: Iterable[tuple[bytes, bytes]] = ()) -> int:
        if self.heads:
            return 0  # a response has begun: nothing can replace it
        self.errors.append(status)
        return len(b"%d" % status)  # the size of the reply's body, as the cycle records it

    def send_continue(self) -> None:
        self.continues += 1

    def body_consumed(self) -> None:
        self.consumed += 1

    def close(self) -> None:
        self.closing = True

    def end_cycle(self) -> None:
        self.cycle_ended = True

    # -- TunnelStream ----------------------------------------------------------------

    def default_headers(self) -> list[tuple[bytes, bytes]]:
        return list(DEFAULT_FIELDS)

    def switch_protocols(self, fields: list[tuple[bytes, bytes]]) -> int:
        """The 101, as an HTTP/1.1 connection frames it."""
        self.write(interim_head(101, fields, self.default_headers()))
        return 101

    def take_upgraded(self) -> bytes:
        data, self.upgraded = self.upgraded, b""
        return data

    def write(self, data: bytes) -> None:
        self.written += data

    def pause_reading(self) -> None:
        self.reading_paused = True

    def resume_reading(self) -> None:
        self.reading_paused = False

    def abort(self) -> None:
        self.aborted = True
        self.closing = True

    # -- the test's side (rule 2) ----------------------------------------------------

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        self._wake()

    def lose(self) -> None:
        """The client has gone: a waiting `drain` raises."""
        self.closed = True
        self._wake()

    def take_written(self) -> bytes:
        data = bytes(self.written)
        self.written.clear()
        return data

    def _wake(self) -> None:
        waiter, self._drain_waiter = self._drain_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


def refuse_fields(status: int, headers: list[tuple[bytes, bytes]]) -> None:
    """A `check_head` that refuses what the HTTP/1.1 session refuses: fields that are
    not bytes."""
    for name, value in headers:
        if not isinstance(name, bytes) or not isinstance(value, bytes):
            raise AppProtocolError("response header names and values must be bytes")


async def settle(condition: Callable[[], bool], deadline_s: float = SETTLE_DEADLINE_S) -> None:
    """Let the loop run until `condition` holds; fail after `deadline_s` (rule 3)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline_s
    while not condition():
        if loop.time() > end:
            raise AssertionError(f"condition not reached in {deadline_s} s")
        await asyncio.sleep(0)  # one loop turn: lets the cycle's task run
