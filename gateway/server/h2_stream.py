"""One HTTP/2 stream's side of the stream seam (gateway/server/stream.py): the small object
a RequestCycle, or a WebSocket's cycle (gateway/server/h2_tunnel.py), talks to. The
connection (gateway/server/h2_connection.py) owns the transport and the session, feeds
its streams their events, and bounds them in time.

Rules:
1. Flow control is backpressure, per stream. The DATA a cycle holds is acknowledged
   (its window reopened) only when the app took it (`body_consumed`), so a slow app
   throttles its own upload. A send takes what the stream's and the connection's send
   windows allow; the rest waits in the stream, whose `writing_paused` holds its app in
   `drain` until a WINDOW_UPDATE lets it out. One slow stream never blocks another:
   the connection's receive window holds several streams' full windows
   (gateway/http/h2_session.py, CONNECTION_WINDOW), so a stream whose app reads nothing
   fills its own window and leaves the others room, and no connection holds more than
   that of unread body. The transport's own high-water mark pauses every stream.
2. Once a cycle has ended, what it held unread and its stream's later DATA are
   acknowledged at once, so a body the app never read does not shrink the connection's
   window for the other streams.
3. A complete response ends the request: once a stream's END_STREAM has gone out while
   the client's side is still open (a 503 past limit_concurrency, a refusal, a 408, an
   app that answered without reading its body), the stream is reset with NO_ERROR, as
   RFC 9113 §8.1 allows, so the client stops sending a body nobody will read; what it
   sent meanwhile is dropped, and the connection goes on. A WebSocket's tunnel ends
   its own way (gateway/server/h2_tunnel.py, rule "closing the WebSocket ends the
   stream").
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from gateway.asgi import plain_reply
from gateway.errors import ClientDisconnected, HTTPError
from gateway.http.h2_semantics import ResponseLength
from gateway.http.h2_session import CANCEL
from gateway.http.session import NO_BODY_STATUSES
from gateway.server.cycle import RequestCycle
from gateway.server.stream import Fields

if TYPE_CHECKING:  # the connection imports its streams; a stream only calls it back
    from gateway.server.h2_connection import H2Connection


class H2Stream:
    """One stream's side of the seam (gateway/server/stream.py `Stream`)."""

    __slots__ = (
        "_blocked_since",
        "_conn",
        "_drain_waiter",
        "_head_sent",
        "_length",
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
        self._length: ResponseLength | None = None  # the body the app declared
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
        headers = list(headers)
        # Raised before the head is framed, so the app still gets its 500
        # (gateway/http/h2_semantics.py, rule "Content-Length is held to").
        length = ResponseLength(status, headers, self._no_body)
        length.send(len(body), not more_body)
        if not more_body:  # the whole response at once, as most are
            self._send_response(status, headers, body, length)
            return
        conn.session.send_head(self.stream_id, status, headers, conn.default_fields())
        self._head_sent, self._length = True, length
        if status in NO_BODY_STATUSES:
            self._no_body = True
        self._send(body, not more_body)

    def _send_response(
        self, status: int, headers: Fields, body: bytes, length: ResponseLength
    ) -> None:
        no_body = self._no_body or status in NO_BODY_STATUSES
        conn = self._conn
        left = conn.session.send_response(
            self.stream_id, status, headers, conn.default_fields(), b"" if no_body else body
        )
        self._head_sent, self._length, self._no_body = True, length, no_body
        if left:
            self._pending, self._pending_end = left, True
            self._blocked_since = conn.loop.time()
        else:
            self.response_ended()
        conn.flush_soon(len(body))

    def send_body(self, body: bytes, more_body: bool) -> None:
        if self.closed:
            raise ClientDisconnected("the client reset the stream")
        if self._length is not None:
            self._length.send(len(body), not more_body)  # a cut if it raises
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
            elif end:
                self.response_ended()
        self._conn.flush_soon(len(body))

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
            if self._pending_end:
                self.response_ended()
            self.wake()
            self._conn.forget_if_done(self)

    def response_ended(self) -> None:
        """Our END_STREAM went out. A request still coming is not wanted: RST_STREAM
        NO_ERROR (rule "a complete response ends the request")."""
        session = self._conn.session
        if session.still_receiving(self.stream_id):
            session.stop_reading(self.stream_id)

    def send_stalled(self, now: float, timeout_s: float) -> bool:
        """The body has waited for a window, with nothing taken, for `timeout_s`
        (gateway/server/h2_connection.py, rule "a client that does not read")."""
        return (
            self._pending is not None and not self.closed and now - self._blocked_since >= timeout_s
        )

    def cancel_send(self) -> None:
        """Reset a stream the client stopped reading (gateway/server/h2_connection.py,
        rule "a client that does not read")."""
        self._conn.session.reset(self.stream_id, CANCEL)
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

    def timed_out(self, error: HTTPError) -> None:
        """The client left its request body unfinished for body_timeout: its 408, and the
        rest of the request refused; or, if the response has begun, the stream reset
        (gateway/server/h2_connection.py, rule "slow clients are bounded per stream")."""
        cycle = self.cycle
        if cycle is None:
            return
        began = self._head_sent
        cycle.abandon(error)  # the 408 ends the request too (`response_ended`)
        if began:
            self.close()

    def end_cycle(self) -> None:
        self.cycle_done = True
        if self._unacknowledged:  # rule "once a cycle has ended": what it held, too
            self.body_consumed()
        self._conn.stream_ended(self)

    def shutdown(self) -> None:
        """A graceful stop: a request goes on to its end (a tunnel's closes)."""

    # -- fed by the connection ---------------------------------------------------------

    def body_arrived(self, data: bytes, flow_length: int) -> None:
        cycle = self.cycle
        if cycle is None or self.cycle_done:  # rule "once a cycle has ended"
            self._conn.session.acknowledge(self.stream_id, flow_length)
            return
        self._unacknowledged += flow_length
        cycle.body_arrived(data)

    def body_ended(self) -> None:
        """The client's END_STREAM."""
        if self.cycle is not None:
            self.cycle.body_complete()

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
