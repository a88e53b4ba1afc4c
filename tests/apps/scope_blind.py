"""The 10-line ASGI app from issue 13, point 15: it ignores the scope type and streams
until `send` raises. At startup it is handed a lifespan scope; a server whose lifespan
`send` accepts anything never gets control back from it.

Its stream is bounded in time, not only by `send` raising, so that a server that never
raises spins for STREAM_LIMIT_S and then serves: a test sees it never listened in time.
"""

from __future__ import annotations

import time
from typing import Any

# Longer than a test's start deadline (support.deadlines START_DEADLINE_S, 30 s), so a server
# stuck in this loop at startup is seen as one that never listens.
STREAM_LIMIT_S = 60.0
CHUNK = b"tick\n" * 200  # 1000 bytes: the client has a body to read at once


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    end = time.monotonic() + STREAM_LIMIT_S
    while time.monotonic() < end:
        await send({"type": "http.response.body", "body": CHUNK, "more_body": True})
    await send({"type": "http.response.body", "body": b""})
