"""wsgi.input for a request body still arriving: the raw stream that adapters/wsgi.py
wraps in an io.BufferedReader when a body streams (adapters/wsgi.py, rules "few
hand-offs" and "no pre-read"). Rules:
1. Only the pool thread waits: when the current message is used up, a read calls
   `fetch`, which runs the next `receive()` on the loop while the thread blocks.
2. A client that leaves mid-body makes the read raise ClientDisconnected, which the call
   re-raises on the loop (adapters/wsgi.py, rule "an exception from the app").
3. Plain Python in every install: setup.py leaves this module out of its compiled list.
   mypyc would give this io.RawIOBase subclass both Py_TPFLAGS_MANAGED_DICT and a
   tp_dictoffset, which CPython 3.12 and later refuse at import; and only a streamed
   body comes here, never a small request's.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

from gateway.asgi import Message
from gateway.errors import ClientDisconnected


class BodyStream(io.RawIOBase):
    """The rest of a body still arriving, as a raw stream; `wsgi.input` wraps it in an
    io.BufferedReader, which supplies read(n), readline, readlines and iteration.
    When the current message is used up, it blocks the pool thread on `fetch` (the next
    `receive()` message, run on the loop), never the loop."""

    def __init__(self, fetch: Callable[[], Message], first: bytes) -> None:
        super().__init__()
        self._fetch = fetch
        self._view = memoryview(first)
        self._more = True

    def readable(self) -> bool:
        return True

    def ended(self) -> bool:
        """The last body message has come (adapters/disconnect.py, rule "the watch starts
        after the body")."""
        return not self._more

    def readinto(self, buffer: Any, /) -> int:  # any writable buffer (typeshed's type)
        while not self._view and self._more:
            message = self._fetch()
            if message["type"] == "http.disconnect":
                raise ClientDisconnected("the client left while sending the request body")
            self._view = memoryview(message.get("body", b""))
            self._more = message.get("more_body", False)
        size = min(len(self._view), memoryview(buffer).nbytes)
        memoryview(buffer).cast("B")[:size] = self._view[:size]
        self._view = self._view[size:]
        return size
