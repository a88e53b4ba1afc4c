"""How a connection ends when its peer does not cooperate: in stages after an error reply,
and at once when the client stops reading.

Any connection type uses these (HTTP/1.1, and HTTP/2 after its final GOAWAY): they need
a transport and the loop, nothing of the protocol.

Rules:
1. Closing in stages. After an error reply while the client may still be sending (a
   rejected head, a 408, a body over its limit left unread), the reply is flushed, the
   write side half-closed, and what the client still sends is read and discarded until
   it closes, for LINGER_TIME_S and LINGER_MAX_BYTES at most; then the connection
   closes (RFC 9112 "Tearing Down Connections"). Closing at once would make the kernel
   reset the connection over unread bytes, and the client lose the reply.
2. TLS has no half-close: a close_notify ends both directions. There the TLS transport's
   own close is the lingering close: it flushes the reply, sends close_notify and reads
   on, discarding, until the peer's close_notify or TLS_SHUTDOWN_TIMEOUT_S
   (gateway/server/tls.py).
3. A client that reads nothing is found by what it has not taken: the transport's write
   buffer and the socket's unacknowledged bytes. A stall is no new low of that figure
   for `send_timeout`, so a slow but steady reader is never taken for a stalled one.
"""

from __future__ import annotations

import asyncio
import fcntl
import struct
import sys
import termios

# Lingering close (rule "closing in stages"). After an error reply the connection reads
# and discards what the client still sends for at most this long: enough for a client
# that sends its whole request before reading to finish an upload of a few MiB over a
# 10 Mbit/s uplink (1.25 MB/s), and for the bytes in flight on any link to arrive; past
# it the client has been told (the reply and our FIN went out first). nginx holds up to
# 30 s (lingering_time); a shorter bound frees the socket sooner from a client that
# neither reads nor closes, and equals header_timeout's default, the time we already
# give a slow client.
LINGER_TIME_S = 10.0
# ... and at most this many bytes: four times the 4 MiB upload of the report, which
# already meets a 1 MiB limit, and cheap to discard (a copy from the kernel, no
# parsing). A client that goes on sending past it is flooding, not finishing an upload;
# closing then may reset it, which is all a flood deserves.
LINGER_MAX_BYTES = 16 * 1024 * 1024


class LingeringClose:
    """One connection's close in stages (rule "closing in stages"), once begun."""

    __slots__ = ("_bytes_left", "_timer", "_transport")

    def __init__(
        self,
        transport: asyncio.Transport,
        loop: asyncio.AbstractEventLoop,
        time_s: float = LINGER_TIME_S,
    ) -> None:
        self._transport = transport
        self._bytes_left = LINGER_MAX_BYTES
        transport.write_eof()  # sent once the buffered reply has gone out
        transport.resume_reading()
        self._timer = loop.call_later(time_s, self.end)

    def discard(self, data: bytes) -> None:
        """Bytes the client still sent: dropped, and counted against LINGER_MAX_BYTES."""
        self._bytes_left -= len(data)
        if self._bytes_left < 0:
            self.end()

    def end(self) -> None:
        self._transport.close()

    def cancel(self) -> None:
        """The connection is gone: the timer has nothing left to close."""
        self._timer.cancel()


def begin_lingering_close(
    transport: asyncio.Transport, loop: asyncio.AbstractEventLoop, time_s: float = LINGER_TIME_S
) -> LingeringClose | None:
    """Close in stages where the transport can half-close, reading on for `time_s` at
    most; else its own close, which on TLS lingers by itself (rule "TLS has no
    half-close"), and None."""
    if not transport.can_write_eof():
        transport.close()
        return None
    return LingeringClose(transport, loop, time_s)


class SendStall:
    """Whether a client whose connection's writing is paused still reads (rule "a client
    that reads nothing")."""

    __slots__ = ("_low", "_since")

    def __init__(self) -> None:
        self._low = 0
        self._since = 0.0

    def paused(self) -> None:
        """Writing paused: the next check records the first low."""
        self._low = sys.maxsize

    def stalled(self, transport: asyncio.Transport, now: float, timeout_s: float) -> bool:
        """No new low of the bytes not taken for `timeout_s`."""
        not_taken = bytes_not_taken(transport)
        if not_taken < self._low:
            self._low, self._since = not_taken, now
        return now - self._since >= timeout_s


def bytes_not_taken(transport: asyncio.Transport) -> int:
    """What the client has not taken yet: the transport's write buffer and, where the
    kernel tells (SIOCOUTQ, which Linux spells TIOCOUTQ), the socket's unacknowledged
    bytes, so that any read by the client shows. The transport's buffer alone moves only
    once the socket is writable again, after the client has read a third of a send
    buffer that grows to MiBs: a slow but steady reader would look stalled."""
    buffered = transport.get_write_buffer_size()
    sock = transport.get_extra_info("socket")
    if sock is None:
        return buffered
    try:
        queued = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, bytes(4))
    except (OSError, ValueError):  # not a TCP socket, or a kernel that does not say
        return buffered
    return buffered + int(struct.unpack("i", queued)[0])
