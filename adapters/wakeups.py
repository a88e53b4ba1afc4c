"""Pool threads wake loop-side waiters of one event loop, a batch per loop wake-up.

Each WSGI request's loop side parks on an asyncio future when its channel is empty
(adapters/wsgi.py, `Channel`), and the pool thread that posts the response must resolve
it on the loop. One `call_soon_threadsafe` per response would cost the loop one
cross-thread hand-off per request (a handle, a lock and a write to the loop's wake-up
fd each). Rules:
1. One hand-off per batch: a thread queues the future in a deque and asks the loop to
   drain it only when no drain is already due, so responses posted while the loop is
   busy, or before it got round to the drain, ride on the one already asked for.
2. Nothing is lost: the loop clears "a drain is due" before it takes the first future,
   and a thread reads it after it queued its own, so a future queued after the drain's
   last look always finds the flag clear and asks for another. A race costs at most a
   spare drain, never a waiter left parked. The deque's append and popleft are atomic,
   so neither side takes a lock.
3. A future already done (its request was cancelled) is skipped.
4. A closed loop is left alone: nobody waits on it any more.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque


class LoopWakeups:
    """Resolves futures of `loop` from other threads, draining them in batches."""

    __slots__ = ("_drain_due", "_due", "_loop", "drains")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        # At most one future per request whose channel is parked: bounded by the
        # mount's requests in flight (adapters/wsgi.py, rule "the pool's queue is bounded").
        self._due: deque[asyncio.Future[None]] = deque()
        self._drain_due = False
        self.drains = 0  # hand-offs to the loop asked for (rule "one hand-off per batch")

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def resolve(self, waiter: asyncio.Future[None]) -> None:
        """Thread side: have the loop resolve `waiter` soon."""
        self._due.append(waiter)
        if self._drain_due:  # rule "one hand-off per batch"
            return
        self._drain_due = True
        self.drains += 1
        with contextlib.suppress(RuntimeError):  # rule "a closed loop is left alone"
            self._loop.call_soon_threadsafe(self._drain)

    def _drain(self) -> None:
        """Loop side: resolve every future queued so far."""
        self._drain_due = False  # first (rule "nothing is lost")
        due = self._due
        while due:
            waiter = due.popleft()
            if not waiter.done():  # rule "a future already done"
                waiter.set_result(None)
