"""Shadow compare (gateway/migration/shadow.py) through the real Router with small real ASGI apps:
a scripted client supplies `receive` and records `send`; the copies run as real tasks on
the test's loop, which waits for them with ShadowPool.join (a deadline, never a sleep)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from support.metric_samples import scrape, value
from support.scripted_requests import App, Client, body, http_scope, ws_scope

from gateway.adapters import LoadedApp
from gateway.asgi import ASGIApp, Interface, Message, Receive, Scope, Send, mount_label
from gateway.config.mount_table import MountConfig
from gateway.errors import ConfigError
from gateway.migration import shadow
from gateway.migration.mismatches import MismatchLog
from gateway.migration.rules import CanaryRule, FallbackRule
from gateway.migration.shadow import BODY_BYTES, ShadowPool, ShadowRule
from gateway.migration.shadows import Shadows
from gateway.process.mounts import LoadedMount, mount_rules, routed
from gateway.routing.router import Mount, Router
from gateway.server.mount_metrics import WorkerMetrics

DEADLINE_S = 10.0


class Counted:
    """The routing counters, kept in a Counter (the real ones: test_metrics.py)."""

    def __init__(self) -> None:
        self.events: Counter[tuple[str, str]] = Counter()

    def count_fallback(self, mount: str) -> None:
        self.events["fallback", mount] += 1

    def count_canary(self, mount: str) -> None:
        self.events["canary", mount] += 1

    def count_shadow(self, mount: str) -> None:
        self.events["shadow", mount] += 1

    def count_shadow_dropped(self, mount: str) -> None:
        self.events["shadow_dropped", mount] += 1

    def count_shadow_mismatch(self, mount: str) -> None:
        self.events["shadow_mismatch", mount] += 1

    def count_route_shadow(self, mount: str, route: str, mismatch: bool) -> None:
        self.events["route_shadow", mount] += 1

    def __getitem__(self, event: str) -> int:
        return self.events[event, "/api"]


class Setup:
    """A router whose /api mount shadows to "newapi", its rule, counters and log file."""

    def __init__(
        self,
        primary: ASGIApp,
        copy: ASGIApp,
        tmp_path: Path,
        *,
        percent: float = 100,
        methods: tuple[str, ...] = ("GET", "HEAD"),
        ignore: tuple[str, ...] = (),
        max_in_flight: int = 16,
        log_to_file: bool = True,
    ) -> None:
        self.counted = Counted()
        self.log_path = tmp_path / "mismatches.jsonl"
        self.log = MismatchLog(str(self.log_path) if log_to_file else "")
        self.pool = ShadowPool(max_in_flight)
        self.rule = ShadowRule(
            "newapi",
            percent,
            frozenset(methods),
            frozenset(ignore),
            self.pool,
            self.log,
            "/api",
            self.counted,
        )
        self.router = Router(
            [
                Mount("/api", primary, 10 * BODY_BYTES, Interface.ASGI, rules=[self.rule]),
                Mount("", copy, 10 * BODY_BYTES, Interface.ASGI, name="newapi"),
            ]
        )

    async def request(self, scope: dict[str, Any], client: Client | None = None) -> Client:
        """One request through the router; the primary must answer within the deadline."""
        client = client or Client(body(b""))
        await asyncio.wait_for(self.router(scope, client.receive, client.send), DEADLINE_S)
        return client

    async def settle(self) -> None:
        """Wait for every copy in flight to end."""
        assert await self.pool.join(DEADLINE_S), "shadow copies still running"

    def lines(self) -> list[dict[str, Any]]:
        if not self.log_path.exists():
            return []
        return [json.loads(line) for line in self.log_path.read_text().splitlines()]


def get(path: str = "/api/items/7", query: bytes = b"", method: str = "GET") -> dict[str, Any]:
    return {**http_scope(path), "method": method, "query_string": query}


def post(path: str, headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    return {**http_scope(path, headers), "method": "POST", "query_string": b""}


class Answers:
    """Answers with a fixed status, content type and body; counts its calls."""

    def __init__(self, status: int = 200, body: bytes = b"", content_type: bytes = b"") -> None:
        self.status = status
        self.body = body
        self.content_type = content_type
        self.calls = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.calls += 1
        headers = [(b"content-type", self.content_type)] if self.content_type else []
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        await send({"type": "http.response.body", "body": self.body})


class Blocked:
    """A shadow app that waits on `release` before it answers."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.waiting = 0  # calls waiting on the release now
        self.answered = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.waiting += 1
        await self.release.wait()
        self.waiting -= 1
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"primary"})
        self.answered += 1


