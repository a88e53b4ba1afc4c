"""One request through a router with small real ASGI apps: a scripted client supplies
`receive` and records `send`. For the migration rules (fallback, canary, shadow).

Rules:
1. `Client` is the server's side of one request: it hands out `incoming`, then a
   disconnect of the scope's type, and keeps everything the apps sent.
2. `App` records every scope it was called with and the body it read, so a test sees
   what a replay gave the app it reached.
"""

from __future__ import annotations

from typing import Any

from gateway.asgi import Message, Receive, Scope, Send


class App:
    """Answers `status` with `body`, after reading `read` body messages (all: -1).

    Records every scope it was called with and the body it read."""

    def __init__(self, status: int = 200, body: bytes = b"", read: int = -1) -> None:
        self.status = status
        self.body = body
        self.read = read
        self.scopes: list[Scope] = []
        self.bodies: list[bytes] = []
        self.after_answer: list[Message] = []  # what receive gave once it had answered

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.scopes.append(dict(scope))
        body, count, more = b"", 0, True
        while more and count != self.read:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
            count += 1
        self.bodies.append(body)
        await send({"type": "http.response.start", "status": self.status, "headers": []})
        await send({"type": "http.response.body", "body": self.body})
        self.after_answer.append(await receive())


class Client:
    """The server side of one request: gives `incoming`, then a disconnect; keeps what
    the apps sent."""

    def __init__(self, incoming: list[Message] | None = None, websocket: bool = False) -> None:
        self.incoming = list(incoming or [])
        self.end: Message = (
            {"type": "websocket.disconnect", "code": 1006}
            if websocket
            else {"type": "http.disconnect"}
        )
        self.sent: list[Message] = []

    async def receive(self) -> Message:
        return self.incoming.pop(0) if self.incoming else self.end

    async def send(self, message: Message) -> None:
        self.sent.append(message)


def http_scope(path: str, headers: list[tuple[bytes, bytes]] | None = None) -> dict[str, Any]:
    return {
        "type": "http",
        "path": path,
        "root_path": "",
        "headers": headers or [],
        "client": ("127.0.0.1", 5000),
    }


def body(*chunks: bytes) -> list[Message]:
    return [
        {"type": "http.request", "body": chunk, "more_body": n < len(chunks) - 1}
        for n, chunk in enumerate(chunks)
    ]


def ws_scope(path: str) -> dict[str, Any]:
    return {**http_scope(path), "type": "websocket"}
