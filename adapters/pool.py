"""The thread pool of one WSGI mount.

Rules:
1. One queue of calls, `size` threads at most, started as calls arrive. A call is a plain
   callable that reports its own outcome (through the request's Channel), so the pool
   keeps no Future per call and takes no lock on submit: less work per request than
   concurrent.futures.ThreadPoolExecutor, on the path every WSGI request takes. The
   queue's bound (`max_queue`) is kept by the caller, on the loop (adapters/wsgi.py).
2. A call that arrives takes an idle thread's place at once, on submit, not when that
   thread wakes: each thread leaves one token in `_idle` when it finishes a call, and
   submit takes one, or starts a thread when there is none (CPython's ThreadPoolExecutor
   counts with a semaphore the same way, `_adjust_thread_count`). Counting idle threads
   as they wake would let a burst of calls, submitted in one loop turn, all see the same
   idle thread and queue behind it while the pool could start more. The deque's append
   and pop are atomic, so this still takes no lock; `submit` is called from one thread
   (the mount's event loop), the only one that takes tokens.
3. One wake-up in flight: a thread with nothing to do parks on its own lock, and a
   submit wakes a parked thread only when no other thread is already on its way to the
   queue. The thread it wakes passes the work on: a thread that takes a call and sees
   more queued behind it wakes one more parked thread before it runs its call. So a burst
   of calls submitted in one loop turn costs the loop one wake-up, not one per call, and
   the burst still spreads over the threads (rule "a call that arrives takes an idle
   thread's place"), each woken by a thread, off the loop. A thread that finishes a call
   takes the next queued one without any wake-up. The flag is read and set without a
   lock: a race costs at most a spare wake-up, never a lost one, because a thread
   re-checks the queue after it has listed itself as parked.
4. Threads are daemon threads. The worker drains requests within `graceful_timeout`
   before it exits; an app still stuck in a call after that must not hold the process.
5. `close` lets queued calls run, then the threads end; nothing new is accepted.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable

Call = Callable[[], object]

error_log = logging.getLogger("gateway.error")


class ThreadPool:
    """Runs calls on up to `size` threads named `{name}_N`."""

    def __init__(self, size: int, name: str) -> None:
        if size < 1:
            raise ValueError(f"a WSGI pool needs at least one thread, got {size}")
        self.size = size
        self.name = name
        # Calls first in first out, then one None per thread once closed. Unbounded
        # here: the caller keeps the bound (rule "one queue of calls").
        self._calls: deque[Call | None] = deque()
        self._threads: list[threading.Thread] = []
        # One token per finished call not yet matched by a submit (rule "a call that
        # arrives takes an idle thread's place"): the threads that are free, or about to
        # be. While the pool can grow, every submit takes a token or starts a thread, so
        # tokens never outnumber threads; once it is full, calls that queued took none,
        # and their tokens may count a busy thread as free, which costs nothing: no
        # thread could be started anyway.
        self._idle: deque[None] = deque()
        # The parked threads' locks, each held: releasing one wakes its thread (rule "one
        # wake-up in flight"). At most `size` of them.
        self._parked: deque[threading.Lock] = deque()
        self._waking = False  # a thread was woken and has not yet reached the queue
        # Parked threads woken by submit, on the caller's thread: one per burst at most
        # (rule "one wake-up in flight"). Only that thread writes it.
        self.submit_wakeups = 0
        self._closed = False

    @property
    def idle_threads(self) -> int:
        """Threads free for the next call, as `submit` counts them
        (rule "a call that arrives takes an idle thread's place")."""
        return len(self._idle)

    @property
    def parked_threads(self) -> int:
        """Threads asleep until a call wakes one (rule "one wake-up in flight")."""
        return len(self._parked)

    def submit(self, call: Call) -> None:
        if self._closed:
            raise RuntimeError(f"the pool of {self.name} is closed")
        self._calls.append(call)
        if self._idle:  # this call takes an idle thread's place now
            self._idle.pop()
        elif len(self._threads) < self.size:
            self._start_thread()  # it takes a call as it starts: no wake-up needed
            return
        if not self._waking and self._parked:
            self.submit_wakeups += 1
            self._wake_one()

    def _wake_one(self) -> None:
        # Set before the release: the woken thread clears it (rule "one wake-up in flight").
        self._waking = True
        try:
            self._parked.pop().release()  # the last to park: its memory is the warmest
        except IndexError:  # another thread woke the last parked one meanwhile
            self._waking = False

    def _start_thread(self) -> None:
        thread = threading.Thread(
            target=self._serve, name=f"{self.name}_{len(self._threads)}", daemon=True
        )
        self._threads.append(thread)
        thread.start()

    def _serve(self) -> None:
        # A new thread was started for the call that made it, so it leaves its first
        # token only once that call is done (rule "a call that arrives takes an idle
        # thread's place").
        parked = threading.Lock()
        parked.acquire()  # held while running; released by whoever wakes this thread
        calls = self._calls
        while True:
            try:
                call = calls.popleft()
            except IndexError:
                self._park(parked)
                continue
            if call is None:
                return
            if calls and not self._waking and self._parked:
                self._wake_one()  # pass the work queued behind this call on
            try:
                call()
            except BaseException:  # a call reports its own errors; this is a last resort
                error_log.exception("%s: a call escaped its own error handling", self.name)
            self._idle.append(None)

    def _park(self, parked: threading.Lock) -> None:
        """Wait on `parked` until a submit or another thread releases it."""
        self._parked.append(parked)
        if self._calls:  # a call was queued between the empty queue and the line above
            try:
                self._parked.remove(parked)
                return
            except ValueError:  # already taken out to be woken: take that wake-up
                pass
        parked.acquire()
        self._waking = False

    def close(self) -> None:
        """Accept nothing more; each thread ends after the calls queued before it."""
        if not self._closed:
            self._closed = True
            self._calls.extend([None] * len(self._threads))
            while self._parked:
                self._wake_one()
