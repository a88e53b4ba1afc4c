"""A raw ASGI app for drain tests: a response whose end the test decides.

- /held: sends its head and a first chunk, then waits until the test sets the newest
  gate in `gates` (on the server's loop), then ends the response.
- any other path: "ok" at once.
"""

from __future__ import annotations

import asyncio
from typing import Any

# One per /held request, newest last; the test sets it with loop.call_soon_threadsafe.
gates: list[asyncio.Event] = []


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return  # lifespan: unsupported, which the server completes on the app's behalf
    await send({"type": "http.response.start", "status": 200, "headers": []})
    if scope["path"] == "/held":
        await send({"type": "http.response.body", "body": b"head sent\n", "more_body": True})
        gate = asyncio.Event()
        gates.append(gate)
        await gate.wait()
    await send({"type": "http.response.body", "body": b"ok\n"})
