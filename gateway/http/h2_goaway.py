"""HTTP/2's graceful GOAWAY, in the two steps RFC 9113 §6.8 recommends, sans I/O: the
frames a connection that stops sends, and the last stream it still serves.

Rules:
1. Two steps, so that no request already on the wire is lost. The notice is a GOAWAY
   NO_ERROR naming 2^31-1 (the largest stream id) with a PING right behind it: the
   client opens no new stream, and every stream it sent before it read the notice is
   still served. The client's ACK of that PING (RFC 9113 §6.7) comes after all it sent
   before the notice reached it, so the final GOAWAY, sent once the ACK is in, names the
   last stream actually received; any later one is refused (REFUSED_STREAM: not
   processed, so the client may retry it elsewhere, RFC 9113 §8.7). A client that never
   answers gets the final GOAWAY when the connection's bound has passed
   (gateway/server/h2_connection.py).
2. The steps are one lifecycle, GoawayStep, moved only through GOAWAY_STEPS: open, then
   noticed, then final, each once. A connection that closes for idleness goes from open
   to final at once (gateway/server/h2_connection.py, rule "a connection without a
   stream in flight"): no stream is in flight to protect, and a client idle that long
   is not waited on for an ACK.
3. The frames are written here rather than by h2, whose `close_connection` moves its
   state machine to CLOSED and would end the streams still in flight with it.
"""

from __future__ import annotations

import struct
from enum import Enum

from gateway.http.h2_fast_lane import frame_header
from gateway.lifecycle import Transitions

# The largest stream id (RFC 9113 §5.1.1): the notice's last-stream-id, which refuses
# nothing.
MAX_STREAM_ID = 2**31 - 1
# The notice's PING payload (8 octets, RFC 9113 §6.7), which its ACK echoes; any other
# ACK is not the answer to the notice.
NOTICE_PING_DATA = b"shutdown"
_GOAWAY = 0x7  # frame types (RFC 9113 §6.8, §6.7)
_PING = 0x6
_NO_ERROR = 0x0


class GoawayStep(Enum):
    """Where a connection is in its graceful GOAWAY (rule "two steps")."""

    OPEN = "open"  # no GOAWAY sent
    NOTICED = "noticed"  # GOAWAY 2^31-1 and its PING sent; waiting for the ACK
    FINAL = "final"  # GOAWAY naming the last stream served sent


GOAWAY_STEPS = Transitions(
    "HTTP/2 GOAWAY",
    {
        GoawayStep.OPEN: {GoawayStep.NOTICED, GoawayStep.FINAL},
        GoawayStep.NOTICED: {GoawayStep.FINAL},
        GoawayStep.FINAL: (),
    },
)


def goaway_frame(last_stream_id: int) -> bytes:
    """GOAWAY NO_ERROR naming `last_stream_id`, with no debug data (RFC 9113 §6.8)."""
    return frame_header(8, _GOAWAY, 0, 0) + struct.pack(">II", last_stream_id, _NO_ERROR)


class Goaway:
    """One connection's graceful GOAWAY (rule "two steps")."""

    __slots__ = ("last_stream_id", "step")

    def __init__(self) -> None:
        self.step = GoawayStep.OPEN
        # The last stream served: every one until the final GOAWAY names it.
        self.last_stream_id = MAX_STREAM_ID

    def notice(self) -> bytes:
        """The first step: GOAWAY 2^31-1, then the PING whose ACK ends the wait."""
        self.step = GOAWAY_STEPS.move(self.step, GoawayStep.NOTICED)
        return goaway_frame(MAX_STREAM_ID) + frame_header(8, _PING, 0, 0) + NOTICE_PING_DATA

    def final(self, last_stream_id: int) -> bytes:
        """The second step: GOAWAY naming the last stream received; later ones are
        refused from here on (`refuses`)."""
        self.step = GOAWAY_STEPS.move(self.step, GoawayStep.FINAL)
        self.last_stream_id = last_stream_id
        return goaway_frame(last_stream_id)

    def refuses(self, stream_id: int) -> bool:
        return stream_id > self.last_stream_id

    def answers_notice(self, ping_data: bytes | None) -> bool:
        """Whether a PING ACK with `ping_data` is the client's answer to the notice."""
        return self.step is GoawayStep.NOTICED and ping_data == NOTICE_PING_DATA
