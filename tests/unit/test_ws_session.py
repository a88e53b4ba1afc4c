"""The WebSocket session, sans I/O: bytes in, bytes out, no sockets.

The client is wsproto's own client (`WSConnection(CLIENT)`), or frames made by hand
where a test must break a rule wsproto would not let it break. The upgrade request is
parsed by the real HTTP sessions, as on a connection, and the session under test takes
over from the head they return.
"""

from __future__ import annotations

import base64
import hashlib
import os
import struct
import zlib
from typing import Any

import pytest
from wsproto import ConnectionType, WSConnection
from wsproto.connection import Connection, ConnectionState
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Event,
    Message,
    Ping,
    Pong,
    Request,
    TextMessage,
)
from wsproto.extensions import PerMessageDeflate

from gateway.errors import AppProtocolError, ClientDisconnected
from gateway.http.events import PAUSED, REQUEST_END, RequestHead
from gateway.http.h11_session import H11Session
from gateway.http.httptools_session import HttptoolsSession
from gateway.http.session import UpgradeRequest
from gateway.http.ws_deflate import negotiate_deflate
from gateway.http.ws_session import (
    HandshakeError,
    MessageReceived,
    PongReceived,
    SessionClosed,
    SessionState,
    UnsupportedVersion,
    WebSocketLimits,
    WebSocketSession,
    is_websocket_request,
    read_extended_connect,
    read_handshake,
)

SESSIONS = [H11Session, HttptoolsSession]
SessionClass = type[H11Session | HttptoolsSession]
LIMITS = WebSocketLimits(max_message_bytes=1024, per_message_deflate=True)
NO_DEFLATE = WebSocketLimits(max_message_bytes=1024, per_message_deflate=False)
# RFC 6455 §1.3: the worked example of the accept token.
RFC_KEY = b"dGhlIHNhbXBsZSBub25jZQ=="
RFC_ACCEPT = b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
TEXT, BINARY, CONTINUATION, CLOSE, PING = 0x1, 0x2, 0x0, 0x8, 0x9


def parse_head(raw: bytes, session_class: SessionClass = H11Session) -> RequestHead:
    """The head an HTTP session makes of `raw`, as the connection would get it."""
    http = session_class(16384, 8192)
    http.feed(raw)
    head = http.next_event()
    assert isinstance(head, RequestHead), head
    return head


def upgrade_request(*fields: bytes, method: bytes = b"GET", version: bytes = b"1.1") -> bytes:
    """A hand-written upgrade request: the usual fields, replaced or joined by `fields`."""
    usual = {
        b"host": b"Host: example.com",
        b"upgrade": b"Upgrade: websocket",
        b"connection": b"Connection: Upgrade",
        b"sec-websocket-key": b"Sec-WebSocket-Key: " + RFC_KEY,
        b"sec-websocket-version": b"Sec-WebSocket-Version: 13",
    }
    for field in fields:
        name = field.partition(b":")[0].lower()
        usual[name] = field
    lines = [method + b" /chat HTTP/" + version, *(f for f in usual.values() if f[-1:] != b":")]
    return b"\r\n".join(lines) + b"\r\n\r\n"


def without(name: bytes) -> bytes:
    return name + b":"  # a name alone: upgrade_request leaves the field out


class Peer:
    """A wsproto client talking to a WebSocketSession through plain bytes."""

    def __init__(
        self,
        limits: WebSocketLimits = LIMITS,
        subprotocols: list[str] | None = None,
        deflate: bool = False,
        accept: dict[str, Any] | None = None,
    ) -> None:
        self.client = WSConnection(ConnectionType.CLIENT)
        extensions = [PerMessageDeflate()] if deflate else []
        request = Request(
            host="example.com",
            target="/chat",
            subprotocols=subprotocols or [],
            extensions=extensions,
        )
        handshake = read_handshake(parse_head(self.client.send(request)))
        options = {"subprotocol": None, "headers": [], "defaults": [], **(accept or {})}
        self.response, self.session = handshake.accept(
            options["subprotocol"], options["headers"], options["defaults"], limits
        )
        self.client.receive_data(self.response)
        self.accepted = self.client_events()[0]

    def client_events(self) -> list[Event]:
        return list(self.client.events())

    def state(self) -> SessionState:
        """The session's state as a call: an `assert x.state is ...` would narrow the
        attribute for mypy past the calls that change it."""
        return self.session.state

    def send(self, event: Event) -> list[Any]:
        """A client event over the wire: the session's events for it."""
        return self.session.receive_data(self.client.send(event))

    def send_raw(self, data: bytes) -> list[Any]:
        return self.session.receive_data(data)

    def deliver(self, data: bytes) -> list[Event]:
        """Server bytes to the client: what the client makes of them."""
        self.client.receive_data(data)
        return self.client_events()

    def replies(self) -> list[Event]:
        """What the session queued while receiving (pongs, a Close), as the client sees it."""
        return self.deliver(self.session.outgoing())