def run(test: Any) -> None:
    asyncio.run(test())


# --- the copy ---------------------------------------------------------------------------


def test_a_copy_reaches_the_shadow_with_the_same_request(tmp_path: Path) -> None:
    primary, copy = App(200, b"ok"), App(200, b"ok")
    setup = Setup(primary, copy, tmp_path, methods=("POST",))
    headers = [(b"transfer-encoding", b"chunked"), (b"x-user", b"alice")]

    async def test() -> None:
        await setup.request(post("/api/orders", headers), Client(body(b"abc", b"def")))
        await setup.settle()

    run(test)
    assert primary.bodies == [b"abcdef"] and copy.bodies == [b"abcdef"]
    seen = copy.scopes[0]
    assert (seen["method"], seen["path"], seen["root_path"]) == ("POST", "/api/orders", "/api")
    assert seen["headers"] == headers
    assert mount_label(seen) == "/api>shadow:newapi"
    # The copy read its body, then waited for the end of its own answer: a disconnect.
    assert copy.after_answer == [{"type": "http.disconnect"}]
    assert (setup.counted["shadow"], setup.counted["shadow_dropped"]) == (1, 0)
    assert setup.lines() == []  # the same answer: no mismatch


def test_the_copy_gets_the_scope_as_it_was_before_the_primary_changed_it(
    tmp_path: Path,
) -> None:
    copy = App(200)

    async def meddler(scope: Scope, receive: Receive, send: Send) -> None:
        scope["root_path"] = "/api/sub"  # what a framework's own Mount does
        scope["headers"].append((b"x-added", b"by primary"))  # Starlette's MutableHeaders
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    setup = Setup(meddler, copy, tmp_path)

    async def test() -> None:
        await setup.request(get())
        await setup.settle()

    run(test)
    assert copy.scopes[0]["root_path"] == "/api"
    assert copy.scopes[0]["headers"] == []


def test_the_primarys_answer_is_unchanged(tmp_path: Path) -> None:
    primary = Answers(201, b'{"a": 1}', b"application/json")
    setup = Setup(primary, Answers(500, b"broken", b"text/plain"), tmp_path)

    async def test() -> Client:
        client = await setup.request(get())
        await setup.settle()
        return client

    client = asyncio.run(test())
    assert client.sent == [
        {
            "type": "http.response.start",
            "status": 201,
            "headers": [(b"content-type", b"application/json")],
        },
        {"type": "http.response.body", "body": b'{"a": 1}'},
    ]


def test_a_slow_shadow_never_delays_the_primary(tmp_path: Path) -> None:
    copy = Blocked()
    setup = Setup(App(200, b"primary"), copy, tmp_path)

    async def test() -> None:
        first = await setup.request(get())  # wait_for: a primary held by its copy fails
        assert [m.get("body") for m in first.sent] == [None, b"primary"]
        await until(lambda: copy.waiting == 1)
        # The copy is still blocked, and the next requests are answered meanwhile.
        second = await setup.request(get())
        assert [m.get("body") for m in second.sent] == [None, b"primary"]
        assert copy.answered == 0 and setup.pool.in_flight == 2
        copy.release.set()
        await setup.settle()

    run(test)
    assert copy.answered == 2


def test_requests_that_come_with_the_primary_are_served_before_its_copy(tmp_path: Path) -> None:
    """A burst of requests, each a few loop turns long, arriving one turn apart: every
    primary answers before the first copy calls the shadow (COPY_DELAY_S), so copies do
    not queue ahead of requests in a burst."""
    events: list[str] = []

    class Primary:
        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            for _ in range(3):
                await asyncio.sleep(0)  # a view that awaits its database
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})
            events.append("primary")

    class Copy:
        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            events.append("copy")
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})

    setup = Setup(Primary(), Copy(), tmp_path)

    async def test() -> None:
        burst = []
        for _ in range(10):
            burst.append(asyncio.create_task(setup.request(get())))
            await asyncio.sleep(0)
        await asyncio.gather(*burst)
        await until(lambda: setup.pool.started == 10)
        await setup.settle()

    run(test)
    assert events == ["primary"] * 10 + ["copy"] * 10


