"""gateway/http/h2_fast_lane.py through the session's `send_response`, read by an h2
client, and held against h2's own way of framing the same response; no sockets."""

from __future__ import annotations

import h2.config
import h2.connection
import h2.events
import h2.settings
import pytest
from support.h2_state import h2_state

from gateway.errors import ClientDisconnected
from gateway.http.h2_session import H2Session

REQUEST = [(b":method", b"GET"), (b":scheme", b"http"), (b":path", b"/"), (b":authority", b"a")]
FIELDS = [(b"content-type", b"text/plain")]
Pair = tuple[h2.connection.H2Connection, H2Session]


def opened(streams: int = 1, settings: dict[int, int] | None = None, *, ended: bool = True) -> Pair:
    """A client and a session with `streams` requests (streams 1, 3, ...) received,
    each with END_STREAM if `ended`, else with a body to come."""
    client = h2.connection.H2Connection(h2.config.H2Configuration(header_encoding=None))
    client.initiate_connection()
    if settings:
        client.update_settings(settings)
    session = H2Session(8192)
    client.receive_data(session.data_to_send())
    for stream_id in range(1, 2 * streams, 2):
        client.send_headers(stream_id, REQUEST, end_stream=ended)
    session.feed(client.data_to_send())
    client.receive_data(session.data_to_send())  # the settings' acks
    return client, session


def received(pair: Pair) -> list[h2.events.Event]:
    client, session = pair
    return client.receive_data(session.data_to_send())


@pytest.mark.parametrize("ended", [True, False], ids=["request ended", "request body to come"])
@pytest.mark.parametrize("body", [b"hello", b""])
def test_the_lane_leaves_h2_as_h2_s_own_way_does(body: bytes, ended: bool) -> None:
    """Rule "h2's state is kept exact", for a stream the response closes and for one
    whose request body is still open."""
    lane, h2_way = opened(ended=ended), opened(ended=ended)
    assert lane[1].send_response(1, 200, FIELDS, (), body) == b""
    h2_way[1].send_head(1, 200, FIELDS, ())
    h2_way[1].send_body(1, body, end=True)
    assert h2_state(lane[1]._conn) == h2_state(h2_way[1]._conn)
    events = received(lane)
    assert [type(e) for e in events] == [
        h2.events.ResponseReceived,
        *([h2.events.DataReceived] if body else []),
        h2.events.StreamEnded,  # rule "a response without a body": on the HEADERS frame
    ]
    assert (1 in lane[1]._conn.streams) is not ended  # a closed stream is dropped at once
    data = [e.data for e in events if isinstance(e, h2.events.DataReceived)]
    assert data == ([body] if body else [])


def test_responses_on_many_streams_each_read_whole() -> None:
    pair = opened(streams=5)
    for stream_id in range(1, 10, 2):
        pair[1].send_response(stream_id, 200 + stream_id, FIELDS, (), b"%d" % stream_id)
    events = received(pair)
    heads = {e.stream_id: e.headers for e in events if isinstance(e, h2.events.ResponseReceived)}
    assert heads == {n: [(b":status", b"%d" % (200 + n)), *FIELDS] for n in range(1, 10, 2)}
    ended = [e.stream_id for e in events if isinstance(e, h2.events.StreamEnded)]
    assert ended == list(range(1, 10, 2))


def test_a_body_past_the_window_takes_h2_s_way_and_waits() -> None:
    """Rule "the lane is taken only": the part the windows take goes, the rest is left."""
    window = 100
    pair = opened(settings={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: window})
    left = pair[1].send_response(1, 200, FIELDS, (), b"x" * 250)
    assert left == b"x" * 150
    events = received(pair)
    assert sum(len(e.data) for e in events if isinstance(e, h2.events.DataReceived)) == window
    assert not any(isinstance(e, h2.events.StreamEnded) for e in events)


def test_a_head_past_one_frame_takes_h2_s_way_and_keeps_the_table_size_update() -> None:
    """CONTINUATION frames (RFC 9113 §6.10), from a client whose table is 0: the block
    h2 sends must still open with the update to 0 (gateway/http/hpack_codec.py)."""
    pair = opened(settings={h2.settings.SettingCodes.HEADER_TABLE_SIZE: 0})
    big = [(b"x-big", b"v" * 20000)]
    assert pair[1].send_response(1, 200, big, (), b"ok") == b""
    events = received(pair)
    (head,) = [e for e in events if isinstance(e, h2.events.ResponseReceived)]
    assert head.headers == [(b":status", b"200"), *big]


def test_an_interim_status_takes_h2_s_way() -> None:
    pair = opened()
    pair[1].send_continue(1)
    assert pair[1].send_response(1, 204, [], (), b"") == b""
    events = received(pair)
    assert [type(e) for e in events] == [
        h2.events.InformationalResponseReceived,
        h2.events.ResponseReceived,
        h2.events.StreamEnded,
    ]


def test_a_stream_the_client_reset_raises_client_disconnected() -> None:
    client, session = opened()
    client.reset_stream(1)
    session.feed(client.data_to_send())
    with pytest.raises(ClientDisconnected):
        session.send_response(1, 200, FIELDS, (), b"late")
