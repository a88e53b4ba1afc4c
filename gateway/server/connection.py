"""One HTTP/1.1 connection: the only code that touches a transport.

Rules:
1. Bytes go into the session (gateway/http) and events come out; the connection is the
   stream (gateway/server/stream.py) of one request cycle at a time: it feeds the cycle
   the request, and frames with its session and writes what the cycle sends. Pipelined
   requests wait in the session (PAUSED) until the cycle before them has finished
   (RFC 9112 §9.3.2).
2. Flow control both ways. Reading pauses while a cycle holds more than
   BODY_HIGH_WATER_BYTES of unread body, or while a pipelined request waits. An app's
   `send` waits while the transport's write buffer is over its high-water mark, and
   raises once the transport is closing (an app that streams without ever waiting
   would otherwise never let connection_lost run). The next pipelined request does not
   start until the buffer is under the mark again, whatever wrote the last response (an
   app, a WSGI or static body, an error reply): a client that never reads costs one
   response plus the high-water mark, not one per request.
3. Errors carry their reply: a ProtocolError from the session is answered with its
   status and the connection closes. An app failure is answered by its cycle
   (gateway/server/cycle.py, rule "an app failure") through the stream: a reply before
   the head went out, a close during the response; after a complete response the
   connection stays usable, so pooled clients are not reset. The connection neither
   reads nor sets a response's state: an error it meets during a cycle goes to the
   cycle (`abandon`), which answers it as that state allows.
4. Tracebacks go to the error log, never to the client.
5. An upgrade request (UpgradeRequest) that asks for WebSocket on a path the router
   gives to an ASGI mount starts a WebSocketCycle (gateway/server/websocket.py), which then
   owns the connection: bytes go to it, and the HTTP session hands it what followed the
   head (`take_upgraded`). Any other upgrade request is plain HTTP. Ordinary requests
   pay nothing for this: the session gives upgrade requests their own event type.
   A WebSocket connection stays in `connections` until its app has returned too, so a
   graceful stop waits for the app (DESIGN §4).
6. Slow clients are bounded by one periodic sweep per worker (WorkerShared), never a
   timer per request: a connection without a request closes silently after
   `keep_alive_timeout` (from its start or the end of its last response); a request head
   not complete `header_timeout` after its first byte gets a 408 and the connection
   closes (Slowloris); a request whose app waits in `receive` while no body byte comes
   for `body_timeout` fails the same way: 408 if its response has not started, else a
   close, and `receive` reports http.disconnect (a WSGI read raises). A connection
   whose writing is paused (the kernel's buffers and the transport's are full) and whose
   client has read nothing for `send_timeout` (the bytes it has not taken, in the
   transport and in the kernel, reached no new low) is aborted, so the app's waiting
   `send`, and a WSGI thread behind it, is freed; abort, not close, because a close
   would wait for that client to read the buffered bytes.
7. `limit_concurrency`: past that many requests and WebSockets in flight in this worker,
   a new one gets a 503 with Retry-After at once, without the app, and the connection
   closes. The hot path pays an integer count, nothing else.
8. Scheme and proxies are settled per connection, at connection_made: a TLS transport
   makes the scope's scheme "https" ("wss") and gives it the ASGI TLS extension. With
   `proxy_headers`, a peer in `forwarded_allow_ips` gets its requests' `client`,
   `scheme` and Host field from their proxy fields (gateway/http/forwarded.py); requests from
   any other peer, and all of them with `proxy_headers` off, pay one `is None` check
   (gateway/server/scopes.py, rule "what a connection adds is settled once").
9. Closing after an error reply while the client may still be sending happens in
   stages (gateway/server/closing.py, rule "closing in stages"). A connection closed
   after a complete exchange closes at once.
10. `root_path` (uvicorn's --root-path) is added to every scope with the TLS and proxy
   fields (gateway/server/scopes.py, rule "`root_path`").
11. HTTP/2 takes the connection over before any request, with `http2` on: a TLS
   connection whose ALPN chose h2, at connection_made; a cleartext one whose first
   bytes are the HTTP/2 preface (prior knowledge, RFC 9113 §3.3), however they are
   split. The transport then goes to an H2Connection (gateway/server/h2_connection.py)
   with the bytes read so far. A first line that names another protocol closes the
   connection without a word (gateway/http/first_bytes.py). Only the first bytes are
   looked at: once they are not the preface, each read pays one `is None` check.
   The HTTP/2 machinery (and h2) is imported at the first such connection, so a worker
   that serves HTTP/1.1 only never loads it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import cast

from gateway.errors import (
    AppProtocolError,
    ClientDisconnected,
    HTTPError,
    ProtocolError,
    RequestTimeout,
    ServiceUnavailable,
)
from gateway.http.events import (
    CONNECTION_CLOSED,
    NEED_DATA,
    PAUSED,
    REQUEST_END,
    RequestData,
    RequestHead,
)
from gateway.http.first_bytes import FirstBytes, classify_first_bytes
from gateway.http.response import interim_head
from gateway.http.session import PathAndQuery, UpgradeRequest, parse_target
from gateway.http.ws_session import is_websocket_request, read_handshake
from gateway.server.closing import LingeringClose, SendStall, begin_lingering_close
from gateway.server.cycle import RequestCycle
from gateway.server.scopes import (
    ConnectionFields,
    address,
    connection_fields,
    http_scope,
    websocket_scope,
)
from gateway.server.shared import WorkerShared
from gateway.server.stream import Fields
from gateway.server.tls import tls_extension
from gateway.server.websocket import WebSocketCycle

# Unread request body a cycle may hold before reading pauses: large enough that a typical
# form or JSON body arrives in one go, small enough that a thousand slow uploads cost
# well under 100 MiB.
BODY_HIGH_WATER_BYTES = 64 * 1024
# On a graceful stop, an idle keep-alive connection stays open this long: a client that
# reuses it right after a response (its request may be on the wire already) is answered,
# with `Connection: close`, instead of finding the socket closed under it, which few
# clients retry (RFC 9112 §9.3.1 leaves that to them). A client's next request comes
# within milliseconds, even on a busy machine; a quiet client delays the stop this much.
DRAIN_IDLE_GRACE_S = 1.0
error_log = logging.getLogger("gateway.error")


class HTTPConnection(asyncio.Protocol):
    """asyncio protocol for one client connection."""

    def __init__(self, state: WorkerShared) -> None:
        self._state = state
        self._loop = asyncio.get_running_loop()
        self._session = state.new_session()
        self._transport: asyncio.Transport | None = None
        self._cycle: RequestCycle | None = None
        self._websocket: WebSocketCycle | None = None  # owns the connection once set
        self._client: tuple[str, int | None] | None = None
        self._server: tuple[str, int | None] | None = None
        # The ASGI TLS extension, on TLS, and the trust of a peer that is a trusted proxy,
        # else None (rule "scheme and proxies are settled per connection").
        self._tls = False
        self._fields: ConnectionFields | None = None  # what it adds to every scope
        self._idle_since: float | None = None  # loop time the connection went idle
        self._head_since: float | None = None  # loop time a pending head's first byte came
        self._reading_paused = False
        # The session holds the next request's bytes (rule "bytes go into the session").
        self._pipeline_waiting = False
        self._writing_paused = False
        # While writing is paused: the fewest bytes the client had not taken, and the
        # loop time of that low; a client that reads nothing leaves both (send_timeout).
        self._send_stall = SendStall()  # send_timeout, while writing is paused
        self._drain_waiter: asyncio.Future[None] | None = None
        # A cycle that ended while writing was paused, waiting to be finished (rule "flow
        # control both ways").
        self._until_writable: asyncio.Task[None] | None = None
        self._closing = False
        # Reading only to discard, until closed (rule "closing after an error reply").
        self._linger: LingeringClose | None = None
        # The first bytes while they may still be the HTTP/2 preface, else None (rule
        # "HTTP/2 takes the connection over").
        self._preface: bytes | None = None
        self.closed = False

    # -- transport callbacks ---------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport, but implement it.
        self._transport = cast(asyncio.Transport, transport)
        self._client = address(transport.get_extra_info("peername"))
        self._server = address(transport.get_extra_info("sockname"))
        ssl_object = transport.get_extra_info("ssl_object")
        self._tls = ssl_object is not None
        tls = tls_extension(ssl_object) if ssl_object is not None else None
        proxy, trust = None, self._state.proxy_trust
        if trust is not None:
            unix = isinstance(transport.get_extra_info("sockname"), str)
            proxy = trust if trust.trusts_peer(self._client, unix) else None
        self._fields = connection_fields(tls, proxy, self._state.config.root_path)
        if self._state.config.http2:
            if ssl_object is None:
                self._preface = b""
            elif ssl_object.selected_alpn_protocol() == "h2":
                self._hand_to_http2(b"")
                return
        self._state.connections.add(self)
        self._idle_since = self._loop.time()
        # Made after the drain asked the others (gateway/server/shared.py, rule "a graceful
        # stop reaches every connection").
        if self._state.draining:
            self.shutdown()

    def data_received(self, data: bytes) -> None:
        if self._preface is not None:
            data = self._look_for_preface(data)
            if not data:
                return
        if self._websocket is not None:
            self._websocket.data_received(data)
            return
        if self._linger is not None:
            self._linger.discard(data)
            return
        try:
            self._session.feed(data)
        except ProtocolError as exc:
            self._reject(exc)
            return
        self._handle_events()
        if self._cycle is None and self._head_since is None:
            # Part of a request head: header_timeout runs from its first byte, and later
            # bytes do not move it, so trickling a head buys nothing (rule "slow clients
            # are bounded").
            self._head_since = self._loop.time()

    def _look_for_preface(self, data: bytes) -> bytes:
        """What is left for HTTP/1.1 of the first bytes: nothing while they may be the
        preface, or once they were (rule "HTTP/2 takes the connection over")."""
        assert self._preface is not None
        seen = self._preface + data
        spoken = classify_first_bytes(seen)
        if spoken is FirstBytes.UNDECIDED:
            self._preface = seen
            if self._head_since is None:  # part of a preface is part of a head, timed so
                self._head_since = self._loop.time()
            return b""
        self._preface = None
        if spoken is FirstBytes.HTTP2:
            self._hand_to_http2(seen)
            return b""
        if spoken is FirstBytes.OTHER_PROTOCOL:
            # gateway/http/first_bytes.py, rule "a first line shaped like a request line".
            error_log.info("closed a connection from %s: not HTTP", self._client)
            self.close()
            return b""
        return seen

    def _hand_to_http2(self, data: bytes) -> None:
        # Imported here, at a worker's first HTTP/2 connection: h2 costs a worker about
        # 1.2 MiB, which one whose clients all speak HTTP/1.1 does not pay (rule "HTTP/2
        # takes the connection over").
        from gateway.server.h2_connection import H2Connection

        transport = self._transport
        assert transport is not None
        h2 = H2Connection(self._state, self._client, self._server, self._tls, self._fields)
        self._state.connections.discard(self)
        self.closed = True  # this protocol is done with the transport
        transport.set_protocol(h2)
        h2.connection_made(transport)
        if data:
            h2.data_received(data)

    def eof_received(self) -> bool:
        if self._websocket is not None:
            return False  # a peer done sending has nothing to say on a WebSocket: close
        if self._linger is not None:
            # The client has sent all it will: close now (rule "closing after an error
            # reply").
            return False
        if self._cycle is not None:
            self._cycle.peer_closed()
        if self._preface is not None:  # part of a preface, then the end: HTTP/1.1's
            seen, self._preface = self._preface, None
            if seen:
                self.data_received(seen)
        self.data_received(b"")
        # Keep our side open while a cycle can still answer (a client may half-close
        # after sending its request); the cycle's end closes the transport.
        return self._cycle is not None

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._linger is not None:
            self._linger.cancel()
        if self._cycle is not None:
            self._cycle.client_gone()
        self._wake_drain_waiter()
        websocket = self._websocket
        if websocket is not None:
            websocket.connection_lost()
            if not websocket.finished:
                # The app's return ends the connection's life (rule "an upgrade request").
                return
        self._forget()

    def _forget(self) -> None:
        self._state.forget(self)

    def pause_writing(self) -> None:
        self._writing_paused = True
        self._send_stall.paused()

    def resume_writing(self) -> None:
        self._writing_paused = False
        self._wake_drain_waiter()
        if self._websocket is not None:
            self._websocket.writing_resumed()  # it paused reading for its replies

    # -- events from the session -----------------------------------------------------

    def _handle_events(self) -> None:
        try:
            self._dispatch_events()
        except ProtocolError as exc:
            cycle = self._cycle
            if cycle is not None and cycle.request_complete:
                # The bad bytes follow a whole request (say, a request sent after
                # `Connection: close`): answer that request, then close (RFC 9112 §9.6).
                self.pause_reading()
                self._closing = True
            else:
                self._reject(exc)

    def _dispatch_events(self) -> None:
        while not self.closed:
            event = self._session.next_event()
            if type(event) is RequestData:
                self._body_received(event.data)
            elif type(event) is RequestHead:
                self._start_cycle(event)
            elif event is REQUEST_END:
                if self._cycle is not None:
                    self._cycle.body_complete()
            elif event is NEED_DATA:
                return
            elif event is PAUSED:
                self._pipeline_waiting = True
                self.pause_reading()
                return
            elif event is CONNECTION_CLOSED:
                if self._cycle is None:
                    self.close()
                return
            elif type(event) is UpgradeRequest:
                self._start_cycle(event, upgrade=True)

    def _start_cycle(self, head: RequestHead, upgrade: bool = False) -> None:
        """A request's cycle; for an upgrade to WebSocket on an ASGI mount, a WebSocket
        cycle (rule "an upgrade request")."""
        state = self._state
        if state.in_flight >= state.concurrency_limit:  # rule "`limit_concurrency`"
            self._refuse_over_limit()
            return
        target = parse_target(head.target)
        if upgrade and self._wants_websocket(head, target):
            self._start_websocket(head, target)
            return
        scope = http_scope(head, target, self._client, self._server, self._tls)
        if self._fields is not None:
            self._fields.add_to(scope)
        cycle = RequestCycle(self, scope, head.expects_continue, state.access_log)
        self._cycle = cycle
        state.in_flight += 1  # until end_cycle
        self._loop.create_task(cycle.run(state.app))  # which ends with `end_cycle`

    def _wants_websocket(self, head: RequestHead, target: PathAndQuery) -> bool:
        """An upgrade to WebSocket on a path the router gives to an ASGI mount; any
        other upgrade request is plain HTTP (rule "an upgrade request")."""
        return is_websocket_request(head) and self._state.serves_websocket(target.path)

    def _start_websocket(self, head: RequestHead, target: PathAndQuery) -> None:
        handshake = read_handshake(head)  # a HandshakeError is answered by _reject
        scope = websocket_scope(head, target, handshake, self._client, self._server, self._tls)
        if self._fields is not None:
            self._fields.add_to(scope)
        state = self._state
        cycle = WebSocketCycle(self, scope, handshake, state.websocket)
        self._websocket = cycle
        if self._closing:
            cycle.shutdown()
        state.in_flight += 1  # until _run_websocket ends
        task = self._loop.create_task(self._run_websocket(cycle))
        state.websocket_tasks.add(task)
        task.add_done_callback(state.websocket_tasks.discard)

    async def _run_websocket(self, cycle: WebSocketCycle) -> None:
        try:
            await cycle.run(self._state.app)
        except BaseException:
            self._state.in_flight -= 1  # cancelled by the stop: neither counted nor logged
            raise
        self._state.request_ended(cycle)
        if self.closed:
            self._forget()

    def _body_received(self, data: bytes) -> None:
        cycle = self._cycle
        if cycle is not None and cycle.body_arrived(data) > BODY_HIGH_WATER_BYTES:
            self.pause_reading()

    def _reject(self, exc: HTTPError) -> None:
        """Answer with the status the error implies (bad input, a slow client, a limit),
        if the response has not started, then close (DESIGN §5)."""
        error_log.info("refused a request from %s: %s (%d)", self._client, exc, exc.status)
        # The error's own fields: a 426 names the version we speak (RFC 6455 §4.2.2), a
        # 503 says when to retry.
        if self._cycle is not None:
            self._cycle.abandon(exc)  # its reply, if its response has not begun
        else:
            self.send_error(exc.status, exc.headers)
        self.close_after_error()

    def _refuse_over_limit(self) -> None:
        limit = self._state.config.limit_concurrency
        self._reject(ServiceUnavailable(f"limit_concurrency ({limit}) reached"))

    # -- the app ---------------------------------------------------------------------

    def end_cycle(self, drained: bool = False) -> None:
        """The stream's end: the cycle's app has returned and the cycle has answered for
        it. The next pipelined request waits until the transport's buffer is under its
        high-water mark, whatever wrote the response (an app's last `send`, a WSGI or
        static body, the gateway's own error reply). A client that pipelines and never
        reads then costs one response and the high-water mark, not one response per
        request it sent (rule "flow control both ways")."""
        if self._writing_paused and not drained:  # an attribute check; a task only then
            self._until_writable = self._loop.create_task(self._end_when_writable())
            return
        cycle = self._cycle
        assert cycle is not None  # end_cycle comes from the running cycle
        self._state.request_ended(cycle)
        self._cycle = None
        if self.closed:
            return
        # A response whose head went out before a graceful stop did not say
        # `Connection: close`, so its client may be sending the next request already:
        # closing now would reset it. It gets the idle grace instead (`shutdown`).
        untold = self._state.draining and self._session.reusable
        if (self._closing and not untold) or not self._session.reusable:
            if cycle.request_complete:
                self.close()
            else:  # the client may still send the body we did not read (rule "closing
                # after an error reply")
                self.close_after_error()
            return
        self._session.start_next_cycle()
        self._pipeline_waiting = False
        self.resume_reading()
        self._handle_events()
        if not self._has_cycle():  # not `self._cycle is None`: see _has_cycle
            self._idle_since = self._loop.time()
            self._head_since = None
            if untold:
                self._loop.call_later(DRAIN_IDLE_GRACE_S, self._close_if_idle)

    def _has_cycle(self) -> bool:
        """Whether a cycle runs, read afresh. In `end_cycle`, mypy keeps `self._cycle`
        narrowed to None from its assignment across `_handle_events`, which may start the
        next pipelined request's cycle; compiled by mypyc, that narrowing is a checked
        type, and the read raised TypeError."""
        return self._cycle is not None

    async def _end_when_writable(self) -> None:
        try:
            with contextlib.suppress(ClientDisconnected):  # the client left: no wait
                await self.drain()
        finally:
            self._until_writable = None
            self.end_cycle(drained=True)

    # -- writing and flow control ----------------------------------------------------

    def default_headers(self) -> list[tuple[bytes, bytes]]:
        return list(self._state.default_fields.fields())

    def write(self, data: bytes) -> None:
        if data and self._transport is not None and not self.closed:
            self._transport.write(data)

    async def drain(self) -> None:
        """Wait while the transport's write buffer is over its high-water mark."""
        while self._writing_paused and not self.closed:
            self._drain_waiter = self._loop.create_future()
            await self._drain_waiter
        if self.closed or self._write_failed():
            raise ClientDisconnected("client went away")

    def _wake_drain_waiter(self) -> None:
        waiter, self._drain_waiter = self._drain_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def pause_reading(self) -> None:
        if not self._reading_paused and self._transport is not None:
            self._reading_paused = True
            self._transport.pause_reading()

    def resume_reading(self) -> None:
        if self._reading_paused and self._transport is not None and not self.closed:
            self._reading_paused = False
            self._transport.resume_reading()

    def switch_protocols(self, fields: list[tuple[bytes, bytes]]) -> int:
        """The WebSocket's 101 (RFC 6455 §4.2.2 item 5)."""
        self.write(interim_head(101, fields, self.default_headers()))
        return 101

    def take_upgraded(self) -> bytes:
        """For a WebSocket cycle that accepted: the bytes after the head; read on."""
        data = self._session.take_upgraded()
        self.resume_reading()
        return data

    def body_consumed(self) -> None:
        """The app took the buffered body: read more unless a pipelined request waits
        (its bytes would pile up in the session, one read per `receive`)."""
        if not self._pipeline_waiting:
            self.resume_reading()

    # -- timers and closing ----------------------------------------------------------

    def check_deadlines(self, now: float) -> None:
        """Called by the worker's sweep: hold this connection to its time bounds (rule
        "slow clients are bounded")."""
        if self._websocket is not None or self._transport is None or self._linger:
            return  # a WebSocket has its own pings and timeouts; lingering, its own bound
        config = self._state.config
        transport = self._transport
        if self._writing_paused and self._send_stall.stalled(transport, now, config.send_timeout):
            error_log.info("%s read nothing for %s s: aborted", self._client, config.send_timeout)
            self.abort()
            return
        if self._transport.is_closing():
            return  # already answered or closed; its last bytes may still be going out
        cycle = self._cycle
        if cycle is not None:
            if cycle.body_stalled(now, config.body_timeout):
                self._reject(RequestTimeout(f"no request body for {config.body_timeout} s"))
        elif self._head_since is not None:
            if now - self._head_since >= config.header_timeout:
                timeout = config.header_timeout
                self._reject(RequestTimeout(f"request head not complete after {timeout} s"))
        elif self._idle_since is not None and now - self._idle_since >= config.keep_alive_timeout:
            self.close()

    def close(self) -> None:
        if self._linger is not None:
            # The linger's own bounds close the connection (rule "closing after an error
            # reply").
            return
        if self._transport is not None and not self._transport.is_closing():
            self._transport.close()

    def close_after_error(self) -> None:
        """Close in stages (rule "closing after an error reply"), once."""
        transport = self._transport
        if transport is None or transport.is_closing() or self._linger is not None:
            return
        self._linger = begin_lingering_close(transport, self._loop)
        if self._linger is not None:
            self._reading_paused = False  # it reads on, to discard

    def shutdown(self) -> None:
        """Graceful stop: close once the current response is done, or, if idle, once
        DRAIN_IDLE_GRACE_S passed without a request; responses say `Connection: close`."""
        self._closing = True
        if self._websocket is not None:
            self._websocket.shutdown()
        elif self._cycle is None:
            self._loop.call_later(DRAIN_IDLE_GRACE_S, self._close_if_idle)

    def _close_if_idle(self) -> None:
        if self._cycle is None and self._websocket is None:
            self.close()

    def abort(self) -> None:
        """Fast stop: drop the connection without waiting for anything."""
        if self._transport is not None:
            self._transport.abort()

    # -- the stream (gateway/server/stream.py): one at a time on HTTP/1.1 --------------

    def send_continue(self) -> None:
        self.write(self._session.continue_response())

    def send_head(self, status: int, headers: Fields, body: bytes, more_body: bool) -> None:
        """The head and the first body part, framed by the session, in one write."""
        session = self._session
        if self._closing:  # tell the client, so it does not send another request here
            headers = [*headers, (b"connection", b"close")]
        data = session.response_head(status, headers, self._state.default_fields.fields())
        try:
            data += session.response_body(body)
            if not more_body:
                data += session.response_end()
        except AppProtocolError:
            # A body that breaks its own framing (shorter or longer than its
            # Content-Length): nothing of this response was written, so it can still be
            # a 500 (rule "errors carry their reply") rather than nothing at all.
            session.discard_response()
            raise
        self.write(data)

    def send_body(self, body: bytes, more_body: bool) -> None:
        data = self._session.response_body(body)
        self.write(data if more_body else data + self._session.response_end())

    def send_error(self, status: int, headers: Fields = ()) -> int:
        reply = self._session.error_response(status, [*self.default_headers(), *headers])
        self.write(reply)
        return _body_length(reply)

    @property
    def writing_paused(self) -> bool:
        # A transport that is closing takes no more bytes: `drain` then raises, so an app
        # that streams without ever waiting learns the client is gone although
        # connection_lost, which the loop calls later, has not run yet.
        return self._writing_paused or self._write_failed()

    def _write_failed(self) -> bool:
        transport = self._transport
        return transport is not None and transport.is_closing()


def _body_length(reply: bytes) -> int:
    """The body's size in one of the gateway's own replies (head and body), for the
    access log."""
    return len(reply) - reply.find(b"\r\n\r\n") - 4 if reply else 0
