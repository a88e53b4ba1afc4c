"""One HTTP/2 connection: the stream seam (gateway/server/stream.py) once per stream, each
stream running the same RequestCycle an HTTP/1.1 request runs.

Rules:
1. The connection owns the transport and the session (gateway/http/h2_session.py); an
   H2Stream is the small per-stream object a cycle talks to. Bytes in go through the
   session, and what the session has to send goes out once per batch of events, and
   once per app send.
2. A stream is one request: it counts in `in_flight` from its head to its cycle's end,
   as an HTTP/1.1 request does, and is logged and counted when its cycle ends
   (`limit_concurrency` answers a stream past it with a 503, the connection goes on).
3. Flow control is backpressure, per stream. The DATA a cycle holds is acknowledged
   (its window reopened) only when the app took it (`body_consumed`), so a slow app
   throttles its own upload. A send takes what the stream's and the connection's send
   windows allow; the rest waits in the stream, whose `writing_paused` holds its app in
   `drain` until a WINDOW_UPDATE lets it out. One slow stream never blocks another.
   The transport's own high-water mark pauses every stream.
4. Once a cycle has ended, its stream's later DATA is acknowledged at once, so a body
   the app never read does not shrink the connection's window for the other streams.
5. A graceful `shutdown()` sends GOAWAY with the last stream opened, lets the streams in
   flight finish, then closes. A connection error from the client (a ProtocolError from
   the session) ends every stream and closes after h2's GOAWAY.
6. A connection without a stream in flight sends GOAWAY and closes after
   `keep_alive_timeout` (the worker's sweep, as on HTTP/1.1; RFC 9113 §9.1 asks for the
   GOAWAY, so that a client knows which of its streams were seen).
7. Streams are held to MAX_CONCURRENT_STREAMS by the connection, counting every stream
   whose cycle has not ended: one the client reset still counts until its app has
   returned, so that Rapid Reset (CVE-2023-44487) buys no more apps running at once than
   honest requests. A stream past it is refused (gateway/http/h2_session.py, rule
   "streams past MAX_CONCURRENT_STREAMS"), and counted with the client's resets.
8. A client that does not read is bounded three ways. Once more than
   MAX_UNREAD_OUTPUT_BYTES wait in the transport, reading pauses until writing resumes,
   so what the client sends cannot make us queue answers without bound (new streams'
   first bodies, acknowledgements); below it reading goes on, so that one download
   never holds up the other streams' requests and WINDOW_UPDATEs. A connection whose
   writing stays paused with no new low of the bytes the client has not taken for
   `send_timeout` is aborted, as on HTTP/1.1 (gateway/server/closing.py, rule "a client
   that reads nothing"). A stream whose body waits for a window the client does not
   open (INITIAL_WINDOW_SIZE 0, no WINDOW_UPDATE) for `send_timeout` is reset
   (RST_STREAM CANCEL) and its app's `send` raises ClientDisconnected; the connection
   and its other streams go on.
9. The handshake is bounded by `header_timeout`: a connection whose client has not sent
   its SETTINGS (the end of its preface, RFC 9113 §3.4) by then is closed. The preface
   is to HTTP/2 what a request head is to HTTP/1.1, so it gets a head's time. (TLS has
   its own handshake bound, gateway/server/tls.py.)
"""

from __future__ import annotations

import asyncio
import logging
from typing import cast

from gateway.asgi import plain_reply
from gateway.errors import ClientDisconnected, HTTPError, ProtocolError, ServiceUnavailable
from gateway.http.h2_session import (
    MAX_CONCURRENT_STREAMS,
    H2Session,
    PeerGone,
    StreamData,
    StreamEnd,
    StreamHead,
    StreamRefused,
    StreamReset,
    WindowOpened,
)
from gateway.http.session import NO_BODY_STATUSES, parse_target
from gateway.server.closing import SendStall
from gateway.server.cycle import RequestCycle
from gateway.server.scopes import Address, ConnectionFields, http_scope
from gateway.server.shared import WorkerShared
from gateway.server.stream import Fields

# Output a client that does not read may leave in our transport before we stop reading
# what it sends (rule "a client that does not read"). An app's send waits at the
# transport's high-water mark (64 KiB), so a download stays far below this; what piles
# up past it is what the client keeps asking for meanwhile: new streams' heads and first
# bodies, acknowledgements. 1 MiB holds a hundred streams' heads with 10 KiB each.
MAX_UNREAD_OUTPUT_BYTES = 1024 * 1024
error_log = logging.getLogger("gateway.error")


