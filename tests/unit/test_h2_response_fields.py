"""gateway/http/h2_session.py, the response side: what an app's fields become on HTTP/2,
with a raw h2 client; no sockets.

h2 itself does not re-validate the response fields (the session checks them first:
gateway/http/h2_session.py, rule "errors"), so a field h2 would refuse half-way through
an HPACK block must never reach it: the shared HPACK state would then break every
stream of the connection.
"""

from __future__ import annotations

import h2.config
import h2.connection
import h2.events
import pytest

from gateway.errors import AppProtocolError
from gateway.http.h2_session import H2Session

REQUEST = [(":method", "GET"), (":scheme", "http"), (":authority", "x"), (":path", "/")]
Pair = tuple[h2.connection.H2Connection, H2Session]


def two_streams() -> Pair:
    """A client and a session with streams 1 and 3 open, awaiting their responses."""
    client = h2.connection.H2Connection(h2.config.H2Configuration(header_encoding=None))
    client.initiate_connection()
    session = H2Session(8192)
    session.feed(client.data_to_send())
    client.receive_data(session.data_to_send())
    for stream_id in (1, 3):
        client.send_headers(stream_id, REQUEST, end_stream=True)
    session.feed(client.data_to_send())
    return client, session


def response_heads(pair: Pair) -> dict[int, list[tuple[bytes, bytes]]]:
    client, session = pair
    events = client.receive_data(session.data_to_send())
    heads = {}
    for event in events:
        if isinstance(event, h2.events.ResponseReceived):
            assert event.stream_id is not None and event.headers is not None
            heads[event.stream_id] = [(bytes(n), bytes(v)) for n, v in event.headers]
    return heads


def test_connection_specific_fields_and_te_are_left_out_of_a_response() -> None:
    """RFC 9113 §8.2.2: no connection-specific field in an HTTP/2 message, and TE only
    in a request. An app written for HTTP/1.1 may send them; they are dropped, and the
    next stream's head still decodes (the HPACK state stayed whole)."""
    pair = two_streams()
    _, session = pair
    fields = [(b"x-before", b"one"), (b"TE", b"gzip"), (b"Connection", b"close"),
              (b"transfer-encoding", b"chunked"), (b"x-after", b"two")]  # fmt: skip
    session.send_head(1, 200, fields, [(b"server", b"gateway")])
    session.send_body(1, b"", end=True)
    session.send_head(3, 200, [(b"x-before", b"one")], [])
    session.send_body(3, b"", end=True)
    heads = response_heads(pair)
    assert heads[1] == [
        (b":status", b"200"), (b"x-before", b"one"), (b"x-after", b"two"),
        (b"server", b"gateway"),
    ]  # fmt: skip
    assert heads[3] == [(b":status", b"200"), (b"x-before", b"one")]


def test_field_names_go_out_lowercase_and_values_as_sent() -> None:
    pair = two_streams()
    _, session = pair
    session.send_head(1, 404, [(b"Content-Type", b"text/plain; charset=utf-8")], [])
    session.send_body(1, b"", end=True)
    assert response_heads(pair)[1] == [
        (b":status", b"404"), (b"content-type", b"text/plain; charset=utf-8"),
    ]  # fmt: skip


def test_a_value_with_whitespace_around_it_is_refused_before_encoding() -> None:
    """RFC 9113 §8.2.1: no whitespace around a value; h2 does not strip it (its outbound
    normalisation is off), so the session refuses it, and the HPACK state stays whole."""
    pair = two_streams()
    _, session = pair
    with pytest.raises(AppProtocolError):
        session.send_head(1, 200, [(b"x-ok", b"1"), (b"x-padded", b" 2 ")], [])
    session.send_head(3, 200, [(b"x-ok", b"1")], [])
    session.send_body(3, b"", end=True)
    assert response_heads(pair) == {3: [(b":status", b"200"), (b"x-ok", b"1")]}


def test_credentials_go_out_never_indexed() -> None:
    """RFC 7541 §7.1.3 (gateway/http/hpack_codec.py, rule "fields that carry
    credentials"), with h2's own marking of them switched off."""
    client, session = two_streams()
    fields = [(b"set-cookie", b"a=1"), (b"authorization", b"b"), (b"x-plain", b"c")]
    session.send_head(1, 200, fields, [])
    session.send_body(1, b"", end=True)
    events = client.receive_data(session.data_to_send())
    (event,) = [e for e in events if isinstance(e, h2.events.ResponseReceived)]
    assert event.headers is not None
    marks = [getattr(field, "indexable", True) for field in event.headers]
    assert marks == [True, False, False, True]  # :status, then the app's three
