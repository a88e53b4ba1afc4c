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
3. Threads are daemon threads. The worker drains requests within `graceful_timeout`
   before it exits; an app still stuck in a call after that must not hold the process.
4. `close` lets queued calls run, then the threads end; nothing new is accepted.
"""

from __future__ import annotations

import logging
import queue
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
        self._calls: queue.SimpleQueue[Call | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        # One token per finished call not yet matched by a submit (rule "a call that
        # arrives takes an idle thread's place"): the threads that are free, or about to
        # be. While the pool can grow, every submit takes a token or starts a thread, so
        # tokens never outnumber threads; once it is full, calls that queued took none,
        # and their tokens may count a busy thread as free, which costs nothing: no
        # thread could be started anyway.
        self._idle: deque[None] = deque()
        self._closed = False

    @property
    def idle_threads(self) -> int:
        """Threads free for the next call, as `submit` counts them
        (rule "a call that arrives takes an idle thread's place")."""
        return len(self._idle)

    def submit(self, call: Call) -> None:
        if self._closed:
            raise RuntimeError(f"the pool of {self.name} is closed")
        self._calls.put(call)
        if self._idle:  # this call takes an idle thread's place now
            self._idle.pop()
        elif len(self._threads) < self.size:
            self._start_thread()

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
        while True:
            call = self._calls.get()
            if call is None:
                return
            try:
                call()
            except BaseException:  # a call reports its own errors; this is a last resort
                error_log.exception("%s: a call escaped its own error handling", self.name)
            self._idle.append(None)

    def close(self) -> None:
        """Accept nothing more; each thread ends after the calls queued before it."""
        if not self._closed:
            self._closed = True
            for _ in self._threads:
                self._calls.put(None)
