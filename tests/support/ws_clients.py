"""WebSocket clients for the tests: what a user has, and what shows the wire.

- `ws_connect` is the `websockets` library's sync client with the tests' deadlines: it
  checks the handshake, answers pings and closes properly, as a user's client would;
  `upgrade_response` is the server's answer that it got, `rejection` the refusal.
- `RawClient` is wsproto over a plain socket: frames as they come, pings answered only
  when told, and `client_frame` makes the frames a well-behaved client never sends.
- `H2Client` is h2 by hand on one HTTP/2 connection (h2_clients.py's `H2Socket`), and
  `H2WebSocket` wsproto in client mode over one of its streams: WebSocket over HTTP/2
  (RFC 8441), beside plain requests, with the frames and the flow-control windows in
  the test's hands.
- `read_http_response`, `read_frame` and `send_until_stalled` read and write a raw
  socket with deadlines, for handshakes by hand, frames as sent, and flow control.

Every read has a deadline and every loop a bound: a server that never answers fails the
test in seconds, never hangs it.
"""

from __future__ import annotations

import os
import select
import socket
import struct
import time
from collections import deque
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

import h2.errors
import h2.events
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.http11 import Response
from websockets.sync.client import ClientConnection, connect
from wsproto import ConnectionType, WSConnection
from wsproto.connection import Connection, ConnectionState
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Event,
    Ping,
    Request,
    TextMessage,
)
from wsproto.extensions import Extension, PerMessageDeflate

from support.deadlines import receive
from support.h2_clients import H2Socket
from support.servers import Server

# A read or a handshake that takes longer than this has failed (2 cores, other test runs
# alongside: generous, but a test whose server never answers still ends in seconds).
DEADLINE_S = 10.0
MIB = 1024 * 1024
# Our clients accept any message the tests send back (the library's default is 1 MiB).
CLIENT_MAX_MESSAGE_BYTES = 64 * MIB


# --- the websockets library ----------------------------------------------------------


def ws_connect(server: Server, path: str, **options: Any) -> ClientConnection:
    options.setdefault("max_size", CLIENT_MAX_MESSAGE_BYTES)
    connection = connect(
        f"ws://127.0.0.1:{server.port}{path}",
        proxy=None,
        open_timeout=DEADLINE_S,
        close_timeout=DEADLINE_S,
        **options,
    )
    # `connect` gives a reconnecting client only for legacy=False, which no test passes.
    assert isinstance(connection, ClientConnection), connection
    return connection


def upgrade_response(ws: ClientConnection) -> Response:
    """The server's answer to the upgrade, which a connected client always has."""
    assert ws.response is not None, "the opening handshake is not complete"
    return ws.response


def rejection(server: Server, path: str, **options: Any) -> Response:
    """The HTTP response that refused the upgrade."""
    with pytest.raises(InvalidStatus) as refused:
        ws_connect(server, path, **options).close()
    return refused.value.response


def closed_by_server(ws: ClientConnection) -> Any:
    """Read until the server closes; its Close frame (websockets' Close), or None."""
    with pytest.raises(ConnectionClosed) as closed:
        for _ in range(1000):  # bounded: skip what was in flight before the Close
            ws.recv(timeout=DEADLINE_S)
    return closed.value.rcvd


# --- a raw wsproto client ------------------------------------------------------------


