"""gateway/http/h2_session.py with a raw h2 client: bytes in, bytes out, no sockets."""

from __future__ import annotations

import h2.config
import h2.connection
import h2.errors
import h2.events
import hyperframe.frame
import pytest
from support.h2_clients import connected_session, frames

from gateway.errors import (
    BadRequest,
    ClientDisconnected,
    MethodNotImplemented,
    RequestHeadersTooLarge,
)
from gateway.http.h2_goaway import MAX_STREAM_ID, NOTICE_PING_DATA, GoawayStep
from gateway.http.h2_session import (
    CONNECTION_WINDOW,
    DEFAULT_WINDOW,
    HARD_BOUND_FACTOR,
    MAX_CONCURRENT_STREAMS,
    NO_ERROR,
    H2Session,
    NoticeSeen,
    StreamData,
    StreamEnd,
    StreamHead,
    StreamRefused,
    StreamReset,
    WindowOpened,
    is_websocket_connect,
)
from gateway.lifecycle import LifecycleError

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
    assert isinstance(events[0], StreamHead)
    head = events[0].head
    assert (head.method, head.target, head.http_version) == (b"GET", b"/a?b", "2")
    # :authority takes Host's place (RFC 9113 §8.3.1); no pseudo-header field is left.
    assert head.headers == [(b"host", b"example.com"), (b"accept", b"*/*")]
    assert events[0].ended and len(events) == 1  # no StreamEnd follows a whole request


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


def raw_client(pair: Pair) -> h2.connection.H2Connection:
    """The pair's client, let past h2's own checks: it would refuse to send these."""
    client = pair[0]
    client.config.validate_outbound_headers = False
    client.config.normalize_outbound_headers = False
    return client


def reset_codes(pair: Pair) -> dict[int, int]:
    """The RST_STREAM frames the session sent: stream id -> error code."""
    return {
        e.stream_id: e.error_code
        for e in answers(pair)
        if isinstance(e, h2.events.StreamReset) and e.stream_id and e.error_code is not None
    }


POST = [(n, v) for n, v in REQUEST if n != ":method"] + [(":method", "POST")]
MALFORMED = {
    "uppercase name": [*REQUEST, ("Accept", "*/*")],
    "name not a token": [*REQUEST, ("a b", "c")],
    "value with CR LF": [*REQUEST, ("x-a", "b\r\nx-c: d")],
    "value with whitespace around": [*REQUEST, ("x-a", " b")],
    "unknown pseudo-header": [*REQUEST, (":status", "200")],
    "repeated pseudo-header": [*REQUEST, (":path", "/b")],
    "pseudo-header after a regular field": [*REQUEST[:3], ("accept", "*/*"), REQUEST[3]],
    ":method missing": REQUEST[1:],
    ":scheme missing": [f for f in REQUEST if f[0] != ":scheme"],
    ":path missing": REQUEST[:3],
    ":path empty": [*REQUEST[:3], (":path", "")],
    "connection-specific field": [*REQUEST, ("connection", "keep-alive")],
    "transfer-encoding": [*REQUEST, ("transfer-encoding", "chunked")],
    "TE other than trailers": [*REQUEST, ("te", "gzip")],
    "Host differs from :authority": [*REQUEST, ("host", "other.example")],
    "Content-Length with END_STREAM": [*POST, ("content-length", "3")],
}


