"""The shadow of the shadow tests: a FastAPI app, the code being tried (beside
tests/apps/shadow_legacy.py). Mounted twice: as the shadow target, and at a prefix of its
own so that a test can ask it what its copies saw (`/seen`), whether a copy is waiting
(`/waiting`), and release it (`/release`)."""

from __future__ import annotations

import asyncio
from collections import defaultdict

from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse

app = FastAPI()
# Per request id: what the copy saw, and the release of a /slow copy. Made on the
# server's loop, where they are awaited.
_seen: dict[str, dict[str, object]] = {}
_releases: dict[str, asyncio.Event] = defaultdict(asyncio.Event)
_waiting: set[str] = set()


@app.get("/items/{item_id}")
async def item(item_id: int) -> dict[str, object]:
    return {"id": item_id, "name": f"item {item_id}", "served_at": "now"}


@app.get("/price/{item_id}")
async def price(item_id: int) -> dict[str, object]:
    return {"id": item_id, "price": 12}


@app.get("/page")
async def page() -> PlainTextResponse:
    return PlainTextResponse("<p>hello</p>")


@app.get("/boom")
async def boom() -> dict[str, object]:
    raise RuntimeError("the new code is broken")


@app.get("/slow")
async def slow(id: str) -> dict[str, object]:
    _waiting.add(id)
    await _releases[id].wait()
    _waiting.discard(id)
    return {"ok": True}


@app.post("/echo")
async def echo(id: str, request: Request) -> dict[str, object]:
    body = await request.body()
    _seen[id] = {
        "method": request.method,
        "path": request.scope["path"],
        "root_path": request.scope["root_path"],
        "body": body.decode(),
        "mount": request.scope["extensions"]["gateway"]["mount"],
    }
    return {"length": len(body)}


@app.get("/seen")
async def seen(id: str) -> dict[str, object]:
    return _seen.get(id, {})


@app.get("/waiting")
async def waiting(id: str) -> bool:
    return id in _waiting


@app.get("/release")
async def release(id: str) -> bool:
    _releases[id].set()
    return True
