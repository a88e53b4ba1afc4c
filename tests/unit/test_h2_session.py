"""gateway/http/h2_session.py with a raw h2 client: bytes in, bytes out, no sockets."""

from __future__ import annotations

import h2.config
import h2.connection
import h2.errors
import h2.events
import hyperframe.frame
import pytest
from support.h2_clients import connected_session

from gateway.errors import (
    BadRequest,
    ClientDisconnected,
    MethodNotImplemented,
    RequestHeadersTooLarge,
)
from gateway.http.h2_session import (
    HARD_BOUND_FACTOR,
    MAX_CONCURRENT_STREAMS,
    H2Session,
    StreamData,
    StreamEnd,
    StreamHead,
    StreamRefused,
    WindowOpened,
)

MAX_HEADER_BYTES = 8 * 1024
REQUEST = [
    (":method", "GET"),
    (":scheme", "http"),
    (":authority", "example.com"),
    (":path", "/a?b"),
]
Pair = tuple[h2.connection.H2Connection, H2Session]


def connected() -> Pair:
    """A client and a session that have exchanged prefaces and settings."""
    return connected_session(MAX_HEADER_BYTES)


def exchange(pair: Pair) -> list[object]:
    client, session = pair
    return list(session.feed(client.data_to_send()))


def answers(pair: Pair) -> list[h2.events.Event]:
    client, session = pair
    return client.receive_data(session.data_to_send())


def test_a_request_head_carries_what_the_scope_needs() -> None:
    pair = connected()
    pair[0].send_headers(1, [*REQUEST, ("accept", "*/*")], end_stream=True)
    events = exchange(pair)
    assert len(events) == 2 and isinstance(events[0], StreamHead)
    head = events[0].head
    assert (head.method, head.target, head.http_version) == (b"GET", b"/a?b", "2")
    # :authority takes Host's place (RFC 9113 §8.3.1); no pseudo-header field is left.
    assert head.headers == [(b"host", b"example.com"), (b"accept", b"*/*")]
    assert events[0].ended and events[1] == StreamEnd(1)


def test_a_host_field_that_agrees_is_kept_once() -> None:
    pair = connected()
    pair[0].send_headers(1, [*REQUEST, ("host", "example.com")], end_stream=True)
    head = exchange(pair)[0]
    assert isinstance(head, StreamHead)
    assert head.head.headers == [(b"host", b"example.com")]


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ([("x-a", "b" * MAX_HEADER_BYTES)], RequestHeadersTooLarge),
        ([(":method", "BREW")], MethodNotImplemented),
        ([(":path", "a")], BadRequest),
        ([(":scheme", "gopher")], BadRequest),
    ],
)
def test_what_h2_does_not_check_is_refused_on_the_stream(
    fields: list[tuple[str, str]], error: type[Exception]
) -> None:
    pair = connected()
    names = {name for name, _ in fields}
    request = [(n, v) for n, v in REQUEST if n not in names]
    pair[0].send_headers(1, [*request, *fields], end_stream=True)
    refused = exchange(pair)[0]
    assert isinstance(refused, StreamRefused) and isinstance(refused.error, error)


@pytest.mark.parametrize(
    "field",
    [
        ("connection", "keep-alive"),  # connection-specific (RFC 9113 §8.2.2)
        ("te", "gzip"),  # TE only "trailers"
        ("host", "other.example"),  # disagrees with :authority
    ],
)
def test_a_malformed_head_is_a_connection_error(field: tuple[str, str]) -> None:
    client, session = connected()
    # h2's client would refuse to send these itself.
    client.config.validate_outbound_headers = False
    client.config.normalize_outbound_headers = False
    client.send_headers(1, [*REQUEST, field], end_stream=True)
    with pytest.raises(BadRequest):
        session.feed(client.data_to_send())
    assert any(isinstance(e, h2.events.ConnectionTerminated) for e in answers((client, session)))


def test_content_length_must_agree_with_data() -> None:
    client, session = connected()
    client.send_headers(1, [*REQUEST[1:], (":method", "POST"), ("content-length", "3")])
    client.send_data(1, b"abcd", end_stream=True)
    with pytest.raises(BadRequest):
        session.feed(client.data_to_send())


def test_the_receive_window_opens_only_as_the_body_is_consumed() -> None:
    pair = connected()
    client, session = pair
    client.send_headers(1, [*REQUEST[1:], (":method", "POST")])
    window = client.local_flow_control_window(1)
    for start in range(0, window, 16384):  # the default SETTINGS_MAX_FRAME_SIZE
        client.send_data(1, b"x" * min(16384, window - start))
    data = [e for e in exchange(pair) if isinstance(e, StreamData)]
    assert sum(len(e.data) for e in data) == window
    answers(pair)
    assert client.local_flow_control_window(1) == 0  # nothing acknowledged: stays shut
    for event in data:
        session.acknowledge(1, event.flow_length)
    updates = [e for e in answers(pair) if isinstance(e, h2.events.WindowUpdated)]
    assert updates and client.local_flow_control_window(1) > 0