def frame(opcode: int, payload: bytes, fin: bool = True, rsv: int = 0, mask: bool = True) -> bytes:
    """One client frame (RFC 6455 §5.2), short payloads only, masked unless told not."""
    assert len(payload) < 126
    first = (0x80 if fin else 0) | rsv | opcode
    if not mask:
        return bytes([first, len(payload)]) + payload
    key = os.urandom(4)
    masked = bytes(byte ^ key[i % 4] for i, byte in enumerate(payload))
    return bytes([first, 0x80 | len(payload)]) + key + masked


def closes(events: list[Any]) -> list[SessionClosed]:
    return [event for event in events if isinstance(event, SessionClosed)]


# -- the handshake ------------------------------------------------------------------------


@pytest.mark.parametrize("session_class", SESSIONS)
def test_both_http_sessions_hand_over_the_bytes_after_the_head(
    session_class: SessionClass,
) -> None:
    """The request is parsed once; the frames sent right behind it are not lost."""
    client = WSConnection(ConnectionType.CLIENT)
    raw = client.send(Request(host="example.com", target="/chat"))
    client.receive_data(b"HTTP/1.1 101 Switching Protocols\r\n")  # never completed: unused
    early_frame = frame(TEXT, b"early")
    http = session_class(16384, 8192)
    http.feed(raw + early_frame)
    head = http.next_event()
    assert type(head) is UpgradeRequest
    assert (http.next_event(), http.next_event()) == (REQUEST_END, PAUSED)
    assert http.take_upgraded() == early_frame


@pytest.mark.parametrize("session_class", SESSIONS)
def test_the_bytes_wait_for_an_upgrade_pipelined_behind_a_request(
    session_class: SessionClass,
) -> None:
    """The bytes after the upgrade are its own, not those of the request before it."""
    client = WSConnection(ConnectionType.CLIENT)
    plain = b"GET /first HTTP/1.1\r\nHost: x\r\n\r\n"
    early_frame = frame(TEXT, b"early")
    http = session_class(16384, 8192)
    http.feed(plain + client.send(Request(host="x", target="/chat")) + early_frame)
    assert type(http.next_event()) is RequestHead
    assert (http.next_event(), http.next_event()) == (REQUEST_END, PAUSED)
    http.response_head(200, [(b"content-length", b"0")])
    http.response_end()
    assert http.reusable
    http.start_next_cycle()
    assert type(http.next_event()) is UpgradeRequest
    assert (http.next_event(), http.next_event()) == (REQUEST_END, PAUSED)
    assert http.take_upgraded() == early_frame