async def until(condition: Any) -> None:
    """Let the loop run until `condition()` holds, within the deadline."""
    async with asyncio.timeout(DEADLINE_S):
        while not condition():
            await asyncio.sleep(0)


def test_a_full_shadow_drops_the_copy_and_counts_it(tmp_path: Path) -> None:
    copy = Blocked()
    primary = App(200, b"primary")
    setup = Setup(primary, copy, tmp_path, max_in_flight=1)

    async def test() -> None:
        await setup.request(get())
        await until(lambda: copy.waiting == 1)
        for _ in range(5):
            client = await setup.request(get())
            assert [m.get("body") for m in client.sent] == [None, b"primary"]
        assert (setup.counted["shadow"], setup.counted["shadow_dropped"]) == (1, 5)
        copy.release.set()
        await setup.settle()
        await setup.request(get())  # room again
        await setup.settle()

    run(test)
    assert len(primary.scopes) == 7
    assert copy.answered == 2
    assert (setup.counted["shadow"], setup.counted["shadow_dropped"]) == (2, 5)


def test_closing_the_pool_cancels_the_copies_in_flight(tmp_path: Path) -> None:
    copy = Blocked()
    setup = Setup(App(200), copy, tmp_path)

    async def test() -> None:
        await setup.request(get())
        await until(lambda: copy.waiting == 1)
        await setup.pool.close()
        assert setup.pool.in_flight == 0

    run(test)
    assert copy.answered == 0 and setup.lines() == []


