"""WSGI apps (PEP 3333) served as ASGI 3 apps, each mount on its own thread pool.

Rules:
1. The loop never waits on a WSGI thread: it awaits an asyncio future the thread
   completes, and shares a lock the thread holds only for a few list operations. Waits
   for the loop (more body, room in the channel) happen in the pool thread.
2. Few hand-offs, and no thread for a slow upload. The loop builds the environ and
   reads the body itself, up to the mount's `body_buffer_bytes`, then submits the call
   (one hand-off in): a body that ends within the bound is a BytesIO, the thread never
   needs the loop for input, and a client that trickles it holds a connection but no
   thread. A larger body (by its Content-Length, or once the bound is passed) streams
   into the thread, which waits for the loop as it reads. The thread posts the
   response to a `Channel` and wakes the loop only when the loop is parked on an empty
   channel, so parts posted together cost one hand-off out and go out as the start plus
   one merged body. A result with a len() (the list small apps return) is posted with
   its end, so it costs at most one hand-off out, shared with the other requests'
   posted meanwhile (adapters/wakeups.py, rule "one hand-off per batch").
3. The channel is bounded by bytes (HIGH_WATER_BYTES): an app that outruns its client
   waits in its own thread.
4. Headers go out with the first non-empty chunk or at the end; the result's close() is
   always called (success, error, disconnect), in the thread, after the end of the
   response was posted, so it never delays the client.
5. An exception from the app (or from wsgi.input on its behalf, e.g. RequestBodyTooLarge)
   is re-raised on the loop, before or after the response started: the server answers
   500 (or the error's status) or closes the connection. ClientDisconnected ends the
   call quietly.
6. No pre-read on `expect: 100-continue`, so the server sends 100 only when the app reads
   (RFC 9110 "Expect": the app may refuse the body unread); such a body streams.
7. The environ and its rules live in adapters/environ.py; its
   `gateway.client_disconnected` in adapters/disconnect.py; a streamed body's
   `wsgi.input` in adapters/body_stream.py.
8. The pool's queue is bounded: a mount holds at most `threads + max_queue` requests,
   counted on the loop (no lock) from the hand-off to the end of the response; one more
   raises ServiceUnavailable (503 with Retry-After) before the app is called. A finished
   call whose last bytes are still being sent counts until they are: a brief overlap.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import io
import logging
import sys
import threading
from collections.abc import Callable, Iterable, Sized
from concurrent.futures import CancelledError as FutureCancelled
from concurrent.futures import Future
from functools import partial
from typing import Any, cast

from a2wsgi.wsgi_typing import Environ, ExceptionInfo, WSGIApp

from gateway.adapters.body_stream import BodyStream
from gateway.adapters.disconnect import ENVIRON_KEY as CLIENT_DISCONNECTED
from gateway.adapters.disconnect import DisconnectWatch
from gateway.adapters.environ import ErrorStream, build_environ
from gateway.adapters.pool import ThreadPool
from gateway.adapters.wakeups import LoopWakeups
from gateway.asgi import Message, Receive, Scope, Send
from gateway.errors import ClientDisconnected, ServiceUnavailable

# Response bytes a thread may post before the loop has handed them to the connection.
# 256 KiB holds a typical page or JSON reply whole, so the thread never waits for those,
# and it bounds memory for a streaming app behind a slow client: a 32-thread pool holds
# at most ~8 MiB (plus one oversized chunk per thread, which is posted whole).
HIGH_WATER_BYTES = 256 * 1024
# A thread waiting on the loop re-checks this often that the loop still exists: if the
# loop is closed without cancelling the call, nothing else would wake the thread.
LIVENESS_CHECK_S = 1.0

error_log = logging.getLogger("gateway.error")
Chunk = bytes | bytearray | memoryview


class Channel:
    """One request's link between its pool thread (post, fail, fetch) and its loop-side
    call (drain, abort). Both sides hold the lock only for a few list operations."""

    def __init__(self, wakeups: LoopWakeups) -> None:
        self._wakeups = wakeups  # the serving loop's, shared by the requests of this mount
        self._loop = wakeups.loop
        self._lock = threading.Lock()
        # Made only when the thread must wait for room: most responses never fill the
        # channel, and a Condition costs more to build than the rest of the channel.
        self._room: threading.Condition | None = None
        self._items: list[Message | bytes] = []  # the start message first, then bodies
        self._buffered = 0
        self._finished = False
        self._error: BaseException | None = None
        self._aborted = False
        self._waiter: asyncio.Future[None] | None = None
        self._pending: Future[Message] | None = None

    @property
    def aborted(self) -> bool:
        return self._aborted

    def post(self, start: Message | None, body: bytes, final: bool) -> None:
        """Thread side: queue response parts; wait here while over the high-water mark."""
        with self._lock:
            self._check_alive()
            if start is not None:
                self._items.append(start)
            if body:
                self._items.append(body)
                self._buffered += len(body)
            self._finished = final
            waiter, self._waiter = self._waiter, None
        self._wake(waiter)
        if not final:
            self._wait_for_room()

    def fail(self, exc: BaseException) -> bool:
        """Thread side: hand the app's error to the loop; False if nobody listens now."""
        with self._lock:
            if self._finished or self._aborted:
                return False
            self._error, self._finished = exc, True
            waiter, self._waiter = self._waiter, None
        self._wake(waiter)
        return True

    def fetch(self, receive: Receive) -> Message:
        """Thread side: run `receive()` on the loop and wait for it in this thread."""
        with self._lock:
            self._check_alive()
            future = self._pending = asyncio.run_coroutine_threadsafe(
                _call_receive(receive), self._loop
            )
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    return future.result(LIVENESS_CHECK_S)
                if self._loop.is_closed():
                    raise ClientDisconnected("the event loop closed")
        except FutureCancelled:
            raise ClientDisconnected("the request was aborted") from None
        finally:
            with self._lock:
                self._pending = None

    def _wait_for_room(self) -> None:
        with self._lock:
            while self._buffered > HIGH_WATER_BYTES and not self._aborted:
                if self._room is None:
                    self._room = threading.Condition(self._lock)
                if not self._room.wait(LIVENESS_CHECK_S) and self._loop.is_closed():
                    self._aborted = True
            self._check_alive()

    def _check_alive(self) -> None:
        if self._aborted:
            raise ClientDisconnected("the client disconnected")

    def _wake(self, waiter: asyncio.Future[None] | None) -> None:
        if waiter is not None:  # batched with other requests' (adapters/wakeups.py)
            self._wakeups.resolve(waiter)

    async def drain(self, send: Send) -> None:
        """Loop side: send what the thread posts until the response ends or fails."""
        try:
            while await self._send_batch(send):
                pass
        finally:
            self.abort()

    def abort(self) -> None:
        """Loop side: stop the thread at its next post or read (idempotent)."""
        with self._lock:
            self._aborted = True
            pending, self._pending = self._pending, None
            if self._room is not None:
                self._room.notify_all()
        if pending is not None:
            pending.cancel()

    async def _send_batch(self, send: Send) -> bool:
        """Send one batch: the start, then all its bodies as one; True if more follow."""
        items, finished, error = await self._take()
        chunks = cast(list[bytes], items)
        if items and type(items[0]) is not bytes:  # only the first item can be the start
            await send(cast(Message, items[0]))
            chunks = chunks[1:]
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        done = finished and error is None
        if body or done:
            await send({"type": "http.response.body", "body": body, "more_body": not done})
        if body:
            with self._lock:
                self._buffered -= len(body)
                if self._room is not None:
                    self._room.notify()
        if error is not None:
            raise error
        return not finished

    async def _take(self) -> tuple[list[Message | bytes], bool, BaseException | None]:
        while True:
            with self._lock:
                if self._items or self._finished:
                    items, self._items = self._items, []
                    return items, self._finished, self._error
                waiter = self._waiter = self._loop.create_future()
            await waiter


