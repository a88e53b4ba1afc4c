"""Test seams that stand in for the server around one ASGI call: no sockets, no loop of
the server's, and no mock of the app under test.

- `Receive` hands out scripted messages (or raises scripted exceptions), then a
  disconnect; `Send` records what the app sent and can fail a body as a gone client does.
- `http_scope` is a whole ASGI HTTP scope; `body` one `http.request` message.
- `call` runs one request through an app with `asyncio.run`; `answer` is a small app.

Rules:
1. A seam replaces the server, never the thing under test: the adapter, middleware or
   router that a test drives is the real one.
2. An exception the app raises reaches the test (`call` does not catch it).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from gateway.asgi import ASGIApp, Message, Scope
from gateway.errors import ClientDisconnected

# An ASGI app as these tests write it: receive and send are the seams below.
App = Callable[[Scope, Any, Any], Awaitable[None]]


class Receive:
    """receive(): hands out the given messages (or raises the given exceptions)."""

    def __init__(self, *items: Message | BaseException) -> None:
        self.items = list(items)
        self.calls = 0

    async def __call__(self) -> Message:
        self.calls += 1
        if not self.items:
            return {"type": "http.disconnect"}
        item = self.items.pop(0)
        if isinstance(item, BaseException):
            raise item
        return item


def body(data: bytes, more: bool = False) -> Message:
    return {"type": "http.request", "body": data, "more_body": more}


class Send:
    """send(): records messages; optionally raises ClientDisconnected on a body."""

    def __init__(self, disconnect_on_body: bool = False) -> None:
        self.messages: list[Message] = []
        self.disconnect_on_body = disconnect_on_body
        self.on_body: Callable[[bytes], None] = lambda data: None

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.body" and self.disconnect_on_body:
            raise ClientDisconnected("gone")
        self.messages.append(message)
        if message["type"] == "http.response.body":
            self.on_body(message["body"])

    @property
    def status(self) -> int:
        return int(self.messages[0]["status"])

    @property
    def body(self) -> bytes:
        return b"".join(m["body"] for m in self.messages[1:])

    @property
    def bodies(self) -> list[Message]:
        return [m for m in self.messages if m["type"] == "http.response.body"]


def http_scope(path: str = "/", **overrides: Any) -> Message:
    scope: Message = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode("utf-8"),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    scope.update(overrides)
    return scope


def call(app: ASGIApp, scope: Scope | None = None) -> Send:
    """One request through `app`; an exception the app raised is the test's to see."""
    send = Send()

    async def request() -> None:
        await app(scope or http_scope(), Receive(body(b"")), send)

    asyncio.run(request())
    return send


def answer(status: int = 200, after_s: float = 0.0, linger_s: float = 0.0) -> App:
    """An app that answers `status` with b"x" after `after_s`, then goes on working for
    `linger_s` after its last message (a background task)."""

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        await asyncio.sleep(after_s)
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b"x"})
        await asyncio.sleep(linger_s)

    return app
