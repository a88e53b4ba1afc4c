"""The common complete response framed in one step, past h2's per-frame objects: a
HEADERS frame and, if there is a body, one DATA frame that ends the stream. Only
gateway/http/h2_session.py calls it, and it is built on h2's internals (h2 is pinned
below 5 in pyproject.toml).

Rules:
1. h2's state is kept exact: the connection's and the stream's state machines take the
   very inputs h2's own `send_headers` and `send_data` give them, in their order, and
   the send windows shrink by the body's size as h2 shrinks them. Only the frame
   objects, their serialisation, and h2's logging and header normalisation (off on the
   session's connection) are skipped. The head is encoded by the session's
   LiteralEncoder, which no table depends on, so a block left unsent costs nothing.
2. The lane is taken only where h2 would frame the response as the lane does: the
   stream open or half closed by the client, no head sent on it yet, a final status
   (RFC 9110 §15: 200 or more), a header block that fits one frame and a body that fits
   one frame and both send windows (RFC 9113 §4.2, §6.9). Otherwise `frame_response`
   frames nothing, changes nothing, and says so; the session then takes h2's way.
3. A response without a body ends the stream on its HEADERS frame (RFC 9113 §8.1).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

import h2.connection
import h2.stream

from gateway.http.hpack_codec import LiteralEncoder

Field = tuple[bytes, bytes]
# RFC 9113 §6.1, §6.2: frame types and flags.
_DATA, _HEADERS = 0x0, 0x1
_END_STREAM, _END_HEADERS = 0x1, 0x4
_OPEN_STATES = frozenset({h2.stream.StreamState.OPEN, h2.stream.StreamState.HALF_CLOSED_REMOTE})
_FIRST_FINAL_STATUS = 200
_SERVER_OPEN = h2.connection.ConnectionState.SERVER_OPEN
_HALF_CLOSED_REMOTE = h2.stream.StreamState.HALF_CLOSED_REMOTE
_CLOSED = h2.stream.StreamState.CLOSED
# A frame header as three big-endian fields: length and type in one, flags, stream id.
_FRAME_HEADER = struct.Struct(">IBI")


def frame_header(length: int, kind: int, flags: int, stream_id: int) -> bytes:
    """RFC 9113 §4.1: 24-bit length, type, flags, then R (0) and the 31-bit stream id."""
    return _FRAME_HEADER.pack(length << 8 | kind, flags, stream_id)


def frame_response(
    conn: h2.connection.H2Connection,
    stream_id: int,
    status: int,
    fields: Sequence[Field],
    body: bytes,
) -> bool:
    """Queue the response on `conn` if the lane may take it (rule "the lane is taken
    only"); False, with nothing changed, if not."""
    stream = conn.streams.get(stream_id)
    if stream is None or status < _FIRST_FINAL_STATUS:
        return False
    machine = stream.state_machine
    if machine.state not in _OPEN_STATES or machine.headers_sent:
        return False
    size, frame_size = len(body), conn.max_outbound_frame_size
    window = min(conn.outbound_flow_control_window, stream.outbound_flow_control_window)
    if size > frame_size or size > window:
        return False
    encoder = conn.encoder
    if not isinstance(encoder, LiteralEncoder):
        return False  # an indexing encoder's block could not be thrown away (below)
    block = encoder.encode(fields)
    if len(block) > frame_size:
        # h2's way (CONTINUATION frames) encodes the head again; the table size update
        # this block opened with (gateway/http/hpack_codec.py, rule "nothing is ever
        # added") must open that one, so it is announced again.
        encoder.header_table_size = encoder.header_table_size
        return False
    _advance_states(conn, stream, size)
    if size:
        conn._data_to_send += b"".join(
            (
                frame_header(len(block), _HEADERS, _END_HEADERS, stream_id),
                block,
                frame_header(size, _DATA, _END_STREAM, stream_id),
                body,
            )
        )
    else:
        flags = _END_HEADERS | _END_STREAM
        conn._data_to_send += frame_header(len(block), _HEADERS, flags, stream_id) + block
    return True


def _advance_states(
    conn: h2.connection.H2Connection, stream: h2.stream.H2Stream, size: int
) -> None:
    """What h2's send_headers and send_data (or end_stream) do to the states (rule "h2's
    state is kept exact"); a stream that this closes is dropped from the connection's
    streams as h2 drops it on its next count of them."""
    machine = stream.state_machine
    stream.outbound_flow_control_window -= size
    conn.outbound_flow_control_window -= size
    stream.request_method = None  # h2 reads the :method of what it sends: a response has none
    if machine.state is _HALF_CLOSED_REMOTE and conn.state_machine.state is _SERVER_OPEN:
        # The common case, a request without a body (RFC 9113 §8.1), moved as h2's tables
        # move it (checked at import): the connection stays open, the stream's response
        # is sent (h2's response_sent) and its end closes it (h2's send_end_stream).
        machine.headers_sent = True
        machine.state = _CLOSED
        machine.stream_closed_by = h2.stream.StreamClosedBy.SEND_END_STREAM
        del conn.streams[stream.stream_id]
        conn._closed_streams[stream.stream_id] = machine.stream_closed_by
        return
    conn.state_machine.process_input(h2.connection.ConnectionInputs.SEND_HEADERS)
    machine.process_input(h2.stream.StreamInputs.SEND_HEADERS)
    if size:
        conn.state_machine.process_input(h2.connection.ConnectionInputs.SEND_DATA)
        machine.process_input(h2.stream.StreamInputs.SEND_DATA)
    machine.process_input(h2.stream.StreamInputs.SEND_END_STREAM)


def _check_h2_tables() -> None:
    """The moves `_advance_states` makes directly are h2's (rule "h2's state is kept
    exact"): a later h2 that changes them fails here, at import, not on a response."""
    connection_moves = h2.connection.H2ConnectionStateMachine._transitions
    stream_moves = h2.stream._transitions
    inputs = h2.stream.StreamInputs
    kept_open = all(
        connection_moves[(_SERVER_OPEN, each)] == (None, _SERVER_OPEN)
        for each in (
            h2.connection.ConnectionInputs.SEND_HEADERS,
            h2.connection.ConnectionInputs.SEND_DATA,
        )
    )
    moves = (
        stream_moves[(_HALF_CLOSED_REMOTE, inputs.SEND_HEADERS)],
        stream_moves[(_HALF_CLOSED_REMOTE, inputs.SEND_DATA)],
        stream_moves[(_HALF_CLOSED_REMOTE, inputs.SEND_END_STREAM)],
    )
    expected = (
        (h2.stream.H2StreamStateMachine.response_sent, _HALF_CLOSED_REMOTE),
        (None, _HALF_CLOSED_REMOTE),
        (h2.stream.H2StreamStateMachine.send_end_stream, _CLOSED),
    )
    if not kept_open or moves != expected:
        raise ImportError("h2's state tables are not the ones gateway's lanes were built on")


_check_h2_tables()
