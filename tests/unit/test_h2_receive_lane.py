"""gateway/http/h2_receive_lane.py: bytes an h2 client sends, taken by the lane on one
session and by h2's own `receive_data` on another, leave both the same; no sockets."""

from __future__ import annotations

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import pytest

from gateway.http.h2_receive_lane import receive_headers
from gateway.http.h2_session import H2Session, StreamHead

REQUEST = [(b":method", b"GET"), (b":scheme", b"http"), (b":path", b"/"), (b":authority", b"a")]


def greeted_session() -> tuple[h2.connection.H2Connection, H2Session]:
    """A client and a session past the preface and both SETTINGS."""
    client = h2.connection.H2Connection(h2.config.H2Configuration(header_encoding=None))
    client.initiate_connection()
    session = H2Session(8192)
    client.receive_data(session.data_to_send())
    session.feed(client.data_to_send())
    client.receive_data(session.data_to_send())
    return client, session


def h2_state(session: H2Session) -> tuple[object, ...]:
    """What h2 keeps that receiving a request changes."""
    conn = session._conn
    streams = tuple(
        (stream_id, stream.state_machine.state, stream.state_machine.stream_closed_by,
         stream.inbound_flow_control_window, stream.outbound_flow_control_window,
         type(stream).__name__)
        for stream_id, stream in sorted(conn.streams.items())
    )  # fmt: skip
    return (
        conn.state_machine.state, conn.highest_inbound_stream_id, conn.open_inbound_streams,
        conn.inbound_flow_control_window, list(conn.decoder.header_table.dynamic_entries),
        streams,
    )  # fmt: skip


def burst(client: h2.connection.H2Connection, first_id: int, ends: list[bool]) -> bytes:
    for number, end in enumerate(ends):
        fields = [*REQUEST, (b"x-n", b"%d" % number)] if number % 2 else REQUEST
        client.send_headers(first_id + 2 * number, fields, end_stream=end)
    return client.data_to_send()


def test_the_lane_leaves_h2_as_its_receive_data_does() -> None:
    """Rule "h2's state moves only by h2's own code", over two bursts (the second's
    blocks are the decoder's remembered ones)."""
    client, lane = greeted_session()
    _, h2_way = greeted_session()
    for first_id, ends in ((1, [True, False, True]), (7, [True, True, False, True])):
        data = burst(client, first_id, ends)
        lane_events = receive_headers(lane._conn, data)
        h2_events = h2_way._conn.receive_data(data)
        assert lane_events is not None
        assert [repr(event) for event in lane_events] == [repr(event) for event in h2_events]
        assert h2_state(lane) == h2_state(h2_way)
        assert lane.data_to_send() == h2_way.data_to_send()


def test_the_session_serves_a_burst_through_the_lane() -> None:
    client, session = greeted_session()
    events = session.feed(burst(client, 1, [True, False]))
    heads = [(event.stream_id, event.head.target, event.ended)
             for event in events if isinstance(event, StreamHead)]  # fmt: skip
    assert heads == [(1, b"/", True), (3, b"/", False)]


def with_padding(frame: bytes, padding: int) -> bytes:
    """One HEADERS frame, PADDED (RFC 9113 §6.2): a pad length, the block, the padding."""
    length = int.from_bytes(frame[:3], "big") + 1 + padding
    header = length.to_bytes(3, "big") + frame[3:4] + bytes([frame[4] | 0x8]) + frame[5:9]
    return header + bytes([padding]) + frame[9:] + bytes(padding)


def unusual_reads(client: h2.connection.H2Connection) -> dict[str, bytes]:
    client.send_headers(1, REQUEST, end_stream=True)
    plain = client.data_to_send()
    client.send_headers(3, REQUEST, end_stream=True)
    padded = with_padding(client.data_to_send(), 4)
    client.send_headers(5, REQUEST, end_stream=True, priority_weight=32)
    with_priority = client.data_to_send()
    client.send_headers(7, [*REQUEST, (b"x-big", b"v" * 20_000)], end_stream=True)
    continued = client.data_to_send()
    client.send_headers(9, REQUEST)
    client.send_data(9, b"body", end_stream=True)
    with_data = client.data_to_send()
    return {
        "padded": padded,
        "priority": with_priority,
        "continuation": continued,
        "data frame": with_data,
        "cut short": plain[:-1],
        "stream id not above the last": plain,
        "even stream id": plain[:8] + b"\x02" + plain[9:],
        "reserved bit": plain[:5] + b"\x80" + plain[6:],
    }


@pytest.mark.parametrize("kind", list(unusual_reads(greeted_session()[0])))
def test_anything_unusual_goes_to_receive_data_untouched(kind: str) -> None:
    """Rule "anything unusual"."""
    client, session = greeted_session()
    session.feed(burst(client, 1, [True]))  # stream 1 is open: "not above the last"
    read = unusual_reads(greeted_session()[0])[kind]
    before = h2_state(session)
    assert receive_headers(session._conn, read) is None
    assert h2_state(session) == before
    assert session.data_to_send() == b""


def test_a_protocol_error_in_the_lane_ends_the_connection_as_h2_does() -> None:
    """A HEADERS frame whose block HPACK cannot decode: GOAWAY COMPRESSION_ERROR both ways
    (RFC 9113 §4.3)."""
    bad = b"\x00\x00\x01\x01\x05\x00\x00\x00\x01" + b"\xff"  # an index with no end
    _, lane = greeted_session()
    _, h2_way = greeted_session()
    with pytest.raises(h2.exceptions.ProtocolError):
        receive_headers(lane._conn, bad)
    with pytest.raises(h2.exceptions.ProtocolError):
        h2_way._conn.receive_data(bad)
    assert lane.data_to_send() == h2_way.data_to_send() != b""
    assert h2_state(lane) == h2_state(h2_way)
