"""The HTTP/1.1 session: bytes in, events out; response parts in, bytes out. No sockets."""

from __future__ import annotations

import pytest

from gateway.errors import AppProtocolError, ProtocolError
from gateway.http import session as session_module
from gateway.http.events import (
    CONNECTION_CLOSED,
    NEED_DATA,
    PAUSED,
    REQUEST_END,
    Event,
    RequestData,
    RequestHead,
)
from gateway.http.h11_session import H11Session
from gateway.http.httptools_session import HttptoolsSession
from gateway.http.response import interim_head
from gateway.http.session import HTTPSession, parse_target

SESSIONS = [H11Session, HttptoolsSession]
SessionClass = type[H11Session | HttptoolsSession]


@pytest.fixture(params=SESSIONS, ids=lambda cls: cls.__name__)
def session(request: pytest.FixtureRequest) -> HTTPSession:
    """Every session test runs against both parsers: they must behave the same."""
    session_class: SessionClass = request.param
    return session_class(max_header_bytes=16384, max_target_bytes=8192)


def events_until_blocked(session: HTTPSession) -> list[Event]:
    events: list[Event] = []
    while True:
        event = session.next_event()
        events.append(event)
        if event in (NEED_DATA, PAUSED, CONNECTION_CLOSED):
            return events


def test_simple_get_yields_head_and_end(session: HTTPSession) -> None:
    session.feed(b"GET /a?b=1 HTTP/1.1\r\nHost: x\r\nX-Thing: Y\r\n\r\n")
    head, end, need = events_until_blocked(session)
    assert isinstance(head, RequestHead)
    assert (head.method, head.target, head.http_version) == (b"GET", b"/a?b=1", "1.1")
    assert head.headers == [(b"host", b"x"), (b"x-thing", b"Y")]
    assert not head.expects_continue
    assert (end, need) == (REQUEST_END, NEED_DATA)


def test_request_fed_one_byte_at_a_time(session: HTTPSession) -> None:
    raw = b"POST /u HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
    events: list[Event] = []
    for i in range(len(raw)):
        session.feed(raw[i : i + 1])
        events.extend(e for e in events_until_blocked(session) if e is not NEED_DATA)
    body = b"".join(e.data for e in events if isinstance(e, RequestData))
    assert isinstance(events[0], RequestHead)
    assert body == b"hello"
    assert events[-1] is REQUEST_END


def test_chunked_request_body_is_dechunked(session: HTTPSession) -> None:
    session.feed(
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
    )
    events = events_until_blocked(session)
    assert b"".join(e.data for e in events if isinstance(e, RequestData)) == b"abcde"
    assert REQUEST_END in events


