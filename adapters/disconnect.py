"""`gateway.client_disconnected`: a WSGI view asks whether its client has gone.

A long view (a report, an export, a long poll) calls it now and then and stops early
once it is true. Rules:
1. Gone for good: it is true once the ASGI `receive` reports `http.disconnect` (the
   client closed the connection, or its sending side once the request was sent), or once
   the response could not be sent (the request's Channel was aborted). It never turns
   false again.
2. It costs nothing until a view calls it: the first call starts one task on the loop
   that awaits `receive()`, and waits (one hand-off) until that task has looked once, so
   a client already gone is seen on the first call. Later calls read a flag.
3. The watch starts after the body: `receive()` also carries the request body, so the
   watch starts only once the body has come in whole (it always has for a body read
   before the call was handed to the pool; a streamed one once wsgi.input reached its
   end). Before that the call reports only an aborted response: a read of wsgi.input
   raises on a disconnect meanwhile.
4. The watch ends with the request: `close` (on the loop) cancels its task.
5. Its value does not stop anything by itself: the view decides. Whatever it then
   returns goes out if the client can still take it, or is dropped; the result's
   close() is called either way (adapters/wsgi.py, rule "headers go out with the first
   non-empty chunk").
"""

from __future__ import annotations

import asyncio
import contextlib
from concurrent.futures import Future
from typing import Protocol

from gateway.asgi import Receive

ENVIRON_KEY = "gateway.client_disconnected"
# The first call waits for the loop this long at a time, then checks that the loop still
# exists (as adapters/wsgi.py's threads do): a closed loop would never answer.
LOOP_CHECK_S = 1.0


class BodyProgress(Protocol):
    """A request body still streaming in (adapters/body_stream.py's BodyStream)."""

    def ended(self) -> bool:
        """The last body message has been received."""


class Aborted(Protocol):
    """The request's response channel (adapters/wsgi.py's Channel)."""

    @property
    def aborted(self) -> bool:
        """The response could not be sent on (rule "gone for good")."""


class DisconnectWatch:
    """The environ's `gateway.client_disconnected` callable of one WSGI request."""

    __slots__ = ("_body", "_channel", "_closed", "_gone", "_loop", "_receive", "_task")

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        receive: Receive,
        channel: Aborted,
        body: BodyProgress | None,
    ) -> None:
        """`body`: the stream of a body still arriving, or None when it came in whole."""
        self._loop = loop
        self._receive = receive
        self._channel = channel
        self._body = body
        self._gone = False
        self._closed = False
        self._task: asyncio.Task[None] | None = None

    def __call__(self) -> bool:
        """Thread side: has the client gone? (rules "gone for good", "it costs nothing until
        a view calls it" and "the watch starts after the body")"""
        if self._gone or self._channel.aborted:
            return True
        if self._task is None and not self._closed and (self._body is None or self._body.ended()):
            self._start()
        return self._gone or self._channel.aborted

    def _start(self) -> None:
        """Thread side: start the watch on the loop; wait until it has looked once."""
        looked: Future[None] = Future()
        try:
            self._loop.call_soon_threadsafe(self._begin, looked)
        except RuntimeError:  # the loop is closed: the server, and the client, are gone
            self._gone = True
            return
        while not self._loop.is_closed():
            with contextlib.suppress(TimeoutError):
                looked.result(LOOP_CHECK_S)
                return

    def _begin(self, looked: Future[None]) -> None:
        """Loop side: one task per request at most, and none after the request ended."""
        if self._task is None and not self._closed:
            self._task = self._loop.create_task(self._watch())
        # Scheduled after the task's first step: by then it has seen a disconnect that
        # had already happened.
        self._loop.call_soon(looked.set_result, None)

    async def _watch(self) -> None:
        message = await self._receive()
        # The body is all in (rule "the watch starts after the body"), so the next
        # message is the disconnect. Anything else (a server that repeats an empty body)
        # means nothing more can be learnt.
        self._gone = message["type"] == "http.disconnect"

    def close(self) -> None:
        """Loop side: the request ended (rule "the watch ends with the request")."""
        self._closed = True
        if self._task is not None:
            self._task.cancel()