async def _call_receive(receive: Receive) -> Message:
    # A coroutine made in the thread and run on the loop; `receive` itself may return
    # any awaitable, which run_coroutine_threadsafe would not accept.
    return await receive()


class WSGICall:
    """The thread side of one request: start_response, write, iteration and close."""

    def __init__(self, channel: Channel, name: str) -> None:
        self.channel = channel
        self.name = name
        self.start: Message | None = None
        self.headers_sent = False

    def run(self, app: WSGIApp, environ: dict[str, Any]) -> None:
        if self.channel.aborted:
            return  # the call was cancelled while it queued for a thread
        try:
            result = app(cast(Environ, environ), self.start_response)
            try:
                self._iterate(result)
            finally:
                close = getattr(result, "close", None)
                if close is not None:  # PEP 3333 "Specification Details": always
                    close()
        except Exception as exc:
            self._report(exc)
        except BaseException as exc:  # SystemExit & co. must not stop the server's loop
            wrapped = RuntimeError(f"the WSGI app raised {type(exc).__name__}")
            wrapped.__cause__ = exc
            self._report(wrapped)

    def start_response(
        self,
        status: str,
        headers: list[tuple[str, str]],
        exc_info: ExceptionInfo | None = None,
        /,
    ) -> Callable[[bytes], None]:
        # PEP 3333 "The start_response() Callable".
        if exc_info is not None:
            try:
                if self.headers_sent:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None  # drop the traceback reference cycle, as the PEP asks
        elif self.start is not None:
            raise RuntimeError("start_response() called a second time without exc_info")
        self.start = {
            "type": "http.response.start",
            "status": _status_code(status),
            # Values are trimmed: RFC 9110 §5.5 puts no whitespace at either end, and
            # Django writes Set-Cookie as " name=value" (SimpleCookie.output(header="")).
            "headers": [
                (n.lower().encode("latin-1"), v.strip().encode("latin-1")) for n, v in headers
            ],
        }
        return self.write

    def write(self, data: bytes) -> None:
        """PEP 3333 "The write() Callable": legacy, unbuffered output."""
        self._send(data, final=False)

    def _iterate(self, result: Iterable[bytes]) -> None:
        # PEP 3333: "If a call to len(iterable) succeeds, the server must be able to
        # rely on the result being accurate", so the last chunk can carry the end.
        if type(result) is list:  # what most apps return; skips the costlier ABC check
            remaining = len(result)
        else:
            remaining = len(result) if isinstance(result, Sized) else -1
        for chunk in result:
            remaining -= 1
            self._send(chunk, final=remaining == 0)
            if remaining == 0:
                return
        self._send(b"", final=True)

    def _send(self, chunk: Chunk, final: bool) -> None:
        data = chunk if type(chunk) is bytes else _as_bytes(chunk)
        if self.start is None:
            raise RuntimeError("the WSGI app sent body data before calling start_response()")
        if not data and not final:
            return  # PEP 3333 "Buffering and Streaming": headers wait for real data
        start = None
        if not self.headers_sent:
            start, self.headers_sent = self.start, True
        self.channel.post(start, data, final)

    def _report(self, exc: BaseException) -> None:
        if not self.channel.fail(exc) and not isinstance(exc, ClientDisconnected):
            error_log.error("wsgi[%s]: error after the response ended", self.name, exc_info=exc)