@pytest.mark.parametrize("fields", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_malformed_head_resets_its_stream_and_the_connection_goes_on(
    fields: list[tuple[str, str]],
) -> None:
    pair = connected()
    raw_client(pair).send_headers(1, fields, end_stream=True)
    # Nothing of stream 1 reaches the connection but the news that it is gone.
    assert [type(e) for e in exchange(pair)] == [StreamReset]
    assert reset_codes(pair) == {1: h2.errors.ErrorCodes.PROTOCOL_ERROR}
    pair[0].send_headers(3, REQUEST, end_stream=True)
    assert [type(e) for e in exchange(pair)] == [StreamHead]


def test_te_trailers_is_well_formed() -> None:
    pair = connected()
    pair[0].send_headers(1, [*REQUEST, ("te", "trailers")], end_stream=True)
    assert isinstance(exchange(pair)[0], StreamHead)


@pytest.mark.parametrize(
    ("pieces", "end_with_data"),
    [
        ([b"ab", b"cd"], True),  # more DATA than the Content-Length
        ([b"ab"], True),  # END_STREAM before it
        ([b"ab"], False),  # END_STREAM, on trailers, before it
    ],
)
@pytest.mark.parametrize("head_alone", [True, False], ids=["head read alone", "one read"])
def test_data_that_breaks_the_content_length_resets_the_stream(
    pieces: list[bytes], end_with_data: bool, head_alone: bool
) -> None:
    """Whether the receive lane opened the stream (its head read alone) or h2's own way
    did, the stream is reset, and the connection goes on."""
    pair = connected()
    client = pair[0]
    client.send_headers(1, [*POST, ("content-length", "3")])
    events = exchange(pair) if head_alone else []
    for n, piece in enumerate(pieces):
        client.send_data(1, piece, end_stream=end_with_data and n == len(pieces) - 1)
    if not end_with_data:
        client.send_headers(1, [("x-checksum", "1")], end_stream=True)
    events += exchange(pair)
    assert isinstance(events[0], StreamHead)
    # What fits reaches the app; then the stream is reset, and no StreamEnd follows.
    assert isinstance(events[-1], StreamReset) and "Content-Length" in events[-1].reason
    assert not any(isinstance(e, StreamEnd) for e in events)
    assert reset_codes(pair) == {1: h2.errors.ErrorCodes.PROTOCOL_ERROR}


def test_a_body_that_keeps_to_its_content_length_is_served() -> None:
    pair = connected()
    pair[0].send_headers(1, [*POST, ("content-length", "3")])
    pair[0].send_data(1, b"abc", end_stream=True)
    events = exchange(pair)
    assert [type(e) for e in events] == [StreamHead, StreamData, StreamEnd]


def test_request_trailers_end_the_body_and_are_dropped() -> None:
    pair = connected()
    pair[0].send_headers(1, POST)
    pair[0].send_data(1, b"abc")
    pair[0].send_headers(1, [("x-checksum", "1")], end_stream=True)
    events = exchange(pair)
    # ASGI has no request trailers: the app sees the body, then its end.
    assert [type(e) for e in events] == [StreamHead, StreamData, StreamEnd]


def test_trailers_with_a_pseudo_header_reset_the_stream() -> None:
    pair = connected()
    client = raw_client(pair)
    client.send_headers(1, POST)
    client.send_data(1, b"abc")
    client.send_headers(1, [(":path", "/b")], end_stream=True)
    assert [type(e) for e in exchange(pair)] == [StreamHead, StreamData, StreamReset]
    assert reset_codes(pair) == {1: h2.errors.ErrorCodes.PROTOCOL_ERROR}


def test_a_content_length_that_is_not_a_number_is_left_to_h2() -> None:
    # h2 checks it before the session sees the head, as a connection error; RFC 9113
    # §5.4.1 lets an endpoint treat a stream error so.
    pair = connected()
    raw_client(pair).send_headers(1, [*POST, ("content-length", "x")], end_stream=True)
    with pytest.raises(BadRequest):
        exchange(pair)


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


def test_the_connection_window_holds_several_streams_windows() -> None:
    client, _ = connected()
    assert client.outbound_flow_control_window == CONNECTION_WINDOW > 8 * DEFAULT_WINDOW
    client.send_headers(1, POST)
    assert client.local_flow_control_window(1) == DEFAULT_WINDOW  # a stream's is as it was


def test_still_receiving_until_the_client_ends_its_side() -> None:
    pair = connected()
    client, session = pair
    client.send_headers(1, POST)
    client.send_headers(3, POST, end_stream=True)
    exchange(pair)
    for stream_id in (1, 3):
        session.send_head(stream_id, 200, [], [])
        session.send_body(stream_id, b"done", end=True)
    assert session.still_receiving(1) and not session.still_receiving(3)
    session.stop_reading(1)
    assert not session.still_receiving(1)


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


def ping_ack(data: bytes) -> bytes:
    """A client's PING ACK, written by hand: h2's client takes no frame after a GOAWAY."""
    return hyperframe.frame.PingFrame(0, data, flags=["ACK"]).serialize()


def test_the_goaway_notice_names_the_largest_stream_and_serves_those_that_cross_it() -> None:
    pair = connected()
    client, session = pair
    client.send_headers(1, REQUEST, end_stream=True)
    exchange(pair)
    client.send_headers(3, REQUEST, end_stream=True)  # crosses the notice on the wire
    notice = frames(session.goaway_notice())
    assert [type(f).__name__ for f in notice] == ["GoAwayFrame", "PingFrame"]
    goaway, ping = notice
    assert isinstance(goaway, hyperframe.frame.GoAwayFrame)
    assert isinstance(ping, hyperframe.frame.PingFrame)
    assert (goaway.last_stream_id, goaway.error_code) == (MAX_STREAM_ID, 0)
    assert ping.opaque_data == NOTICE_PING_DATA and "ACK" not in ping.flags
    assert [type(e) for e in exchange(pair)] == [StreamHead]  # stream 3 is served
    assert session.goaway_step is GoawayStep.NOTICED


def test_only_the_ack_of_the_notice_s_ping_says_the_client_has_seen_it() -> None:
    pair = connected()
    _, session = pair
    assert session.feed(ping_ack(NOTICE_PING_DATA)) == []  # no notice sent yet
    session.goaway_notice()
    assert session.feed(ping_ack(b"other...")) == []
    assert session.feed(ping_ack(NOTICE_PING_DATA)) == [NoticeSeen()]


def test_the_final_goaway_names_the_last_stream_received_and_refuses_later_ones() -> None:
    pair = connected()
    client, session = pair
    client.send_headers(1, REQUEST, end_stream=True)
    exchange(pair)
    sent = session.goaway_notice()
    client.send_headers(3, REQUEST, end_stream=True)
    exchange(pair)
    client.send_headers(5, REQUEST, end_stream=True)  # crosses the final GOAWAY
    sent += session.goaway()
    assert exchange(pair) == []  # no StreamHead for stream 5
    session.send_head(1, 200, [], [])
    session.send_body(1, b"done", end=True)  # stream 1 goes on
    sent += session.data_to_send()
    parsed = [(type(f).__name__, f.stream_id) for f in frames(sent)]
    assert parsed == [
        ("GoAwayFrame", 0),
        ("PingFrame", 0),
        ("GoAwayFrame", 0),
        ("RstStreamFrame", 5),
        ("HeadersFrame", 1),
        ("DataFrame", 1),
    ]
    _, _, goaway, reset, _, data = frames(sent)
    assert isinstance(goaway, hyperframe.frame.GoAwayFrame)
    assert isinstance(reset, hyperframe.frame.RstStreamFrame)
    assert isinstance(data, hyperframe.frame.DataFrame)
    assert (goaway.last_stream_id, goaway.error_code) == (3, 0)
    assert reset.error_code == h2.errors.ErrorCodes.REFUSED_STREAM
    assert data.data == b"done" and "END_STREAM" in data.flags


def test_the_goaway_steps_come_in_order_and_once() -> None:
    _, session = connected()
    session.goaway_notice()
    with pytest.raises(LifecycleError):
        session.goaway_notice()
    session.goaway()
    assert session.goaway_step is GoawayStep.FINAL
    with pytest.raises(LifecycleError):
        session.goaway()


def test_an_idle_connection_may_skip_the_notice() -> None:
    """gateway/server/h2_connection.py, rule "a connection without a stream in flight"."""
    _, session = connected()
    session.goaway()
    assert session.goaway_step is GoawayStep.FINAL
    with pytest.raises(LifecycleError):
        session.goaway_notice()  # no notice after the final GOAWAY


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


def test_a_header_block_is_open_until_its_last_continuation() -> None:
    client, session = connected()
    block = client.encoder.encode(REQUEST)
    headers = hyperframe.frame.HeadersFrame(1, block[:5], flags=["END_STREAM"])
    assert session.feed(headers.serialize()) == []
    assert session.header_block_open  # no other frame may come (RFC 9113 §6.10)
    rest = hyperframe.frame.ContinuationFrame(1, block[5:], flags=["END_HEADERS"])
    events = session.feed(rest.serialize())
    assert [type(e) for e in events] == [StreamHead]  # h2's own way: the head is whole
    assert not session.header_block_open


def test_stop_reading_resets_the_stream_without_error() -> None:
    pair = connected()
    client, session = pair
    client.send_headers(1, POST)
    exchange(pair)
    session.send_head(1, 408, [], [])
    session.send_body(1, b"", end=True)
    session.stop_reading(1)
    assert reset_codes(pair) == {1: h2.errors.ErrorCodes.NO_ERROR}


def test_extended_connect_for_websocket_is_a_stream_head() -> None:
    client, session = connected()
    # RFC 8441 §3: the client may open an extended CONNECT only once this is 1.
    assert client.remote_settings.enable_connect_protocol == 1
    request = [(n, v) for n, v in REQUEST if n != ":method"]
    client.send_headers(1, [(":method", "CONNECT"), (":protocol", "websocket"), *request])
    head = exchange((client, session))[0]
    assert isinstance(head, StreamHead) and not head.ended
    assert is_websocket_connect(head.head) and head.head.target == b"/a?b"


@pytest.mark.parametrize("protocol", [None, "not-websocket"])
def test_any_other_connect_is_not_served(protocol: str | None) -> None:
    client, session = connected()
    fields = [(":method", "CONNECT"), (":authority", "example.com:443")]
    if protocol is not None:  # an extended CONNECT has :scheme and :path (RFC 8441 §4)
        fields += [(":protocol", protocol), (":scheme", "http"), (":path", "/")]
    client.send_headers(1, fields)
    refused = exchange((client, session))[0]
    assert isinstance(refused, StreamRefused)
    assert isinstance(refused.error, MethodNotImplemented)


def test_a_reset_after_a_complete_response_says_no_error() -> None:
    pair = connected()
    pair[0].send_headers(1, REQUEST)  # the request goes on: no END_STREAM
    exchange(pair)
    pair[1].send_head(1, 200, [], [])
    pair[1].send_body(1, b"done", end=True)
    pair[1].reset(1, NO_ERROR)
    reset = [e for e in answers(pair) if isinstance(e, h2.events.StreamReset)]
    assert [(e.stream_id, e.error_code) for e in reset] == [(1, h2.errors.ErrorCodes.NO_ERROR)]


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