def test_a_streaming_shadow_answer_is_not_cut_short(tmp_path: Path) -> None:
    """`receive` tells the copy of a disconnect only once its answer is complete, as a
    framework that listens for one while it streams (Starlette) needs."""
    seen: list[str] = []

    async def streams(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()  # the body
        listener = asyncio.ensure_future(receive())
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for part in (b"pri", b"ma"):
            await send({"type": "http.response.body", "body": part, "more_body": True})
            await asyncio.sleep(0)
            seen.append("disconnected" if listener.done() else "listening")
        await send({"type": "http.response.body", "body": b"ry"})
        seen.append((await listener)["type"])

    setup = Setup(App(200, b"primary"), streams, tmp_path)

    async def test() -> None:
        await setup.request(get())
        await setup.settle()

    run(test)
    assert seen == ["listening", "listening", "http.disconnect"]
    assert setup.lines() == []  # "pri" + "ma" + "ry" is the primary's body


# --- which requests are copied ----------------------------------------------------------


@pytest.mark.parametrize(
    ("methods", "method", "copied"),
    [
        (("GET", "HEAD"), "GET", True),
        (("GET", "HEAD"), "HEAD", True),
        (("GET", "HEAD"), "POST", False),
        (("GET", "HEAD"), "DELETE", False),
        (("POST",), "GET", False),
        (("POST", "PUT"), "PUT", True),
    ],
)
def test_only_the_methods_listed_are_copied(
    tmp_path: Path, methods: tuple[str, ...], method: str, copied: bool
) -> None:
    copy = App(200)
    setup = Setup(App(200), copy, tmp_path, methods=methods)

    async def test() -> None:
        await setup.request(get(method=method))
        await setup.settle()

    run(test)
    assert len(copy.scopes) == int(copied)
    assert setup.counted["shadow"] == int(copied) and setup.counted["shadow_dropped"] == 0


REQUESTS = 4000


@pytest.mark.parametrize("percent", [0, 25, 100])
def test_shadow_percent_is_the_share_copied(tmp_path: Path, percent: float) -> None:
    copy = Answers()
    setup = Setup(App(200), copy, tmp_path, percent=percent, max_in_flight=REQUESTS)

    async def test() -> None:
        for _ in range(REQUESTS):
            await setup.request(get())
        await setup.settle()

    run(test)
    assert abs(100 * copy.calls / REQUESTS - percent) <= 3
    assert setup.counted["shadow"] == copy.calls


def test_a_websocket_is_never_copied(tmp_path: Path) -> None:
    copy = App(200)
    seen: list[str] = []

    async def accepts(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append((await receive())["type"])
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close"})

    setup = Setup(accepts, copy, tmp_path)

    async def test() -> None:
        client = Client([{"type": "websocket.connect"}], websocket=True)
        await setup.request({**ws_scope("/api/ws"), "method": "GET"}, client)
        await setup.settle()

    run(test)
    assert seen == ["websocket.connect"] and not copy.scopes
    assert setup.counted.events == Counter()


def test_a_declared_body_over_the_cap_is_dropped_before_the_primary_runs(
    tmp_path: Path,
) -> None:
    primary, copy = App(200), App(200)
    setup = Setup(primary, copy, tmp_path, methods=("POST",))
    too_big = b"x" * (BODY_BYTES + 1)
    headers = [(b"content-length", str(len(too_big)).encode())]

    async def test() -> None:
        await setup.request(post("/api/upload", headers), Client(body(too_big)))
        await setup.settle()

    run(test)
    assert primary.bodies == [too_big] and not copy.scopes
    assert (setup.counted["shadow"], setup.counted["shadow_dropped"]) == (0, 1)


def test_a_chunked_body_that_grows_past_the_cap_is_dropped(tmp_path: Path) -> None:
    primary, copy = App(200), App(200)
    setup = Setup(primary, copy, tmp_path, methods=("POST",))
    half = b"x" * (BODY_BYTES // 2 + 1)

    async def test() -> None:
        headers = [(b"transfer-encoding", b"chunked")]
        await setup.request(post("/api/upload", headers), Client(body(half, half)))
        await setup.settle()

    run(test)
    assert primary.bodies == [half + half] and not copy.scopes
    assert setup.counted["shadow_dropped"] == 1


def test_a_body_the_primary_left_unread_is_not_known_and_not_copied(tmp_path: Path) -> None:
    copy = App(200)
    setup = Setup(Answers(200), copy, tmp_path, methods=("POST",))  # never reads

    async def test() -> None:
        headers = [(b"content-length", b"3")]
        await setup.request(post("/api/form", headers), Client(body(b"abc")))
        await setup.settle()

    run(test)
    assert not copy.scopes and setup.counted["shadow_dropped"] == 1


def test_a_request_without_a_body_is_copied_though_the_primary_never_read(
    tmp_path: Path,
) -> None:
    copy = App(200)
    setup = Setup(Answers(200), copy, tmp_path)

    async def test() -> None:
        await setup.request(get())
        await setup.settle()

    run(test)
    assert copy.bodies == [b""]


def test_a_primary_that_raises_is_not_copied_and_its_error_is_its_own(tmp_path: Path) -> None:
    copy = App(200)

    async def fails(scope: Scope, receive: Receive, send: Send) -> None:
        raise RuntimeError("primary broke")

    setup = Setup(fails, copy, tmp_path)

    async def test() -> None:
        with pytest.raises(RuntimeError, match="primary broke"):
            await setup.request(get())
        await setup.settle()

    run(test)
    assert not copy.scopes and setup.counted.events == Counter()


# --- comparing and logging --------------------------------------------------------------


def compared(
    tmp_path: Path,
    primary: ASGIApp,
    copy: ASGIApp,
    ignore: tuple[str, ...] = (),
    scope: dict[str, Any] | None = None,
) -> Setup:
    setup = Setup(primary, copy, tmp_path, ignore=ignore)

    async def test() -> None:
        await setup.request(scope or get())
        await setup.settle()

    run(test)
    return setup


def test_a_status_mismatch_is_one_json_line(tmp_path: Path) -> None:
    primary = Answers(200, b'{"id": 7}', b"application/json")
    copy = Answers(404, b'{"detail": "Not Found"}', b"application/json")
    setup = compared(tmp_path, primary, copy, scope=get("/api/items/7", b"full=1"))
    [line] = setup.lines()
    assert set(line) == {
        "time",
        "mount",
        "shadow_mount",
        "request",
        "differs",
        "primary",
        "shadow",
        "diff",
        "kind",
    }
    assert line["kind"] == "status, body $.id"  # issue 17, point 3: what to count by
    assert (line["mount"], line["shadow_mount"]) == ("/api", "newapi")
    assert line["request"] == "GET /api/items/7?full=1"
    assert line["differs"] == ["status", "body"]
    assert line["primary"] == {"status": 200, "content_type": "application/json", "bytes": 9}
    assert line["shadow"] == {"status": 404, "content_type": "application/json", "bytes": 23}
    assert line["diff"] == {
        "json": [
            {"path": "$.id", "primary": "7"},
            {"path": "$.detail", "shadow": '"Not Found"'},
        ]
    }
    assert line["time"].endswith("+00:00")
    assert setup.counted["shadow_mismatch"] == 1


def test_json_differing_only_in_an_ignored_key_is_no_mismatch(tmp_path: Path) -> None:
    primary = Answers(200, b'{"id": 7, "meta": {"at": "10:00"}}', b"application/json")
    copy = Answers(200, b'{"meta":{"at":"10:01"},"id":7}\n', b"application/json")
    setup = compared(tmp_path, primary, copy, ignore=("at",))
    assert setup.lines() == [] and setup.counted["shadow_mismatch"] == 0
    (tmp_path / "again").mkdir()
    setup = compared(tmp_path / "again", primary, copy)  # not ignored: a mismatch
    [line] = setup.lines()
    assert line["diff"] == {
        "json": [{"path": "$.meta.at", "primary": '"10:00"', "shadow": '"10:01"'}]
    }


def test_a_content_type_mismatch(tmp_path: Path) -> None:
    primary = Answers(200, b"<p>hi</p>", b"text/html; charset=utf-8")
    copy = Answers(200, b"<p>hi</p>", b"text/plain; charset=utf-8")
    [line] = compared(tmp_path, primary, copy).lines()
    assert line["differs"] == ["content-type"] and line["diff"] == {}
    assert line["shadow"]["content_type"] == "text/plain; charset=utf-8"


def test_equal_media_types_written_differently_match(tmp_path: Path) -> None:
    primary = Answers(200, b"x", b"text/html; charset=UTF-8")
    copy = Answers(200, b"x", b"Text/HTML;charset=utf-8")
    assert compared(tmp_path, primary, copy).lines() == []


def test_a_text_body_mismatch_shows_both_bodies_around_the_difference(tmp_path: Path) -> None:
    primary = Answers(200, b"line one\nline two: legacy\n", b"text/plain")
    copy = Answers(200, b"line one\nline two: new code\n", b"text/plain")
    [line] = compared(tmp_path, primary, copy).lines()
    assert line["differs"] == ["body"]
    assert line["diff"] == {
        "offset": 19,
        "primary": "line one\nline two: legacy\n",
        "shadow": "line one\nline two: new code\n",
    }


def test_mismatches_go_to_the_error_log_without_shadow_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="gateway.shadow")
    setup = Setup(Answers(200, b"a"), Answers(200, b"b"), tmp_path, log_to_file=False)

    async def test() -> None:
        await setup.request(get())
        await setup.settle()

    run(test)
    [record] = [r for r in caplog.records if r.name == "gateway.shadow"]
    assert record.levelno == logging.WARNING
    message = record.getMessage()
    assert message.startswith("shadow mismatch: ")
    assert json.loads(message.removeprefix("shadow mismatch: "))["differs"] == ["body"]
    assert not setup.log_path.exists()


@pytest.mark.parametrize("started", [False, True])
def test_a_shadow_that_raises_has_no_effect_on_the_primary(
    tmp_path: Path, started: bool, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="gateway.shadow")

    async def broken(scope: Scope, receive: Receive, send: Send) -> None:
        if started:
            await send({"type": "http.response.start", "status": 200, "headers": []})
        raise RuntimeError("shadow broke")

    setup = Setup(Answers(200, b"fine"), broken, tmp_path)

    async def test() -> Client:
        client = await setup.request(get())
        await setup.settle()
        return client

    client = asyncio.run(test())
    assert [m.get("body") for m in client.sent] == [None, b"fine"]
    [line] = setup.lines()
    assert line["shadow"]["error"] == "RuntimeError('shadow broke')"
    assert line["shadow"]["status"] == (200 if started else None)
    logged = [r for r in caplog.records if r.name == "gateway.shadow"]
    assert [r.levelno for r in logged] == [logging.DEBUG]  # the traceback, at debug only
    assert setup.counted["shadow_mismatch"] == 1


def test_a_shadow_that_does_not_answer_in_time_is_a_mismatch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shadow, "TIMEOUT_S", 0.05)
    copy = Blocked()  # never released
    setup = Setup(Answers(200, b"fine"), copy, tmp_path)

    async def test() -> None:
        await setup.request(get())
        await setup.settle()

    run(test)
    [line] = setup.lines()
    assert line["shadow"]["error"] == "no complete answer within 0.05 s"
    assert setup.pool.in_flight == 0


def test_large_bodies_are_compared_off_the_loop_and_still_found_equal(tmp_path: Path) -> None:
    big = json.dumps({"rows": list(range(30_000))}).encode()
    assert len(big) > shadow.INLINE_COMPARE_BYTES
    primary = Answers(200, big, b"application/json")
    copy = Answers(200, json.dumps({"rows": list(range(30_000))}, indent=1).encode())
    [line] = compared(tmp_path, primary, copy).lines()
    assert line["differs"] == ["content-type"]  # the bodies are equal as JSON


# --- the worker's side: Shadows, and the counters of fallback and canary -----------------


def test_shadows_builds_the_rule_from_the_mount_and_refuses_an_unopenable_log(
    tmp_path: Path,
) -> None:
    shadows = Shadows()
    mount = MountConfig(prefix="/api", app="m:a", shadow="newapi", shadow_max_in_flight=3)
    rule = shadows.rule(mount, ("gateway.toml", "mount #1"), None)
    assert (rule.to_mount, rule.percent, rule.methods, rule.label) == (
        "newapi",
        100.0,
        frozenset({"GET", "HEAD"}),
        "/api",
    )
    assert rule.pool.limit == 3
    missing = str(tmp_path / "no-such-dir" / "log.jsonl")
    with pytest.raises(ConfigError) as caught:
        shadows.rule(
            MountConfig(prefix="/x", app="m:a", shadow="n", shadow_log=missing),
            ("gateway.toml", "mount #2"),
            None,
        )
    assert (caught.value.table, caught.value.key) == ("mount #2", "shadow_log")
    assert "cannot open" in caught.value.reason
    asyncio.run(shadows.close())


def test_fallback_and_canary_count_under_the_routing_mounts_label() -> None:
    counted = Counted()
    fallback = FallbackRule("legacy", frozenset({404}), 100, "/api", counted)
    canary = CanaryRule("legacy", 100, label="/shop", metrics=counted)
    router = Router(
        [
            Mount("/api", App(404), 1000, Interface.ASGI, rules=[fallback]),
            Mount("/shop", App(200), 1000, Interface.ASGI, rules=[canary]),
            Mount("", App(200), 1000, Interface.ASGI, name="legacy"),
        ]
    )

    async def test() -> None:
        for path in ("/api/x", "/api/y", "/shop/z"):
            client = Client(body(b""))
            await router(http_scope(path), client.receive, client.send)

    run(test)
    assert counted.events == Counter({("fallback", "/api"): 2, ("canary", "/shop"): 1})


def test_the_workers_rules_count_into_the_metrics() -> None:
    """The worker builds the rules with its WorkerMetrics: the real counters, read back
    from the endpoint's exposition, under the routing mount's label (prefix or name)."""
    worker_metrics = WorkerMetrics("/_gateway/metrics")
    api = MountConfig(prefix="/api", app="m:a", fallback="legacy")
    shop = MountConfig(name="shop", app="m:a", canary="legacy", canary_percent=100)
    router = Router(
        [
            Mount("/api", App(404), 1000, Interface.ASGI, rules=mount_rules(api, worker_metrics)),
            Mount("/", App(200), 1000, Interface.ASGI, rules=[CanaryRule("shop", 100)]),
            Mount(
                "",
                App(200),
                1000,
                Interface.ASGI,
                name="shop",
                rules=mount_rules(shop, worker_metrics),
            ),
            Mount("", App(200), 1000, Interface.ASGI, name="legacy"),
        ]
    )

    async def test() -> None:
        for path in ("/api/x", "/other"):
            client = Client(body(b""))
            await router(http_scope(path), client.receive, client.send)

    run(test)
    samples = scrape(worker_metrics)
    assert value(samples, "gateway_fallbacks_total", mount="/api") == 1
    assert value(samples, "gateway_canary_requests_total", mount="shop") == 1


def test_the_rules_wrap_the_measured_app() -> None:
    """The worker builds each mount whole (gateway/process/worker.py `routed`): its app
    behind the metrics middleware, then the rules around both, linked once. So the answer
    that fell back counts under the mount that gave it, and the replay under its own."""
    worker_metrics = WorkerMetrics("/_gateway/metrics")
    api = MountConfig(prefix="/api", app="m:a", fallback="legacy")
    legacy = MountConfig(name="legacy", app="m:b")
    asgi = Interface.ASGI
    loaded = [
        LoadedMount(api, LoadedApp(App(404), asgi, "m:a", None, supports_lifespan=True)),
        LoadedMount(legacy, LoadedApp(App(200), asgi, "m:b", None, supports_lifespan=True)),
    ]
    router = Router(
        [routed(m, mount_rules(m.config, worker_metrics), worker_metrics) for m in loaded]
    )
    client = Client(body(b""))
    run(lambda: router(http_scope("/api/x"), client.receive, client.send))
    samples = scrape(worker_metrics)
    assert client.sent[0]["status"] == 200
    assert value(samples, "gateway_requests_total", mount="/api", status_class="4xx") == 1
    assert value(samples, "gateway_requests_total", mount="legacy", status_class="2xx") == 1


def test_message_types_the_copy_ignores(tmp_path: Path) -> None:
    """A shadow app may send messages besides the response (an extension): only the
    response counts."""

    async def extra(scope: Scope, receive: Receive, send: Send) -> None:
        message: Message = {"type": "http.response.debug", "info": {}}
        await send(message)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"same"})

    assert compared(tmp_path, Answers(200, b"same"), extra).lines() == []


