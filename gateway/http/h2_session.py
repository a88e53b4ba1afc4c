"""One HTTP/2 connection's session, sans I/O: bytes in, stream events out; a stream's
head, body and end in, bytes out. Built on h2 (python-hyper), the only module that
imports it, and the place where its exceptions become gateway.errors.

Rules:
1. RFC 9113 §8 semantics of a request, checked before a stream becomes a StreamHead:
   h2 (`validate_inbound_headers`) refuses the malformed heads as a connection error:
   pseudo-header fields missing, repeated, unknown or after a regular field,
   connection-specific fields (§8.2.2), a TE other than "trailers", uppercase names, a
   Host that disagrees with :authority, and it holds DATA to Content-Length (§8.1.1).
   What it does not check is checked here, and answered on the stream with the error's
   reply, as HTTP/1.1 answers the same request: a method the gateway does not serve
   (501), CONNECT (501: RFC 8441 is not served yet), a :path that is neither
   origin-form nor OPTIONS' "*" (400), a :scheme other than http or https (400), and
   a field section over `max_header_bytes` (431, counted as RFC 9113 §6.5.2 counts it).
2. The scope sees HTTP/1.1's fields: :authority becomes a Host field when the client
   sent none (RFC 9113 §8.3.1: it takes Host's place), and the pseudo-header fields are
   left out.
3. Flow control is backpressure (issue 16 point 3): a stream's DATA is acknowledged,
   so its receive window opens again, only when the connection says the app consumed
   it (`acknowledge`). Sending takes only what the stream's and the connection's send
   windows allow (`send_body` returns what is left); a WindowOpened event says when to
   try the rest.
4. Errors: an h2 ProtocolError from the peer's bytes is a connection error; h2 has
   queued its GOAWAY, and `feed` raises the gateway's ProtocolError. A send on a
   stream the client has reset raises ClientDisconnected. An app's field that no HTTP
   response may carry is an AppProtocolError raised before anything is encoded (the
   HPACK state is shared by every stream, so a field must not fail half-way through).
5. Streams past MAX_CONCURRENT_STREAMS are refused one by one, with RST_STREAM
   REFUSED_STREAM (RFC 9113 §5.1.2), after their header block was decoded: the
   connection counts its streams and calls `refuse`; h2 holds only a hard bound,
   HARD_BOUND_FACTOR times larger, as a connection error.
6. What a client may make us do for free is counted before h2 sees its bytes
   (gateway/http/h2_guard.py): past a bound, `feed` queues GOAWAY ENHANCE_YOUR_CALM
   and raises the gateway's ProtocolError, as for any connection error.
"""

from __future__ import annotations

import contextlib
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings

