"""One WebSocket's ASGI cycle on an HTTP connection (ASGI WebSocket spec 2.5).

The connection starts a cycle for an upgrade request that asks for WebSocket on a path
the router gives to an ASGI mount; from then on the cycle owns the connection, seen
through the stream seam as a TunnelStream (gateway/server/stream.py): a denial and a
refusal are framed by the stream, and after accept the stream carries the bytes of the
cycle's WebSocketSession (gateway/http/ws_session.py) as they are. Over HTTP/2 the
request is an extended CONNECT (RFC 8441) and the stream is one HTTP/2 stream
(gateway/server/h2_tunnel.py): the cycle is the same, and where the rules below say
"connection" and "TCP connection", read "stream". Rules:
1. Phases are explicit (Phase) and every ASGI message is checked against the phase:
   HANDSHAKE until the app answers websocket.connect; DENYING while the app's own HTTP
   response goes out (the `websocket.http.response` extension); OPEN; CLOSING from our
   Close frame until the peer's answer; CLOSED.
2. Before accept, a websocket.close is answered 403 (ASGI spec) and an app that fails
   or returns 500. So is a denial (`websocket.http.response.start`) that fails, returns
   or has an invalid status before its head went out; once the head is out, the client
   has the denial's status and the connection closes (the head goes out even when the
   body that came with it breaks its framing). After accept, a failure closes with 1011
   and a return without a close with 1000 (RFC 6455 §7.4.1). `send` after the end
   raises ClientDisconnected, an OSError (ASGI 2.4); a websocket.close then is accepted
   and does nothing.
3. `websocket.disconnect` comes once the WebSocket is over for the app: either side
   sent a Close, or the connection ended. Its code is that of the first Close (the
   peer's; or ours: the app's, 1012 on a stop, 1002/1007/1009 for bad input), else
   1006, as RFC 6455 §7.1.5 says for a connection that ended without one. Messages
   received before the end are delivered before it.
4. Flow control both ways, so that what one WebSocket holds is bounded per connection,
   not only per message: `send` waits on the stream's drain while the transport's
   buffer is over its high-water mark; reading pauses while more than
   INBOX_HIGH_WATER_BYTES of received messages wait for the app (each counted with
   MESSAGE_OVERHEAD_BYTES, so empty messages add up too), and while our own replies
   (pongs, a Close) wait in the transport's buffer for a peer that does not read them.
   A connection then holds at most the inbox's mark, one message of
   `ws_max_message_bytes` completing it and one being reassembled, and one read.
5. Keepalive: a ping every `ws_ping_interval`; a peer that has not answered within
   `ws_ping_timeout` is gone: the connection is dropped and the app told 1006. While
   reading is paused for the app no ping is sent (its pong could not be read).
6. The server closes the TCP connection once both Close frames have passed, or at once
   after failing the connection (RFC 6455 §7.1.1, §7.1.7). Closing is bounded: from our
   Close (or from closing the transport, which waits for our last bytes to go out)
   the peer has CLOSE_TIMEOUT_S, then the connection is dropped.
7. A graceful stop closes an open WebSocket with 1012 (service restart). One still in
   its handshake is refused at once with 503, and its app told websocket.disconnect
   1012: an app that waits in `receive` before it decides (or never decides) would
   otherwise hold the stop until `graceful_timeout`. Its late accept raises
   ClientDisconnected, as any `send` after the end (rule "before accept").
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from dataclasses import dataclass
from enum import Enum
from typing import Any

from gateway.asgi import ASGIApp, Message
from gateway.config.server_table import ServerConfig
from gateway.errors import AppProtocolError, ClientDisconnected
from gateway.http.ws_session import (
    Handshake,
    MessageReceived,
    PongReceived,
    SessionClosed,
    WebSocketLimits,
    WebSocketSession,
)
from gateway.server.stream import TunnelStream, log_access

# Received messages the app has not taken yet, before reading pauses: as for an HTTP
# body (BODY_HIGH_WATER_BYTES), a burst of small messages arrives without a pause, and
# a peer that sends faster than its app reads costs this plus one read and one message.
INBOX_HIGH_WATER_BYTES = 64 * 1024
# What a waiting message costs beyond its data: the message dict, the inbox's tuple and
# the str or bytes object's header come to about 300 bytes in CPython. Counting it makes
# a flood of empty messages reach the mark too (some 200 of them), where counting the
# data alone let one connection hold millions.
MESSAGE_OVERHEAD_BYTES = 300
# After our Close, how long the peer has to answer with its own (RFC 6455 §7.1.1), and
# to read our last bytes once we close. A live peer does either within a round trip;
# five seconds covers a slow mobile link, and a dead peer holds a stop no longer.
CLOSE_TIMEOUT_S = 5.0
# Close codes (RFC 6455 §7.4.1; 1012 is registered with IANA).
NORMAL_CLOSURE = 1000
ABNORMAL_CLOSURE = 1006
INTERNAL_ERROR = 1011
SERVICE_RESTART = 1012

error_log = logging.getLogger("gateway.error")


@dataclass(frozen=True, slots=True)
class WebSocketSettings:
    """The `[server]` settings every WebSocket of a worker is held to."""

    limits: WebSocketLimits
    ping_interval_s: float  # 0: no pings
    ping_timeout_s: float

    @classmethod
    def from_config(cls, config: ServerConfig) -> WebSocketSettings:
        limits = WebSocketLimits(config.ws_max_message_bytes, config.ws_per_message_deflate)
        return cls(limits, config.ws_ping_interval, config.ws_ping_timeout)


class Phase(Enum):
    """Where a WebSocket cycle stands (rule "phases are explicit")."""

    HANDSHAKE = "handshake"  # waiting for the app's accept, close or HTTP response
    DENYING = "denying"  # the app's HTTP response is going out
    OPEN = "open"
    CLOSING = "closing"  # our Close went out; waiting for the peer's
    CLOSED = "closed"


class WebSocketCycle:
    """One WebSocket: the ASGI `receive` and `send` of a websocket scope."""

    def __init__(
        self,
        stream: TunnelStream,
        scope: dict[str, Any],
        handshake: Handshake,
        settings: WebSocketSettings,
    ) -> None:
        self.scope = scope
        self._stream = stream
        self._handshake = handshake
        self._settings = settings
        self._loop = asyncio.get_running_loop()
        self._phase = Phase.HANDSHAKE
        self._session: WebSocketSession | None = None  # from accept on
        self._inbox: deque[tuple[Message, int]] = deque([({"type": "websocket.connect"}, 0)])
        self._inbox_bytes = 0
        # We asked the connection to stop reading, for one of two reasons (rule "flow
        # control both ways"):
        self._reading_paused = False
        self._inbox_full = False  # ... the app has not taken what waits
        self._backlogged = False  # ... the peer has not read our replies
        # Set once the WebSocket is over (rule "`websocket.disconnect` comes once").
        self._disconnect: Message | None = None
        self._waiter: asyncio.Future[None] | None = None
        # Bytes that arrive before accept: reading is paused after the head, so one read
        # at most; they follow the bytes the HTTP session kept.
        self._early = bytearray()
        self._denial_headers: list[tuple[bytes, bytes]] | None = None  # sent with its first body
        self._ping_timer: asyncio.TimerHandle | None = None
        self._pong_timer: asyncio.TimerHandle | None = None
        self._close_timer: asyncio.TimerHandle | None = None
        self.finished = False  # the app has returned
        self.status = 0  # the handshake's HTTP status, for the access log
        self.bytes_sent = 0
        self.started_at = time.perf_counter()

    async def run(self, app: ASGIApp) -> None:
        try:
            await app(self.scope, self.receive, self.send)
        except ClientDisconnected:
            pass
        except Exception as exc:
            self._app_failed(exc)
        else:
            self._app_returned()
        finally:
            self.finished = True

    def _app_failed(self, exc: Exception) -> None:
        error_log.error("app failed on WebSocket %s", self.scope["path"], exc_info=exc)
        if self._phase is Phase.HANDSHAKE:
            self._refuse(500)
        elif self._phase is Phase.DENYING:
            self._end_denial()
        elif self._phase is Phase.OPEN:
            self._start_closing(INTERNAL_ERROR, "")

    def _app_returned(self) -> None:
        if self._phase is Phase.HANDSHAKE:
            error_log.error("app returned without accepting WebSocket %s", self.scope["path"])
            self._refuse(500)
        elif self._phase is Phase.DENYING:
            error_log.error("app returned before its denial of WebSocket %s", self.scope["path"])
            self._end_denial()
        elif self._phase is Phase.OPEN:
            self._start_closing(NORMAL_CLOSURE, "")

    def _end_denial(self) -> None:
        """A denial the app did not finish. Before its head went out the client gets a
        500; after, closing is what tells it the response is cut (rule "before accept")."""
        if self._denial_headers is not None:
            self._refuse(500)
        else:
            self._hang_up()

    # -- ASGI receive ----------------------------------------------------------------

    async def receive(self) -> Message:
        while True:
            if self._inbox:
                return self._take()
            if self._disconnect is not None:
                return dict(self._disconnect)
            self._waiter = self._loop.create_future()
            await self._waiter

    def _take(self) -> Message:
        message, size = self._inbox.popleft()
        self._inbox_bytes -= size
        if self._inbox_full and self._inbox_bytes <= INBOX_HIGH_WATER_BYTES // 2:
            self._inbox_full = False
            self._hold_reading()
        return message

    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- ASGI send -------------------------------------------------------------------

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "websocket.send":
            await self._send_message(message)
        elif kind == "websocket.close":
            self._close(message)
        elif self._stream.closed or self._phase is Phase.CLOSED:
            raise ClientDisconnected("client went away")
        elif kind == "websocket.accept":
            self._accept(message)
        elif kind == "websocket.http.response.start":
            self._start_denial(message)
        elif kind == "websocket.http.response.body":
            await self._send_denial_body(message)
        else:
            raise AppProtocolError(f"unexpected ASGI message type {kind!r}")

    def _accept(self, message: Message) -> None:
        if self._phase is not Phase.HANDSHAKE:
            raise AppProtocolError(f"websocket.accept in phase {self._phase.value}")
        fields, session = self._handshake.accept_fields(
            message.get("subprotocol"), message.get("headers") or (), self._settings.limits
        )
        self.status = self._stream.switch_protocols(fields)
        self._phase, self._session = Phase.OPEN, session
        early, self._early = bytes(self._early), bytearray()
        self.data_received(self._stream.take_upgraded() + early)
        if self._phase is Phase.OPEN:
            self._schedule_ping()

    async def _send_message(self, message: Message) -> None:
        if self._phase is Phase.HANDSHAKE or self._phase is Phase.DENYING:
            raise AppProtocolError("websocket.send before websocket.accept")
        if self._phase is not Phase.OPEN or self._session is None:
            raise ClientDisconnected("the WebSocket is closed")
        data = message.get("bytes")
        if data is None:
            data = message.get("text")
        if not isinstance(data, str | bytes | bytearray | memoryview):
            raise AppProtocolError("websocket.send needs `bytes` or `text`")
        payload = data if isinstance(data, str) else bytes(data)
        self._stream.write(self._session.send_message(payload))
        self.bytes_sent += len(payload)
        if self._stream.writing_paused:
            await self._stream.drain()

    def _close(self, message: Message) -> None:
        if self._phase is Phase.HANDSHAKE:
            self._refuse(403)  # ASGI: a close before accept denies the handshake
        elif self._phase is Phase.OPEN:
            self._start_closing(message.get("code") or NORMAL_CLOSURE, message.get("reason") or "")
        elif self._phase is Phase.DENYING:
            raise AppProtocolError("websocket.close while an HTTP response is going out")

    def _start_denial(self, message: Message) -> None:
        if self._phase is not Phase.HANDSHAKE:
            raise AppProtocolError(f"websocket.http.response.start in phase {self._phase.value}")
        status = message.get("status")
        # A final status (RFC 9110 "Status Codes": 1xx are interim, and 101 would be the
        # switch the app is refusing). Raised before anything changes: the handshake can
        # still be answered 500.
        if type(status) is not int or not 200 <= status <= 599:
            raise AppProtocolError(f"invalid websocket.http.response.start status {status!r}")
        # The connection ends with the denial: it was asked for a protocol switch.
        headers = [*message.get("headers", ()), (b"connection", b"close")]
        self._denial_headers = headers
        self._phase, self.status = Phase.DENYING, status

    async def _send_denial_body(self, message: Message) -> None:
        if self._phase is not Phase.DENYING:
            raise AppProtocolError("websocket.http.response.body before its start")
        body, more_body = message.get("body", b""), message.get("more_body", False)
        if self._denial_headers is not None:  # raises, for a bad field, before any byte
            self._stream.send_head(self.status, self._denial_headers, b"", True)
            self._denial_headers = None
        # The head is out even if this raises (rule "before accept").
        self._stream.send_body(body, more_body)
        self.bytes_sent += len(body)
        if not more_body:
            self._hang_up()
        elif self._stream.writing_paused:
            await self._stream.drain()

    def _refuse(self, status: int) -> None:
        self.status = status
        self._stream.send_error(status)
        self._hang_up()

    def _hang_up(self) -> None:
        """End a WebSocket that never opened: close the connection (after the writes)."""
        self._phase = Phase.CLOSED
        self._tell_disconnect(ABNORMAL_CLOSURE, "")
        self._stream.close()
        self._bound_closing()

    def _start_closing(self, code: int, reason: str) -> None:
        """Send our Close: the app is told now, the peer has CLOSE_TIMEOUT_S (rule "the
        server closes the TCP connection")."""
        assert self._session is not None  # OPEN
        self._stream.write(self._session.close(code, reason))
        self._phase = Phase.CLOSING
        self._tell_disconnect(code, reason)
        self._cancel_timers()
        self._bound_closing()

    def _bound_closing(self) -> None:
        """Drop the connection if closing has not ended in CLOSE_TIMEOUT_S (rule "the server
        closes the TCP connection")."""
        self._cancel(self._close_timer)
        self._close_timer = self._loop.call_later(CLOSE_TIMEOUT_S, self._close_timed_out)

    def _close_timed_out(self) -> None:
        self._close_timer = None
        error_log.info("WebSocket peer %s: closing timed out", self.scope["client"])
        self._stream.abort()

    def _tell_disconnect(self, code: int, reason: str) -> None:
        # The first close is the one that counts (rule "`websocket.disconnect` comes once").
        if self._disconnect is None:
            self._disconnect = {"type": "websocket.disconnect", "code": code, "reason": reason}
        self._wake()

    # -- from the connection ---------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        session = self._session
        if session is None:
            self._early += data
            return
        ended = False
        for event in session.receive_data(data):
            if isinstance(event, MessageReceived):
                self._deliver(event.data)
            elif isinstance(event, PongReceived):
                self._cancel(self._pong_timer)
                self._pong_timer = None
            else:
                self._session_closed(event)
                ended = True
        self._stream.write(session.outgoing())  # pongs, and the Close that ends it all
        if ended:  # rule "the server closes the TCP connection"
            self._stream.close()
            self._bound_closing()
        elif self._stream.writing_paused and not self._backlogged:
            self._backlogged = True  # until writing_resumed (rule "flow control both ways")
            self._hold_reading()

    def writing_resumed(self) -> None:
        """The transport's buffer is below its low-water mark again: read on (rule "flow
        control both ways")."""
        if self._backlogged:
            self._backlogged = False
            self._hold_reading()

    def _deliver(self, data: str | bytes) -> None:
        key = "text" if isinstance(data, str) else "bytes"
        size = len(data) + MESSAGE_OVERHEAD_BYTES
        self._inbox.append(({"type": "websocket.receive", key: data}, size))
        self._inbox_bytes += size
        if self._inbox_bytes > INBOX_HIGH_WATER_BYTES and not self._inbox_full:
            self._inbox_full = True
            self._hold_reading()
        self._wake()

    def _hold_reading(self) -> None:
        """Pause reading while the inbox is full or our replies are backlogged, else read
        on (rule "flow control both ways")."""
        hold = self._inbox_full or self._backlogged
        if hold and not self._reading_paused:
            self._reading_paused = True
            self._stream.pause_reading()
            # The pong may wait behind the data (rule "keepalive").
            self._cancel(self._pong_timer)
            self._pong_timer = None
        elif not hold and self._reading_paused:
            self._reading_paused = False
            self._stream.resume_reading()

    def _session_closed(self, event: SessionClosed) -> None:
        self._phase = Phase.CLOSED
        self._cancel_timers()
        self._tell_disconnect(event.code, event.reason)

    def connection_lost(self) -> None:
        self._phase = Phase.CLOSED
        self._cancel_timers()
        self._tell_disconnect(ABNORMAL_CLOSURE, "")

    def shutdown(self) -> None:
        """Graceful stop (rule "a graceful stop closes an open WebSocket")."""
        if self._phase is Phase.OPEN:
            self._start_closing(SERVICE_RESTART, "server restarting")
        elif self._phase is Phase.HANDSHAKE:
            self._tell_disconnect(SERVICE_RESTART, "server restarting")
            self._refuse(503)

    # -- keepalive -------------------------------------------------------------------

    def _schedule_ping(self) -> None:
        interval_s = self._settings.ping_interval_s
        if interval_s > 0:
            self._ping_timer = self._loop.call_later(interval_s, self._ping)

    def _ping(self) -> None:
        self._ping_timer = None
        if self._phase is not Phase.OPEN or self._session is None:
            return
        if not self._reading_paused and self._pong_timer is None:
            self._stream.write(self._session.ping())
            timeout_s = self._settings.ping_timeout_s
            self._pong_timer = self._loop.call_later(timeout_s, self._pong_missing)
        self._schedule_ping()

    def _pong_missing(self) -> None:
        self._pong_timer = None
        error_log.info("WebSocket peer %s did not answer a ping", self.scope["client"])
        self._stream.abort()

    def _cancel_timers(self) -> None:
        for timer in (self._ping_timer, self._pong_timer, self._close_timer):
            self._cancel(timer)
        self._ping_timer = self._pong_timer = self._close_timer = None

    @staticmethod
    def _cancel(timer: asyncio.TimerHandle | None) -> None:
        if timer is not None:
            timer.cancel()

    def log_access(self) -> None:
        """As for HTTP: the handshake's method, its status (101, 200 over HTTP/2, or a
        denial's), the bytes of the messages sent."""
        # Over HTTP/2 the handshake is an extended CONNECT (RFC 8441 §4).
        method = "CONNECT" if self.scope["http_version"] == "2" else "GET"
        log_access(self.scope, method, self.status, self.bytes_sent, self.started_at)
