"""Plain ASGI 3 apps for the benchmark cases: no framework, the least an ASGI app can do.

`hello` answers "Hello, world!", `big` answers 64 KiB, `echo` sends the request body back.
Each sends `content-length`, so no server has to fall back to chunked encoding.
"""

from __future__ import annotations

from typing import Any

Scope = dict[str, Any]
Message = dict[str, Any]

HELLO = b"Hello, world!"
BIG = b"x" * 65536  # 64 KiB
# Guard for the echo app: the benchmark posts 16 KiB; anything far larger is a mistake.
MAX_ECHO_BYTES = 1 << 20


def _headers(length: int, content_type: bytes) -> list[tuple[bytes, bytes]]:
    return [(b"content-type", content_type), (b"content-length", str(length).encode())]


async def _lifespan(receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _respond(send: Any, body: bytes, content_type: bytes = b"text/plain") -> None:
    headers = _headers(len(body), content_type)
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def hello(scope: Scope, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        return await _lifespan(receive, send)
    await _respond(send, HELLO)


async def big(scope: Scope, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        return await _lifespan(receive, send)
    await _respond(send, BIG)


async def echo(scope: Scope, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        return await _lifespan(receive, send)
    chunks: list[bytes] = []
    size = 0
    more = True
    while more and size <= MAX_ECHO_BYTES:
        message = await receive()
        if message["type"] != "http.request":
            return
        chunks.append(message.get("body", b""))
        size += len(chunks[-1])
        more = message.get("more_body", False)
    await _respond(send, b"".join(chunks), b"application/octet-stream")
