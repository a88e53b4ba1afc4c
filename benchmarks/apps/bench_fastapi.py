"""FastAPI app for the `fastapi-json`, `mixed` and `shadow` cases: GET /json returns a
small dict. `shadow_app` is a second instance of the same app, the shadow mount of the
`shadow` case (its own routes and middleware stack, as a new app beside the old has)."""

from __future__ import annotations

from fastapi import FastAPI

PAYLOAD = {"message": "hello", "items": [1, 2, 3]}


def make_app() -> FastAPI:
    app = FastAPI()

    @app.get("/json")
    async def json_view() -> dict[str, object]:
        # `async def` runs on the event loop; a plain `def` would add a thread hop per
        # request.
        return PAYLOAD

    return app


app = make_app()
shadow_app = make_app()
