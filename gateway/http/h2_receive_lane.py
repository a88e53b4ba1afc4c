"""The receive side's fast lane, sans I/O: a read that holds nothing but whole HEADERS
frames opening new client streams, as a client's burst of plain requests does, is split
here and each frame handed straight to h2's own HEADERS handler, past its frame buffer,
its dispatch and its trace log (which formats every frame, logged or not). The mirror
of gateway/http/h2_fast_lane.py on the sending side.

Rules:
1. h2's state moves only by h2's own code: each frame goes to its HEADERS handler, which
   decodes the block and drives the connection's and the stream's state machines,
   opens the stream (with its checks of concurrency and ids) and records what flow
   control needs, as `receive_data` would; what it queues to send is queued as there,
   and a protocol error ends the connection as there (GOAWAY with the error's code).
2. Anything unusual goes to `receive_data` whole, and the lane touches nothing first: a
   frame of another type, a flag other than END_HEADERS and END_STREAM (padding,
   priority, a block that a CONTINUATION goes on, RFC 9113 §6.2), a frame cut short or
   over the frame size the server advertised (§4.2), a stream id that is even, has the
   reserved bit set or is not above the last one the client opened (§5.1.1), bytes h2
   holds from an earlier read (the preface, part of a frame, an open header block), or
   a connection that is closed.
"""

from __future__ import annotations

import h2.connection
import h2.events
import h2.exceptions
from hyperframe.frame import HeadersFrame

HEADERS = 0x1  # RFC 9113 §6.2 frame type
END_STREAM = 0x1
END_HEADERS = 0x4
_FLAG_NAMES = {
    END_HEADERS: ("END_HEADERS",),
    END_HEADERS | END_STREAM: ("END_HEADERS", "END_STREAM"),
}
_FRAME_HEADER = 9  # RFC 9113 §4.1
_MAX_STREAM_ID = 2**31 - 1


def plain_headers_frames(
    data: bytes, max_frame_size: int, last_stream_id: int
) -> list[tuple[int, bytes, int]] | None:
    """(stream id, header block, flags) of each frame in `data` if it holds only whole
    HEADERS frames the lane takes (rule "anything unusual"), else None."""
    frames: list[tuple[int, bytes, int]] = []
    offset, size = 0, len(data)
    while offset < size:
        if size - offset < _FRAME_HEADER:
            return None
        length = int.from_bytes(data[offset : offset + 3], "big")
        kind, flags = data[offset + 3], data[offset + 4]
        stream_id = int.from_bytes(data[offset + 5 : offset + 9], "big")
        end = offset + _FRAME_HEADER + length
        if (
            kind != HEADERS
            or flags not in _FLAG_NAMES
            or length > max_frame_size
            or end > size
            or not stream_id & 1
            or not last_stream_id < stream_id <= _MAX_STREAM_ID
        ):
            return None
        frames.append((stream_id, data[offset + _FRAME_HEADER : end], flags))
        last_stream_id, offset = stream_id, end
    return frames or None


def receive_headers(conn: h2.connection.H2Connection, data: bytes) -> list[h2.events.Event] | None:
    """The events of `data` as `conn.receive_data` gives them, or None, with nothing
    done, if the lane does not take it (rule "anything unusual")."""
    buffer = conn.incoming_buffer
    if (
        buffer._preamble_len
        or buffer._data
        or buffer._headers_buffer
        or conn.state_machine.state is h2.connection.ConnectionState.CLOSED
    ):
        return None
    frames = plain_headers_frames(data, conn.max_inbound_frame_size, conn.highest_inbound_stream_id)
    if frames is None:
        return None
    events: list[h2.events.Event] = []
    try:
        for stream_id, block, flags in frames:
            frame = HeadersFrame(stream_id, block, flags=_FLAG_NAMES[flags])
            to_send, frame_events = conn._receive_headers_frame(frame)
            conn._prepare_for_sending(to_send)
            events.extend(frame_events)
    except h2.exceptions.ProtocolError as exc:  # rule "h2's state moves only by h2's own"
        conn._terminate_connection(exc.error_code)
        raise
    return events