class H2Stream:
    """One stream's side of the seam (gateway/server/stream.py `Stream`)."""

    __slots__ = (
        "_blocked_since",
        "_conn",
        "_drain_waiter",
        "_head_sent",
        "_no_body",
        "_pending",
        "_pending_end",
        "_unacknowledged",
        "closed",
        "cycle",
        "cycle_done",
        "stream_id",
    )

    def __init__(self, conn: H2Connection, stream_id: int, method: bytes) -> None:
        self._conn = conn
        self.stream_id = stream_id
        self.cycle: RequestCycle | None = None
        self.cycle_done = False
        self.closed = False  # reset by the client, or the connection has gone
        self._no_body = method == b"HEAD"  # RFC 9110 §9.3.2
        self._head_sent = False
        self._pending: bytes | None = None  # body the send windows did not take yet
        self._pending_end = False
        self._unacknowledged = 0  # flow-controlled bytes the app has not consumed
        self._drain_waiter: asyncio.Future[None] | None = None
        self._blocked_since = 0.0  # loop time the body last waited for a window, or moved

    # -- the seam ----------------------------------------------------------------------

    @property
    def writing_paused(self) -> bool:
        return self._pending is not None or self._conn.writing_paused or self.closed

    async def drain(self) -> None:
        while (self._pending is not None or self._conn.writing_paused) and not self.closed:
            self._drain_waiter = self._conn.loop.create_future()
            await self._drain_waiter
        if self.closed:
            raise ClientDisconnected("the client reset the stream")

    def send_head(self, status: int, headers: Fields, body: bytes, more_body: bool) -> None:
        if self.closed:
            raise ClientDisconnected("the client reset the stream")
        conn = self._conn
        conn.session.send_head(self.stream_id, status, headers, conn.default_fields())
        self._head_sent = True
        if status in NO_BODY_STATUSES:
            self._no_body = True
        self._send(body, not more_body)

    def send_body(self, body: bytes, more_body: bool) -> None:
        if self.closed:
            raise ClientDisconnected("the client reset the stream")
        self._send(body, not more_body)

    def _send(self, body: bytes, end: bool) -> None:
        if self._no_body:
            body = b""
        if self._pending is not None:
            self._pending += body
            self._pending_end = end
        else:
            left = self._conn.session.send_body(self.stream_id, body, end)
            if left:
                self._pending, self._pending_end = left, end
                self._blocked_since = self._conn.loop.time()
        self._conn.flush()

    def window_opened(self) -> None:
        """Send what waited for the windows; let the app on once all of it went."""
        pending = self._pending
        if pending is None or self.closed:
            return
        try:
            left = self._conn.session.send_body(self.stream_id, pending, self._pending_end)
        except ClientDisconnected:
            self.gone()
            return
        if len(left) < len(pending):  # the client took some: the wait starts again
            self._blocked_since = self._conn.loop.time()
        self._pending = left or None
        if not left:
            self.wake()
            self._conn.forget_if_done(self)

    def send_stalled(self, now: float, timeout_s: float) -> bool:
        """The body has waited for a window, with nothing taken, for `timeout_s` (rule
        "a client that does not read")."""
        return (
            self._pending is not None and not self.closed and now - self._blocked_since >= timeout_s
        )

    def cancel_send(self) -> None:
        """Reset a stream the client stopped reading (rule "a client that does not read")."""
        self._conn.session.cancel(self.stream_id)
        self._conn.flush()
        self.gone()

    def send_error(self, status: int, headers: Fields = ()) -> int:
        if self._head_sent or self.closed:
            return 0
        fields, body = plain_reply(status, headers, head_request=self._no_body)
        try:
            self.send_head(status, fields, body, more_body=False)
        except ClientDisconnected:
            return 0
        return len(body)

    def send_continue(self) -> None:
        self._conn.session.send_continue(self.stream_id)
        self._conn.flush()

    def body_consumed(self) -> None:
        consumed, self._unacknowledged = self._unacknowledged, 0
        self._conn.session.acknowledge(self.stream_id, consumed)
        self._conn.flush()

    def close(self) -> None:
        """Half a response went out: reset the stream, which tells the client it is cut."""
        if not self.closed:
            self._conn.session.reset(self.stream_id)
            self._conn.flush()
            self.gone()

    def end_cycle(self) -> None:
        self.cycle_done = True
        self._conn.stream_ended(self)

    # -- fed by the connection ---------------------------------------------------------

    def body_arrived(self, data: bytes, flow_length: int) -> None:
        cycle = self.cycle
        if cycle is None or self.cycle_done:  # rule "once a cycle has ended"
            self._conn.session.acknowledge(self.stream_id, flow_length)
            return
        self._unacknowledged += flow_length
        cycle.body_arrived(data)

    def gone(self) -> None:
        self.closed = True
        self._pending = None
        if self.cycle is not None:
            self.cycle.client_gone()
        self.wake()
        self._conn.forget_if_done(self)

    def wake(self) -> None:
        waiter, self._drain_waiter = self._drain_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    @property
    def done(self) -> bool:
        return self.cycle_done and (self._pending is None or self.closed)