def test_sending_stops_at_the_send_window_and_goes_on_when_it_opens() -> None:
    pair = connected()
    client, session = pair
    client.send_headers(1, REQUEST, end_stream=True)
    exchange(pair)
    session.send_head(1, 200, [(b"Content-Type", b"text/plain")], [(b"server", b"gateway")])
    body = b"y" * 100_000  # more than the 65,535 bytes of a default window
    left = session.send_body(1, body, end=True)
    assert 0 < len(left) < len(body)
    events = answers(pair)
    response = next(e for e in events if isinstance(e, h2.events.ResponseReceived))
    assert response.headers == [
        (b":status", b"200"),
        (b"content-type", b"text/plain"),
        (b"server", b"gateway"),
    ]
    received = sum(
        e.flow_controlled_length for e in events if isinstance(e, h2.events.DataReceived)
    )
    client.acknowledge_received_data(received, 1)
    opened = exchange(pair)
    assert WindowOpened(1) in opened and WindowOpened(0) in opened
    assert session.send_body(1, left, end=True) == b""
    assert any(isinstance(e, h2.events.StreamEnded) for e in answers(pair))


def test_a_send_on_a_reset_stream_is_a_disconnect() -> None:
    pair = connected()
    client, session = pair
    client.send_headers(1, REQUEST, end_stream=True)
    exchange(pair)
    client.reset_stream(1)
    exchange(pair)
    with pytest.raises(ClientDisconnected):
        session.send_head(1, 200, [], [])


def frames(data: bytes) -> list[hyperframe.frame.Frame]:
    """The frames in `data`, parsed without a connection's state: h2's client refuses any
    frame after a GOAWAY, though RFC 9113 §6.8 lets the streams before it go on."""
    out = []
    while data:
        frame, length = hyperframe.frame.Frame.parse_frame_header(memoryview(data[:9]))
        frame.parse_body(memoryview(data[9 : 9 + length]))
        out.append(frame)
        data = data[9 + length :]
    return out


def test_a_goaway_names_the_last_stream_and_refuses_later_ones() -> None:
    pair = connected()
    client, session = pair
    client.send_headers(1, REQUEST, end_stream=True)
    exchange(pair)
    client.send_headers(3, REQUEST, end_stream=True)  # crosses the GOAWAY on the wire
    sent = session.goaway()
    assert exchange(pair) == []  # no StreamHead for stream 3
    session.send_head(1, 200, [], [])
    session.send_body(1, b"done", end=True)  # stream 1 goes on
    sent += session.data_to_send()
    parsed = [(type(f).__name__, f.stream_id) for f in frames(sent)]
    assert parsed == [
        ("GoAwayFrame", 0),
        ("RstStreamFrame", 3),
        ("HeadersFrame", 1),
        ("DataFrame", 1),
    ]
    goaway, reset, _, data = frames(sent)
    assert isinstance(goaway, hyperframe.frame.GoAwayFrame)
    assert isinstance(reset, hyperframe.frame.RstStreamFrame)
    assert isinstance(data, hyperframe.frame.DataFrame)
    assert (goaway.last_stream_id, goaway.error_code) == (1, 0)
    assert reset.error_code == h2.errors.ErrorCodes.REFUSED_STREAM
    assert data.data == b"done" and "END_STREAM" in data.flags


def open_streams(client: h2.connection.H2Connection, count: int) -> None:
    """`count` streams, each left open (no END_STREAM), past any limit we advertised."""
    # h2's client holds itself to our limit: let it past, to break it.
    client.remote_settings.max_concurrent_streams = 2 * HARD_BOUND_FACTOR * MAX_CONCURRENT_STREAMS
    client.remote_settings.acknowledge()
    for stream in range(count):
        client.send_headers(1 + 2 * stream, REQUEST)


def test_streams_past_the_advertised_limit_reach_the_connection_which_refuses_them() -> None:
    pair = connected()
    client, session = pair
    open_streams(client, MAX_CONCURRENT_STREAMS + 1)
    heads = [e for e in exchange(pair) if isinstance(e, StreamHead)]
    assert len(heads) == MAX_CONCURRENT_STREAMS + 1  # decoded, so HPACK stays in step
    session.refuse(heads[-1].stream_id)
    resets = [e for e in answers(pair) if isinstance(e, h2.events.StreamReset)]
    assert [(e.stream_id, e.error_code) for e in resets] == [
        (heads[-1].stream_id, h2.errors.ErrorCodes.REFUSED_STREAM)
    ]
    client.send_headers(1 + 2 * (MAX_CONCURRENT_STREAMS + 1), REQUEST, end_stream=True)
    assert isinstance(exchange(pair)[0], StreamHead)  # the connection goes on


def test_streams_past_the_hard_bound_are_a_connection_error() -> None:
    client, session = connected()
    open_streams(client, HARD_BOUND_FACTOR * MAX_CONCURRENT_STREAMS + 1)
    with pytest.raises(BadRequest, match="inbound streams"):
        session.feed(client.data_to_send())


@pytest.mark.parametrize(("max_header_bytes", "answered"), [(32 * 1024, True), (8 * 1024, False)])
def test_the_advertised_header_list_size_is_the_one_held(
    max_header_bytes: int, answered: bool
) -> None:
    """70 KiB of fields: past h2's own 64 KiB, within 4 x 32 KiB (a 431 on the stream),
    past 4 x 8 KiB (a connection error, the fields never decoded)."""
    client, session = connected_session(max_header_bytes)
    client.remote_settings.max_header_list_size = 2**20  # let the client past our figure
    client.remote_settings.acknowledge()
    fields = [*REQUEST, *((f"x-{n}", "v" * 1000) for n in range(70))]
    client.send_headers(1, fields, end_stream=True)
    wire = client.data_to_send()
    if not answered:
        with pytest.raises(BadRequest):
            session.feed(wire)
        return
    refused = session.feed(wire)[0]
    assert isinstance(refused, StreamRefused) and refused.error.status == 431
