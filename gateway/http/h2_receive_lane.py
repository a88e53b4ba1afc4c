"""The receive side's fast lane, sans I/O: a read that holds nothing but whole HEADERS
frames opening new client streams, as a client's burst of plain requests does, opens
those streams here, past h2's frame buffer, its frame objects, its events and the
count of open streams it takes by walking every stream, per frame. The mirror of
gateway/http/h2_fast_lane.py on the sending side; built on h2's internals (h2 is
pinned below 5 in pyproject.toml).

Rules:
1. h2's state is kept exact: each block is decoded by the connection's own HPACK
   decoder, through h2's own translation of its errors, and each stream is h2's own
   H2Stream, registered as h2 registers it and left in the very state, with the very
   fields, that h2's HEADERS handler leaves it (the stream's state machine moved as its
   transition table says, the Content-Length it expects, cookies joined as h2 joins
   them). Only moves that h2's tables say change nothing but the state are made
   directly; anything else (an informational status in a request, which h2 refuses)
   goes through h2's own stream code. A protocol error ends the connection as h2 ends
   it (GOAWAY with the error's code).
2. Anything unusual goes to `receive_data` whole, and the lane touches nothing first: a
   frame of another type, a flag other than END_HEADERS and END_STREAM (padding,
   priority, a block that a CONTINUATION goes on, RFC 9113 §6.2), a frame cut short or
   over the frame size the server advertised (§4.2), a stream id that is even, has the
   reserved bit set or is not above the last one the client opened (§5.1.1), bytes h2
   holds from an earlier read (the preface, part of a frame, an open header block), a
   connection that is not open, or more streams than `max_streams` with those h2 still
   holds. h2's own way then counts the streams against its bound, and drops the closed
   ones it held, so what a connection holds of closed streams stays bounded.
"""

from __future__ import annotations

import h2.connection
import h2.exceptions
import h2.stream
import h2.utilities

HEADERS = 0x1  # RFC 9113 §6.2 frame type
END_STREAM = 0x1
END_HEADERS = 0x4
_LANE_FLAGS = frozenset({END_HEADERS, END_HEADERS | END_STREAM})
_FRAME_HEADER = 9  # RFC 9113 §4.1
_MAX_STREAM_ID = 2**31 - 1
_SERVER_OPEN = h2.connection.ConnectionState.SERVER_OPEN
# The connection's states a request's HEADERS frame leaves SERVER_OPEN (h2's table,
# checked at import): before the first request, and after.
_RECEIVING = frozenset({h2.connection.ConnectionState.IDLE, _SERVER_OPEN})
_IDLE = h2.stream.StreamState.IDLE
_OPEN = h2.stream.StreamState.OPEN
_HALF_CLOSED_REMOTE = h2.stream.StreamState.HALF_CLOSED_REMOTE
# h2 joins a request's cookie fields into one (RFC 9113 §8.2.3), with these flags.
_REQUEST_FLAGS = h2.utilities.HeaderValidationFlags(
    is_client=False, is_trailer=False, is_response_header=False, is_push_promise=False
)

Field = tuple[bytes, bytes]
# A stream the lane opened: its id, its request's fields, and whether END_STREAM came.
OpenedStream = tuple[int, list[Field], bool]


def _check_h2_tables() -> None:
    """The moves the lane makes directly are the ones h2's tables make with no side
    effect but the state (rule "h2's state is kept exact"); a later h2 that changes them
    fails here, at import, not on a request."""
    moves = h2.connection.H2ConnectionStateMachine._transitions
    received = {moves[(state, h2.connection.ConnectionInputs.RECV_HEADERS)] for state in _RECEIVING}
    stream_moves = h2.stream._transitions
    opened = stream_moves[(_IDLE, h2.stream.StreamInputs.RECV_HEADERS)]
    ended = stream_moves[(_OPEN, h2.stream.StreamInputs.RECV_END_STREAM)]
    if (
        received != {(None, _SERVER_OPEN)}
        or opened[1] is not _OPEN
        or ended[1] is not _HALF_CLOSED_REMOTE
    ):
        raise ImportError("h2's state tables are not the ones gateway's lanes were built on")