class H2Connection(asyncio.Protocol):
    """asyncio protocol for one HTTP/2 connection, handed over by HTTPConnection (for
    h2c prior knowledge, or after TLS chose h2 by ALPN)."""

    def __init__(
        self,
        state: WorkerShared,
        client: Address,
        server: Address,
        tls: bool,
        fields: ConnectionFields | None,
    ) -> None:
        self._state = state
        self.loop = asyncio.get_running_loop()
        self.session = H2Session(state.config.max_header_bytes)
        self._client, self._server, self._tls, self._fields = client, server, tls, fields
        self._transport: asyncio.Transport | None = None
        self._streams: dict[int, H2Stream] = {}
        self._started = self.loop.time()  # for the handshake's bound
        self._idle_since: float | None = self._started
        self._send_stall = SendStall()  # send_timeout, while writing is paused
        self._reading_paused = False  # by _hold_reading, until writing resumes
        self._closing = False
        self.writing_paused = False
        self.closed = False

    # -- transport callbacks -----------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        self._state.connections.add(self)
        self.flush()  # our SETTINGS (RFC 9113 §3.4: the server's preface)
        if self._state.draining:
            self.shutdown()

    def data_received(self, data: bytes) -> None:
        try:
            events = self.session.feed(data)
        except ProtocolError as exc:
            error_log.info("%s: %s", self._client, exc)
            self.flush()  # h2's GOAWAY
            self._end_streams()
            self.close()
            return
        for event in events:
            self._handle(event)
        self.flush()

    def _handle(self, event: object) -> None:
        if type(event) is StreamData:
            stream = self._streams.get(event.stream_id)
            if stream is not None:
                stream.body_arrived(event.data, event.flow_length)
            else:
                self.session.acknowledge(event.stream_id, event.flow_length)
        elif type(event) is StreamHead:
            self._start_cycle(event)
        elif type(event) is StreamEnd:
            stream = self._streams.get(event.stream_id)
            if stream is not None and stream.cycle is not None:
                stream.cycle.body_complete()
        elif type(event) is WindowOpened:
            self._window_opened(event.stream_id)
        elif type(event) is StreamRefused:
            self._refuse(event.stream_id, b"GET", event.error)
        elif type(event) is StreamReset:
            stream = self._streams.get(event.stream_id)
            if stream is not None:
                stream.gone()
        elif type(event) is PeerGone:
            self._closing = True
            self._close_if_idle()

    def _start_cycle(self, event: StreamHead) -> None:
        state, head = self._state, event.head
        if len(self._streams) >= MAX_CONCURRENT_STREAMS:  # rule "streams are held"
            self.session.refuse(event.stream_id)
            return
        if state.in_flight >= state.concurrency_limit:  # rule "a stream is one request"
            limit = state.config.limit_concurrency
            self._refuse(event.stream_id, head.method, ServiceUnavailable(f"limit {limit}"))
            return
        scope = http_scope(head, parse_target(head.target), self._client, self._server, self._tls)
        if self._fields is not None:
            self._fields.add_to(scope)
        stream = H2Stream(self, event.stream_id, head.method)
        cycle = RequestCycle(stream, scope, head.expects_continue, state.access_log)
        stream.cycle = cycle
        if event.ended:
            cycle.body_complete()
        self._streams[event.stream_id] = stream
        self._idle_since = None
        state.in_flight += 1  # until stream_ended
        self.loop.create_task(cycle.run(state.app))

    def _refuse(self, stream_id: int, method: bytes, error: HTTPError) -> None:
        """The gateway's own reply on one stream, the one the error implies; the
        connection goes on."""
        stream = H2Stream(self, stream_id, method)
        stream.cycle_done = True
        self._streams[stream_id] = stream
        stream.send_error(error.status, error.headers)
        self.forget_if_done(stream)

    def _window_opened(self, stream_id: int) -> None:
        if stream_id:
            stream = self._streams.get(stream_id)
            if stream is not None:
                stream.window_opened()
            return
        for stream in list(self._streams.values()):
            stream.window_opened()

    def eof_received(self) -> bool:
        return False  # HTTP/2 has its own end (GOAWAY); a half-close ends it all

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._end_streams()
        self._state.forget(self)

    def _end_streams(self) -> None:
        for stream in list(self._streams.values()):
            stream.gone()

    def pause_writing(self) -> None:
        self.writing_paused = True
        self._send_stall.paused()

    def resume_writing(self) -> None:
        self.writing_paused = False
        if self._reading_paused and self._transport is not None and not self.closed:
            self._reading_paused = False  # rule "a client that does not read"
            self._transport.resume_reading()
        for stream in list(self._streams.values()):
            stream.window_opened()
            if not stream.writing_paused:
                stream.wake()

    # -- the streams -------------------------------------------------------------------

    def default_fields(self) -> tuple[tuple[bytes, bytes], ...]:
        return self._state.default_fields.fields()

    def flush(self) -> None:
        data = self.session.data_to_send()
        transport = self._transport
        if data and transport is not None and not self.closed:
            transport.write(data)
            if self.writing_paused and not self._reading_paused:
                self._hold_reading(transport)

    def _hold_reading(self, transport: asyncio.Transport) -> None:
        """Rule "a client that does not read": past MAX_UNREAD_OUTPUT_BYTES, read no more."""
        if transport.get_write_buffer_size() > MAX_UNREAD_OUTPUT_BYTES:
            self._reading_paused = True
            transport.pause_reading()

    def stream_ended(self, stream: H2Stream) -> None:
        """A stream's cycle ended (rule "a stream is one request")."""
        if stream.cycle is not None:
            self._state.request_ended(stream.cycle)
        self.forget_if_done(stream)

    def forget_if_done(self, stream: H2Stream) -> None:
        if stream.done and self._streams.get(stream.stream_id) is stream:
            del self._streams[stream.stream_id]
            if not self._streams:
                self._idle_since = self.loop.time()
                self._close_if_idle()

    # -- timers and closing ------------------------------------------------------------

    def check_deadlines(self, now: float) -> None:
        """Called by the worker's sweep (rules "a client that does not read", "the
        handshake is bounded" and "a connection without a stream in flight")."""
        if self._send_stalled(now) or self._handshake_late(now):
            return
        since = self._idle_since
        if since is not None and now - since >= self._state.config.keep_alive_timeout:
            self.shutdown()  # GOAWAY, then the close, there being no stream in flight

    def _send_stalled(self, now: float) -> bool:
        """Abort a connection whose client reads nothing; reset each stream whose client
        opens no window (rule "a client that does not read"). True once it is closing."""
        transport, timeout_s = self._transport, self._state.config.send_timeout
        if transport is None:
            return True
        if self.writing_paused and self._send_stall.stalled(transport, now, timeout_s):
            # Closing too, maybe: a close waits for the client to read what is buffered.
            error_log.info("%s read nothing for %s s: aborted", self._client, timeout_s)
            self.abort()
            return True
        if transport.is_closing():
            return True
        for stream in list(self._streams.values()):
            if stream.send_stalled(now, timeout_s):
                error_log.info(
                    "%s opened no window on stream %d for %s s: reset",
                    self._client,
                    stream.stream_id,
                    timeout_s,
                )
                stream.cancel_send()
        return False

    def _handshake_late(self, now: float) -> bool:
        """Rule "the handshake is bounded"; True if it closed the connection."""
        timeout_s = self._state.config.header_timeout
        if self.session.greeted or now - self._started < timeout_s:
            return False
        error_log.info("%s: no HTTP/2 preface after %s s", self._client, timeout_s)
        self.close()
        return True

    def shutdown(self) -> None:
        """Graceful stop (rule "a graceful `shutdown()`")."""
        if not self._closing and self._transport is not None and not self.closed:
            self._transport.write(self.session.goaway())
        self._closing = True
        self._close_if_idle()

    def _close_if_idle(self) -> None:
        if self._closing and not self._streams:
            self.flush()
            self.close()

    def close(self) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.close()

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()
