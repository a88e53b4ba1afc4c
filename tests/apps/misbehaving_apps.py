"""Apps that break the ASGI spec or PEP 3333, one way per route, for the server's answer
to each (tests/integration/test_app_misbehaviour.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

Scope = dict[str, Any]
START = {"type": "http.response.start", "status": 200, "headers": []}
BODY = {"type": "http.response.body", "body": b"body"}
PART = {"type": "http.response.body", "body": b"part", "more_body": True}

# Each route's messages, sent in order; then the app returns.
ASGI_ROUTES: dict[str, list[dict[str, Any]]] = {
    "/ok": [START, BODY],
    "/body-before-start": [BODY],
    "/start-twice": [START, START, BODY],
    "/wrong-type": [{"type": "http.response.begin", "status": 200}],
    "/str-header-name": [{**START, "headers": [("x-a", b"1")]}, BODY],
    "/str-header-value": [{**START, "headers": [(b"x-a", "1")]}, BODY],
    "/no-response": [],
    "/start-only": [START],
    # The response has begun (a part went out): only closing can tell the client.
    "/start-twice-mid-response": [START, PART, START],
    "/wrong-type-mid-response": [START, PART, {"type": "http.response.trailers"}],
    # A body that breaks its Content-Length: in one message nothing was written (a 500);
    # after a part went out, a cut.
    "/short-body": [{**START, "headers": [(b"content-length", b"10")]}, BODY],
    "/long-body": [{**START, "headers": [(b"content-length", b"2")]}, BODY],
    "/short-body-mid-response": [
        {**START, "headers": [(b"content-length", b"10")]},
        PART,
        {"type": "http.response.body", "body": b""},
    ],
}


async def asgi_app(scope: Scope, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    route = scope["path"][len(scope["root_path"]) :]
    if route == "/short-body-corrected":
        await short_body_corrected(send)
        return
    for message in ASGI_ROUTES[route]:
        await send(message)


async def short_body_corrected(send: Any) -> None:
    """Sends a body shorter than its Content-Length, is told (nothing went out), and
    sends the right one."""
    await send({**START, "headers": [(b"content-length", b"10")]})
    try:
        await send(BODY)
    except Exception:
        await send({"type": "http.response.body", "body": b"0123456789"})


def wsgi_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterator[bytes]:
    route = environ["PATH_INFO"]
    start_response("200 OK", [("Content-Type", "text/plain")])
    if route == "/start-twice":
        start_response("200 OK", [("Content-Type", "text/plain")])  # no exc_info
    yield b"part"
    if route == "/start-twice-mid-response":
        start_response("500 Internal Server Error", [])  # headers went out: no exc_info
    yield b"end"
