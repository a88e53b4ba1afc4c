"""The thread pool of one WSGI mount.

Rules:
1. One queue of calls, `size` threads at most, started as calls arrive. A call is a plain
   callable that reports its own outcome (through the request's Channel), so the pool
   keeps no Future per call and takes no lock on submit: less work per request than
   concurrent.futures.ThreadPoolExecutor, on the path every WSGI request takes. The
   queue's bound (`max_queue`) is kept by the caller, on the loop (adapters/wsgi.py).
2. Threads are daemon threads. The worker drains requests within `graceful_timeout`
   before it exits; an app still stuck in a call after that must not hold the process.
3. `close` lets queued calls run, then the threads end; nothing new is accepted.
"""

from __future__ import annotations

import logging
import queue
import threading
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
        self._idle = 0  # threads waiting for a call
        self._idle_lock = threading.Lock()
        self._closed = False

    def submit(self, call: Call) -> None:
        if self._closed:
            raise RuntimeError(f"the pool of {self.name} is closed")
        self._calls.put(call)
        if self._idle == 0 and len(self._threads) < self.size:
            self._start_thread()

    def _start_thread(self) -> None:
        thread = threading.Thread(
            target=self._serve, name=f"{self.name}_{len(self._threads)}", daemon=True
        )
        self._threads.append(thread)
        thread.start()

    def _serve(self) -> None:
        while True:
            with self._idle_lock:
                self._idle += 1
            call = self._calls.get()
            with self._idle_lock:
                self._idle -= 1
            if call is None:
                return
            try:
                call()
            except BaseException:  # a call reports its own errors; this is a last resort
                error_log.exception("%s: a call escaped its own error handling", self.name)

    def close(self) -> None:
        """Accept nothing more; each thread ends after the calls queued before it."""
        if not self._closed:
            self._closed = True
            for _ in self._threads:
                self._calls.put(None)
