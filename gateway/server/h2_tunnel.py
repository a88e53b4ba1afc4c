"""A WebSocket on one HTTP/2 stream (RFC 8441): the TunnelStream side of the seam
(gateway/server/stream.py) for an extended CONNECT, under the same WebSocketCycle and
WebSocketSession an HTTP/1.1 upgrade runs (gateway/server/websocket.py).

Rules:
1. The request is the handshake: no Upgrade and no 101. The app's accept is a 200
   HEADERS frame with the accept's fields (RFC 8441 §5), a denial or a refusal is an
   ordinary response on the stream, and from the accept on the stream's DATA carries
   the WebSocket's bytes both ways, framed by the cycle's session.
2. Flow control is backpressure, both ways. Sending is H2Stream's: what the send windows
   do not take waits in the stream, and `writing_paused` holds the app in `drain` until
   a WINDOW_UPDATE; when it has all gone the cycle hears `writing_resumed`. Received DATA
   is acknowledged only while the cycle reads: before the accept, and while the cycle
   has paused reading (its inbox full, or its replies backlogged), it is held, so the
   client stops at its stream window.
3. Closing the WebSocket ends the stream: once the cycle closes (both Close frames
   passed, or a refusal), our side ends with END_STREAM after what waits to be sent; a
   denial cut half-way is reset instead, as an HTTP response cut short is. The stream is
   over once both sides have ended, or either side reset it; the cycle then hears
   `connection_lost` (1006 unless a Close came first). A RST_STREAM from the client,
   or the connection's end, is such an end. A client that ends its side first (its
   END_STREAM is TCP's FIN here) gets our end at once.
4. Each WebSocket counts in `in_flight` from its head until its app has returned, and is
   then logged and counted, as on HTTP/1.1 (gateway/server/connection.py, rule "an
   upgrade request"); its stream is forgotten once the app has returned and the stream
   is over. A graceful stop closes it with 1012 (gateway/server/websocket.py, rule "a
   graceful stop closes an open WebSocket").
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gateway.http.h2_session import CANCEL, INTERNAL_ERROR, NO_ERROR
from gateway.http.ws_session import Handshake
from gateway.server.h2_stream import H2Stream
from gateway.server.shared import WorkerShared
from gateway.server.websocket import WebSocketCycle

if TYPE_CHECKING:  # the connection starts tunnels; a tunnel only calls it back
    from gateway.server.h2_connection import H2Connection

TUNNEL_STATUS = 200  # RFC 8441 §5: a 2xx accepts the extended CONNECT


class H2TunnelStream(H2Stream):
    """One extended CONNECT's stream, seen by a WebSocketCycle as its TunnelStream."""

    __slots__ = ("_client_ended", "_held", "_our_end", "_reading_held", "_tunnel", "websocket")

    def __init__(self, conn: H2Connection, stream_id: int) -> None:
        super().__init__(conn, stream_id, b"CONNECT")
        self.websocket: WebSocketCycle | None = None
        self._tunnel = False  # the 200 went out
        self._held = 0  # DATA the cycle was given, not acknowledged yet
        self._reading_held = True  # until the accept (rule "flow control is backpressure")
        self._our_end = False  # END_STREAM is sent, or waits behind the pending bytes
        self._client_ended = False

    # -- the TunnelStream seam ---------------------------------------------------------

    def default_headers(self) -> list[tuple[bytes, bytes]]:
        return list(self._conn.default_fields())

    def switch_protocols(self, fields: list[tuple[bytes, bytes]]) -> int:
        """The accept: a 200 with the fields, and no end (rule "the request is the
        handshake")."""
        self.send_head(TUNNEL_STATUS, fields, b"", more_body=True)
        self._tunnel = True
        return TUNNEL_STATUS

    def take_upgraded(self) -> bytes:
        """Nothing follows a head here: DATA went to the cycle as it came. Read on."""
        self.resume_reading()
        return b""

    def write(self, data: bytes) -> None:
        if data and not self.closed and not self._our_end:
            self._send(data, False)

    def pause_reading(self) -> None:
        self._reading_held = True

    def resume_reading(self) -> None:
        self._reading_held = False
        self._acknowledge()

    def close(self) -> None:
        """End our side (rule "closing the WebSocket ends the stream")."""
        if self.closed:
            return
        if not self._tunnel and (self._head_sent or self._our_end):
            # A response (a refusal or a denial) in place of the tunnel: once complete,
            # the client may stop its side (NO_ERROR, RFC 9113 §8.1); cut, it is told so.
            complete = self._our_end and self._pending is None
            self._reset(NO_ERROR if complete else INTERNAL_ERROR)
            return
        if not self._our_end:
            self._send(b"", True)
        self._end_if_over()

    def abort(self) -> None:
        """Give the stream up now: RST_STREAM CANCEL, and the cycle hears the end."""
        if not self.closed:
            self._reset(CANCEL)

    def _reset(self, code: int) -> None:
        self._conn.session.reset(self.stream_id, code)
        self._conn.flush()
        self.gone()

    def _send(self, body: bytes, end: bool) -> None:
        self._our_end = self._our_end or end
        super()._send(body, end)

    # -- fed by the connection ---------------------------------------------------------

    def body_arrived(self, data: bytes, flow_length: int) -> None:
        websocket = self.websocket
        if websocket is None or self.closed:
            self._conn.session.acknowledge(self.stream_id, flow_length)
            return
        self._held += flow_length
        websocket.data_received(data)
        if not self._reading_held:
            self._acknowledge()

    def body_ended(self) -> None:
        """The client ended its side (rule "closing the WebSocket ends the stream")."""
        self._client_ended = True
        if self._our_end:
            self._end_if_over()
        else:
            self.close()

    def response_ended(self) -> None:
        """Our END_STREAM here is the WebSocket's end, not a response's: the client ends
        its side in turn (rule "closing the WebSocket ends the stream"), and a refusal or
        denial is reset by `close`."""

    def window_opened(self) -> None:
        super().window_opened()
        self._end_if_over()

    def wake(self) -> None:
        super().wake()
        if self.websocket is not None and not self.writing_paused:
            self.websocket.writing_resumed()

    def gone(self) -> None:
        was_closed, self.closed = self.closed, True
        self._acknowledge()  # the connection's window, for the other streams
        if self.websocket is not None and not was_closed:
            self.websocket.connection_lost()
        super().gone()

    def shutdown(self) -> None:
        if self.websocket is not None:
            self.websocket.shutdown()

    def app_returned(self) -> None:
        self.cycle_done = True
        self._conn.forget_if_done(self)

    @property
    def done(self) -> bool:
        return self.cycle_done and self.closed

    def _end_if_over(self) -> None:
        """Both sides ended and nothing waits to be sent: the stream is over."""
        if self._client_ended and self._our_end and self._pending is None and not self.closed:
            self.gone()

    def _acknowledge(self) -> None:
        held, self._held = self._held, 0
        self._conn.session.acknowledge(self.stream_id, held)
        self._conn.flush()


def start_websocket(
    conn: H2Connection,
    stream_id: int,
    scope: dict[str, Any],
    handshake: Handshake,
    state: WorkerShared,
) -> H2TunnelStream:
    """A WebSocketCycle on a new tunnel stream, its app running (rule "each WebSocket
    counts in `in_flight`")."""
    stream = H2TunnelStream(conn, stream_id)
    cycle = WebSocketCycle(stream, scope, handshake, state.websocket)
    stream.websocket = cycle
    state.in_flight += 1  # until _run_websocket ends
    task = conn.loop.create_task(_run_websocket(stream, cycle, state))
    state.websocket_tasks.add(task)
    task.add_done_callback(state.websocket_tasks.discard)
    return stream


async def _run_websocket(
    stream: H2TunnelStream, cycle: WebSocketCycle, state: WorkerShared
) -> None:
    try:
        await cycle.run(state.app)
    except BaseException:
        state.in_flight -= 1  # cancelled by the stop: neither counted nor logged
        raise
    state.request_ended(cycle)
    stream.app_returned()
