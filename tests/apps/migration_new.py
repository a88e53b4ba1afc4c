"""The "new" app of the migration tests: FastAPI, having taken over a few routes.

Routes are relative to the mount, as a FastAPI app written for its prefix has them;
what is not here falls back to migration_legacy. `/stream?id=N` sends its first chunk,
then waits for `/release?id=N`, so a test sees whether the first chunk came before the
end. `/stream404` is a 404 that streams forever unless the server cuts it short.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from fastapi import FastAPI, Request, WebSocket
from fastapi.responses import PlainTextResponse, StreamingResponse

app = FastAPI()
# Streams waiting for their release, by id: made on the server's loop, where they are
# awaited, so each test server's loop has its own.
_releases: dict[str, asyncio.Event] = {}


def _release(key: str) -> asyncio.Event:
    return _releases.setdefault(key, asyncio.Event())


@app.get("/users/{user_id}", name="user")
async def user(user_id: int, request: Request) -> dict[str, object]:
    return {
        "app": "new",
        "root_path": request.scope["root_path"],
        "url": str(request.url_for("user", user_id=user_id).path),
    }


@app.get("/form")
async def form() -> dict[str, str]:
    return {"app": "new"}  # GET only: a POST is 405


@app.get("/item")
async def item(request: Request) -> dict[str, str]:
    return {"app": "new", "root_path": request.scope["root_path"]}


@app.get("/stream")
async def stream(id: str) -> StreamingResponse:
    async def chunks() -> AsyncIterator[bytes]:
        yield b"new-first\n"
        await _release(id).wait()
        yield b"new-last\n"

    return StreamingResponse(chunks())


@app.get("/release")
async def release(id: str) -> dict[str, bool]:
    _release(id).set()
    return {"released": True}


@app.get("/stream404")
async def stream404() -> StreamingResponse:
    async def chunks() -> AsyncIterator[bytes]:
        yield b"new-404-part\n"
        await asyncio.Event().wait()  # never set: only a server that cuts it ends it
        yield b"never\n"

    return StreamingResponse(chunks(), status_code=404)


@app.websocket("/ws-new")
async def ws_new(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text("new")
    await websocket.close()


@app.websocket("/{path:path}")
async def ws_elsewhere(websocket: WebSocket, path: str) -> None:
    # Starlette closes before accept (a 403) for a WebSocket path it has no route for;
    # denying with a 404 (the websocket.http.response extension) lets the gateway's
    # fallback take it (README: Migrating one route at a time).
    await websocket.send_denial_response(PlainTextResponse("not here", status_code=404))
