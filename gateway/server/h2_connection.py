"""One HTTP/2 connection: the stream seam (gateway/server/stream.py) once per stream, each
stream running the same RequestCycle an HTTP/1.1 request runs.

Rules:
1. The connection owns the transport and the session (gateway/http/h2_session.py); an
   H2Stream (gateway/server/h2_stream.py) is the small per-stream object a cycle talks
   to. Bytes in go through the
   session, and what the session has to send goes out once per batch of events, and
   once per turn of the loop for the app sends made in it (`flush_soon`): the
   streams a batch of requests started answer in one write, not one each. An app
   whose sends do not yield (a body in a loop, with windows wide open) is written at
   once past FLUSH_NOW_BYTES, so the transport's high-water mark still pauses it and
   nothing piles up unwritten.
2. A stream is one request: it counts in `in_flight` from its head to its cycle's end,
   as an HTTP/1.1 request does, and is logged and counted when its cycle ends
   (`limit_concurrency` answers a stream past it with a 503, the connection goes on).
3. A graceful `shutdown()` (a stop, a reload, max_requests: the worker's drain) is the
   two-step GOAWAY (gateway/http/h2_goaway.py, rule "two steps"): the notice, GOAWAY
   2^31-1 and a PING, at once; the final GOAWAY naming the last stream received once the
   client has acknowledged the PING, or GOAWAY_ACK_TIMEOUT_S after the notice (checked
   by the worker's sweep). Every stream up to the final one is served to its end; once
   none is left the connection flushes and closes in stages, reading on for
   GOAWAY_LINGER_S at most (gateway/server/closing.py, rule "closing in stages"), so the
   client's last frames do not make the kernel reset the replies away. A stream still
   running when the drain's graceful_timeout ends is cut with the connection (`abort`).
   A client's GOAWAY closes the connection once its streams are done; a connection
   error from the client (a ProtocolError from the session) ends every stream and
   closes after h2's GOAWAY.
4. A connection without a stream in flight closes after `keep_alive_timeout` (the
   worker's sweep, as on HTTP/1.1) with the final GOAWAY alone, then the close in
   stages of a graceful `shutdown()`: RFC 9113 §9.1 asks for the GOAWAY, so that a
   client knows which of its streams were seen, and a client idle that long is not
   waited on for a PING's ACK. A request that crosses it is refused (REFUSED_STREAM),
   which the client may retry (RFC 9113 §8.7).
5. Slow clients are bounded per stream, as on HTTP/1.1: a stream whose app waits for
   body that has not come for `body_timeout` gets its 408 and RST_STREAM NO_ERROR, or,
   once its response has begun, RST_STREAM. A header block left open (HEADERS without
   its last CONTINUATION) for `header_timeout` holds every stream up (RFC 9113 §6.10):
   GOAWAY, and the connection closes.
6. Streams are held to MAX_CONCURRENT_STREAMS by the connection, counting every stream
   whose cycle has not ended: one the client reset still counts until its app has
   returned, so that Rapid Reset (CVE-2023-44487) buys no more apps running at once than
   honest requests. A stream past it is refused (gateway/http/h2_session.py, rule
   "streams past MAX_CONCURRENT_STREAMS"), and counted with the client's resets.
7. A client that does not read is bounded three ways. Once more than
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
8. The handshake is bounded by `header_timeout`: a connection whose client has not sent
   its SETTINGS (the end of its preface, RFC 9113 §3.4) by then is closed. The preface
   is to HTTP/2 what a request head is to HTTP/1.1, so it gets a head's time. (TLS has
   its own handshake bound, gateway/server/tls.py.)
9. A connection lost stays in the worker's `connections` until the last of its
   streams' apps has returned, as an HTTP/1.1 connection stays until its cycle or
   WebSocket ends: a graceful stop's drain waits for those apps, within its
   graceful_timeout, even once their client has gone.
"""

from __future__ import annotations

import asyncio
import logging
from typing import cast

from gateway.errors import (
    HTTPError,
    ProtocolError,
    RequestTimeout,
    ServiceUnavailable,
)
from gateway.http.h2_goaway import GoawayStep
from gateway.http.h2_session import (
    MAX_CONCURRENT_STREAMS,
    H2Session,
    NoticeSeen,
    PeerGone,
    StreamData,
    StreamEnd,
    StreamHead,
    StreamRefused,
    StreamReset,
    WindowOpened,
    is_websocket_connect,
)
from gateway.http.session import parse_target
from gateway.http.ws_session import HandshakeError, read_extended_connect
from gateway.server.closing import LingeringClose, SendStall, begin_lingering_close
from gateway.server.cycle import RequestCycle
from gateway.server.h2_stream import H2Stream
from gateway.server.h2_tunnel import start_websocket
from gateway.server.scopes import Address, ConnectionFields, http_scope, websocket_scope
from gateway.server.shared import WorkerShared

