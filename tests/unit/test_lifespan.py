"""Lifespan fan-out: per-mount policies, state, ordering and failures. No sockets."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from gateway.asgi import Receive, Scope, Send
from gateway.errors import AppProtocolError, LifespanError
from gateway.server.lifespan import LifespanFanout, LifespanMount


class LifespanApp:
    """An ASGI app with a lifespan that records what happened, in a shared journal."""

    def __init__(self, name: str, journal: list[str], fail_startup: str = "") -> None:
        self.name = name
        self.journal = journal
        self.fail_startup = fail_startup

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "lifespan"
        assert scope["asgi"]["version"] == "3.0"
        await receive()
        if self.fail_startup:
            await send({"type": "lifespan.startup.failed", "message": self.fail_startup})
            return
        scope["state"]["owner"] = self.name
        self.journal.append(f"{self.name} startup")
        await send({"type": "lifespan.startup.complete"})
        await receive()
        self.journal.append(f"{self.name} shutdown")
        await send({"type": "lifespan.shutdown.complete"})


async def no_lifespan(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        raise ValueError("only http here")


def mount(app: Any, policy: str = "auto", supports: bool = True) -> LifespanMount:
    return LifespanMount(
        label=f"mount {policy}", app=app, policy=policy, supports_lifespan=supports
    )


def run_cycle(mounts: list[LifespanMount]) -> None:
    async def cycle() -> None:
        fanout = LifespanFanout(mounts)
        await fanout.startup(5)
        await fanout.shutdown(5)

    asyncio.run(cycle())


def test_startup_in_order_shutdown_in_reverse_with_state_per_mount() -> None:
    journal: list[str] = []
    first, second = mount(LifespanApp("a", journal)), mount(LifespanApp("b", journal))
    run_cycle([first, second])
    assert journal == ["a startup", "b startup", "b shutdown", "a shutdown"]
    assert first.state == {"owner": "a"} and second.state == {"owner": "b"}


def test_auto_serves_an_app_without_lifespan() -> None:
    journal: list[str] = []
    run_cycle([mount(no_lifespan, "auto"), mount(LifespanApp("b", journal))])
    assert journal == ["b startup", "b shutdown"]


def test_on_makes_missing_lifespan_a_startup_failure() -> None:
    with pytest.raises(LifespanError, match="only http here"):
        run_cycle([mount(no_lifespan, "on")])


def test_off_never_calls_the_app() -> None:
    journal: list[str] = []
    run_cycle([mount(LifespanApp("a", journal), "off")])
    assert journal == []


def test_wsgi_mounts_are_completed_on_their_behalf() -> None:
    called: list[Scope] = []

    async def recorder(scope: Scope, receive: Receive, send: Send) -> None:
        called.append(scope)

    run_cycle([mount(recorder, "auto", supports=False)])
    assert called == []
    with pytest.raises(LifespanError, match="WSGI"):
        run_cycle([mount(recorder, "on", supports=False)])


def test_startup_failure_stops_the_started_mounts_and_carries_the_message() -> None:
    journal: list[str] = []
    mounts = [
        mount(LifespanApp("a", journal)),
        mount(LifespanApp("b", journal, fail_startup="database unreachable")),
        mount(LifespanApp("c", journal)),
    ]
    with pytest.raises(LifespanError, match="database unreachable") as caught:
        run_cycle(mounts)
    assert caught.value.exit_status == 3
    assert journal == ["a startup", "a shutdown"]


def test_shutdown_that_hangs_is_bounded() -> None:
    async def hangs_on_shutdown(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "lifespan.startup.complete"})
        await receive()
        await asyncio.Event().wait()

    async def cycle() -> float:
        fanout = LifespanFanout([mount(hangs_on_shutdown)])
        await fanout.startup(5)
        loop = asyncio.get_running_loop()
        started = loop.time()
        await fanout.shutdown(0.2)
        return loop.time() - started

    assert asyncio.run(cycle()) < 2


# At most this many body parts: enough that a `send` that accepts them all is seen to
# (the app then gives up and returns), few enough that such a run ends in well under a
# second instead of spinning on the loop for ever.
BLIND_STREAM_CAP = 10_000


class ScopeBlindApp:
    """Issue 13, point 15: the 10-line app that ignores the scope type and streams until
    `send` raises, as a test of a server's lifespan. It records what its `send` did."""

    def __init__(self) -> None:
        self.parts_sent = 0
        self.raised: Exception | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await send({"type": "http.response.start", "status": 200, "headers": []})
            for _ in range(BLIND_STREAM_CAP):
                await send({"type": "http.response.body", "body": b"x", "more_body": True})
                self.parts_sent += 1
        except Exception as exc:
            self.raised = exc
            raise


def test_a_message_that_is_not_lifespan_raises_and_auto_serves_the_app() -> None:
    blind = ScopeBlindApp()
    journal: list[str] = []
    run_cycle([mount(blind, "auto"), mount(LifespanApp("b", journal))])
    assert isinstance(blind.raised, AppProtocolError), "send took http.response.start"
    assert blind.parts_sent == 0
    assert journal == ["b startup", "b shutdown"]


def test_on_makes_a_scope_blind_app_a_startup_failure() -> None:
    with pytest.raises(LifespanError, match="not a lifespan message"):
        run_cycle([mount(ScopeBlindApp(), "on")])
