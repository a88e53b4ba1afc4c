"""An ASGI app whose worker process dies shortly after every start, as a native crash in
an extension would (os._exit: no cleanup, no exit status 3): the supervisor's crash-loop
guard must stop respawning it."""

from __future__ import annotations

import asyncio
import os
from typing import Any

# Long enough for the worker to finish booting; short enough for the test.
CRASH_AFTER_S = 0.3


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "lifespan":
        return
    await receive()  # lifespan.startup
    await send({"type": "lifespan.startup.complete"})
    asyncio.get_running_loop().call_later(CRASH_AFTER_S, os._exit, 1)
    await receive()  # lifespan.shutdown never comes: the process is gone first
