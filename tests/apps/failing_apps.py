"""Apps that fail at startup, for exit-status tests."""

from typing import Any


async def lifespan_fails(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "database unreachable"})
