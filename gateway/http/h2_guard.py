"""What one HTTP/2 client may make the gateway do for free, counted frame by frame before
h2 sees a byte, sans I/O (issue 16, point 4).

Several HTTP/2 attacks cost the client a few bytes per frame and the server far more:
a stream opened and reset at once (Rapid Reset, CVE-2023-44487), a header block that
never ends (the CONTINUATION flood, CVE-2024-27316), a SETTINGS or PING flood whose
acknowledgements pile up in our output (CVE-2019-9515, CVE-2019-9512). The guard reads
only the frames' 9-byte heads (RFC 9113 §4.1), so it costs a few integer operations per
frame and sees an abusive frame before h2 buffers or decodes its payload.

Rules:
1. A header block is bounded in bytes on the wire, frame heads included, from its
   HEADERS frame to the CONTINUATION frame with END_HEADERS (RFC 9113 §6.10): past
   `header_block_limit` the connection ends at the frame head that crosses it, before
   its payload has even arrived. h2 alone would buffer 64 CONTINUATION frames of up to
   16 KiB each (1 MiB) before it gave up.
2. Acts the client can repeat at no cost to itself, each answered at a cost to us, are
   counted against a RateBound per connection: streams that end unanswered (the
   client's RST_STREAM frames, and the streams the gateway refused because the client
   was at its concurrency limit), SETTINGS frames and PING frames (each makes us queue
   an acknowledgement, RFC 9113 §6.5.3, §6.7). ACKs from the client cost us nothing and
   are not counted.
3. A RateBound is a leaky bucket: a burst of `burst` acts is allowed at once, then
   `per_s` a second on average. Past it the guard names the abuse, and the session
   ends the connection with GOAWAY ENHANCE_YOUR_CALM (RFC 9113 §7: "the peer is
   exhibiting a behavior that might be generating excessive load").
4. The guard keeps no frame, only counts; it does not check what h2 checks (frame
   sizes, which frame may follow which): a frame it lets through goes to h2 whole.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

# Frame types and flags (RFC 9113 §6).
_HEADERS, _RST_STREAM, _SETTINGS, _PING, _CONTINUATION = 0x1, 0x3, 0x4, 0x6, 0x9
_END_HEADERS, _ACK = 0x4, 0x1
_FRAME_HEAD = 9  # RFC 9113 §4.1
_PREFACE_BYTES = 24  # RFC 9113 §3.4: the client's preface, before its first frame

# Streams that may end unanswered at once (rule "acts the client can repeat"), per
# stream the client may have open (MAX_CONCURRENT_STREAMS): twice as many, so that a
# browser that leaves a page, cancelling every request of it, may do so twice in a row.
# nginx allows twice its concurrent streams of new streams per read; Rust's h2 (hyper,
# granian) keeps 20 client-reset streams pending; Varnish allows 100 resets a minute.
RESET_BURST_PER_STREAM = 2
# ... and this many a second after the burst: ten page loads cancelled a second is
# more than a person clicks; a Rapid Reset client sends tens of thousands.
RESETS_PER_S = 10.0
# SETTINGS frames (not their ACKs): a client sends one with its preface, and rarely
# another; each costs us an ACK. nghttp2 likewise bounds the acknowledgements a peer
# leaves unread (max_outbound_ack) and ends the connection past it.
SETTINGS_BURST = 32
SETTINGS_PER_S = 1.0
# PINGs: a client measures its round trip or keeps a quiet connection open with a few;
# gRPC's BDP probe sends one per burst of DATA. Each costs a 17-byte PING ACK.
PING_BURST = 100
PINGS_PER_S = 10.0


class RateBound:
    """A leaky bucket (rule "a RateBound is a leaky bucket")."""

    __slots__ = ("_burst", "_clock", "_level", "_per_s", "_since")

    def __init__(self, burst: int, per_s: float, clock: Callable[[], float]) -> None:
        self._burst = burst
        self._per_s = per_s
        self._clock = clock
        self._level = 0.0
        self._since = clock()

    def hit(self) -> bool:
        """One more act; True once they come faster than the bound allows."""
        now = self._clock()
        drained = (now - self._since) * self._per_s
        self._level = max(0.0, self._level - drained) + 1.0
        self._since = now
        return self._level > self._burst


@dataclass(frozen=True, slots=True)
class Abuse:
    """Why the client's connection ends (rule "a RateBound is a leaky bucket")."""

    reason: str


