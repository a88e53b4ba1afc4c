"""The WebSocket side of a connection, sans I/O: RFC 6455 through wsproto, RFC 7692, and
RFC 8441's handshake over HTTP/2.

The HTTP session has already parsed the upgrade request; this module takes over from
its RequestHead, so the request is never serialised and parsed a second time. Rules:
1. `is_websocket_request` tells an upgrade that asks for WebSocket from any other
   (RFC 6455 §4.2.1 item 3). `read_handshake` checks the rest of §4.2.1 and raises
   HandshakeError, whose status is the reply: 400 for a malformed handshake, 426 with
   `Sec-WebSocket-Version: 13` for another protocol version (§4.2.2).
2. `Handshake.accept_fields` returns the fields of the accept and the WebSocketSession
   that speaks frames from then on; permessage-deflate is agreed there when the client
   offered it and the setting allows it (gateway/http/ws_deflate.py). The stream frames
   the accept: a 101 on HTTP/1.1 (`accept` gives its bytes), a 200 on HTTP/2.
3. Bytes in, events out: whole messages (fragments joined, RFC 6455 §5.4), pongs, and
   SessionClosed once the connection is over, with the close code the app is told.
   Pings are answered here (§5.5.2); the pong, like the reply to a Close, waits in
   `outgoing()`.
4. Bad input from the peer fails the connection (§7.1.7) with the code it implies:
   1002 for a frame that breaks the protocol, 1007 for text that is not UTF-8 (§8.1),
   1009 for a message over `max_message_bytes`, counted after inflation. The Close
   frame with that code is the last thing sent, and nothing more is read.
5. wsproto's types and exceptions stay in this module; what leaves it is gateway's.
6. What a session holds is bounded by its input, not by the number of frames: a
   fragmented message is reassembled in one byte buffer (text as UTF-8), never as a
   list of pieces, whose per-object overhead would let 2-byte fragments cost some
   thirty times their size. wsproto's own buffer holds at most the last read: every
   read is parsed to its end before the next, and data frames are passed on piece by
   piece, not held until they are whole.
7. Over HTTP/2 (RFC 8441) the request is an extended CONNECT, read by
   `read_extended_connect`: no Upgrade, Connection or Sec-WebSocket-Key (§5), so the
   accept has no Sec-WebSocket-Accept either; the version, subprotocols and extensions
   are read as RFC 6455 reads them, and the frames are the same.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import Enum

from wsproto.connection import Connection, ConnectionState, ConnectionType
from wsproto.events import BytesMessage, CloseConnection, Event, Ping, Pong, TextMessage
from wsproto.extensions import Extension
from wsproto.frame_protocol import CloseReason
from wsproto.utilities import LocalProtocolError, generate_accept_token

from gateway.errors import AppProtocolError, ClientDisconnected, ProtocolError
from gateway.http.events import RequestHead
from gateway.http.response import interim_head
from gateway.http.session import Headers, field_tokens
from gateway.http.ws_deflate import negotiate_deflate

WEBSOCKET_VERSION = b"13"  # RFC 6455 §4.1 item 9: the only version there is
KEY_BYTES = 16  # RFC 6455 §4.1 item 7: the nonce is 16 random bytes, base64-encoded
# Fields of the 101 that the handshake owns; an app that sets them would break it.
HANDSHAKE_FIELDS = frozenset(
    {
        b"connection",
        b"upgrade",
        b"sec-websocket-accept",
        b"sec-websocket-extensions",
        b"sec-websocket-protocol",
    }
)
# RFC 6455 §7.4: the codes an endpoint may send. 1004-1006 and 1015 are reserved or
# local-only; 1012-1014 are registered with IANA (service restart, try again later...).
SENDABLE_CLOSE_CODES = frozenset({1000, 1001, 1002, 1003, *range(1007, 1015), *range(3000, 5000)})


class HandshakeError(ProtocolError):
    """A WebSocket handshake that cannot be accepted; `headers` go with the reply."""

    status = 400
    headers: tuple[tuple[bytes, bytes], ...] = ()


class UnsupportedVersion(HandshakeError):
    """RFC 6455 §4.2.2: 426, naming the version the server speaks."""

    status = 426
    headers = ((b"sec-websocket-version", WEBSOCKET_VERSION),)


@dataclass(frozen=True, slots=True)
class WebSocketLimits:
    """The settings a session is held to (from `[server]`)."""

    max_message_bytes: int
    per_message_deflate: bool


# -- the opening handshake ----------------------------------------------------------------


def is_websocket_request(head: RequestHead) -> bool:
    """The request's Upgrade field names `websocket` (case-insensitive, RFC 6455 §4.2.1)."""
    return any(
        name == b"upgrade" and b"websocket" in field_tokens(value) for name, value in head.headers
    )


