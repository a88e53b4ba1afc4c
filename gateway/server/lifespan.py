"""Lifespan fan-out: the ASGI lifespan protocol run once per mount.

This sits at layer 2, beside the connection, rather than in the router as DESIGN §3 first
placed it: each mount's lifespan is a coroutine that lives as long as the server, so it
needs tasks, and the router (layer 1) stays free of asyncio.

Rules (the ASGI lifespan spec, django/asgiref specs/lifespan.rst):
1. Startup runs mount by mount, in file order; shutdown runs in reverse order, and only
   for mounts whose startup completed. A startup failure shuts the started ones down and
   raises LifespanError (exit status 3) carrying the app's message.
2. Unsupported lifespan: `lifespan = "auto"`: an app that raises before answering
   startup, or returns without answering, does not support lifespan; it is logged and
   the mount is served anyway. `"on"`: the same is a startup failure. `"off"`: the app is
   never sent lifespan.
3. Apps that cannot take lifespan at all (WSGI apps, via adapters) are completed on their
   behalf without being called.
4. Each mount's `state` dict goes into its lifespan scope; the router hands a shallow
   copy of it to every request that mount serves.
5. `send` raises AppProtocolError on a message that is not one of the four lifespan
   messages (the ASGI spec, "Error Handling": a server raises out of `send` on an
   invalid message). An app that ignores the scope type and runs its HTTP code at
   startup therefore fails at its first `send`, which rule "unsupported lifespan" reads
   as "does not support lifespan", instead of streaming into a `send` that never pushes
   back.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from gateway.asgi import ASGI_VERSION, LIFESPAN_SPEC_VERSION, ASGIApp, Message
from gateway.errors import AppProtocolError, LifespanError

log = logging.getLogger("gateway.error")
# The messages a lifespan app may send (the ASGI lifespan spec); anything else raises.
LIFESPAN_MESSAGES = frozenset(
    {
        "lifespan.startup.complete",
        "lifespan.startup.failed",
        "lifespan.shutdown.complete",
        "lifespan.shutdown.failed",
    }
)


@dataclass
class LifespanMount:
    """What the fan-out needs to know of one mount."""

    label: str
    app: ASGIApp
    policy: str  # "auto" | "on" | "off"
    supports_lifespan: bool
    state: dict[str, Any] = field(default_factory=dict)


class MountLifespan:
    """One mount's lifespan conversation with its app."""

    def __init__(self, mount: LifespanMount) -> None:
        self.mount = mount
        self._inbox: asyncio.Queue[Message] = asyncio.Queue()
        self._startup_answer: asyncio.Future[Message] | None = None
        self._shutdown_answer: asyncio.Future[Message] | None = None
        self._task: asyncio.Task[None] | None = None
        self.running = False

    async def startup(self) -> None:
        loop = asyncio.get_running_loop()
        self._startup_answer = loop.create_future()
        self._shutdown_answer = loop.create_future()
        self._task = loop.create_task(self._run_app())
        await self._inbox.put({"type": "lifespan.startup"})
        answer = await self._startup_answer
        if answer["type"] == "lifespan.startup.complete":
            self.running = True
        elif answer["type"] == "lifespan.startup.failed":
            raise LifespanError(f"{self.mount.label}: {answer.get('message', '')}".strip())

    async def shutdown(self, timeout_s: float) -> None:
        assert self._shutdown_answer is not None and self._task is not None
        await self._inbox.put({"type": "lifespan.shutdown"})
        try:
            answer = await asyncio.wait_for(asyncio.shield(self._shutdown_answer), timeout_s)
        except TimeoutError:
            log.error("lifespan shutdown of %s timed out", self.mount.label)
            self._task.cancel()
            return
        if answer["type"] == "lifespan.shutdown.failed":
            log.error(
                "lifespan shutdown of %s failed: %s", self.mount.label, answer.get("message", "")
            )

    async def _run_app(self) -> None:
        scope = {
            "type": "lifespan",
            "asgi": {"version": ASGI_VERSION, "spec_version": LIFESPAN_SPEC_VERSION},
            "state": self.mount.state,
        }
        try:
            await self.mount.app(scope, self._inbox.get, self._app_sent)
        except BaseException as exc:
            self._app_stopped(exc)
            if not isinstance(exc, Exception):
                raise
        else:
            self._app_stopped(None)

    async def _app_sent(self, message: Message) -> None:
        kind = message.get("type")
        if kind not in LIFESPAN_MESSAGES:  # rule "`send` raises AppProtocolError"
            raise AppProtocolError(f"{kind!r} is not a lifespan message")
        if kind.startswith("lifespan.startup.") and self._startup_answer is not None:
            _settle(self._startup_answer, message)
        elif kind.startswith("lifespan.shutdown.") and self._shutdown_answer is not None:
            _settle(self._shutdown_answer, message)

    def _app_stopped(self, exc: BaseException | None) -> None:
        """The app's lifespan coroutine ended; answer whichever phase still waits."""
        assert self._startup_answer is not None and self._shutdown_answer is not None
        if not self._startup_answer.done():
            self._startup_answer.set_result(self._unsupported(exc))
        elif exc is not None and self.running:
            log.error("lifespan of %s failed", self.mount.label, exc_info=exc)
        _settle(self._shutdown_answer, {"type": "lifespan.shutdown.complete"})

    def _unsupported(self, exc: BaseException | None) -> Message:
        reason = f"{type(exc).__name__}: {exc}" if exc is not None else "returned early"
        if self.mount.policy == "on":
            return {"type": "lifespan.startup.failed", "message": reason}
        log.info("%s does not support lifespan (%s); serving it without", self.mount.label, reason)
        return {"type": "lifespan.unsupported"}


def _settle(future: asyncio.Future[Message], message: Message) -> None:
    if not future.done():
        future.set_result(message)


class LifespanFanout:
    """Starts and stops every mount's lifespan, in order (rule "startup runs mount by
    mount")."""

    def __init__(self, mounts: Sequence[LifespanMount]) -> None:
        self._lifespans = [MountLifespan(m) for m in mounts if _takes_lifespan(m)]
        self._started: list[MountLifespan] = []

    async def startup(self, timeout_s: float) -> None:
        for lifespan in self._lifespans:
            try:
                await lifespan.startup()
            except LifespanError:
                await self.shutdown(timeout_s)
                raise
            self._started.append(lifespan)

    async def shutdown(self, timeout_s: float) -> None:
        while self._started:
            await self._started.pop().shutdown(timeout_s)


def _takes_lifespan(mount: LifespanMount) -> bool:
    if mount.policy == "off":
        return False
    if not mount.supports_lifespan:
        if mount.policy == "on":
            raise LifespanError(f'{mount.label}: lifespan = "on" but the app is WSGI')
        return False
    return True