def _status_code(status: str) -> int:
    if not status[:3].isdigit() or status[3:4] not in ("", " "):
        raise ValueError(f"bad WSGI status line {status!r}: expected e.g. '200 OK'")
    return int(status[:3])


def _as_bytes(data: object) -> bytes:
    if not isinstance(data, bytearray | memoryview):
        raise TypeError(f"WSGI body chunks must be bytes, not {type(data).__name__}")
    return bytes(data)


class WSGIAdapter:
    """An ASGI 3 app that runs a WSGI app on its own pool of `threads` threads, with at
    most `max_queue` requests waiting for one (rule "the pool's queue is bounded"; None: no
    bound, for embedding: the mount file always sets one). A request body up to
    `body_buffer_bytes` is read on the loop before the call takes a thread (rule "few
    hand-offs"; 0: only its first message, for embedding: the mount file always sets
    one)."""

    def __init__(
        self,
        app: WSGIApp,
        threads: int,
        name: str,
        max_queue: int | None = None,
        body_buffer_bytes: int = 0,
    ) -> None:
        self.app = app
        self.threads = threads
        self.name = name
        self.max_queue = max_queue
        self.body_buffer_bytes = body_buffer_bytes
        self._errors = ErrorStream(name)
        self._pool = ThreadPool(threads, f"wsgi-{name}")
        self._capacity = sys.maxsize if max_queue is None else threads + max_queue
        self._active = 0  # requests handed to the pool whose response has not ended
        self._wakeups: LoopWakeups | None = None  # the serving loop's

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            raise ValueError(
                f"WSGI mount {self.name!r} serves only HTTP, not a {scope['type']!r} scope"
            )
        loop = asyncio.get_running_loop()
        wakeups = self._wakeups
        if wakeups is None or wakeups.loop is not loop:  # one loop per worker: made once
            wakeups = self._wakeups = LoopWakeups(loop)
        channel = Channel(wakeups)
        environ = build_environ(scope, self._errors)
        body = await _open_input(environ, receive, channel, self.body_buffer_bytes)
        if body is None:
            return  # the client left before its request began: nobody to answer
        if self._active >= self._capacity:  # rule "the pool's queue is bounded"
            raise ServiceUnavailable(
                f"WSGI mount {self.name!r} is full: {self.threads} threads busy, "
                f"{self.max_queue} requests queued"
            )
        environ["wsgi.input"] = body
        stream = cast(BodyStream, body.raw) if type(body) is io.BufferedReader else None
        watch = environ[CLIENT_DISCONNECTED] = DisconnectWatch(loop, receive, channel, stream)
        call = WSGICall(channel, self.name)
        # The copied context lets request-scoped contextvars (log ids, tracing) follow
        # the request into its thread, as asyncio.to_thread does.
        context = contextvars.copy_context()
        self._active += 1
        try:
            self._pool.submit(partial(context.run, call.run, self.app, environ))
            await channel.drain(send)
        except ClientDisconnected:
            pass
        finally:
            self._active -= 1
            watch.close()

    @property
    def active(self) -> int:
        """Requests handed to the pool whose response has not ended (rule "the pool's queue
        is bounded"): those on a thread, then those waiting for one. Read by the metrics
        (pool busy and queued)."""
        return self._active

    def close(self) -> None:
        """Close the pool without waiting; calls already queued still run."""
        self._pool.close()


async def _open_input(
    environ: dict[str, Any], receive: Receive, channel: Channel, buffer_bytes: int
) -> io.BytesIO | io.BufferedReader | None:
    """wsgi.input: the body read on the loop up to `buffer_bytes`, whole, or the start of
    a stream the thread reads on (rules "few hand-offs" and "no pre-read"); None if the
    client left first."""
    if "HTTP_EXPECT" in environ and environ["HTTP_EXPECT"].lower() == "100-continue":
        return io.BufferedReader(BodyStream(partial(channel.fetch, receive), b""))
    # A declared length past the bound streams from its first message on: buffering
    # part of a body that will stream anyway would only delay the app.
    declared: str = environ.get("CONTENT_LENGTH", "")
    limit = 0 if declared.isdigit() and int(declared) > buffer_bytes else buffer_bytes
    parts: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        part: bytes = message.get("body", b"")
        parts.append(part)
        size += len(part)
        if not message.get("more_body", False):
            return io.BytesIO(part if len(parts) == 1 else b"".join(parts))
        if limit == 0 or size > limit:
            first = part if len(parts) == 1 else b"".join(parts)
            return io.BufferedReader(BodyStream(partial(channel.fetch, receive), first))
