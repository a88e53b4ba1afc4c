"""Raw ASGI WebSocket apps, one per route, each exercising one piece of server behaviour.

Routes are matched on the first path segment below the mount's root_path, as in
probe_asgi. Query parameters tune a route (`/close?code=4000&reason=bye`), and `id`
names the connection: the routes that wait for the client to go record the
`websocket.disconnect` they got in `disconnects[id]`.

Module-level state is shared with the tests on purpose: the integration `serve` fixture
runs the server in the test process, so a test reads `disconnects` and `flood` directly
(after the server has imported this module, `importlib.import_module("ws_apps")` is the
same module object). Writes happen on the server's loop thread; the tests only read.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

Scope = dict[str, Any]
Message = dict[str, Any]

# The subprotocols this app speaks, best first: the app's preference decides, not the
# order the client offered them in.
PREFERRED_SUBPROTOCOLS = ("chat.v2", "chat.v1")
ACCEPT_HEADERS = [(b"x-accepted-by", b"ws_apps"), (b"set-cookie", b"ws-session=abc")]
DENIAL_BODY = b"no entry: a token is required\n"

# /flood: 32 MiB in 64 KiB messages. Far more than the kernel's socket buffers and the
# transport's buffer together (a few MiB on loopback), so an app whose send never waits
# would be seen to run ahead of a client that does not read.
FLOOD_PIECE_BYTES = 64 * 1024
FLOOD_PIECES = 512
# Random, not one repeated byte: permessage-deflate cannot shrink it, so what the app
# sends is what has to cross the socket.
FLOOD_PIECE = random.Random(5).randbytes(FLOOD_PIECE_BYTES)


@dataclass
class FloodProgress:
    """What /flood has handed to `send` so far, and since when its `send` has waited."""

    bytes_sent: int = 0
    send_started: float | None = None  # time.monotonic() when the current send began
    finished: bool = False

    def blocked_for(self) -> float:
        """Seconds the app has been inside one `send` call (0 when it is not in one)."""
        started = self.send_started
        return 0.0 if started is None else time.monotonic() - started


disconnects: dict[str, Message] = {}
# /send-after-disconnect: what `send` did once the client had gone. "raised OSError" is
# the ASGI 2.4 answer; "returned" means the message was dropped without a word.
late_sends: dict[str, str] = {}
# /gated-count: each connection's gate, made on the server's loop; a test opens it with
# `server.loop.call_soon_threadsafe(gates[id].set)`.
gates: dict[str, asyncio.Event] = {}
flood = FloodProgress()
# /slow-exit: ids whose work after websocket.disconnect was done. A graceful stop must
# wait for it (within graceful_timeout), so the id is here by the time the stop returns.
finished: set[str] = set()
# /ignore: ids whose app was cancelled (it saw CancelledError) once the stop gave up.
cancelled: set[str] = set()
# /undecided: ids whose app has taken websocket.connect and waits, still in the handshake.
undecided_ids: set[str] = set()
# /slow-exit's work after the disconnect, standing in for an app that flushes state to a
# store: long enough that a stop that does not wait returns well before it is done.
SLOW_EXIT_WORK_S = 0.5


async def app(scope: Scope, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await lifespan(receive, send)
        return
    if scope["type"] == "http":
        await refuse_plain_http(send)
        return
    route = scope["path"][len(scope["root_path"]) :]
    handler = ROUTES.get("/" + route.split("/", 2)[1] if route else "/", not_found)
    await handler(scope, receive, send)


async def lifespan(receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def refuse_plain_http(send: Any) -> None:
    """These routes are WebSocket only: a plain request is told to upgrade (RFC 9110)."""
    body = b"ws_apps: WebSocket only\n"
    headers = [(b"content-length", str(len(body)).encode()), (b"upgrade", b"websocket")]
    await send({"type": "http.response.start", "status": 426, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def params(scope: Scope) -> dict[str, str]:
    return dict(parse_qsl(scope["query_string"].decode("latin-1")))


async def expect_connect(receive: Any) -> None:
    message = await receive()
    if message["type"] != "websocket.connect":
        raise RuntimeError(f"expected websocket.connect first, got {message['type']}")


def note_disconnect(scope: Scope, message: Message) -> None:
    disconnects[params(scope).get("id", "")] = dict(message)


def echo_of(message: Message) -> Message:
    """The websocket.send that returns a received message as it came: text or bytes."""
    if message.get("text") is not None:
        return {"type": "websocket.send", "text": message["text"]}
    return {"type": "websocket.send", "bytes": message["bytes"]}


async def echo_until_disconnect(scope: Scope, receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            note_disconnect(scope, message)
            return
        await send(echo_of(message))


async def echo(scope: Scope, receive: Any, send: Any) -> None:
    """Sends every message back, one websocket.send per websocket.receive."""
    await expect_connect(receive)
    await send({"type": "websocket.accept"})
    await echo_until_disconnect(scope, receive, send)


async def subprotocol(scope: Scope, receive: Any, send: Any) -> None:
    """Accepts with the best subprotocol offered and extra headers, says which, echoes."""
    await expect_connect(receive)
    offered = scope["subprotocols"]
    chosen = next((name for name in PREFERRED_SUBPROTOCOLS if name in offered), None)
    await send({"type": "websocket.accept", "subprotocol": chosen, "headers": ACCEPT_HEADERS})
    await send({"type": "websocket.send", "text": json.dumps({"chosen": chosen})})
    await echo_until_disconnect(scope, receive, send)


async def reject(scope: Scope, receive: Any, send: Any) -> None:
    """Closes before accepting: the server must answer the handshake with 403."""
    await expect_connect(receive)
    await send({"type": "websocket.close", "code": 1008})


async def deny(scope: Scope, receive: Any, send: Any) -> None:
    """Denies the upgrade with its own 401 and body (websocket.http.response extension)."""
    await expect_connect(receive)
    if "websocket.http.response" not in scope.get("extensions", {}):
        await send({"type": "websocket.close"})  # the test then sees 403, not 401
        return
    headers = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(DENIAL_BODY)).encode()),
        (b"www-authenticate", b"Bearer"),
    ]
    await send({"type": "websocket.http.response.start", "status": 401, "headers": headers})
    # In two pieces: the server must pass `more_body` on, not end after the first.
    half = len(DENIAL_BODY) // 2
    first, rest = DENIAL_BODY[:half], DENIAL_BODY[half:]
    await send({"type": "websocket.http.response.body", "body": first, "more_body": True})
    await send({"type": "websocket.http.response.body", "body": rest})


async def deny_broken(scope: Scope, receive: Any, send: Any) -> None:
    """A denial that goes wrong, as the query's `how` says: `raise` or `return` after its
    start, a `status` that is not one, or a `short` body (under its Content-Length)."""
    await expect_connect(receive)
    how = params(scope).get("how", "")
    status: Any = {"status": "abc", "status-101": 101}.get(how, 401)
    headers = [(b"content-length", b"100")] if how == "short" else []
    await send({"type": "websocket.http.response.start", "status": status, "headers": headers})
    if how == "raise":
        raise RuntimeError("the denial broke")
    if how == "short":
        await send({"type": "websocket.http.response.body", "body": b"only ten.\n"})


async def close(scope: Scope, receive: Any, send: Any) -> None:
    """Accepts, then closes with the `code` and `reason` of the query string."""
    await expect_connect(receive)
    await send({"type": "websocket.accept"})
    query = params(scope)
    code, reason = int(query.get("code", "1000")), query.get("reason", "")
    await send({"type": "websocket.close", "code": code, "reason": reason})


async def scope_route(scope: Scope, receive: Any, send: Any) -> None:
    """Accepts and sends its scope as JSON (bytes as latin-1 text), then closes 1000."""
    await expect_connect(receive)
    await send({"type": "websocket.accept"})
    shown = {key: value for key, value in scope.items() if key not in ("state", "headers")}
    shown["raw_path"] = scope["raw_path"].decode("latin-1")
    shown["query_string"] = scope["query_string"].decode("latin-1")
    shown["headers"] = [[n.decode("latin-1"), v.decode("latin-1")] for n, v in scope["headers"]]
    await send({"type": "websocket.send", "text": json.dumps(shown)})
    await send({"type": "websocket.close", "code": 1000})


async def flood_route(scope: Scope, receive: Any, send: Any) -> None:
    """Sends FLOOD_PIECES messages as fast as `send` lets it, counting them in `flood`."""
    await expect_connect(receive)
    await send({"type": "websocket.accept"})
    flood.bytes_sent, flood.finished = 0, False
    for _ in range(FLOOD_PIECES):
        flood.send_started = time.monotonic()
        await send({"type": "websocket.send", "bytes": FLOOD_PIECE})
        flood.send_started = None
        flood.bytes_sent += FLOOD_PIECE_BYTES
    flood.finished = True
    await send({"type": "websocket.close", "code": 1000, "reason": "flood done"})


async def wait(scope: Scope, receive: Any, send: Any) -> None:
    """Accepts, then waits for messages forever, ignoring them, until the disconnect."""
    await expect_connect(receive)
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            note_disconnect(scope, message)
            return


async def raise_before(scope: Scope, receive: Any, send: Any) -> None:
    await expect_connect(receive)
    raise RuntimeError("secret detail before accept")


async def raise_after(scope: Scope, receive: Any, send: Any) -> None:
    await expect_connect(receive)
    await send({"type": "websocket.accept"})
    raise RuntimeError("secret detail after accept")


async def return_after_accept(scope: Scope, receive: Any, send: Any) -> None:
    """Accepts and returns without a websocket.close: the server must close for it."""
    await expect_connect(receive)
    await send({"type": "websocket.accept"})


async def send_after_disconnect(scope: Scope, receive: Any, send: Any) -> None:
    """Waits for the client to go, then sends anyway and notes what `send` did."""
    await expect_connect(receive)
    await send({"type": "websocket.accept"})
    message = await receive()
    note_disconnect(scope, message)
    key = params(scope).get("id", "")
    try:
        await send({"type": "websocket.send", "text": "too late"})
    except OSError:
        late_sends[key] = "raised OSError"
    except Exception as exc:  # noted for the test, which shows what the server raised
        late_sends[key] = f"raised {type(exc).__name__}: {exc}"
    else:
        late_sends[key] = "returned"


async def gated_count(scope: Scope, receive: Any, send: Any) -> None:
    """Reads nothing until its gate opens (the server must stop reading meanwhile), then
    counts the bytes received; each text "count" is answered with the count so far."""
    await expect_connect(receive)
    await send({"type": "websocket.accept"})
    gate = gates[params(scope).get("id", "")] = asyncio.Event()
    await gate.wait()
    received = 0
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        if message.get("text") == "count":
            await send({"type": "websocket.send", "text": str(received)})
        else:
            received += len(message.get("bytes") or b"")


async def undecided(scope: Scope, receive: Any, send: Any) -> None:
    """Neither accepts nor denies: it notes its id in `undecided_ids`, then waits in
    `receive` (as an app awaiting an auth check might) and notes what ends the wait."""
    await expect_connect(receive)
    undecided_ids.add(params(scope).get("id", ""))
    note_disconnect(scope, await receive())


async def deaf(scope: Scope, receive: Any, send: Any) -> None:
    """Accepts, then never calls `receive` again: whatever the client sends waits in the
    server, which must bound it per connection."""
    await expect_connect(receive)
    await send({"type": "websocket.accept"})
    await asyncio.Event().wait()


async def slow_exit(scope: Scope, receive: Any, send: Any) -> None:
    """Accepts; once told websocket.disconnect, works SLOW_EXIT_WORK_S more (it awaits,
    as an app writing to a store would), then notes its id in `finished`."""
    await expect_connect(receive)
    await send({"type": "websocket.accept"})
    while (message := await receive())["type"] != "websocket.disconnect":
        pass
    note_disconnect(scope, message)
    await asyncio.sleep(SLOW_EXIT_WORK_S)
    finished.add(params(scope).get("id", ""))


async def ignore(scope: Scope, receive: Any, send: Any) -> None:
    """Accepts, then never calls receive again and never returns: only cancelling ends
    it, and it notes its id in `cancelled` when that happens."""
    await expect_connect(receive)
    await send({"type": "websocket.accept"})
    try:
        await asyncio.Event().wait()
    except asyncio.CancelledError:
        cancelled.add(params(scope).get("id", ""))
        raise


async def not_found(scope: Scope, receive: Any, send: Any) -> None:
    await expect_connect(receive)
    await send({"type": "websocket.close", "code": 1008})


ROUTES = {
    "/echo": echo,
    "/subprotocol": subprotocol,
    "/reject": reject,
    "/deny": deny,
    "/deny-broken": deny_broken,
    "/close": close,
    "/scope": scope_route,
    "/flood": flood_route,
    "/wait": wait,
    "/raise-before": raise_before,
    "/raise-after": raise_after,
    "/return": return_after_accept,
    "/send-after-disconnect": send_after_disconnect,
    "/gated-count": gated_count,
    "/ignore": ignore,
    "/slow-exit": slow_exit,
    "/undecided": undecided,
    "/deaf": deaf,
}