def read_handshake(head: RequestHead) -> Handshake:
    """Check a WebSocket upgrade request against RFC 6455 §4.2.1; raise HandshakeError."""
    fields = _fields_by_name(head.headers)
    if head.method != b"GET" or head.http_version != "1.1":
        raise HandshakeError("a WebSocket handshake is an HTTP/1.1 GET (RFC 6455 §4.1)")
    if b"upgrade" not in field_tokens(b",".join(fields.get(b"connection", []))):
        raise HandshakeError("a WebSocket handshake needs `Connection: Upgrade`")
    if fields.get(b"content-length", [b"0"]) != [b"0"] or b"transfer-encoding" in fields:
        # Frames follow the head at once; a body would leave their start in doubt.
        raise HandshakeError("a WebSocket handshake has no body")
    _check_version(fields)
    keys = fields.get(b"sec-websocket-key", [])
    if len(keys) != 1 or not _is_valid_key(keys[0]):
        raise HandshakeError("Sec-WebSocket-Key must be one base64-encoded 16-byte nonce")
    return _handshake(fields, keys[0].strip())


def read_extended_connect(head: RequestHead) -> Handshake:
    """Check an HTTP/2 extended CONNECT for WebSocket (RFC 8441 §5; its :protocol was
    checked by the HTTP/2 session); raise HandshakeError (rule "over HTTP/2")."""
    fields = _fields_by_name(head.headers)
    _check_version(fields)
    return _handshake(fields, None)


def _check_version(fields: dict[bytes, list[bytes]]) -> None:
    versions = fields.get(b"sec-websocket-version", [])
    if not versions:
        raise HandshakeError("missing Sec-WebSocket-Version")
    if versions != [WEBSOCKET_VERSION]:
        raise UnsupportedVersion("unsupported Sec-WebSocket-Version")


def _handshake(fields: dict[bytes, list[bytes]], key: bytes | None) -> Handshake:
    return Handshake(
        key=key,
        subprotocols=_list_values(fields.get(b"sec-websocket-protocol", [])),
        extension_offers=_list_values(fields.get(b"sec-websocket-extensions", [])),
    )


def _fields_by_name(headers: Headers) -> dict[bytes, list[bytes]]:
    fields: dict[bytes, list[bytes]] = {}
    for name, value in headers:
        fields.setdefault(name, []).append(value)
    return fields


def _list_values(values: list[bytes]) -> list[str]:
    """The elements of a list field that may be sent more than once, in order."""
    items = (item.strip() for value in values for item in value.split(b","))
    return [item.decode("latin-1") for item in items if item]


def _is_valid_key(key: bytes) -> bool:
    try:
        return len(base64.b64decode(key.strip(), validate=True)) == KEY_BYTES
    except binascii.Error:
        return False