@pytest.mark.parametrize("session_class", SESSIONS)
def test_an_ordinary_request_is_no_upgrade(session_class: SessionClass) -> None:
    head = parse_head(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", session_class)
    assert type(head) is RequestHead
    # An Upgrade field without the `upgrade` connection option asks for nothing (RFC 9110
    # §7.8), and both sessions agree on that.
    head = parse_head(b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n", session_class)
    assert type(head) is RequestHead


def test_accept_token_is_the_rfc_example() -> None:
    head = parse_head(upgrade_request())
    assert is_websocket_request(head)
    response, _ = read_handshake(head).accept(None, [], [], LIMITS)
    assert response.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    assert b"\r\nsec-websocket-accept: " + RFC_ACCEPT + b"\r\n" in response
    assert response.endswith(b"\r\n\r\n")
    expected = base64.b64encode(
        hashlib.sha1(RFC_KEY + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest()
    )
    assert expected == RFC_ACCEPT


def test_another_upgrade_is_not_websocket() -> None:
    head = parse_head(upgrade_request(b"Upgrade: h2c"))
    assert not is_websocket_request(head)
    assert is_websocket_request(parse_head(upgrade_request(b"Upgrade: foo, WebSocket")))


@pytest.mark.parametrize(
    "raw",
    [
        upgrade_request(method=b"POST"),
        upgrade_request(version=b"1.0"),
        upgrade_request(without(b"sec-websocket-key")),
        upgrade_request(b"Sec-WebSocket-Key: dG9vIHNob3J0"),  # 9 bytes, not 16
        upgrade_request(b"Sec-WebSocket-Key: not base64 at all!!"),
        upgrade_request(without(b"sec-websocket-version")),
        upgrade_request(b"Content-Length: 3"),
        upgrade_request(b"Transfer-Encoding: chunked"),
    ],
    ids=["post", "http-1.0", "no-key", "short-key", "bad-key", "no-version", "body", "chunked"],
)
def test_a_malformed_handshake_is_400(raw: bytes) -> None:
    with pytest.raises(HandshakeError) as refused:
        read_handshake(parse_head(raw, HttptoolsSession))
    assert refused.value.status == 400
    assert refused.value.headers == ()


def test_an_empty_body_is_no_body() -> None:
    """`Content-Length: 0` (some clients send it on every request) is not a body."""
    assert read_handshake(parse_head(upgrade_request(b"Content-Length: 0"))).key == RFC_KEY


def test_no_connection_upgrade_is_400() -> None:
    """Reached only through h11's head, since llhttp does not stop at such a request;
    the connection layer never asks, but the check holds on its own."""
    with pytest.raises(HandshakeError):
        read_handshake(parse_head(upgrade_request(b"Connection: keep-alive")))


def test_another_version_is_426_naming_13() -> None:
    with pytest.raises(UnsupportedVersion) as refused:
        read_handshake(parse_head(upgrade_request(b"Sec-WebSocket-Version: 8")))
    assert refused.value.status == 426
    assert refused.value.headers == ((b"sec-websocket-version", b"13"),)


def test_subprotocols_are_offered_in_order_and_one_is_chosen() -> None:
    peer = Peer(subprotocols=["chat.v2", "chat.v1"], accept={"subprotocol": "chat.v1"})
    assert isinstance(peer.accepted, AcceptConnection)
    assert peer.accepted.subprotocol == "chat.v1"
    head = parse_head(upgrade_request(b"Sec-WebSocket-Protocol: a, b", b"Connection: upgrade"))
    assert read_handshake(head).subprotocols == ["a", "b"]


def test_no_subprotocol_chosen_sends_none() -> None:
    peer = Peer(subprotocols=["chat.v1"])
    assert b"sec-websocket-protocol" not in peer.response
    assert isinstance(peer.accepted, AcceptConnection)


def test_a_subprotocol_the_client_did_not_offer_is_an_app_error() -> None:
    handshake = read_handshake(parse_head(upgrade_request(b"Sec-WebSocket-Protocol: a")))
    with pytest.raises(AppProtocolError):
        handshake.accept("b", [], [], LIMITS)


def test_app_headers_and_defaults_go_into_the_101() -> None:
    peer = Peer(
        accept={
            "headers": [(b"Set-Cookie", b"s=1"), (b"server", b"mine")],
            "defaults": [(b"server", b"gateway"), (b"date", b"today")],
        }
    )
    assert isinstance(peer.accepted, AcceptConnection)
    assert (b"set-cookie", b"s=1") in peer.accepted.extra_headers
    assert b"server: mine\r\n" in peer.response  # the app's own wins over the default
    assert b"server: gateway" not in peer.response
    assert b"date: today\r\n" in peer.response


@pytest.mark.parametrize(
    "headers",
    [[(b"x-bad", b"line\r\nbreak")], [(b"bad name", b"v")], [(b"Sec-WebSocket-Accept", b"x")]],
    ids=["crlf-in-value", "space-in-name", "handshake-field"],
)
def test_bad_accept_headers_are_an_app_error(headers: list[tuple[bytes, bytes]]) -> None:
    handshake = read_handshake(parse_head(upgrade_request()))
    with pytest.raises(AppProtocolError):
        handshake.accept(None, headers, [], LIMITS)


# -- permessage-deflate -------------------------------------------------------------------


def test_deflate_is_negotiated_when_offered_and_enabled() -> None:
    peer = Peer(deflate=True)
    assert isinstance(peer.accepted, AcceptConnection)
    assert [ext.name for ext in peer.accepted.extensions] == ["permessage-deflate"]
    text = "compress me " * 50
    assert peer.send(Message(data=text)) == [MessageReceived(text)]
    data = peer.session.send_message(text)
    assert len(data) < len(text) // 4  # it really went out compressed
    (message,) = peer.deliver(data)
    assert isinstance(message, TextMessage) and message.data == text


def test_deflate_off_or_not_offered_is_not_negotiated() -> None:
    for peer in (Peer(deflate=True, limits=NO_DEFLATE), Peer(deflate=False)):
        assert b"sec-websocket-extensions" not in peer.response
        assert peer.send(Message(data="plain")) == [MessageReceived("plain")]


DEFLATE = "permessage-deflate"


@pytest.mark.parametrize(
    ("offers", "agreed"),
    [
        ([DEFLATE], DEFLATE),
        (
            ["x-other", f"{DEFLATE}; client_max_window_bits"],
            f"{DEFLATE}; client_max_window_bits=15",
        ),
        ([f'{DEFLATE}; server_max_window_bits="10"'], f"{DEFLATE}; server_max_window_bits=10"),
        (
            [f"{DEFLATE}; client_no_context_takeover; server_no_context_takeover"],
            f"{DEFLATE}; client_no_context_takeover; server_no_context_takeover",
        ),
        # Declined, and the next offer taken: an unknown parameter; 8 window bits,
        # which zlib cannot use for raw deflate.
        ([f"{DEFLATE}; mystery=1", DEFLATE], DEFLATE),
        ([f"{DEFLATE}; server_max_window_bits=8", DEFLATE], DEFLATE),
        # Declined, with nothing after them.
        ([f"{DEFLATE}; server_no_context_takeover; server_no_context_takeover"], None),
        ([f"{DEFLATE}; server_max_window_bits"], None),  # it needs a value
        ([f"{DEFLATE}; server_max_window_bits=16"], None),
        ([f"{DEFLATE}; client_no_context_takeover=1"], None),  # it takes no value
        (["x-other"], None),
    ],
)
def test_deflate_offers_are_checked(offers: list[str], agreed: str | None) -> None:
    """RFC 7692 §5, §7.1: a bad offer is declined and the next one tried."""
    result = negotiate_deflate(offers, 1024)
    assert (result and result[1]) == (agreed and agreed.encode())


def test_a_compressed_message_is_limited_at_its_inflated_size() -> None:
    """A few bytes of deflated zeros must not become megabytes (RFC 7692 §8.1)."""
    peer = Peer(deflate=True)
    compressor = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -15)
    payload = compressor.compress(bytes(10 * 1024 * 1024)) + compressor.flush(zlib.Z_SYNC_FLUSH)
    payload = payload[:-4]  # RFC 7692 §7.2.1: the sync flush tail is left off
    assert len(payload) < 126 * 100
    head = bytes([0x80 | 0x40 | BINARY, 0x80 | 126]) + struct.pack("!H", len(payload))
    key = os.urandom(4)
    masked = bytes(byte ^ key[i % 4] for i, byte in enumerate(payload))
    events = peer.send_raw(head + key + masked)
    assert [closed.code for closed in closes(events)] == [1009]
    assert not any(isinstance(e, MessageReceived) for e in events)


# -- messages -----------------------------------------------------------------------------


def test_text_and_binary_both_ways() -> None:
    peer = Peer()
    assert peer.send(Message(data="héllo")) == [MessageReceived("héllo")]
    assert peer.send(Message(data=b"\x00\xff")) == [MessageReceived(b"\x00\xff")]
    assert peer.send(Message(data="")) == [MessageReceived("")]
    (text,) = peer.deliver(peer.session.send_message("wörld"))
    assert isinstance(text, TextMessage) and text.data == "wörld"
    (binary,) = peer.deliver(peer.session.send_message(b"\x01\x02"))
    assert isinstance(binary, BytesMessage) and binary.data == b"\x01\x02"


def test_fragments_are_joined_and_a_ping_between_them_answered() -> None:
    peer = Peer()
    assert peer.send(Message(data="hel", message_finished=False)) == []
    assert peer.send(Ping(payload=b"mid")) == []
    assert peer.replies() == [Pong(payload=b"mid")]
    assert peer.send(Message(data="lo", message_finished=False)) == []
    assert peer.send(Message(data=" world")) == [MessageReceived("hello world")]
    assert peer.send(Message(data=b"\x00", message_finished=False)) == []
    assert peer.send(Message(data=b"\x01")) == [MessageReceived(b"\x00\x01")]


def test_many_messages_in_one_read() -> None:
    peer = Peer()
    burst = b"".join(peer.client.send(Message(data=f"m{n}")) for n in range(50))
    assert peer.send_raw(burst) == [MessageReceived(f"m{n}") for n in range(50)]


def test_a_frame_split_across_reads() -> None:
    peer = Peer()
    data = peer.client.send(Message(data="split me"))
    assert peer.send_raw(data[:3]) == []
    assert peer.send_raw(data[3:]) == [MessageReceived("split me")]


def test_utf8_split_across_fragments_is_fine() -> None:
    euro = "€".encode()
    peer = Peer()
    assert peer.send_raw(frame(TEXT, b"x" + euro[:2], fin=False)) == []
    assert peer.send_raw(frame(CONTINUATION, euro[2:])) == [MessageReceived("x€")]


def test_ping_is_answered_with_its_payload_and_pong_reported() -> None:
    peer = Peer()
    assert peer.send(Ping(payload=b"hi")) == []
    assert peer.replies() == [Pong(payload=b"hi")]
    assert peer.send(Pong(payload=b"")) == [PongReceived()]
    (ping,) = peer.deliver(peer.session.ping())
    assert isinstance(ping, Ping)


# -- limits and bad frames ------------------------------------------------------------------


def test_a_message_at_the_limit_passes_and_one_over_is_1009() -> None:
    peer = Peer()
    assert peer.send(Message(data=b"x" * 1024)) == [MessageReceived(b"x" * 1024)]
    assert closes(peer.send(Message(data=b"x" * 1025))) == [
        SessionClosed(1009, "message over 1024 bytes")
    ]
    (close,) = peer.replies()
    assert isinstance(close, CloseConnection) and close.code == 1009


def test_the_limit_is_on_the_whole_message_and_counts_utf8_bytes() -> None:
    peer = Peer()
    assert peer.send(Message(data=b"x" * 600, message_finished=False)) == []
    assert closes(peer.send(Message(data=b"x" * 600)))[0].code == 1009
    peer = Peer()
    assert peer.send(Message(data="€" * 341)) == [MessageReceived("€" * 341)]  # 1023 bytes
    assert closes(peer.send(Message(data="€" * 342)))[0].code == 1009  # 1026 bytes


@pytest.mark.parametrize(
    "raw",
    [
        frame(0x3, b""),  # a reserved opcode (RFC 6455 §5.2)
        frame(TEXT, b"hi", mask=False),  # a client frame must be masked (§5.1)
        frame(TEXT, b"hi", rsv=0x40),  # RSV1 with no extension agreed
        frame(PING, b"", fin=False),  # control frames are never fragmented (§5.5)
        frame(CONTINUATION, b"orphan"),
        frame(CLOSE, b"\x03"),  # a close payload of one byte
    ],
    ids=["reserved-opcode", "unmasked", "rsv1", "fragmented-ping", "orphan", "close-1-byte"],
)
def test_an_invalid_frame_fails_with_1002(raw: bytes) -> None:
    peer = Peer()
    (closed,) = peer.send_raw(raw)
    assert isinstance(closed, SessionClosed) and closed.code == 1002
    assert peer.session.state is SessionState.CLOSED
    (close,) = peer.replies()
    assert isinstance(close, CloseConnection) and close.code == 1002


@pytest.mark.parametrize(
    "raw",
    [
        frame(TEXT, b"ok \xff"),
        frame(TEXT, b"\xe2\x82", fin=False) + frame(CONTINUATION, b"("),
        frame(CLOSE, struct.pack("!H", 1000) + b"\xff"),
    ],
    ids=["one-frame", "across-fragments", "close-reason"],
)
def test_invalid_utf8_fails_with_1007(raw: bytes) -> None:
    peer = Peer()
    events = peer.send_raw(raw)
    assert [e.code for e in closes(events)] == [1007]
    assert not any(isinstance(e, MessageReceived) for e in events)


def test_nothing_is_read_after_the_connection_failed() -> None:
    peer = Peer()
    events = peer.send_raw(frame(0x3, b"") + peer.client.send(Message(data="after")))
    assert [type(e) for e in events] == [SessionClosed]
    assert peer.send_raw(frame(TEXT, b"later")) == []
    assert peer.session.outgoing().startswith(bytes([0x88]))  # only our Close
    assert peer.session.outgoing() == b""


# -- closing ------------------------------------------------------------------------------


def test_the_peer_closes_with_a_code_and_reason() -> None:
    peer = Peer()
    assert peer.send(CloseConnection(code=4001, reason="bye")) == [SessionClosed(4001, "bye")]
    (reply,) = peer.replies()  # RFC 6455 §5.5.1: the Close is answered
    assert isinstance(reply, CloseConnection) and reply.code == 4001
    assert peer.client.state is ConnectionState.CLOSED
    with pytest.raises(ClientDisconnected):
        peer.session.send_message("too late")


def test_a_close_without_a_code_is_1005() -> None:
    peer = Peer()
    assert peer.send_raw(frame(CLOSE, b"")) == [SessionClosed(1005, "")]


def test_we_close_and_the_peer_answers() -> None:
    peer = Peer()
    (close,) = peer.deliver(peer.session.close(4000, "done"))
    assert isinstance(close, CloseConnection) and (close.code, close.reason) == (4000, "done")
    assert peer.state() is SessionState.CLOSE_SENT
    assert peer.session.close(1000) == b""  # once only
    assert peer.session.ping() == b""
    # Data still in flight from the peer is dropped; its Close ends the handshake.
    assert peer.send_raw(frame(TEXT, b"in flight")) == []
    events = peer.send_raw(frame(CLOSE, struct.pack("!H", 4000)))
    assert events == [SessionClosed(4000, "done")]
    assert peer.session.state is SessionState.CLOSED
    assert peer.session.outgoing() == b""  # nothing to answer: the handshake is complete


@pytest.mark.parametrize("code", [999, 1004, 1005, 1006, 1015, 2000, 5000])
def test_a_code_that_may_not_be_sent_is_an_app_error(code: int) -> None:
    peer = Peer()
    with pytest.raises(AppProtocolError):
        peer.session.close(code)
    assert peer.session.state is SessionState.OPEN


def test_session_type_is_what_accept_returns() -> None:
    assert isinstance(Peer().session, WebSocketSession)


# -- over HTTP/2 (RFC 8441) ---------------------------------------------------------------


def extended_connect(*fields: tuple[bytes, bytes]) -> RequestHead:
    """The head an HTTP/2 session makes of an extended CONNECT for WebSocket."""
    return RequestHead(b"CONNECT", b"/chat", [(b"host", b"example.com"), *fields], "2")


def test_an_extended_connect_is_a_handshake_without_a_key() -> None:
    head = extended_connect(
        (b"sec-websocket-version", b"13"), (b"sec-websocket-protocol", b"chat.v1, chat.v2")
    )
    handshake = read_extended_connect(head)
    assert handshake.key is None and handshake.subprotocols == ["chat.v1", "chat.v2"]
    fields, _ = handshake.accept_fields("chat.v2", [(b"x-app", b"1")], LIMITS)
    # RFC 8441 §5: none of HTTP/1.1's upgrade fields; the choice and the app's are kept.
    assert fields == [(b"sec-websocket-protocol", b"chat.v2"), (b"x-app", b"1")]


def test_an_extended_connect_still_names_version_13() -> None:
    with pytest.raises(HandshakeError) as missing:
        read_extended_connect(extended_connect())
    assert missing.value.status == 400
    with pytest.raises(UnsupportedVersion):
        read_extended_connect(extended_connect((b"sec-websocket-version", b"8")))


def test_frames_over_http2_are_rfc_6455_s_with_deflate() -> None:
    offer = (b"sec-websocket-extensions", b"permessage-deflate; client_max_window_bits")
    handshake = read_extended_connect(extended_connect((b"sec-websocket-version", b"13"), offer))
    fields, session = handshake.accept_fields(None, [], LIMITS)
    agreed = dict(fields)[b"sec-websocket-extensions"]
    assert agreed.startswith(b"permessage-deflate")
    client_deflate = PerMessageDeflate()
    client_deflate.finalize(agreed.decode())
    client = Connection(ConnectionType.CLIENT, [client_deflate])
    events = session.receive_data(client.send(TextMessage("over h2 " * 100)))
    assert events == [MessageReceived("over h2 " * 100)]
