"""A raw ASGI app that says which worker process answered, for supervisor tests.

Every line it writes to the file named by $WORKER_PROBE_LOG carries the worker's pid
("startup 1234", "sleep-start 1234", "shutdown 1234"), so a test that runs several
workers can tell them apart; "import 1234" comes from the process that imported this
module (the supervisor's pid with `preload`). Routes (below the mount's root_path):
- /pid: the answering worker's pid.
- /sleep?S: waits S seconds on the event loop (a slow request), then answers its pid.
- /block?S: calls time.sleep(S): the worker's event loop is stuck meanwhile.
- /log: writes a line with the pid to the gateway's error log (through logging).
Each answers the worker's pid; any other path is a 404. `slow_start` is the same app
with a lifespan startup that takes STARTUP_S seconds (a worker that boots slowly), and
`slow_factory()` returns it after blocking that long (an app slow to load, every time).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import Any

Scope = dict[str, Any]
# Long enough for a test to act on a booting worker (signal it, kill it).
STARTUP_S = 2.0
# A child of the "gateway" logger, so its lines go wherever the gateway's error log goes.
app_log = logging.getLogger("gateway.worker_probe")


async def app(scope: Scope, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await lifespan(receive, send)
        return
    route = scope["path"][len(scope["root_path"]) :] or "/"
    seconds = float(scope["query_string"] or b"0")
    if route == "/sleep":
        note("sleep-start")
        await asyncio.sleep(seconds)
    elif route == "/block":
        note("block-start")
        time.sleep(seconds)
    elif route == "/log":
        app_log.warning("worker_probe log line from %d", os.getpid())
    elif route != "/pid":
        await respond(send, b"no such route", status=404)
        return
    await respond(send, str(os.getpid()).encode())


async def slow_start(scope: Scope, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await lifespan(receive, send, startup_s=STARTUP_S)
    else:
        await app(scope, receive, send)


def slow_factory() -> Any:
    time.sleep(STARTUP_S)
    return app


async def lifespan(receive: Any, send: Any, startup_s: float = 0.0) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            note("startup-begin")
            await asyncio.sleep(startup_s)
            note("startup")
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            note("shutdown")
            await send({"type": "lifespan.shutdown.complete"})
            return


def note(event: str) -> None:
    path = os.environ.get("WORKER_PROBE_LOG")
    if path:
        with open(path, "a") as log:
            log.write(f"{event} {os.getpid()}\n")


async def respond(send: Any, body: bytes, status: int = 200) -> None:
    headers = [(b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


note("import")  # at the end: note() and everything it needs are defined by now
