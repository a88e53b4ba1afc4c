"""A raw ASGI app whose routes each exercise one piece of server behaviour.

Module-level state is shared between requests on purpose: a test observes one request
through another (`/progress`, `/disconnects`). Routes are matched on the path below the
mount's root_path.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from typing import Any

Scope = dict[str, Any]
progress = {"bytes_sent": 0, "disconnects": 0}
release_reader = asyncio.Event()  # created unbound; binds to the server loop on first use
holds: dict[bytes, asyncio.Event] = {}  # /hold?KEY waits on its own, set by /unhold?KEY


async def app(scope: Scope, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await lifespan(scope, receive, send)
        return
    route = scope["path"][len(scope["root_path"]) :]
    handler = ROUTES.get("/" + route.split("/", 2)[1] if route else "/", not_found)
    await handler(scope, receive, send)


async def lifespan(scope: Scope, receive: Any, send: Any) -> None:
    log_path = os.environ.get("PROBE_LIFESPAN_LOG")
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            scope["state"]["probe"] = "started"
            _note(log_path, "startup")
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            _note(log_path, "shutdown")
            await send({"type": "lifespan.shutdown.complete"})
            return


def _note(log_path: str | None, line: str) -> None:
    if log_path:
        with open(log_path, "a") as log:
            log.write(line + "\n")


async def respond(send: Any, body: bytes, status: int = 200, headers: Any = ()) -> None:
    fields = [(b"content-length", str(len(body)).encode()), *headers]
    await send({"type": "http.response.start", "status": status, "headers": fields})
    await send({"type": "http.response.body", "body": body})


async def read_body(receive: Any) -> tuple[bytes, int]:
    chunks, messages = [], 0
    while True:
        message = await receive()
        messages += 1
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks), messages


async def scope_route(scope: Scope, receive: Any, send: Any) -> None:
    shown = {key: value for key, value in scope.items() if key not in ("state", "headers")}
    shown["raw_path"] = scope["raw_path"].decode("latin-1")
    shown["query_string"] = scope["query_string"].decode("latin-1")
    shown["headers"] = [[n.decode("latin-1"), v.decode("latin-1")] for n, v in scope["headers"]]
    shown["state"] = dict(scope["state"])
    await respond(
        send, json.dumps(shown).encode(), headers=[(b"content-type", b"application/json")]
    )


async def echo(scope: Scope, receive: Any, send: Any) -> None:
    body, messages = await read_body(receive)
    await respond(send, body, headers=[(b"x-messages", str(messages).encode())])


async def digest(scope: Scope, receive: Any, send: Any) -> None:
    hasher, size = hashlib.sha256(), 0
    while True:
        message = await receive()
        hasher.update(message.get("body", b""))
        size += len(message.get("body", b""))
        if not message.get("more_body"):
            break
    await respond(send, json.dumps({"length": size, "sha256": hasher.hexdigest()}).encode())


async def gated_digest(scope: Scope, receive: Any, send: Any) -> None:
    """Reads nothing until /release is requested: the upload must be paused meanwhile."""
    await release_reader.wait()
    await digest(scope, receive, send)


async def release(scope: Scope, receive: Any, send: Any) -> None:
    release_reader.set()
    await respond(send, b"released")


async def stream(scope: Scope, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    for i in range(5):
        await send({"type": "http.response.body", "body": b"chunk %d\n" % i, "more_body": True})
        await asyncio.sleep(0)
    await send({"type": "http.response.body", "body": b""})


async def big(scope: Scope, receive: Any, send: Any) -> None:
    """64 MiB in 64 KiB pieces, counting what `send` accepted (backpressure test)."""
    piece = b"x" * 65536
    progress["bytes_sent"] = 0
    await send({"type": "http.response.start", "status": 200, "headers": []})
    for _ in range(1024):
        await send({"type": "http.response.body", "body": piece, "more_body": True})
        progress["bytes_sent"] += len(piece)
    await send({"type": "http.response.body", "body": b""})


async def progress_route(scope: Scope, receive: Any, send: Any) -> None:
    await respond(send, json.dumps(progress).encode())


async def wait_disconnect(scope: Scope, receive: Any, send: Any) -> None:
    """Waits for http.disconnect (the client going away), then counts it."""
    await read_body(receive)
    message = await receive()
    if message["type"] == "http.disconnect":
        progress["disconnects"] += 1


async def raise_before(scope: Scope, receive: Any, send: Any) -> None:
    raise RuntimeError("secret internal detail")


async def raise_after(scope: Scope, receive: Any, send: Any) -> None:
    await respond(send, b"complete")
    raise RuntimeError("failed after a complete response")


async def raise_mid(scope: Scope, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"partial", "more_body": True})
    raise RuntimeError("failed mid-response")


async def no_read(scope: Scope, receive: Any, send: Any) -> None:
    """Answers without asking for the body: no `100 Continue` may go out."""
    await respond(send, b"not reading")


async def sleep_route(scope: Scope, receive: Any, send: Any) -> None:
    _note(os.environ.get("PROBE_LIFESPAN_LOG"), "sleep-start")
    await asyncio.sleep(float(scope["query_string"] or b"1"))
    _note(os.environ.get("PROBE_LIFESPAN_LOG"), "sleep-end")
    await respond(send, b"slept")


def _hold_event(scope: Scope) -> asyncio.Event:
    return holds.setdefault(scope["query_string"], asyncio.Event())


async def hold(scope: Scope, receive: Any, send: Any) -> None:
    """Reads none of its body until /unhold with the same query string is requested:
    its upload fills its window and stops there (HTTP/2 flow-control tests)."""
    await _hold_event(scope).wait()
    holds.pop(scope["query_string"], None)
    await respond(send, b"held")


async def unhold(scope: Scope, receive: Any, send: Any) -> None:
    _hold_event(scope).set()
    await respond(send, b"unheld")


async def not_found(scope: Scope, receive: Any, send: Any) -> None:
    await respond(send, b"probe: no such route", status=404)


ROUTES = {
    "/": echo,
    "/scope": scope_route,
    "/echo": echo,
    "/digest": digest,
    "/gated-digest": gated_digest,
    "/release": release,
    "/stream": stream,
    "/big": big,
    "/progress": progress_route,
    "/wait-disconnect": wait_disconnect,
    "/raise-before": raise_before,
    "/raise-after": raise_after,
    "/raise-mid": raise_mid,
    "/no-read": no_read,
    "/sleep": sleep_route,
    "/hold": hold,
    "/unhold": unhold,
}
