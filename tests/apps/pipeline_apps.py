"""Apps that answer every request with one 64 KiB body in a single message, for the
pipelining memory test (issue 13, point 1): what a client that never reads must not be
able to pile up in the worker."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

RESPONSE_BYTES = 64 * 1024
BODY = b"p" * RESPONSE_BYTES
FIELDS = [(b"content-type", b"application/octet-stream"), (b"content-length", b"65536")]


async def asgi_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": FIELDS})
    await send({"type": "http.response.body", "body": BODY})


def wsgi_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    start_response("200 OK", [(n.decode(), v.decode()) for n, v in FIELDS])
    return [BODY]
