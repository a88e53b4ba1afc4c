"""gateway/http/h2_receive_lane.py: bytes an h2 client sends, taken by the lane on one
session and by h2's own `receive_data` on another, leave both the same; no sockets."""

from __future__ import annotations

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import pytest
from support.h2_state import h2_state

from gateway.http.h2_receive_lane import OpenedStream, open_streams
from gateway.http.h2_session import MAX_CONCURRENT_STREAMS, H2Session, StreamHead

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


def burst(
    client: h2.connection.H2Connection,
    first_id: int,
    ends: list[bool],
    extra: list[tuple[bytes, bytes]] = [],  # noqa: B006 (never changed)
) -> bytes:
    for number, end in enumerate(ends):
        fields = [*REQUEST, (b"x-n", b"%d" % number), *extra] if number % 2 else [*REQUEST, *extra]
        client.send_headers(first_id + 2 * number, fields, end_stream=end)
    return client.data_to_send()


def as_opened(events: list[h2.events.Event]) -> list[OpenedStream]:
    """h2's RequestReceived events, as the lane says what it opened."""
    return [
        (event.stream_id, event.headers, event.stream_ended is not None)
        for event in events
        if isinstance(event, h2.events.RequestReceived)
    ]


def receive(session: H2Session, data: bytes) -> list[OpenedStream] | None:
    return open_streams(session._conn, data, MAX_CONCURRENT_STREAMS)


@pytest.mark.parametrize(
    "extra",
    [[], [(b"content-length", b"0")], [(b"cookie", b"a=1"), (b"x", b"y"), (b"cookie", b"b=2")]],
    ids=["plain", "content-length", "cookie crumbs"],
)
def test_the_lane_leaves_h2_as_its_receive_data_does(extra: list[tuple[bytes, bytes]]) -> None:
    """Rule "h2's state is kept exact", over two bursts (the second's blocks are the
    decoder's remembered ones): the same streams, fields and state, field by field."""
    client, lane = greeted_session()
    _, h2_way = greeted_session()
    for first_id, ends in ((1, [True, False, True]), (7, [True, True, False, True])):
        data = burst(client, first_id, ends, extra)
        lane_opened = receive(lane, data)
        h2_events = h2_way._conn.receive_data(data)
        assert lane_opened == as_opened(h2_events)
        assert h2_state(lane._conn) == h2_state(h2_way._conn)
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
    before = h2_state(session._conn)
    assert receive(session, read) is None
    assert h2_state(session._conn) == before
    assert session.data_to_send() == b""


def headers_frame(block: bytes, stream_id: int = 1) -> bytes:
    """A HEADERS frame with END_HEADERS and END_STREAM (RFC 9113 §6.2)."""
    return len(block).to_bytes(3, "big") + b"\x01\x05" + stream_id.to_bytes(4, "big") + block


def informational_request() -> bytes:
    """A request whose first field is an interim :status, which h2 refuses."""
    encoder = h2.connection.H2Connection().encoder
    return headers_frame(encoder.encode([(b":status", b"100"), *REQUEST]))


@pytest.mark.parametrize(
    "bad",
    [headers_frame(b"\xff"), informational_request()],  # an index with no end
    ids=["undecodable block", "informational status"],
)
def test_a_protocol_error_in_the_lane_ends_the_connection_as_h2_does(bad: bytes) -> None:
    """A HEADERS frame h2 refuses: the same GOAWAY both ways (RFC 9113 §4.3, §8.1)."""
    _, lane = greeted_session()
    _, h2_way = greeted_session()
    with pytest.raises(h2.exceptions.ProtocolError):
        receive(lane, bad)
    with pytest.raises(h2.exceptions.ProtocolError):
        h2_way._conn.receive_data(bad)
    assert lane.data_to_send() == h2_way.data_to_send() != b""
    assert h2_state(lane._conn) == h2_state(h2_way._conn)