from gateway.errors import (
    BadRequest,
    ClientDisconnected,
    MethodNotImplemented,
    ProtocolError,
    RequestHeadersTooLarge,
)
from gateway.http.events import RequestHead
from gateway.http.h2_guard import H2Guard
from gateway.http.response import field_line
from gateway.http.session import SERVED_METHODS

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
# Streams one client may have open at once. RFC 9113 §6.5.2 advises no fewer than 100,
# and browsers open about that many; each stream costs a task and a scope, so a client
# gets as much concurrency as a hundred HTTP/1.1 connections and no more. A stream the
# client reset holds its place until its app has returned (gateway/server/h2_connection.py,
# rule "streams are held"), so resetting streams buys no more concurrency.
MAX_CONCURRENT_STREAMS = 100
# A field section over max_header_bytes gets its 431 on the stream, as on HTTP/1.1; one
# this many times larger is not even decoded (the advertised MAX_HEADER_LIST_SIZE, which
# h2's HPACK decoder enforces): a connection error, so an HPACK bomb costs little. The
# same factor bounds a header block's encoded bytes (gateway/http/h2_guard.py, rule "a
# header block is bounded in bytes": Huffman coding makes a string at most 30/8 of its
# length, RFC 7541 Appendix B's longest code being 30 bits, so a block of fields within
# max_header_bytes, all we serve, is within the factor too), and the streams h2 holds
# (rule "streams past MAX_CONCURRENT_STREAMS").
HARD_BOUND_FACTOR = 4
# Connection-specific fields (RFC 9113 §8.2.2) an app written for HTTP/1.1 may send:
# dropped from its response, as they mean nothing here.
_HOP_BY_HOP = frozenset(
    {b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade"}
)
_GOAWAY = 0x7  # the frame type (RFC 9113 §6.8)
_SCHEMES = frozenset({b"http", b"https"})
# RFC 9113 §6.5.2: a field's size is its name's and value's lengths plus 32.
_FIELD_OVERHEAD = 32
Field = tuple[bytes, bytes]


@dataclass(slots=True)
class StreamHead:
    """A request head on a new stream; `ended` if no body follows (END_STREAM)."""

    stream_id: int
    head: RequestHead
    ended: bool


@dataclass(slots=True)
class StreamRefused:
    """A request the gateway answers itself, with the error's reply (rule "RFC 9113 §8
    semantics")."""

    stream_id: int
    error: ProtocolError


@dataclass(slots=True)
class StreamData:
    """Body bytes; `flow_length` counts padding too, for `acknowledge`."""

    stream_id: int
    data: bytes
    flow_length: int


@dataclass(slots=True)
class StreamEnd:
    """The request's body is complete."""

    stream_id: int


@dataclass(slots=True)
class StreamReset:
    """The client reset the stream: it wants no response."""

    stream_id: int


@dataclass(slots=True)
class WindowOpened:
    """A send window grew: the stream's, or every stream's when `stream_id` is 0."""

    stream_id: int


@dataclass(slots=True)
class PeerGone:
    """The client sent GOAWAY: it opens no more streams."""


StreamEvent = StreamHead | StreamRefused | StreamData | StreamEnd | StreamReset | WindowOpened


class H2Session:
    """The server side of one HTTP/2 connection."""

    def __init__(self, max_header_bytes: int) -> None:
        config = h2.config.H2Configuration(client_side=False, header_encoding=None)
        self._conn = h2.connection.H2Connection(config)
        self._max_header_bytes = max_header_bytes
        self._last_stream_id: int | None = None  # once a GOAWAY went out
        self.greeted = False  # the client's SETTINGS came: its handshake is over
        self._conn.local_settings = h2.settings.Settings(
            client=False,
            initial_values={
                h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: MAX_CONCURRENT_STREAMS,
                h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: HARD_BOUND_FACTOR * max_header_bytes,
            },
        )
        self._conn.initiate_connection()
        self._guard = H2Guard(HARD_BOUND_FACTOR * max_header_bytes, MAX_CONCURRENT_STREAMS)
        self._hold_streams_loosely()
        # h2 gives its HPACK decoder the advertised MAX_HEADER_LIST_SIZE only when an
        # acknowledgement changes it, never from the initial values: left alone, it
        # holds its own 64 KiB whatever max_header_bytes says.
        self._conn.decoder.max_header_list_size = HARD_BOUND_FACTOR * max_header_bytes

    def _hold_streams_loosely(self) -> None:
        """Leave MAX_CONCURRENT_STREAMS to the connection (rule "streams past
        MAX_CONCURRENT_STREAMS"), h2 holding only HARD_BOUND_FACTOR times as many: h2
        treats a stream past its limit as a connection error, raised before the header
        block is decoded, which leaves the HPACK state behind the client's. Called
        after our SETTINGS frame went out with the advertised figure."""
        settings = self._conn.local_settings
        codes = h2.settings.SettingCodes
        values = {codes(code): settings[code] for code in settings}
        values[codes.MAX_CONCURRENT_STREAMS] = HARD_BOUND_FACTOR * MAX_CONCURRENT_STREAMS
        self._conn.local_settings = h2.settings.Settings(client=False, initial_values=values)

    def data_to_send(self) -> bytes:
        return self._conn.data_to_send()

    def feed(self, data: bytes) -> list[StreamEvent | PeerGone]:
        """The events in `data` (rule "errors" for what it raises)."""
        abuse = self._guard.scan(data)  # rule "what a client may make us do for free"
        if abuse is not None:
            self._conn.close_connection(h2.errors.ErrorCodes.ENHANCE_YOUR_CALM)
            raise BadRequest(f"HTTP/2 connection ended: {abuse.reason}")
        try:
            events = self._conn.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            raise BadRequest(f"HTTP/2 connection error: {exc}") from None
        out: list[StreamEvent | PeerGone] = []
        for event in events:
            mine = self._translate(event)
            if mine is not None:
                out.append(mine)
        return out

    def _translate(self, event: h2.events.Event) -> StreamEvent | PeerGone | None:
        last = self._last_stream_id
        if last is not None and (getattr(event, "stream_id", 0) or 0) > last:
            # A stream opened after our GOAWAY: refused, so the client may retry it
            # elsewhere (RFC 9113 §8.7), and nothing of it reaches the connection.
            if isinstance(event, h2.events.RequestReceived):
                self._conn.reset_stream(event.stream_id, h2.errors.ErrorCodes.REFUSED_STREAM)
            return None
        if isinstance(event, h2.events.RequestReceived):
            return self._request(event)
        if isinstance(event, h2.events.DataReceived):
            assert event.stream_id is not None and event.data is not None
            return StreamData(event.stream_id, event.data, event.flow_controlled_length or 0)
        if isinstance(event, h2.events.StreamEnded):
            assert event.stream_id is not None
            return StreamEnd(event.stream_id)
        if isinstance(event, h2.events.StreamReset):
            assert event.stream_id is not None
            return StreamReset(event.stream_id)
        if isinstance(event, h2.events.WindowUpdated):
            return WindowOpened(event.stream_id or 0)
        if isinstance(event, h2.events.RemoteSettingsChanged):
            self.greeted = True  # the client's preface is complete (RFC 9113 §3.4)
            return WindowOpened(0)  # INITIAL_WINDOW_SIZE may have grown every window
        if isinstance(event, h2.events.ConnectionTerminated):
            return PeerGone()
        return None  # settings acks, pings (h2 answers them), trailers, priorities

    def _request(self, event: h2.events.RequestReceived) -> StreamHead | StreamRefused:
        stream_id = event.stream_id
        assert stream_id is not None and event.headers is not None
        ended = event.stream_ended is not None
        try:
            head = self._read_head(event.headers)
        except ProtocolError as exc:
            return StreamRefused(stream_id, exc)
        return StreamHead(stream_id, head, ended)

    def _read_head(self, fields: Iterable[Field]) -> RequestHead:
        """The head of a request h2 found well-formed, held to what h2 does not check
        (rule "RFC 9113 §8 semantics"), with HTTP/1.1's fields (rule "the scope")."""
        method = path = scheme = authority = b""
        headers: list[Field] = []
        size = 0
        has_host = expects_continue = False
        for name, value in fields:
            size += len(name) + len(value) + _FIELD_OVERHEAD
            if name[:1] != b":":
                headers.append((name, value))
                has_host = has_host or name == b"host"
                expects_continue = expects_continue or (
                    name == b"expect" and value.lower() == b"100-continue"
                )
            elif name == b":method":
                method = value
            elif name == b":path":
                path = value
            elif name == b":scheme":
                scheme = value
            elif name == b":authority":
                authority = value
        if size > self._max_header_bytes:
            raise RequestHeadersTooLarge(f"request fields over {self._max_header_bytes} bytes")
        if method == b"CONNECT" or method not in SERVED_METHODS:
            raise MethodNotImplemented(f"method {method[:20]!r} is not served over HTTP/2")
        if not (path[:1] == b"/" or (path == b"*" and method == b"OPTIONS")):
            raise BadRequest(f"bad :path {path[:40]!r}")
        if scheme not in _SCHEMES:
            raise BadRequest(f"bad :scheme {scheme[:20]!r}")
        if authority and not has_host:
            headers.insert(0, (b"host", authority))
        return RequestHead(method, path, headers, "2", expects_continue=expects_continue)

    # -- the response side -------------------------------------------------------------

    def send_head(
        self, stream_id: int, status: int, headers: Iterable[Field], defaults: Sequence[Field]
    ) -> None:
        """Encode a response head (rule "errors": the fields are checked first)."""
        fields = response_fields(status, headers, defaults)
        try:
            self._conn.send_headers(stream_id, fields)
        except h2.exceptions.StreamClosedError:
            raise ClientDisconnected("the client reset the stream") from None

    def send_body(self, stream_id: int, data: bytes, end: bool) -> bytes:
        """Frame as much of `data` as the send windows allow, and the end of the stream
        once all of it went; the part left (rule "flow control is backpressure")."""
        conn = self._conn
        try:
            window = conn.local_flow_control_window(stream_id)
            frame_size = conn.max_outbound_frame_size
            sent = 0
            while sent < len(data) and window > 0:
                size = min(window, frame_size, len(data) - sent)
                piece = data[sent : sent + size]
                sent += size
                window -= size
                # The last piece carries END_STREAM: no empty DATA frame to end it.
                conn.send_data(stream_id, piece, end_stream=end and sent == len(data))
            if end and not data:
                conn.end_stream(stream_id)
        except h2.exceptions.StreamClosedError:
            raise ClientDisconnected("the client reset the stream") from None
        return data[sent:]

    def acknowledge(self, stream_id: int, flow_length: int) -> None:
        """The app consumed `flow_length` bytes of the stream's DATA: open the windows."""
        if flow_length:
            # A stream that ended meanwhile: h2 still opens the connection's window.
            with contextlib.suppress(h2.exceptions.StreamClosedError):
                self._conn.acknowledge_received_data(flow_length, stream_id)

    def reset(self, stream_id: int) -> None:
        """Abandon a stream (a response cut short): RST_STREAM INTERNAL_ERROR."""
        with contextlib.suppress(h2.exceptions.StreamClosedError):
            self._conn.reset_stream(stream_id, h2.errors.ErrorCodes.INTERNAL_ERROR)

    def refuse(self, stream_id: int) -> None:
        """A stream past MAX_CONCURRENT_STREAMS: RST_STREAM REFUSED_STREAM, which tells
        the client it may retry it (RFC 9113 §5.1.2, §8.7), counted by the guard."""
        with contextlib.suppress(h2.exceptions.StreamClosedError):
            self._conn.reset_stream(stream_id, h2.errors.ErrorCodes.REFUSED_STREAM)
        self._guard.stream_refused()

    def cancel(self, stream_id: int) -> None:
        """A stream whose client opened no window for `send_timeout`: RST_STREAM CANCEL
        (RFC 9113 §7: the stream is no longer needed)."""
        with contextlib.suppress(h2.exceptions.StreamClosedError):
            self._conn.reset_stream(stream_id, h2.errors.ErrorCodes.CANCEL)

    def goaway(self) -> bytes:
        """A graceful stop (RFC 9113 §6.8): GOAWAY NO_ERROR naming the last stream
        opened, those up to it go on, and any later one is refused. Written here, not
        by h2's `close_connection`, which would end the streams in flight with it."""
        self._last_stream_id = self._conn.highest_inbound_stream_id
        frame = struct.pack(">I", 8)[1:] + bytes((_GOAWAY, 0)) + bytes(4)
        return self._conn.data_to_send() + frame + struct.pack(">II", self._last_stream_id, 0)

    def send_continue(self, stream_id: int) -> None:
        """An interim 100 Continue (RFC 9110 §10.1.1) before the stream's response."""
        with contextlib.suppress(h2.exceptions.StreamClosedError):
            self._conn.send_headers(stream_id, [(b":status", b"100")])


def response_fields(
    status: int, headers: Iterable[Field], defaults: Sequence[Field]
) -> list[Field]:
    """:status, the app's fields checked and lowercased, without the connection-specific
    ones, then each default the app did not send (rule "errors")."""
    fields: list[Field] = [(b":status", b"%d" % status)]
    names: set[bytes] = set()
    for name, value in headers:
        lowered = field_line(name, value)[1]
        if lowered not in _HOP_BY_HOP:
            fields.append((lowered, value))
            names.add(lowered)
    fields.extend(field for field in defaults if field[0] not in names)
    return fields