def test_response_bytes_and_keep_alive(session: HTTPSession) -> None:
    session.feed(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    events_until_blocked(session)
    out = session.response_head(200, [(b"content-length", b"2")])
    out += session.response_body(b"hi") + session.response_end()
    assert out == b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nhi"
    assert session.reusable
    session.start_next_cycle()
    assert not session.response_started


def test_defaults_are_added_unless_the_app_sent_its_own(session: HTTPSession) -> None:
    session.feed(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    events_until_blocked(session)
    defaults = [(b"server", b"gateway"), (b"date", b"Sat, 21 Nov 2026 10:00:00 GMT")]
    app_fields = [(b"Server", b"mine"), (b"content-length", b"0")]
    head = session.response_head(200, app_fields, defaults)
    assert head == (
        b"HTTP/1.1 200 OK\r\nserver: mine\r\ncontent-length: 0\r\n"
        b"date: Sat, 21 Nov 2026 10:00:00 GMT\r\n\r\n"
    )


def test_response_without_length_is_chunked(session: HTTPSession) -> None:
    session.feed(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    events_until_blocked(session)
    out = session.response_head(200, []) + session.response_body(b"abc") + session.response_end()
    assert out.endswith(b"\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
    assert b"transfer-encoding: chunked" in out.lower()


def test_head_response_drops_the_body(session: HTTPSession) -> None:
    session.feed(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n")
    events_until_blocked(session)
    out = session.response_head(200, [(b"content-length", b"5")])
    out += session.response_body(b"hello") + session.response_end()
    assert out == b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n"
    assert session.reusable


def test_an_interim_head_ends_at_its_empty_line() -> None:
    """A 1xx has no content (RFC 9110 §15.2) and no Transfer-Encoding (RFC 9112 §6.1):
    a WebSocket's 101 goes through the one serialiser without framing fields."""
    head = interim_head(101, [(b"Upgrade", b"websocket")], [(b"date", b"today")])
    assert head == b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\ndate: today\r\n\r\n"


def test_an_interim_head_checks_its_fields_as_every_head_does() -> None:
    with pytest.raises(AppProtocolError, match="illegal response header value"):
        interim_head(101, [(b"x-a", b"split\r\nx-b: 1")], [])


def test_head_request_error_reply_has_no_body(session: HTTPSession) -> None:
    session.feed(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n")
    events_until_blocked(session)
    reply = session.error_response(503, [(b"retry-after", b"1")])
    assert reply == (
        b"HTTP/1.1 503 Service Unavailable\r\nretry-after: 1\r\n"
        b"content-type: text/plain; charset=utf-8\r\ncontent-length: 0\r\n"
        b"connection: close\r\n\r\n"
    )
    assert not session.reusable


def test_http10_is_not_kept_alive(session: HTTPSession) -> None:
    session.feed(b"GET / HTTP/1.0\r\n\r\n")
    head = events_until_blocked(session)[0]
    assert isinstance(head, RequestHead) and head.http_version == "1.0"
    out = session.response_head(200, []) + session.response_body(b"x") + session.response_end()
    assert out.startswith(b"HTTP/1.1 200 OK\r\n")
    assert not session.reusable


def answer_empty(session: HTTPSession, request: bytes) -> bool:
    """Feed `request`, answer it with an empty 200; whether the connection is reusable."""
    session.feed(request)
    events_until_blocked(session)
    session.response_head(200, [(b"content-length", b"0")])
    session.response_end()
    return session.reusable


def test_connection_close_is_honoured(session: HTTPSession) -> None:
    assert not answer_empty(session, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")


def test_keep_alive_is_decided_per_request(session: HTTPSession) -> None:
    """The field scan that finds `Connection: close` runs on each request's own fields:
    a close on the second request of a connection ends it, the first stays reusable."""
    assert answer_empty(session, b"GET /1 HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n")
    session.start_next_cycle()
    assert not answer_empty(session, b"GET /2 HTTP/1.1\r\nHost: x\r\nCONNECTION: Close\r\n\r\n")


def test_expect_continue_is_owed_only_to_http_11(session: HTTPSession) -> None:
    session.feed(b"POST / HTTP/1.0\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n")
    head = events_until_blocked(session)[0]
    assert isinstance(head, RequestHead) and not head.expects_continue
    assert session.continue_response() == b""


def test_pipelined_request_waits_paused(session: HTTPSession) -> None:
    session.feed(b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\n")
    first = events_until_blocked(session)
    assert first[-1] is PAUSED
    session.response_head(200, [(b"content-length", b"0")])
    session.response_end()
    session.start_next_cycle()
    second = events_until_blocked(session)
    assert isinstance(second[0], RequestHead) and second[0].target == b"/2"


def test_pipelined_requests_then_eof_are_all_served(session: HTTPSession) -> None:
    # Each cycle hands the bytes it did not parse, and the peer's EOF, to the next one.
    session.feed(b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\n")
    session.feed(b"")
    targets = []
    for _ in range(2):
        events = events_until_blocked(session)
        assert isinstance(events[0], RequestHead) and events[1] is REQUEST_END
        targets.append(events[0].target)
        session.response_head(200, [(b"content-length", b"0")])
        session.response_end()
        if session.reusable:
            session.start_next_cycle()
    assert targets == [b"/1", b"/2"]
    assert not session.reusable
    assert session.next_event() is CONNECTION_CLOSED


def test_expect_continue(session: HTTPSession) -> None:
    session.feed(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n")
    head = events_until_blocked(session)[0]
    assert isinstance(head, RequestHead) and head.expects_continue
    assert session.continue_response() == b"HTTP/1.1 100 Continue\r\n\r\n"
    assert session.continue_response() == b""


def test_eof_between_requests_is_connection_closed(session: HTTPSession) -> None:
    session.feed(b"")
    assert session.next_event() is CONNECTION_CLOSED


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"GARBAGE\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: x\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\n\r\n", 400),  # HTTP/1.1 requires Host (RFC 9112 §3.2)
        (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
        (b"GET /" + b"a" * 20000, 414),  # the request line never ends
        (b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-A: b\r\n" * 3000, 431),
        (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
    ],
)
def test_bad_requests_carry_their_status(session: HTTPSession, raw: bytes, status: int) -> None:
    session.feed(raw)
    with pytest.raises(ProtocolError) as caught:
        events_until_blocked(session)
    assert caught.value.status == status
    reply = session.error_response(status, [])
    assert reply.startswith(b"HTTP/1.1 %d " % status)
    assert b"connection: close" in reply.lower()


def test_an_http2_preface_is_a_505_in_words_an_operator_reads(session: HTTPSession) -> None:
    """With HTTP/2 off (or a preface that breaks off), both parsers say what came."""
    session.feed(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
    with pytest.raises(ProtocolError) as caught:
        events_until_blocked(session)
    assert caught.value.status == 505
    assert "HTTP/2" in str(caught.value)  # not llhttp's "Pause on PRI/Upgrade"


def test_error_response_after_start_is_empty(session: HTTPSession) -> None:
    session.feed(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    events_until_blocked(session)
    session.response_head(200, [])
    assert session.error_response(500, []) == b""


@pytest.mark.parametrize(
    ("target", "path", "raw", "query"),
    [
        (b"/a/b?x=1&y", "/a/b", b"/a/b", b"x=1&y"),
        (b"/caf%C3%A9/x%20y", "/caf\u00e9/x y", b"/caf%C3%A9/x%20y", b""),
        (b"/a%2Fb", "/a/b", b"/a%2Fb", b""),
        (b"/bad%FF", "/bad\ufffd", b"/bad%FF", b""),
        (b"*", "*", b"*", b""),
    ],
)
def test_parse_target(target: bytes, path: str, raw: bytes, query: bytes) -> None:
    parsed = parse_target(target)
    assert (parsed.path, parsed.raw_path, parsed.query_string) == (path, raw, query)


def test_parse_target_rejects_other_forms() -> None:
    with pytest.raises(ProtocolError) as caught:
        parse_target(b"example.com:443")
    assert caught.value.status == 400
    with pytest.raises(ProtocolError):  # a refused target is not remembered as valid
        parse_target(b"example.com:443")


def test_remembered_targets_stay_bounded_whatever_clients_send() -> None:
    """parse_target remembers splits for speed; distinct or long targets from clients
    must not grow that memory without bound."""
    for n in range(5000):
        assert parse_target(b"/items/%d?page=%d" % (n, n)).path == f"/items/{n}"
    assert len(session_module._known_targets) <= session_module._KNOWN_TARGETS
    long_target = b"/" + b"a" * session_module._KNOWN_TARGET_BYTES
    assert parse_target(long_target).raw_path == long_target
    assert long_target not in session_module._known_targets
    # A remembered split is the same answer as a fresh one.
    assert parse_target(b"/a%20b?x").path == parse_target(b"/a%20b?x").path == "/a b"


def test_invalid_app_head_still_allows_a_500(session: HTTPSession) -> None:
    session.feed(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    events_until_blocked(session)
    with pytest.raises(AppProtocolError):
        session.response_head(200, [(b"set-cookie", b" leading-space=1")])
    assert not session.response_started
    reply = session.error_response(500, [(b"server", b"gateway")])
    assert reply.startswith(b"HTTP/1.1 500 Internal Server Error\r\n")
    assert b"\r\nconnection: close\r\n" in reply
    assert reply.endswith(b"\r\n\r\nInternal Server Error\n")
    assert not session.reusable


def test_http_auto_is_the_httptools_session() -> None:
    """`[server] http = "auto"` (the default) takes the C parser (issue 3)."""
    from gateway.server.shared import SESSIONS as BY_SETTING

    assert BY_SETTING["auto"] is HttptoolsSession and BY_SETTING["h11"] is H11Session


def test_field_values_lose_trailing_whitespace(session: HTTPSession) -> None:
    """RFC 9112 "Field Syntax": whitespace around a value is not part of it."""
    session.feed(b"GET / HTTP/1.1\r\nHost: x  \r\nX-A:   foo   \r\nX-B: a b\t\r\nX-C:   \r\n\r\n")
    head = events_until_blocked(session)[0]
    assert isinstance(head, RequestHead)
    assert head.headers == [(b"host", b"x"), (b"x-a", b"foo"), (b"x-b", b"a b"), (b"x-c", b"")]


@pytest.mark.parametrize(
    ("request_line", "host_fields", "target", "host"),
    [
        (
            b"GET http://example.test:8080/api/x?q=1 HTTP/1.1",
            b"Host: other\r\n",
            b"/api/x?q=1",
            b"example.test:8080",
        ),
        (b"GET HTTPS://example.test HTTP/1.1", b"Host: example.test\r\n", b"/", b"example.test"),
        (b"GET http://example.test?q HTTP/1.1", b"Host: example.test\r\n", b"/?q", b"example.test"),
        (b"GET http://example.test/a HTTP/1.0", b"", b"/a", b"example.test"),
        # Asterisk-form, with OPTIONS only (RFC 9112 "asterisk-form"), is left as it is.
        (b"OPTIONS * HTTP/1.1", b"Host: example.test\r\n", b"*", b"example.test"),
    ],
)
def test_absolute_form_is_routed_by_its_path_and_names_the_host(
    session: HTTPSession, request_line: bytes, host_fields: bytes, target: bytes, host: bytes
) -> None:
    """RFC 9112 "absolute-form": a server MUST accept it, and use the target's authority
    in place of the Host field ("Reconstructing the Target URI")."""
    session.feed(request_line + b"\r\n" + host_fields + b"X-A: b\r\n\r\n")
    head = events_until_blocked(session)[0]
    assert isinstance(head, RequestHead)
    assert head.target == target
    assert [value for name, value in head.headers if name == b"host"] == [host]
    assert (b"x-a", b"b") in head.headers
    assert parse_target(head.target).path == target.partition(b"?")[0].decode()


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"FOO / HTTP/1.1\r\nHost: x\r\n\r\n", 501),  # a token, unknown (RFC 9110 "Methods")
        (b"PROPFINDX / HTTP/1.1\r\nHost: x\r\n\r\n", 501),
        (b"G\x01T / HTTP/1.1\r\nHost: x\r\n\r\n", 400),  # not a token
        (b"GET ftp://x/ HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        (b"GET http:///a HTTP/1.1\r\nHost: x\r\n\r\n", 400),  # an empty host
        (b"GET * HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        (b"CONNECT x:443 HTTP/1.1\r\nHost: x:443\r\n\r\n", 400),
    ],
)
def test_methods_and_target_forms_refused(session: HTTPSession, raw: bytes, status: int) -> None:
    for piece in (raw[:3], raw[3:]):  # the method split over two reads, too
        session.feed(piece)
    with pytest.raises(ProtocolError) as caught:
        events_until_blocked(session)
    assert caught.value.status == status


@pytest.mark.parametrize(
    ("bad", "status"),
    [
        (b"GET / HTTP/1.1\r\nHost: x\r\nX-A: \x01\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-A: " + b"b" * 20000, 431),
    ],
)
def test_an_error_after_a_complete_request_is_raised_after_its_cycle(
    session: HTTPSession, bad: bytes, status: int
) -> None:
    """A bad request pipelined behind a good one, in the same read: the good one is
    served and ends its cycle; then the error comes, to be answered (RFC 9112 §9.3.2)."""
    session.feed(b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\n" + bad)
    first = events_until_blocked(session)
    assert isinstance(first[0], RequestHead) and first[1] is REQUEST_END
    assert first[-1] is PAUSED
    session.response_head(200, [(b"content-length", b"0")])
    session.response_end()
    assert session.reusable
    session.start_next_cycle()
    with pytest.raises(ProtocolError) as caught:
        events_until_blocked(session)
    assert caught.value.status == status
    assert session.error_response(status, []).startswith(b"HTTP/1.1 %d " % status)