@dataclass(frozen=True, slots=True)
class Handshake:
    """A valid opening handshake, waiting for the app's answer; `key` is None over HTTP/2
    (rule "over HTTP/2")."""

    key: bytes | None
    subprotocols: list[str]
    extension_offers: list[str]

    def accept(
        self,
        subprotocol: str | None,
        headers: Iterable[tuple[bytes, bytes]],
        defaults: Sequence[tuple[bytes, bytes]],
        limits: WebSocketLimits,
    ) -> tuple[bytes, WebSocketSession]:
        """The bytes of the 101 (RFC 6455 §4.2.2 item 5), as HTTP/1.1 frames the accept,
        and the session (see `accept_fields`)."""
        fields, session = self.accept_fields(subprotocol, headers, limits)
        return interim_head(101, fields, defaults), session

    def accept_fields(
        self,
        subprotocol: str | None,
        headers: Iterable[tuple[bytes, bytes]],
        limits: WebSocketLimits,
    ) -> tuple[list[tuple[bytes, bytes]], WebSocketSession]:
        """The fields of the accept and the session that speaks frames after it.

        Raises AppProtocolError, before anything is sent, for a subprotocol the client
        did not offer or a field that belongs to the handshake; the stream that frames
        the fields checks them as it checks every response field.
        """
        if subprotocol is not None and subprotocol not in self.subprotocols:
            raise AppProtocolError(f"subprotocol {subprotocol!r} was not offered by the client")
        fields: list[tuple[bytes, bytes]] = []
        if self.key is not None:  # HTTP/1.1's upgrade; RFC 8441 §5 drops all three
            fields += [
                (b"upgrade", b"websocket"),
                (b"connection", b"Upgrade"),
                (b"sec-websocket-accept", generate_accept_token(self.key)),
            ]
        if subprotocol is not None:
            fields.append((b"sec-websocket-protocol", subprotocol.encode("latin-1")))
        deflate = None
        if limits.per_message_deflate:
            deflate = negotiate_deflate(self.extension_offers, limits.max_message_bytes)
        if deflate is not None:
            fields.append((b"sec-websocket-extensions", deflate[1]))
        fields += _app_fields(headers)
        extensions: list[Extension] = [deflate[0]] if deflate is not None else []
        return fields, WebSocketSession(Connection(ConnectionType.SERVER, extensions), limits)


