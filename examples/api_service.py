"""The new service: FastAPI, served by the gateway at /api over ASGI.

The gateway passes the ASGI scope with root_path="/api" and the whole path
("/api/items/1"); FastAPI routes on the part after root_path, and url_for() and the
docs at /api/docs build their URLs with the prefix. The WebSocket at /api/ws is
routed the same way: the gateway speaks the WebSocket protocol, FastAPI sees ASGI.

The lifespan below runs once per worker at startup. What it yields is the lifespan
*state*: the server copies it into every request's scope, and handlers read it as
`request.state.<key>`.
"""

import asyncio
import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, Request, WebSocket
from fastapi.responses import StreamingResponse

STREAM_CHUNKS = 5
# A pause between chunks only so that `curl -N` shows them arriving one by one.
STREAM_PAUSE_S = 0.2


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
    """Startup before the yield, shutdown after it. A real service opens pools here."""
    yield {"started_at": datetime.now(UTC)}


app = FastAPI(title="Example API", lifespan=lifespan)


@app.get("/")
async def status(request: Request) -> dict[str, Any]:
    """Reads the lifespan state: it exists only if the server ran the lifespan."""
    started_at: datetime = request.state.started_at
    uptime_s = (datetime.now(UTC) - started_at).total_seconds()
    return {
        "service": "api",
        "started_at": started_at.isoformat(timespec="seconds"),
        "uptime_s": round(uptime_s, 1),
    }


@app.get("/items/{item_id}")
async def read_item(item_id: int) -> dict[str, Any]:
    return {"id": item_id, "name": f"item {item_id}"}


@app.get("/whoami")
async def whoami(request: Request) -> dict[str, str]:
    """The scope as the gateway built it, and URLs that FastAPI builds from it."""
    return {
        "root_path": request.scope["root_path"],  # the mount prefix
        "path": request.scope["path"],  # the whole path, prefix included
        "url_for_item": str(request.url_for("read_item", item_id=42)),
        "url_for_whoami": str(request.url_for("whoami")),
    }


@app.post("/echo")
async def echo(request: Request) -> dict[str, Any]:
    """Length and SHA-256 of the request body, read as it streams in (no buffering)."""
    digest, length = hashlib.sha256(), 0
    async for piece in request.stream():
        digest.update(piece)
        length += len(piece)
    return {"length": length, "sha256": digest.hexdigest()}


@app.websocket("/ws")
async def websocket_echo(websocket: WebSocket) -> None:
    """Greets with where it was served, then sends every text message back."""
    await websocket.accept()
    await websocket.send_json(
        {
            "greeting": f"echo service at {websocket.scope['path']}",
            "root_path": websocket.scope["root_path"],  # the mount prefix, as for HTTP
            "url_for": str(websocket.url_for("websocket_echo")),  # ws://host/api/ws
        }
    )
    # Ends when the client closes (FastAPI turns websocket.disconnect into the end).
    async for text in websocket.iter_text():
        await websocket.send_text(text)


@app.get("/stream")
async def stream(chunks: int = STREAM_CHUNKS) -> StreamingResponse:
    """A body made by an async generator: each chunk is sent as it is yielded."""
    return StreamingResponse(count_lines(chunks), media_type="text/plain")


async def count_lines(total: int) -> AsyncIterator[str]:
    for number in range(1, total + 1):
        yield f"api chunk {number} of {total}\n"
        if number < total:
            await asyncio.sleep(STREAM_PAUSE_S)
