"""One HTTP/2 connection's session, sans I/O: bytes in, stream events out; a stream's
head, body and end in, bytes out. Built on h2 (python-hyper), the only module that
imports it, and the place where its exceptions become gateway.errors.

Rules:
1. RFC 9113 §8 semantics of a request are gateway/http/h2_semantics.py's, checked
   here, not by h2 (`validate_inbound_headers` is off, and h2's count of DATA against
   Content-Length is taken out: both would end the connection). A malformed request
   (§8.1.1: its fields, DATA that breaks its Content-Length, trailers with a
   pseudo-header field) is reset, RST_STREAM PROTOCOL_ERROR, and nothing more of it
   reaches the connection but a StreamReset; the connection goes on. A well-formed
   request the gateway does not serve is a StreamRefused, answered on the stream with
   the error's reply as HTTP/1.1 answers it. Request trailers that pass are dropped
   (ASGI has none); the body ends with them. What h2 still checks itself (a
   Content-Length that is not a number, or repeated with another value; the HPACK
   bound) is a connection error, as RFC 9113 §5.4.1 allows for a stream error.
2. Flow control is backpressure (issue 16 point 3): a stream's DATA is acknowledged,
   so its receive window opens again, only when the connection says the app consumed
   it (`acknowledge`). Sending takes only what the stream's and the connection's send
   windows allow (`send_body` returns what is left); a WindowOpened event says when to
   try the rest. Each stream's receive window is the default 65,535 bytes; the
   connection's is opened at the start to CONNECTION_WINDOW, several streams' worth, so
   that one stream whose app does not read leaves the others room, while what a
   connection holds unread stays bounded.
3. Errors: an h2 ProtocolError from the peer's bytes is a connection error; h2 has
   queued its GOAWAY, and `feed` raises the gateway's ProtocolError. A send on a
   stream the client has reset raises ClientDisconnected. An app's field that no HTTP
   response may carry is an AppProtocolError raised before anything is encoded (the
   HPACK state is shared by every stream, so a field must not fail half-way through).
4. WebSocket over HTTP/2 (RFC 8441): the session advertises
   SETTINGS_ENABLE_CONNECT_PROTOCOL = 1 (§3), and an extended CONNECT whose :protocol is
   "websocket" (§4; gateway/http/h2_semantics.py checks it) becomes a StreamHead
   whose method is CONNECT: the only CONNECT that does (`is_websocket_connect`). Its
   stream is a tunnel: the response is a 200 HEADERS, then DATA both ways.
5. A graceful stop is the two-step GOAWAY of gateway/http/h2_goaway.py: `goaway_notice`,
   then, once NoticeSeen (or a bound) says the client has read it, `goaway`, after which
   a stream past the last one named is refused and never reaches the connection.
6. Streams past MAX_CONCURRENT_STREAMS are refused one by one, with RST_STREAM
   REFUSED_STREAM (RFC 9113 §5.1.2), after their header block was decoded: the
   connection counts its streams and calls `refuse`; h2 holds only a hard bound,
   HARD_BOUND_FACTOR times larger, as a connection error.
7. What a client may make us do for free is counted before h2 sees its bytes
   (gateway/http/h2_guard.py): past a bound, `feed` queues GOAWAY ENHANCE_YOUR_CALM
   and raises the gateway's ProtocolError, as for any connection error.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings
import h2.stream

from gateway.errors import BadRequest, ClientDisconnected, ProtocolError
from gateway.http.events import RequestHead
from gateway.http.h2_fast_lane import frame_response
from gateway.http.h2_goaway import Goaway, GoawayStep
from gateway.http.h2_guard import H2Guard
from gateway.http.h2_receive_lane import OpenedStream, open_streams
from gateway.http.h2_semantics import (
    CONNECTION_SPECIFIC,
    BodyLength,
    MalformedRequest,
    RequestHeadReader,
    check_trailers,
)
from gateway.http.hpack_codec import LiteralEncoder, MemoDecoder
from gateway.http.response import field_line

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
# A stream's receive window stays at RFC 9113 §6.9.2's default, 65,535 bytes, which is
# also the connection's at the start: one stream whose app reads nothing (a slow
# WebSocket, an upload to a busy app) would then hold the whole connection's window, and
# every other stream's upload would stop behind it (rule "flow control is
# backpressure"). The connection's window is opened to this many streams' full windows
# at the start. It is also the most unread request body a connection makes the gateway
# hold, whatever the client does: 1 MiB, where HTTP/1.1 holds about 64 KiB per
# connection for at most one request, and here for up to sixteen at full speed.
STREAMS_IN_CONNECTION_WINDOW = 16
DEFAULT_WINDOW = 65_535  # RFC 9113 §6.9.2
CONNECTION_WINDOW = STREAMS_IN_CONNECTION_WINDOW * DEFAULT_WINDOW
# RST_STREAM's error codes (RFC 9113 §7) that `reset` sends.
NO_ERROR = int(h2.errors.ErrorCodes.NO_ERROR)
INTERNAL_ERROR = int(h2.errors.ErrorCodes.INTERNAL_ERROR)
CANCEL = int(h2.errors.ErrorCodes.CANCEL)
# What an app written for HTTP/1.1 may send that no HTTP/2 response carries
# (RFC 9113 §8.2.2): dropped from its response. TE may be in a request only.
_NOT_IN_RESPONSES = CONNECTION_SPECIFIC | {b"te"}
Field = tuple[bytes, bytes]


@dataclass(slots=True)
class StreamHead:
    """A request head on a new stream; `ended` if no body follows (END_STREAM): the
    request is whole, and no StreamEnd follows."""

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
    """The client reset the stream: it wants no response. Or the request was malformed,
    and the session reset it (`reason` says why, rule "RFC 9113 §8 semantics")."""

    stream_id: int
    reason: str = ""


@dataclass(slots=True)
class WindowOpened:
    """A send window grew: the stream's, or every stream's when `stream_id` is 0."""

    stream_id: int


@dataclass(slots=True)
class PeerGone:
    """The client sent GOAWAY: it opens no more streams."""


@dataclass(slots=True)
class NoticeSeen:
    """The client acknowledged the GOAWAY notice's PING: what it sent before it read the
    notice has all arrived (rule "a graceful stop")."""


StreamEvent = StreamHead | StreamRefused | StreamData | StreamEnd | StreamReset | WindowOpened


class _UncountedStream(h2.stream.H2Stream):
    """h2's stream without its count of DATA against Content-Length, whose error ends the
    connection: the session counts, and resets only the stream (RFC 9113 §8.1.1)."""

    def _track_content_length(self, length: int, end_stream: bool) -> None:
        return None


class _Connection(h2.connection.H2Connection):
    """h2's connection, whose streams are `_UncountedStream`s. h2 has no switch for its
    count: its stream class is swapped as each stream begins, before any frame of it
    (gateway/http/h2_receive_lane.py makes the streams it opens of `stream_class` too)."""

    stream_class: type[h2.stream.H2Stream] = _UncountedStream

    def _begin_new_stream(
        self, stream_id: int, allowed_ids: h2.connection.AllowedStreamIDs
    ) -> h2.stream.H2Stream:
        stream = super()._begin_new_stream(stream_id, allowed_ids)
        stream.__class__ = self.stream_class
        return stream


class H2Session:
    """The server side of one HTTP/2 connection."""

    def __init__(self, max_header_bytes: int) -> None:
        # Inbound fields are checked by gateway/http/h2_semantics.py, not by h2, which
        # would end the connection for what is a stream error (RFC 9113 §8.1.1). h2's
        # outbound validation would check again, on every response, what
        # `response_fields` has checked (rule "errors"), and it raises half-way through
        # an HPACK block, which breaks every stream of the connection. Its outbound
        # normalisation redoes `response_fields`' work too (lowercase names, no
        # connection-specific fields; a value with whitespace around it is refused
        # there), and what is left of it, marking credentials never-indexed, is the
        # encoder's (gateway/http/hpack_codec.py, rule "fields that carry credentials").
        config = h2.config.H2Configuration(
            client_side=False,
            header_encoding=None,
            validate_inbound_headers=False,
            validate_outbound_headers=False,
            normalize_outbound_headers=False,
        )
        self._conn = _Connection(config)
        # Our responses' HPACK blocks (gateway/http/hpack_codec.py): literals, never
        # indexed, for a fraction of the CPU of hpack's indexing encoder. The requests'
        # are hpack's, but a client's repeated block of indexed fields is decoded once.
        self._conn.encoder = LiteralEncoder()  # type: ignore[assignment]  # h2 duck-types it
        self._conn.decoder = MemoDecoder(self._conn.decoder.max_header_list_size)
        self._heads = RequestHeadReader(max_header_bytes)
        # Request bodies with a Content-Length, until they end; one per open stream.
        self._lengths: dict[int, BodyLength] = {}
        # Streams reset as malformed during one `feed`: their later events are dropped.
        self._dropped: set[int] = set()
        self._goaway = Goaway()  # rule "a graceful stop"
        self.greeted = False  # the client's SETTINGS came: its handshake is over
        self._conn.local_settings = h2.settings.Settings(
            client=False,
            initial_values={
                h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: MAX_CONCURRENT_STREAMS,
                h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: HARD_BOUND_FACTOR * max_header_bytes,
                # rule "websocket over HTTP/2"
                h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL: 1,
            },
        )
        self._conn.initiate_connection()
        # rule "flow control is backpressure": the connection's window, after our SETTINGS
        self._conn.increment_flow_control_window(CONNECTION_WINDOW - DEFAULT_WINDOW)
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

    def feed(self, data: bytes) -> list[StreamEvent | PeerGone | NoticeSeen]:
        """The events in `data` (rule "errors" for what it raises)."""
        abuse = self._guard.scan(data)  # rule "what a client may make us do for free"
        if abuse is not None:
            self._conn.close_connection(h2.errors.ErrorCodes.ENHANCE_YOUR_CALM)
            raise BadRequest(f"HTTP/2 connection ended: {abuse.reason}")
        try:
            # A burst of plain requests opens its streams past h2's frame handling
            # (gateway/http/h2_receive_lane.py).
            opened = open_streams(self._conn, data, MAX_CONCURRENT_STREAMS)
            if opened is not None:
                return [event for event in map(self._opened, opened) if event is not None]
            events = self._conn.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            raise BadRequest(f"HTTP/2 connection error: {exc}") from None
        out: list[StreamEvent | PeerGone | NoticeSeen] = []
        # The END_STREAM of a request whole in its HEADERS frame: its StreamHead says so.
        said = {id(e.stream_ended) for e in events if type(e) is h2.events.RequestReceived}
        for event in events:
            if id(event) in said or getattr(event, "stream_id", None) in self._dropped:
                continue
            mine = self._translate(event)
            if mine is not None:
                out.append(mine)
        self._dropped.clear()
        return out

    def _translate(self, event: h2.events.Event) -> StreamEvent | PeerGone | NoticeSeen | None:
        if self._goaway.refuses(getattr(event, "stream_id", 0) or 0):
            # A stream opened after our GOAWAY: refused, so the client may retry it
            # elsewhere (RFC 9113 §8.7), and nothing of it reaches the connection.
            if isinstance(event, h2.events.RequestReceived):
                self._refuse_after_goaway(event.stream_id)
            return None
        if isinstance(event, h2.events.RequestReceived):
            assert event.stream_id is not None and event.headers is not None
            return self._request(event.stream_id, event.headers, event.stream_ended is not None)
        if isinstance(event, h2.events.DataReceived):
            return self._data(event)
        if isinstance(event, h2.events.StreamEnded):
            assert event.stream_id is not None
            return self._ended(event.stream_id)
        if isinstance(event, h2.events.TrailersReceived):
            return self._trailers(event)
        if isinstance(event, h2.events.StreamReset):
            assert event.stream_id is not None
            self._lengths.pop(event.stream_id, None)
            return StreamReset(event.stream_id)
        if isinstance(event, h2.events.WindowUpdated):
            return WindowOpened(event.stream_id or 0)
        if isinstance(event, h2.events.RemoteSettingsChanged):
            self.greeted = True  # the client's preface is complete (RFC 9113 §3.4)
            return WindowOpened(0)  # INITIAL_WINDOW_SIZE may have grown every window
        if isinstance(event, h2.events.ConnectionTerminated):
            return PeerGone()
        if isinstance(event, h2.events.PingAckReceived):
            return NoticeSeen() if self._goaway.answers_notice(event.ping_data) else None
        return None  # settings acks, pings (h2 answers them), priorities

    def _opened(self, stream: OpenedStream) -> StreamHead | StreamRefused | StreamReset | None:
        """A stream the receive lane opened, as `_translate` takes a RequestReceived."""
        stream_id, fields, ended = stream
        if self._goaway.refuses(stream_id):
            self._refuse_after_goaway(stream_id)
            return None
        return self._request(stream_id, fields, ended)

    def _refuse_after_goaway(self, stream_id: int | None) -> None:
        """A stream opened after our GOAWAY is refused, so the client may retry it
        elsewhere (RFC 9113 §8.7)."""
        assert stream_id is not None
        self._conn.reset_stream(stream_id, h2.errors.ErrorCodes.REFUSED_STREAM)

    def _request(
        self, stream_id: int, fields: list[Field], ended: bool
    ) -> StreamHead | StreamRefused | StreamReset:
        try:
            head, length = self._heads.read(fields)
            if length is not None:
                self._body_length(stream_id, length, ended)
        except MalformedRequest as exc:
            return self._malformed(stream_id, exc)
        except ProtocolError as exc:
            return StreamRefused(stream_id, exc)
        return StreamHead(stream_id, head, ended)

    def _body_length(self, stream_id: int, length: int, ended: bool) -> None:
        """Hold the stream's DATA to its Content-Length here, not in h2 (`_Connection`)
        (gateway/http/h2_semantics.py, rule "Content-Length is held to")."""
        counter = BodyLength(length)
        if ended:
            counter.end()  # a request whole in its HEADERS frame: nothing more to hold
        else:
            self._lengths[stream_id] = counter

    def _data(self, event: h2.events.DataReceived) -> StreamData | StreamReset:
        stream_id, data = event.stream_id, event.data
        assert stream_id is not None and data is not None
        flow_length = event.flow_controlled_length or 0
        counter = self._lengths.get(stream_id)
        if counter is not None:
            try:
                counter.add(len(data))
            except MalformedRequest as exc:
                self.acknowledge(stream_id, flow_length)  # nobody will read it
                return self._malformed(stream_id, exc)
        return StreamData(stream_id, data, flow_length)

    def _ended(self, stream_id: int) -> StreamEnd | StreamReset:
        counter = self._lengths.pop(stream_id, None)
        if counter is not None:
            try:
                counter.end()
            except MalformedRequest as exc:
                return self._malformed(stream_id, exc)
        return StreamEnd(stream_id)

    def _trailers(self, event: h2.events.TrailersReceived) -> StreamReset | None:
        """Request trailers: checked, then dropped (ASGI has no request trailers); the
        StreamEnded that follows them ends the body."""
        assert event.stream_id is not None and event.headers is not None
        try:
            check_trailers(event.headers)
        except MalformedRequest as exc:
            return self._malformed(event.stream_id, exc)
        return None

    def _malformed(self, stream_id: int, exc: MalformedRequest) -> StreamReset:
        """RST_STREAM PROTOCOL_ERROR (gateway/http/h2_semantics.py, rule "a malformed
        request"); the rest of the stream's events in this batch are dropped. A stream
        the connection knows of learns it is gone by a StreamReset."""
        self._dropped.add(stream_id)
        self._lengths.pop(stream_id, None)
        with contextlib.suppress(h2.exceptions.StreamClosedError):
            self._conn.reset_stream(stream_id, h2.errors.ErrorCodes.PROTOCOL_ERROR)
        return StreamReset(stream_id, str(exc))

    # -- the response side -------------------------------------------------------------

    def send_head(
        self, stream_id: int, status: int, headers: Iterable[Field], defaults: Sequence[Field]
    ) -> None:
        """Encode a response head (rule "errors": the fields are checked first)."""
        self._send_fields(stream_id, response_fields(status, headers, defaults))

    def _send_fields(self, stream_id: int, fields: list[Field]) -> None:
        try:
            self._conn.send_headers(stream_id, fields)
        except h2.exceptions.StreamClosedError:
            raise ClientDisconnected("the client reset the stream") from None

    def send_response(
        self,
        stream_id: int,
        status: int,
        headers: Iterable[Field],
        defaults: Sequence[Field],
        body: bytes,
    ) -> bytes:
        """A head and the whole body, which ends the stream: framed in one step where
        gateway/http/h2_fast_lane.py may, else as `send_head` and `send_body` frame
        them; the part of the body left (rule "flow control is backpressure")."""
        fields = response_fields(status, headers, defaults)
        if frame_response(self._conn, stream_id, status, fields, body):
            return b""
        self._send_fields(stream_id, fields)
        return self.send_body(stream_id, body, end=True)

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

    def reset(self, stream_id: int, code: int = INTERNAL_ERROR) -> None:
        """Abandon a stream: RST_STREAM INTERNAL_ERROR for a response cut short; NO_ERROR
        after a complete response to a request that goes on (RFC 9113 §8.1), CANCEL for
        a tunnel given up on."""
        self._lengths.pop(stream_id, None)
        with contextlib.suppress(h2.exceptions.StreamClosedError):
            self._conn.reset_stream(stream_id, code)

    def still_receiving(self, stream_id: int) -> bool:
        """The client has neither ended its side of the stream nor reset it: after our
        END_STREAM, its request body is still to come."""
        stream = self._conn.streams.get(stream_id)
        return stream is not None and not stream.closed

    def stop_reading(self, stream_id: int) -> None:
        """The response is complete and the rest of the request is not wanted: RST_STREAM
        NO_ERROR (RFC 9113 §8.1), so the client stops sending it."""
        self.reset(stream_id, NO_ERROR)

    @property
    def header_block_open(self) -> bool:
        """A HEADERS frame came without END_HEADERS, and its CONTINUATION has not: no other
        frame may come until it ends (RFC 9113 §6.10). h2 holds the block in its frame
        buffer, and offers no public way to see it."""
        return bool(self._conn.incoming_buffer._headers_buffer)

    def give_up(self) -> None:
        """End the connection: GOAWAY NO_ERROR, naming the last stream opened."""
        self._conn.close_connection(h2.errors.ErrorCodes.NO_ERROR)

    @property
    def goaway_step(self) -> GoawayStep:
        return self._goaway.step

    def goaway_notice(self) -> bytes:
        """What is queued, then the first step of a graceful stop (rule "a graceful
        stop"): GOAWAY 2^31-1 and a PING; every stream goes on being served."""
        return self._conn.data_to_send() + self._goaway.notice()

    def refuse(self, stream_id: int) -> None:
        """A stream past MAX_CONCURRENT_STREAMS: RST_STREAM REFUSED_STREAM, which tells
        the client it may retry it (RFC 9113 §5.1.2, §8.7), counted by the guard."""
        with contextlib.suppress(h2.exceptions.StreamClosedError):
            self._conn.reset_stream(stream_id, h2.errors.ErrorCodes.REFUSED_STREAM)
        self._guard.stream_refused()

    def goaway(self) -> bytes:
        """What is queued, then the final GOAWAY (RFC 9113 §6.8) naming the last stream
        received: those up to it go on, any later one is refused."""
        return self._conn.data_to_send() + self._goaway.final(self._conn.highest_inbound_stream_id)

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
        # Connection-specific fields (RFC 9113 §8.2.2) an app written for HTTP/1.1 may
        # send are dropped: they mean nothing here.
        if lowered not in _NOT_IN_RESPONSES:
            fields.append((lowered, value))
            names.add(lowered)
    fields.extend(field for field in defaults if field[0] not in names)
    return fields


def is_websocket_connect(head: RequestHead) -> bool:
    """The head of an extended CONNECT for WebSocket, the only CONNECT a StreamHead
    carries (rule "websocket over HTTP/2")."""
    return head.method == b"CONNECT"
