"""FastAPI app for the `fastapi-json` and `mixed` cases: GET /json returns a small dict."""

from __future__ import annotations

from fastapi import FastAPI

app = FastAPI()

PAYLOAD = {"message": "hello", "items": [1, 2, 3]}


@app.get("/json")
async def json_view() -> dict[str, object]:
    # `async def` runs on the event loop; a plain `def` would add a thread hop per request.
    return PAYLOAD