class RawClient:
    """A WebSocket client over a plain socket, through wsproto: every frame is visible.

    Pings are answered only when `answers_pings` is set, so a test can play a peer that
    has gone silent. Messages that arrive while waiting for a Close are kept in
    `received`; pings seen are kept in `pings`.
    """

    def __init__(self, sock: socket.socket, answers_pings: bool = False) -> None:
        self.sock = sock
        self.ws = WSConnection(ConnectionType.CLIENT)
        self.answers_pings = answers_pings
        self.pending: deque[Event] = deque()
        self.pings: list[bytes] = []
        self.received: list[str | bytes | bytearray] = []

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.sock.close()

    def handshake(self, target: str, deflate: bool = False) -> Event:
        """Send the upgrade request; the server's answer (AcceptConnection or
        RejectConnection)."""
        extensions = [PerMessageDeflate()] if deflate else []
        self.send(Request(host="127.0.0.1", target=target, extensions=extensions))
        return self.next_event()

    def send(self, event: Event) -> None:
        self.sock.sendall(self.ws.send(event))

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def feed(self, data: bytes) -> None:
        """Take bytes already read off the socket by other means. Empty is nothing: to
        wsproto (and h11 below it) b"" would mean the peer closed."""
        if data:
            self.ws.receive_data(data)
            self.pending.extend(self.ws.events())

    def next_event(self, deadline_s: float = DEADLINE_S) -> Event:
        """The next event from the server; a vanished TCP connection is Close 1006."""
        end = time.monotonic() + deadline_s
        while not self.pending:
            if time.monotonic() >= end:
                raise AssertionError("no WebSocket event from the server before the deadline")
            data = receive(self.sock, end)
            if data is None:
                continue
            self.ws.receive_data(data or None)
            self.pending.extend(self.ws.events())
        return self.pending.popleft()

    def next_frame_event(self) -> Event:
        """The next event that is not a Ping (pings are noted, and answered if told)."""
        for _ in range(10_000):  # bounded: a server pinging nonstop is a failure too
            event = self.next_event()
            if not isinstance(event, Ping):
                return event
            self.pings.append(event.payload)
            if self.answers_pings:
                self.send(event.response())
        raise AssertionError("nothing but pings from the server")

    def receive_message(self) -> str | bytes:
        """One whole message, however the server fragmented it."""
        return read_message(self.next_frame_event)

    def wait_close(self) -> CloseConnection:
        """Read until the server closes, keeping the messages before it in `received`;
        a TCP connection that ended without a Close reads as code 1006."""
        return read_until_close(self.next_frame_event, self.ws, self.send, self.received)


def read_message(next_event: Callable[[], Event]) -> str | bytes:
    """One whole message from `next_event`, however the server fragmented it."""
    parts: list[Any] = []
    for _ in range(100_000):  # bounded by the frames a test's message can take
        event = next_event()
        if not isinstance(event, TextMessage | BytesMessage):
            raise AssertionError(f"expected a message, got {event!r}")
        parts.append(event.data)
        if event.message_finished:
            return "".join(parts) if isinstance(event, TextMessage) else b"".join(parts)
    raise AssertionError("a message that never ended")


def read_until_close(
    next_event: Callable[[], Event],
    ws: Connection | WSConnection,
    send: Callable[[Event], None],
    received: list[str | bytes | bytearray],
) -> CloseConnection:
    """Read from `next_event` until the server's Close, appending the messages before it
    to `received`, and answer the Close (RFC 6455 §5.5.1) unless the server closed the
    transport meanwhile."""
    for _ in range(100_000):
        event = next_event()
        if isinstance(event, TextMessage | BytesMessage):
            received.append(event.data)
        elif isinstance(event, CloseConnection):
            if ws.state is ConnectionState.REMOTE_CLOSING:
                with suppress(OSError):
                    send(event.response())
            return event
    raise AssertionError("the server never closed")


def open_raw(server: Server, target: str, sock: socket.socket | None = None) -> RawClient:
    """A RawClient whose handshake the app accepted."""
    client = RawClient(sock or server.connect())
    accepted = client.handshake(target)
    assert isinstance(accepted, AcceptConnection), accepted
    return client


def client_frame(
    opcode: int, payload: bytes, fin: bool = True, rsv: int = 0, masked: bool = True
) -> bytes:
    """One frame as a client writes it (RFC 6455 §5.2), made by hand so that it can
    break the rules wsproto would not let us break."""
    head = bytes([(0x80 if fin else 0) | rsv | opcode])
    mask_bit = 0x80 if masked else 0
    if len(payload) < 126:
        head += bytes([mask_bit | len(payload)])
    elif len(payload) < 65536:
        head += bytes([mask_bit | 126]) + struct.pack("!H", len(payload))
    else:
        head += bytes([mask_bit | 127]) + struct.pack("!Q", len(payload))
    if not masked:
        return head + payload
    key = os.urandom(4)
    return head + key + masked_payload(payload, key)