# --- what a copy carries (issue 13, point 12) ---------------------------------------------


@pytest.mark.parametrize(
    ("drop", "kept"),
    [
        (None, [b"x-user"]),  # the rule's default: Cookie and Authorization
        (frozenset({b"x-user"}), [b"cookie", b"authorization"]),
        (frozenset(), [b"cookie", b"x-user", b"authorization"]),
    ],
)
def test_a_copy_goes_without_the_dropped_header_fields(
    tmp_path: Path, drop: frozenset[bytes] | None, kept: list[bytes]
) -> None:
    primary, copy = App(200, b"ok"), App(200, b"ok")
    setup = Setup(primary, copy, tmp_path)
    if drop is not None:
        setup.rule = dataclasses.replace(setup.rule, drop_headers=drop)
        setup.router = Router(
            [
                Mount("/api", primary, 10 * BODY_BYTES, Interface.ASGI, rules=[setup.rule]),
                Mount("", copy, 10 * BODY_BYTES, Interface.ASGI, name="newapi"),
            ]
        )
    headers = [
        (b"cookie", b"session=s3cret"),
        (b"x-user", b"alice"),
        (b"authorization", b"Bearer t"),
    ]
    scope = {**http_scope("/api/items/7", headers), "method": "GET", "query_string": b""}

    async def test() -> None:
        await setup.request(scope)
        await setup.settle()

    run(test)
    assert primary.scopes[0]["headers"] == headers  # the primary gets every field
    assert [name for name, _ in copy.scopes[0]["headers"]] == kept


def test_shadow_rule_takes_drop_headers_from_the_mount(tmp_path: Path) -> None:
    shadows = Shadows()
    config = MountConfig(prefix="/api", app="a:b", shadow="newapi")
    rule = shadows.rule(config, ("gateway.toml", "mount #1"), None)
    assert rule.drop_headers == {b"cookie", b"authorization"}
    config = MountConfig(
        prefix="/api", app="a:b", shadow="newapi", shadow_drop_headers=("x-api-key",)
    )
    assert shadows.rule(config, ("gateway.toml", "mount #1"), None).drop_headers == {b"x-api-key"}