class H2Guard:
    """One connection's frame counts, fed the client's bytes as they arrive."""

    __slots__ = (
        "_block",
        "_block_limit",
        "_found",
        "_head",
        "_pings",
        "_preface_left",
        "_resets",
        "_settings",
        "_skip",
    )

    def __init__(
        self,
        header_block_limit: int,
        max_streams: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._block_limit = header_block_limit
        self._preface_left = _PREFACE_BYTES
        self._head = b""  # part of a frame head split between reads
        self._skip = 0  # payload bytes of the last frame still to come
        self._block: int | None = None  # bytes of the header block in progress
        self._resets = RateBound(RESET_BURST_PER_STREAM * max_streams, RESETS_PER_S, clock)
        self._settings = RateBound(SETTINGS_BURST, SETTINGS_PER_S, clock)
        self._pings = RateBound(PING_BURST, PINGS_PER_S, clock)
        self._found: Abuse | None = None  # once found, the connection's end

    def scan(self, data: bytes) -> Abuse | None:
        """Count the frames in `data`: the abuse they amount to, if any, and from then
        on, whatever comes."""
        if self._found is None:
            self._found = self._scan(data)
        return self._found

    def _scan(self, data: bytes) -> Abuse | None:
        pos, end = 0, len(data)
        if self._preface_left:
            pos = min(self._preface_left, end)
            self._preface_left -= pos
        while pos < end:
            if self._skip:
                step = min(self._skip, end - pos)
                self._skip -= step
                pos += step
                continue
            if self._head or end - pos < _FRAME_HEAD:
                take = _FRAME_HEAD - len(self._head)
                self._head += data[pos : pos + take]
                pos += take
                if len(self._head) < _FRAME_HEAD:
                    return None
                head, self._head = self._head, b""
            else:
                head = data[pos : pos + _FRAME_HEAD]
                pos += _FRAME_HEAD
            length = int.from_bytes(head[:3], "big")
            self._skip = length
            abuse = self._frame(length, head[3], head[4])
            if abuse is not None:
                return abuse
        return None

    def _frame(self, length: int, kind: int, flags: int) -> Abuse | None:
        if self._block is not None or kind == _HEADERS:
            return self._header_block(length, kind, flags)
        if kind == _RST_STREAM:
            return self._count(self._resets, "streams reset")
        if kind == _SETTINGS and not flags & _ACK:
            return self._count(self._settings, "SETTINGS frames")
        if kind == _PING and not flags & _ACK:
            return self._count(self._pings, "PING frames")
        return None

    def _header_block(self, length: int, kind: int, flags: int) -> Abuse | None:
        """Rule "a header block is bounded in bytes"."""
        if kind == _HEADERS:
            self._block = 0
        elif kind != _CONTINUATION or self._block is None:
            self._block = None  # a frame h2 will refuse (RFC 9113 §6.10): its error
            return self._frame(length, kind, flags)
        size = self._block + _FRAME_HEAD + length
        if size > self._block_limit:
            return Abuse(f"a header block over {self._block_limit} bytes")
        self._block = None if flags & _END_HEADERS else size
        return None

    def stream_refused(self) -> None:
        """The gateway refused a stream (the client was at its limit): it counts as a
        stream ended unanswered (rule "acts the client can repeat"), and the abuse, if
        it is one, ends the connection at the next read."""
        if self._found is None and self._resets.hit():
            self._found = self._abuse("streams refused or reset")

    def _count(self, bound: RateBound, what: str) -> Abuse | None:
        return self._abuse(what) if bound.hit() else None

    @staticmethod
    def _abuse(what: str) -> Abuse:
        return Abuse(f"{what} faster than the gateway's bound")