_check_h2_tables()


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
            or flags not in _LANE_FLAGS
            or length > max_frame_size
            or end > size
            or not stream_id & 1
            or not last_stream_id < stream_id <= _MAX_STREAM_ID
        ):
            return None
        frames.append((stream_id, data[offset + _FRAME_HEADER : end], flags))
        last_stream_id, offset = stream_id, end
    return frames or None


def open_streams(
    conn: h2.connection.H2Connection, data: bytes, max_streams: int
) -> list[OpenedStream] | None:
    """The streams `data` opens, each opened in `conn` as its `receive_data` would open
    it, or None, with nothing done, if the lane does not take it (rule "anything
    unusual")."""
    buffer = conn.incoming_buffer
    if (
        buffer._preamble_len
        or buffer._data
        or buffer._headers_buffer
        or conn.state_machine.state not in _RECEIVING
    ):
        return None
    frames = plain_headers_frames(data, conn.max_inbound_frame_size, conn.highest_inbound_stream_id)
    if frames is None or len(conn.streams) + len(frames) > max_streams:
        return None
    # Settings change only by a SETTINGS frame, which no read the lane takes holds.
    windows = (conn.local_settings.initial_window_size, conn.remote_settings.initial_window_size)
    try:
        # The class the connection makes its streams of (gateway/http/h2_session.py's
        # does not count DATA against Content-Length), as h2's own way would make them.
        stream_class = getattr(conn, "stream_class", h2.stream.H2Stream)
        return [_open(conn, frame, windows, stream_class) for frame in frames]
    except h2.exceptions.ProtocolError as exc:  # rule "h2's state is kept exact"
        conn._terminate_connection(exc.error_code)
        raise


def _open(
    conn: h2.connection.H2Connection,
    frame: tuple[int, bytes, int],
    windows: tuple[int, int],
    stream_class: type[h2.stream.H2Stream],
) -> OpenedStream:
    """One stream, in h2's order: the block decoded, the stream registered, its state
    moved, its Content-Length read (rule "h2's state is kept exact"); `windows` are the
    stream's initial receive and send windows."""
    stream_id, block, flags = frame
    ended = bool(flags & END_STREAM)
    fields: list[Field] = h2.connection._decode_headers(conn.decoder, block)  # type: ignore[assignment]
    stream = stream_class(
        stream_id,
        config=conn.config,
        inbound_window_size=windows[0],
        outbound_window_size=windows[1],
    )
    conn.state_machine.state = _SERVER_OPEN
    stream.max_outbound_frame_size = conn.max_outbound_frame_size
    conn.streams[stream_id] = stream
    conn.highest_inbound_stream_id = stream_id
    rare = _has_rare_field(fields)
    if rare and h2.utilities.is_informational_response(fields):
        stream.receive_headers(fields, ended, None)  # h2 refuses it, its own way
    machine = stream.state_machine
    machine.client = False  # what h2's request_received records
    machine.headers_received = True
    machine.state = _HALF_CLOSED_REMOTE if ended else _OPEN
    stream._initialize_content_length(fields)
    if rare and any(name == b"cookie" for name, _ in fields):
        fields = list(h2.utilities.normalize_inbound_headers(fields, _REQUEST_FLAGS))
    return stream_id, fields, ended


def _has_rare_field(fields: list[Field]) -> bool:
    """A field whose name makes h2 treat the request apart: a status (which no request
    carries) or a cookie (whose crumbs h2 joins); most requests have neither."""
    for name, _ in fields:  # noqa: SIM110 (a plain loop: no generator per request)
        if name == b"cookie" or name == b":status":
            return True
    return False