def masked_payload(payload: bytes, key: bytes) -> bytes:
    """XOR with the key repeated (RFC 6455 §5.3), as one big integer: fast for MiBs."""
    size = len(payload)
    repeated = (key * (size // 4 + 1))[:size]
    masked = int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")
    return masked.to_bytes(size, "big")


# Frame opcodes (RFC 6455 §5.2), for client_frame.
TEXT, BINARY, CONTINUATION, CLOSE, PING = 0x1, 0x2, 0x0, 0x8, 0x9
# First-byte bits (RFC 6455 §5.2): RSV1 marks a compressed message (RFC 7692 §6).
RSV1_BIT, OPCODE_BITS = 0x40, 0x0F


@dataclass
class RawFrame:
    """One server frame as it crossed the wire, before wsproto decodes it."""

    first_byte: int  # FIN, RSV1-3 and the opcode
    payload: bytes  # as sent: still compressed when RSV1 is set
    wire: bytes  # the whole frame, to hand on to a RawClient (`feed`)

    @property
    def rsv1(self) -> bool:
        return bool(self.first_byte & RSV1_BIT)

    @property
    def opcode(self) -> int:
        return self.first_byte & OPCODE_BITS


def read_frame(sock: socket.socket) -> RawFrame:
    """Read one frame a server sent (RFC 6455 §5.2: unmasked), with deadlines."""
    head = read_exactly(sock, 2)
    assert not head[1] & 0x80, "a server frame must not be masked (RFC 6455 §5.1)"
    length, extended = head[1] & 0x7F, b""
    if length == 126:
        extended = read_exactly(sock, 2)
        length = struct.unpack("!H", extended)[0]
    elif length == 127:
        extended = read_exactly(sock, 8)
        length = struct.unpack("!Q", extended)[0]
    payload = read_exactly(sock, length)
    return RawFrame(head[0], payload, head + extended + payload)


# --- raw sockets with deadlines ------------------------------------------------------


UPGRADE_FIELDS = (
    b"Host: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
)
# What the server must answer to that key (RFC 6455 §1.3's own example).
UPGRADE_ACCEPT = b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


@dataclass
class HTTPResponse:
    """One response read off a raw socket."""

    status_line: bytes
    fields: dict[bytes, bytes]  # names lowercased
    body: bytes
    rest: bytes  # what followed the response in the same reads: the next bytes on the wire


def read_http_response(sock: socket.socket, data: bytes = b"") -> HTTPResponse:
    """Read one response (its body by Content-Length; none for a 101), starting with
    bytes already read from `sock`."""
    sock.settimeout(DEADLINE_S)
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed mid-head: {data!r}"
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    status_line, *lines = head.split(b"\r\n")
    fields = {}
    for line in lines:
        name, _, value = line.partition(b":")
        fields[name.strip().lower()] = value.strip()
    length = int(fields.get(b"content-length", b"0"))
    while len(rest) < length:
        chunk = sock.recv(65536)
        assert chunk, "connection closed mid-body"
        rest += chunk
    return HTTPResponse(status_line, fields, rest[:length], rest[length:])


def read_exactly(sock: socket.socket, size: int) -> bytes:
    """`size` bytes off `sock`; each read has the deadline, and each brings at least
    one byte, so the loop is bounded by `size`."""
    sock.settimeout(DEADLINE_S)
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        assert chunk, f"connection closed after {len(data)} of {size} bytes"
        data += chunk
    return data


def small_buffer_socket(server: Server) -> socket.socket:
    """A client socket with a small receive buffer, set before connecting so that the
    kernel cannot autotune it: what the server may push ahead is its own buffering."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    sock.settimeout(DEADLINE_S)
    sock.connect(("127.0.0.1", server.port))
    return sock


# A socket that cannot take another byte for this long is held by the server's flow
# control: a server that kept reading would drain it within milliseconds.
STALL_S = 0.5


def send_until_stalled(sock: socket.socket, data: bytes) -> int:
    """Write `data` without blocking until the socket stays full for STALL_S, or all of
    it is written; the bytes written."""
    sock.setblocking(False)
    view, sent = memoryview(data), 0
    try:
        while sent < len(data):
            try:
                sent += sock.send(view[sent : sent + 65536])
            except BlockingIOError:
                _, writable, _ = select.select([], [sock], [], STALL_S)
                if not writable:
                    break
    finally:
        sock.setblocking(True)
    return sent


# --- WebSocket over HTTP/2 (RFC 8441): h2 and wsproto by hand -------------------------


@dataclass
class H2StreamLog:
    """What one stream of an H2Client has received."""

    fields: dict[bytes, bytes] | None = None  # the response head, pseudo-fields included
    data: bytearray = field(default_factory=bytearray)  # DATA not handed to a WebSocket yet
    ended: bool = False  # the server's END_STREAM
    reset: int | None = None  # the server's RST_STREAM error code


class H2Client(H2Socket):
    """A raw HTTP/2 client (h2) on one connection, for WebSockets over extended CONNECT
    (RFC 8441) and plain requests side by side. Received DATA is acknowledged at once
    unless `holding`, so a test can play a client that stops reading."""

    def __init__(self, sock: socket.socket, authority: str = "127.0.0.1") -> None:
        super().__init__(sock)
        self.authority = authority
        self.streams: dict[int, H2StreamLog] = {}
        self.holding = False
        self.server_settings: dict[int, int] = {}
        self.goaway: int | None = None  # the error code of the server's GOAWAY
        # RFC 8441 §4: no extended CONNECT before the server's SETTINGS allows it.
        self.pump_until(lambda: bool(self.server_settings))

    def connect_websocket(
        self, path: str, protocols: tuple[str, ...] = (), deflate: bool = False
    ) -> H2WebSocket:
        """Open an extended CONNECT for WebSocket; the answer comes with `accepted`."""
        stream_id = self.conn.get_next_available_stream_id()
        fields = [
            (b":method", b"CONNECT"),
            (b":protocol", b"websocket"),
            (b":scheme", b"http"),
            (b":authority", self.authority.encode()),
            (b":path", path.encode()),
            (b"sec-websocket-version", b"13"),
        ]
        if protocols:
            fields.append((b"sec-websocket-protocol", ", ".join(protocols).encode()))
        offer = PerMessageDeflate() if deflate else None
        if offer is not None:
            value = f"{offer.name}; {offer.offer()}"  # offer() gives the parameters only
            fields.append((b"sec-websocket-extensions", value.encode()))
        self.send_headers(stream_id, fields)
        return H2WebSocket(self, stream_id, offer)

    def send_headers(
        self, stream_id: int, fields: list[tuple[bytes, bytes]], end: bool = False
    ) -> None:
        self.streams[stream_id] = H2StreamLog()
        self.conn.send_headers(stream_id, fields, end_stream=end)
        self.flush()

    def send_data(self, stream_id: int, data: bytes, end: bool = False) -> None:
        """DATA within the server's windows, waiting for them to open (bounded by the
        deadline)."""
        deadline = time.monotonic() + DEADLINE_S
        view = memoryview(data)
        while view:
            window = self.conn.local_flow_control_window(stream_id)
            size = min(window, self.conn.max_outbound_frame_size, len(view))
            if size == 0:
                assert time.monotonic() < deadline, "the server's window stayed closed"
                assert self.pump(deadline), "the server closed the connection"
                continue
            self.conn.send_data(stream_id, bytes(view[:size]))
            self.flush()
            view = view[size:]
        if end:
            self.conn.end_stream(stream_id)
            self.flush()

    def get(self, path: str) -> int:
        """A plain GET on a new stream; its id."""
        stream_id = self.conn.get_next_available_stream_id()
        fields = [(b":method", b"GET"), (b":scheme", b"http"), (b":path", path.encode())]
        self.send_headers(stream_id, [*fields, (b":authority", self.authority.encode())], True)
        return stream_id

    def pump(self, deadline: float) -> bool:
        """Read once (until `deadline`) and take in the frames; False once closed."""
        data = receive(self.sock, deadline)
        if data is None:
            return True
        if not data:
            return False
        for event in self.conn.receive_data(data):
            self._take(event)
        self.flush()
        return True

    def pump_until(self, done: Callable[[], bool], deadline_s: float = DEADLINE_S) -> None:
        deadline = time.monotonic() + deadline_s
        while not done():
            assert time.monotonic() < deadline, "the server did not answer before the deadline"
            assert self.pump(deadline), "the server closed the connection"

    def _take(self, event: h2.events.Event) -> None:
        stream = self.streams.get(getattr(event, "stream_id", 0) or 0)
        if isinstance(event, h2.events.RemoteSettingsChanged):
            self.server_settings.update(
                {code: change.new_value for code, change in event.changed_settings.items()}
            )
        elif isinstance(event, h2.events.ConnectionTerminated):
            self.goaway = event.error_code
        elif stream is None:
            return
        elif isinstance(event, h2.events.ResponseReceived):
            stream.fields = dict(event.headers or [])
        elif isinstance(event, h2.events.DataReceived):
            stream.data += event.data or b""
            if not self.holding and event.stream_id is not None:
                self.conn.acknowledge_received_data(
                    event.flow_controlled_length or 0, event.stream_id
                )
        elif isinstance(event, h2.events.StreamEnded):
            stream.ended = True
        elif isinstance(event, h2.events.StreamReset):
            stream.reset = int(event.error_code or 0)

    def status(self, stream_id: int) -> int:
        """The response's status, once its head has come."""
        self.pump_until(lambda: self.streams[stream_id].fields is not None)
        fields = self.streams[stream_id].fields
        assert fields is not None
        return int(fields[b":status"])

    def response(self, stream_id: int) -> tuple[int, bytes]:
        """A whole response: status and body."""
        log = self.streams[stream_id]
        self.pump_until(lambda: log.ended or log.reset is not None)
        return self.status(stream_id), bytes(log.data)


class H2WebSocket:
    """One WebSocket on an H2Client's stream: wsproto in client mode over its DATA (no
    HTTP/1.1 handshake: the 200 is the accept, RFC 8441 §5)."""

    def __init__(self, client: H2Client, stream_id: int, offer: PerMessageDeflate | None):
        self.client = client
        self.stream_id = stream_id
        self.log = client.streams[stream_id]
        self._offer = offer
        self.ws: Connection | None = None
        self.pending: deque[Event] = deque()
        self.received: list[str | bytes | bytearray] = []  # messages wait_close read past

    def accepted(self) -> dict[bytes, bytes]:
        """Wait for the server's 200 and start speaking frames; its fields."""
        status = self.client.status(self.stream_id)
        assert self.log.fields is not None
        assert status == 200, (status, self.log.fields)
        extensions: list[Extension] = []
        agreed = self.log.fields.get(b"sec-websocket-extensions")
        if self._offer is not None and agreed is not None:
            self._offer.finalize(agreed.decode())
            extensions.append(self._offer)
        self.ws = Connection(ConnectionType.CLIENT, extensions)
        return self.log.fields

    def send(self, event: Event, end: bool = False) -> None:
        assert self.ws is not None, "accepted() first"
        self.client.send_data(self.stream_id, self.ws.send(event), end)

    def end(self) -> None:
        """Our END_STREAM (TCP's FIN, RFC 8441 §4)."""
        self.client.conn.end_stream(self.stream_id)
        self.client.flush()

    def reset(self) -> None:
        self.client.conn.reset_stream(self.stream_id, h2.errors.ErrorCodes.CANCEL)
        self.client.flush()

    def next_event(self, deadline_s: float = DEADLINE_S) -> Event:
        """The next WebSocket event; a stream that ended or was reset without a Close
        reads as Close 1006."""
        assert self.ws is not None, "accepted() first"
        ws, log = self.ws, self.log
        deadline = time.monotonic() + deadline_s
        while True:
            if log.data:
                data, log.data = bytes(log.data), bytearray()
                ws.receive_data(data)
                self.pending.extend(ws.events())
            if self.pending:
                return self.pending.popleft()
            if log.ended or log.reset is not None:
                return CloseConnection(code=1006)
            assert time.monotonic() < deadline, "no WebSocket event before the deadline"
            assert self.client.pump(deadline), "the server closed the connection"

    def receive_message(self) -> str | bytes:
        """One whole message (pings are answered by wsproto's events: not here)."""
        return read_message(self.next_event)

    def wait_close(self) -> CloseConnection:
        """Read until the server's Close, keeping the messages before it in `received`,
        and answer it (RFC 6455 §5.5.1)."""
        assert self.ws is not None, "accepted() first"
        return read_until_close(self.next_event, self.ws, self.send, self.received)

    def wait_stream_over(self) -> None:
        """Until the server has ended or reset the stream."""
        self.client.pump_until(lambda: self.log.ended or self.log.reset is not None)