def _app_fields(headers: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The app's extra fields for the 101, none of them one the handshake owns; the
    serialiser checks them as it checks every response field (RFC 9110 §5.1, §5.5)."""
    fields = [(bytes(name).lower(), bytes(value)) for name, value in headers]
    taken = HANDSHAKE_FIELDS.intersection(name for name, _ in fields)
    if taken:
        raise AppProtocolError(f"websocket.accept may not set {sorted(taken)}")
    return fields


# -- frames -------------------------------------------------------------------------------


class SessionState(Enum):
    """Where the closing handshake stands (RFC 6455 §7)."""

    OPEN = "open"  # messages both ways
    CLOSE_SENT = "close-sent"  # our Close went out; waiting for the peer's (§7.1.2)
    CLOSED = "closed"  # both Close frames exchanged, or the connection failed: hang up


@dataclass(frozen=True, slots=True)
class MessageReceived:
    """One whole message from the peer."""

    data: str | bytes


@dataclass(frozen=True, slots=True)
class PongReceived:
    """A pong from the peer: it is alive (RFC 6455 §5.5.3)."""


@dataclass(frozen=True, slots=True)
class SessionClosed:
    """The connection is over: the close code and reason the app is told."""

    code: int
    reason: str


WebSocketEvent = MessageReceived | PongReceived | SessionClosed


class WebSocketSession:
    """One WebSocket's frames after the handshake: bytes in, events out, and back."""

    def __init__(self, connection: Connection, limits: WebSocketLimits) -> None:
        self._ws = connection
        self._max_message_bytes = limits.max_message_bytes
        self.state = SessionState.OPEN
        self._out = bytearray()  # pongs and Close replies, until `outgoing` takes them
        # The fragments of the message being reassembled, as bytes (rule "what a session
        # holds is bounded by its input").
        self._fragments = bytearray()
        self._message_bytes = 0
        self._close_code = CloseReason.ABNORMAL_CLOSURE.value  # what we sent, once we do
        self._close_reason = ""

    def receive_data(self, data: bytes) -> list[WebSocketEvent]:
        """Feed bytes from the peer; the events they complete, in order."""
        if self.state is SessionState.CLOSED or not data:
            return []
        self._ws.receive_data(data)
        events: list[WebSocketEvent] = []
        for event in self._ws.events():
            result = self._handle(event)
            if result is not None:
                events.append(result)
            if isinstance(result, SessionClosed):
                break  # nothing after the end is read (rule "bad input from the peer")
        return events

    def outgoing(self) -> bytes:
        """Bytes produced while receiving (pongs, the reply to a Close) to write now."""
        out, self._out = bytes(self._out), bytearray()
        return out

    def _handle(self, event: Event) -> WebSocketEvent | None:
        if isinstance(event, TextMessage):
            return self._message_part(event.data, event.message_finished)
        if isinstance(event, BytesMessage):
            return self._message_part(bytes(event.data), event.message_finished)
        if isinstance(event, Ping):
            if self.state is SessionState.OPEN:  # §5.5.2; after our Close, no more frames
                self._out += self._ws.send(event.response())
            return None
        if isinstance(event, Pong):
            return PongReceived()
        if isinstance(event, CloseConnection):
            return self._close_received(event)
        return None

    def _message_part(self, data: str | bytes, finished: bool) -> WebSocketEvent | None:
        if self.state is not SessionState.OPEN:
            return None  # after our Close the app has said it is done: drop what comes
        self._message_bytes += _utf8_length(data) if isinstance(data, str) else len(data)
        if self._message_bytes > self._max_message_bytes:
            limit = self._max_message_bytes
            return self._fail(CloseReason.MESSAGE_TOO_BIG, f"message over {limit} bytes")
        if finished and not self._fragments:  # a message in one piece: no copy
            self._message_bytes = 0
            return MessageReceived(data)
        self._fragments += data.encode("utf-8") if isinstance(data, str) else data
        if not finished:
            return None
        whole = bytes(self._fragments)
        self._fragments, self._message_bytes = bytearray(), 0
        # wsproto has checked the text as UTF-8 already (RFC 6455 §8.1), piece by piece.
        return MessageReceived(whole.decode("utf-8") if isinstance(data, str) else whole)

    def _close_received(self, event: CloseConnection) -> SessionClosed:
        state = self._ws.state
        if state is ConnectionState.REMOTE_CLOSING:  # the peer closes: answer (§5.5.1)
            self._out += self._ws.send(event.response())
            return self._closed(event.code, event.reason or "")
        if state is ConnectionState.CLOSED:  # the peer's answer to our Close
            return self._closed(self._close_code, self._close_reason)
        # wsproto reports a frame it could not parse as a Close it did not receive.
        return self._fail(event.code, event.reason or "")

    def _fail(self, code: int, reason: str) -> SessionClosed:
        """Fail the connection (RFC 6455 §7.1.7): a Close with `code`, then hang up."""
        if self.state is SessionState.OPEN:
            self._out += self._ws.send(CloseConnection(code=code, reason=reason))
            self._close_code, self._close_reason = code, reason
        return self._closed(self._close_code, self._close_reason)

    def _closed(self, code: int, reason: str) -> SessionClosed:
        self.state = SessionState.CLOSED
        return SessionClosed(int(code), reason)

    # -- what the app sends ---------------------------------------------------------------

    def send_message(self, data: str | bytes) -> bytes:
        """A whole message as one frame. Raises ClientDisconnected once closing began."""
        if self.state is not SessionState.OPEN:
            raise ClientDisconnected("the WebSocket is closed")
        try:
            return bytes(self._ws.send(_outbound(data)))
        except UnicodeEncodeError as exc:  # a lone surrogate: not UTF-8 (RFC 6455 §5.6)
            raise AppProtocolError("websocket.send text is not valid Unicode") from exc
        except LocalProtocolError as exc:
            raise ClientDisconnected(str(exc)) from exc

    def close(self, code: int, reason: str = "") -> bytes:
        """Our Close frame (RFC 6455 §5.5.1), once; b"" if closing has begun already."""
        if code not in SENDABLE_CLOSE_CODES:
            raise AppProtocolError(f"close code {code} may not be sent (RFC 6455 §7.4)")
        if self.state is not SessionState.OPEN:
            return b""
        self.state = SessionState.CLOSE_SENT
        self._close_code, self._close_reason = code, reason
        return bytes(self._ws.send(CloseConnection(code=code, reason=reason)))

    def ping(self, payload: bytes = b"") -> bytes:
        """A Ping frame (RFC 6455 §5.5.2), or b"" once closing has begun."""
        if self.state is not SessionState.OPEN:
            return b""
        return bytes(self._ws.send(Ping(payload=payload)))


def _outbound(data: str | bytes) -> TextMessage | BytesMessage:
    return TextMessage(data=data) if isinstance(data, str) else BytesMessage(data=data)


def _utf8_length(text: str) -> int:
    """The bytes `text` took on the wire; an ASCII string is its own length (checked in
    constant time by CPython), so only other text is encoded again to count it."""
    return len(text) if text.isascii() else len(text.encode("utf-8"))