# Output a client that does not read may leave in our transport before we stop reading
# what it sends (rule "a client that does not read"). An app's send waits at the
# transport's high-water mark (64 KiB), so a download stays far below this; what piles
# up past it is what the client keeps asking for meanwhile: new streams' heads and first
# bodies, acknowledgements. 1 MiB holds a hundred streams' heads with 10 KiB each. What
# the client sends is bounded apart from this: the request body it may have us hold
# unread is the connection's receive window (gateway/http/h2_session.py,
# CONNECTION_WINDOW, also 1 MiB), however long reading goes on.
MAX_UNREAD_OUTPUT_BYTES = 1024 * 1024
# Body bytes `flush_soon` holds for the end of the loop's turn below this (rule "the
# connection owns the transport"): the transport's high-water mark, so a body part that
# big, or an app that sends without yielding, is written at once and paused by the
# transport as on HTTP/1.1, and small responses still share a write.
FLUSH_NOW_BYTES = 64 * 1024
error_log = logging.getLogger("gateway.error")

# How long after the GOAWAY notice the final GOAWAY waits for the client's ACK of its
# PING (rule "a graceful `shutdown()`"): the ACK comes one round trip after the notice,
# milliseconds on any network a client would still be served over; a second is many
# round trips, and the worker's sweep adds up to half a second more. RFC 9113 §6.8 asks
# for at least one round trip.
GOAWAY_ACK_TIMEOUT_S = 1.0
# The lingering close after the final GOAWAY: the client's frames sent before it read
# our end (a WINDOW_UPDATE for the last DATA, its own GOAWAY) arrive within a round trip,
# and a client that reads closes at our FIN within one more. Shorter than the
# LINGER_TIME_S of an error reply, which waits for an upload: no body is coming here,
# and a client that does not read (an idle pooled connection) should not hold the
# worker's drain for long.
GOAWAY_LINGER_S = 2.0


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
        self._header_block_since: float | None = None  # a header block's first frame
        self._send_stall = SendStall()  # send_timeout, while writing is paused
        self._reading_paused = False  # by _hold_reading, until writing resumes
        self._closing = False  # no stream will come: close once the last one is done
        self._noticed_at = 0.0  # when the GOAWAY notice went out
        self._linger: LingeringClose | None = None  # reading only to discard, until closed
        self.writing_paused = False
        self.closed = False
        self._flush_due = False  # `flush_soon` has a flush on the way
        self._unflushed = 0  # body bytes framed since the last flush

    # -- transport callbacks -----------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        self._state.connections.add(self)
        self.flush()  # our SETTINGS (RFC 9113 §3.4: the server's preface)
        if self._state.draining:
            self.shutdown()

    def data_received(self, data: bytes) -> None:
        if self._linger is not None:
            self._linger.discard(data)
            return
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
        if not self.session.header_block_open:
            self._header_block_since = None
        elif self._header_block_since is None:  # header_timeout runs from its first frame
            self._header_block_since = self.loop.time()

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
            if stream is not None:
                stream.body_ended()
        elif type(event) is WindowOpened:
            self._window_opened(event.stream_id)
        elif type(event) is StreamRefused:
            self._refuse(event.stream_id, b"GET", event.error)
        elif type(event) is StreamReset:
            if event.reason:  # a malformed request, reset by the session
                error_log.info("%s: stream %d: %s", self._client, event.stream_id, event.reason)
            stream = self._streams.get(event.stream_id)
            if stream is not None:
                stream.gone()
        elif type(event) is PeerGone:
            self._closing = True
            self._close_if_idle()
        elif type(event) is NoticeSeen:
            self._final_goaway()

    def _start_cycle(self, event: StreamHead) -> None:
        state, head = self._state, event.head
        if len(self._streams) >= MAX_CONCURRENT_STREAMS:  # rule "streams are held"
            self.session.refuse(event.stream_id)
            return
        if state.in_flight >= state.concurrency_limit:  # rule "a stream is one request"
            limit = state.config.limit_concurrency
            self._refuse(event.stream_id, head.method, ServiceUnavailable(f"limit {limit}"))
            return
        if is_websocket_connect(head) and self._started_websocket(event):
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

    def _started_websocket(self, event: StreamHead) -> bool:
        """An extended CONNECT (RFC 8441 §4) on a path the router gives to an ASGI mount
        runs a WebSocket on a tunnel stream (gateway/server/h2_tunnel.py); on any other
        it is plain HTTP, as HTTP/1.1 serves an upgrade there (gateway/server/connection.py,
        rule "an upgrade request"), a GET without a body as RFC 6455 §4.1 asks (False)."""
        head, target = event.head, parse_target(event.head.target)
        if not self._state.serves_websocket(target.path):
            head.method, event.ended = b"GET", True
            return False
        try:
            handshake = read_extended_connect(head)
        except HandshakeError as exc:
            self._refuse(event.stream_id, head.method, exc)
            return True
        scope = websocket_scope(head, target, handshake, self._client, self._server, self._tls)
        if self._fields is not None:
            self._fields.add_to(scope)
        stream = start_websocket(self, event.stream_id, scope, handshake, self._state)
        self._streams[event.stream_id] = stream
        self._idle_since = None
        if self._closing:
            stream.shutdown()
        return True

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
        if self._linger is not None:
            self._linger.cancel()
        self._end_streams()
        if not self._streams:  # else at the last one's end (rule "a connection lost")
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
        self._unflushed = 0
        self._write(self.session.data_to_send())

    def flush_soon(self, size: int) -> None:
        """Flush once the streams that run in this turn of the loop have sent: the
        responses to a batch of requests go out in one write (rule "the connection owns
        the transport"); at once past FLUSH_NOW_BYTES of body."""
        self._unflushed += size
        if self._unflushed >= FLUSH_NOW_BYTES:
            self.flush()
        elif not self._flush_due:
            self._flush_due = True
            self.loop.call_soon(self._flush_when_due)

    def _flush_when_due(self) -> None:
        self._flush_due = False
        self.flush()

    def _write(self, data: bytes) -> None:
        transport = self._transport
        if data and transport is not None and not self.closed and self._linger is None:
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
            if self._streams:
                return
            if self.closed:  # rule "a connection lost": its last app has returned
                self._state.forget(self)
                return
            self._idle_since = self.loop.time()
            self._close_if_idle()

    # -- timers and closing ------------------------------------------------------------

    def check_deadlines(self, now: float) -> None:
        """Called by the worker's sweep (rules "a graceful `shutdown()`", "a connection
        without a stream in flight", "slow clients are bounded per stream", "a client that
        does not read" and "the handshake is bounded")."""
        if self._send_stalled(now) or self._handshake_late(now):
            return
        config = self._state.config
        noticed = self.session.goaway_step is GoawayStep.NOTICED
        if noticed and now - self._noticed_at >= GOAWAY_ACK_TIMEOUT_S:
            self._final_goaway()  # rule "a graceful `shutdown()`": the client did not answer
        since = self._idle_since
        if since is not None and now - since >= config.keep_alive_timeout:
            self._final_goaway()  # rule "a connection without a stream in flight"
            return
        self._slow_streams(now)

    def _slow_streams(self, now: float) -> None:
        """Rule "slow clients are bounded per stream"."""
        config = self._state.config
        timeout = config.body_timeout
        for stream in list(self._streams.values()):
            cycle = stream.cycle
            live = cycle is not None and not stream.closed and not stream.cycle_done
            if live and cycle is not None and cycle.body_stalled(now, timeout):
                stream.timed_out(RequestTimeout(f"no request body for {timeout} s"))
        block = self._header_block_since
        if block is not None and now - block >= config.header_timeout:
            # No other frame may come until the block ends (RFC 9113 §6.10): the whole
            # connection waits on this stream, so it ends.
            timeout = config.header_timeout
            error_log.info("%s: header block not complete after %s s", self._client, timeout)
            self.session.give_up()
            self.flush()
            self._end_streams()
            self.close()

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
        """Graceful stop, its first step (rule "a graceful `shutdown()`"): the GOAWAY
        notice; every stream the client sent goes on being served."""
        if self.session.goaway_step is GoawayStep.OPEN and not self._closing:
            self._write(self.session.goaway_notice())
            self._noticed_at = self.loop.time()
        for stream in list(self._streams.values()):
            stream.shutdown()  # a WebSocket closes (gateway/server/h2_tunnel.py)

    def _final_goaway(self) -> None:
        """The second step: no stream after the last one received is served, and the
        connection closes once those are done."""
        if self.session.goaway_step is not GoawayStep.FINAL:
            self._write(self.session.goaway())
            self._closing = True
            self._close_if_idle()

    def _close_if_idle(self) -> None:
        transport = self._transport
        if self._closing and not self._streams and transport is not None and not self.closed:
            self.flush()  # the last reply goes out before the end
            if self._linger is None and not transport.is_closing():
                self._linger = begin_lingering_close(transport, self.loop, GOAWAY_LINGER_S)

    def close(self) -> None:
        if self._linger is not None:
            return  # the linger's own bounds close it (rule "a graceful `shutdown()`")
        if self._transport is not None and not self._transport.is_closing():
            self._transport.close()

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()
