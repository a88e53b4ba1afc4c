"""Mounts reached by name: fallback and canary, through the real Router with small real
ASGI apps. No sockets: a scripted client supplies `receive` and records `send`."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from support.scripted_requests import App, Client, body, http_scope, ws_scope

from gateway.asgi import Interface, Message, Receive, Scope, Send, mount_label
from gateway.errors import ClientDisconnected
from gateway.migration.rules import BUCKETS, CanaryRule, FallbackRule, bucket
from gateway.routing.router import Mount, Router

CAP = 100  # fallback_body_bytes in these tests


def fallback_router(
    first: Any, legacy: Any, statuses: frozenset[int] = frozenset({404, 405})
) -> Router:
    rule = FallbackRule("legacy", statuses, CAP)
    return Router(
        [
            Mount("/api", first, 1000, Interface.ASGI, name="new", rules=[rule]),
            Mount("", legacy, 1000, Interface.ASGI, name="legacy"),
        ]
    )


def serve(router: Router, scope: dict[str, Any], client: Client) -> dict[str, Any]:
    asyncio.run(router(scope, client.receive, client.send))
    return scope


def statuses(client: Client) -> list[int]:
    return [m["status"] for m in client.sent if m["type"].endswith("response.start")]


# --- fallback -------------------------------------------------------------------------


@pytest.mark.parametrize("status", [404, 405])
def test_fallback_replays_to_the_named_mount(status: int) -> None:
    new, legacy = App(status, b"new says no"), App(200, b"legacy")
    router = fallback_router(new, legacy)
    router.mounts[1].state["db"] = "legacy-db"
    client = Client(body(b""))
    scope = serve(router, http_scope("/api/users/7"), client)
    assert client.sent == [
        {"type": "http.response.start", "status": 200, "headers": []},
        {"type": "http.response.body", "body": b"legacy"},
    ]
    replayed = legacy.scopes[0]
    # The routing mount's path semantics; the target's own state.
    assert (replayed["root_path"], replayed["path"]) == ("/api", "/api/users/7")
    assert replayed["state"] == {"db": "legacy-db"}
    assert mount_label(scope) == "/api>fallback:legacy"
    # The discarded app was told its client had gone.
    assert new.after_answer == [{"type": "http.disconnect"}]


@pytest.mark.parametrize("status", [200, 201, 302, 403, 500])
def test_other_statuses_are_the_answer(status: int) -> None:
    new, legacy = App(status, b"new"), App(200, b"legacy")
    client = Client(body(b""))
    scope = serve(fallback_router(new, legacy), http_scope("/api/x"), client)
    assert statuses(client) == [status]
    assert not legacy.scopes
    assert mount_label(scope) == "/api"


def test_fallback_on_is_the_mounts_own_list() -> None:
    client = Client(body(b""))
    router = fallback_router(App(500), App(200, b"legacy"), frozenset({500}))
    serve(router, http_scope("/api/x"), client)
    assert statuses(client) == [200]
    client = Client(body(b""))
    serve(fallback_router(App(404), App(200), frozenset({500})), http_scope("/api/x"), client)
    assert statuses(client) == [404]


def test_replay_gets_the_whole_body_when_the_first_app_read_part_of_it() -> None:
    new, legacy = App(404, read=1), App(200)
    client = Client(body(b"abc", b"def", b"ghi"))
    serve(fallback_router(new, legacy), http_scope("/api/x"), client)
    assert new.bodies == [b"abc"]
    assert legacy.bodies == [b"abcdefghi"]
    assert statuses(client) == [200]


@pytest.mark.parametrize("read", [0, -1])
def test_replay_gets_the_body_whether_or_not_the_first_app_read_it(read: int) -> None:
    new, legacy = App(404, read=read), App(200)
    client = Client(body(b"x" * 60, b"y" * 40))  # exactly CAP
    serve(fallback_router(new, legacy), http_scope("/api/x"), client)
    assert legacy.bodies == [b"x" * 60 + b"y" * 40]
    assert statuses(client) == [200]


def test_declared_length_over_the_cap_keeps_the_first_answer() -> None:
    new, legacy = App(404, b"new 404"), App(200)
    headers = [(b"content-length", str(CAP + 1).encode())]
    client = Client(body(b"x" * (CAP + 1)))
    scope = serve(fallback_router(new, legacy), http_scope("/api/x", headers), client)
    assert statuses(client) == [404]
    assert client.sent[1]["body"] == b"new 404"
    assert not legacy.scopes and mount_label(scope) == "/api"


def test_chunked_body_read_past_the_cap_keeps_the_first_answer() -> None:
    new, legacy = App(404), App(200)
    headers = [(b"transfer-encoding", b"chunked")]
    client = Client(body(b"x" * 60, b"y" * 60))
    serve(fallback_router(new, legacy), http_scope("/api/x", headers), client)
    assert statuses(client) == [404]
    assert not legacy.scopes


def test_a_body_the_first_app_did_not_read_is_replayed_whatever_its_length() -> None:
    """Only what the first app reads is kept; the rest comes live to the target."""
    new, legacy = App(404, read=0), App(200)
    client = Client(body(b"x" * 80, b"y" * 80))
    serve(fallback_router(new, legacy), http_scope("/api/x"), client)
    assert legacy.bodies == [b"x" * 80 + b"y" * 80]


def test_a_streaming_404_is_cut_and_replayed_before_any_byte_goes_out() -> None:
    sent_by_404: list[int] = []

    async def streaming_404(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "http.response.start", "status": 404, "headers": []})
        for n in range(1000):  # cut short: the discarded stream's send raises
            await send({"type": "http.response.body", "body": b"x", "more_body": True})
            sent_by_404.append(n)

    legacy = App(200, b"legacy")
    client = Client(body(b""))
    serve(fallback_router(streaming_404, legacy), http_scope("/api/x"), client)
    assert client.sent == [
        {"type": "http.response.start", "status": 200, "headers": []},
        {"type": "http.response.body", "body": b"legacy"},
    ]
    assert sent_by_404 == []  # its first body part was its last


def test_a_streaming_200_passes_at_once_and_is_never_replayed() -> None:
    legacy = App(200, b"legacy")
    client = Client(body(b""))
    waiting, release = asyncio.Event(), asyncio.Event()
    seen_before_release: list[Message] = []

    async def stream(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"first", "more_body": True})
        waiting.set()
        await release.wait()
        await send({"type": "http.response.body", "body": b"last"})

    async def run() -> None:
        router = fallback_router(stream, legacy)
        task = asyncio.ensure_future(router(http_scope("/api/x"), client.receive, client.send))
        await asyncio.wait_for(waiting.wait(), 10)  # the app waits, mid-stream
        seen_before_release.extend(client.sent)
        release.set()
        await task

    asyncio.run(run())
    assert [m.get("body") for m in seen_before_release] == [None, b"first"]
    assert [m.get("body") for m in client.sent] == [None, b"first", b"last"]
    assert not legacy.scopes


def test_the_replay_gets_the_scope_as_it_was_before_the_first_app_changed_it() -> None:
    legacy = App(200)

    async def meddler(scope: Scope, receive: Receive, send: Send) -> None:
        scope["root_path"] = "/api/sub"  # what a framework's own Mount does
        scope["endpoint"] = "new's view"
        scope["state"]["user"] = "seen by new"
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    serve(fallback_router(meddler, legacy), http_scope("/api/x"), Client(body(b"")))
    replayed = legacy.scopes[0]
    assert replayed["root_path"] == "/api" and "endpoint" not in replayed
    assert replayed["state"] == {}


def test_an_error_of_the_discarded_app_does_not_stop_the_fallback() -> None:
    async def fails_after_404(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 404, "headers": []})
        raise RuntimeError("after its answer")

    client = Client(body(b""))
    serve(fallback_router(fails_after_404, App(200)), http_scope("/api/x"), client)
    assert statuses(client) == [200]


def test_an_error_before_the_answer_is_the_routing_apps_own() -> None:
    async def fails(scope: Scope, receive: Receive, send: Send) -> None:
        raise RuntimeError("before any answer")

    legacy = App(200)
    with pytest.raises(RuntimeError, match="before any answer"):
        serve(fallback_router(fails, legacy), http_scope("/api/x"), Client(body(b"")))
    assert not legacy.scopes


def test_fallback_chains_and_the_log_names_every_hop() -> None:
    last = App(200, b"last")
    rule_b = FallbackRule("c", frozenset({404}), CAP)
    router = Router(
        [
            Mount(
                "/api",
                App(404),
                1000,
                Interface.ASGI,
                rules=[FallbackRule("b", frozenset({404}), CAP)],
            ),
            Mount("", App(404), 1000, Interface.ASGI, name="b", rules=[rule_b]),
            Mount("", last, 1000, Interface.ASGI, name="c"),
        ]
    )
    client = Client(body(b"payload"))
    scope = serve(router, http_scope("/api/x"), client)
    assert mount_label(scope) == "/api>fallback:b>fallback:c"
    assert last.bodies == [b"payload"] and last.scopes[0]["root_path"] == "/api"


def test_a_target_with_its_own_prefix_still_serves_with_the_routing_prefix() -> None:
    legacy = App(200)
    rule = FallbackRule("legacy", frozenset({404}), CAP)
    router = Router(
        [
            Mount("/api", App(404), 1000, Interface.ASGI, rules=[rule]),
            Mount("/", legacy, 1000, Interface.ASGI, name="legacy"),
        ]
    )
    serve(router, http_scope("/api/x"), Client(body(b"")))
    serve(router, http_scope("/other"), Client(body(b"")))
    assert [s["root_path"] for s in legacy.scopes] == ["/api", ""]
    assert router.match("/other") is router.mounts[1]


# --- WebSocket fallback ---------------------------------------------------------------


class WebSocketApp:
    """Denies with `deny` ("404": websocket.http.response 404, "close": a close before
    accept), or accepts and says its name."""

    def __init__(self, name: str, deny: str = "") -> None:
        self.name = name
        self.deny = deny
        self.received: list[Message] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.received.append(await receive())
        if self.deny == "404":
            await send({"type": "websocket.http.response.start", "status": 404, "headers": []})
            await send({"type": "websocket.http.response.body", "body": b"no"})
        elif self.deny == "close":
            await send({"type": "websocket.close"})
        else:
            await send({"type": "websocket.accept"})
            await send({"type": "websocket.send", "text": self.name})
            await send({"type": "websocket.close"})
        self.received.append(await receive())


def test_websocket_denied_with_404_falls_back_with_a_fresh_connect() -> None:
    new, legacy = WebSocketApp("new", deny="404"), WebSocketApp("legacy")
    client = Client([{"type": "websocket.connect"}], websocket=True)
    scope = serve(fallback_router(new, legacy), ws_scope("/api/ws"), client)
    assert [m["type"] for m in client.sent] == [
        "websocket.accept",
        "websocket.send",
        "websocket.close",
    ]
    assert client.sent[1]["text"] == "legacy"
    assert legacy.received[0] == {"type": "websocket.connect"}
    assert new.received[1] == {"type": "websocket.disconnect", "code": 1006}
    assert mount_label(scope) == "/api>fallback:legacy"


def test_websocket_closed_before_accept_is_a_403_and_falls_back_only_on_403() -> None:
    client = Client([{"type": "websocket.connect"}], websocket=True)
    new, legacy = WebSocketApp("new", deny="close"), WebSocketApp("legacy")
    serve(fallback_router(new, legacy), ws_scope("/api/ws"), client)
    assert [m["type"] for m in client.sent] == ["websocket.close"]
    client = Client([{"type": "websocket.connect"}], websocket=True)
    router = fallback_router(WebSocketApp("new", deny="close"), legacy, frozenset({403}))
    serve(router, ws_scope("/api/ws"), client)
    assert client.sent[1]["text"] == "legacy"


def test_an_accepted_websocket_is_never_replayed() -> None:
    new, legacy = WebSocketApp("new"), WebSocketApp("legacy")
    client = Client([{"type": "websocket.connect"}], websocket=True)
    serve(fallback_router(new, legacy), ws_scope("/api/ws"), client)
    assert client.sent[1]["text"] == "new" and not legacy.received


def test_no_websocket_fallback_to_a_wsgi_mount() -> None:
    rule = FallbackRule("legacy", frozenset({404}), CAP)
    legacy = WebSocketApp("legacy")
    router = Router(
        [
            Mount("/api", WebSocketApp("new", deny="404"), 1000, Interface.ASGI, rules=[rule]),
            Mount("", legacy, 1000, Interface.WSGI, name="legacy"),
        ]
    )
    client = Client([{"type": "websocket.connect"}], websocket=True)
    serve(router, ws_scope("/api/ws"), client)
    assert statuses(client) == [404] and not legacy.received


# --- canary ---------------------------------------------------------------------------


def canary_router(
    percent: float,
    sticky: str = "none",
    header: str = "",
    canary_interface: Interface = Interface.ASGI,
) -> tuple[Router, App, App]:
    primary, canary = App(200, b"primary"), App(200, b"canary")
    rule = CanaryRule("newapi", percent, sticky, header)
    router = Router(
        [
            Mount("/shop", primary, 1000, Interface.ASGI, rules=[rule]),
            Mount("", canary, 1000, canary_interface, name="newapi"),
        ]
    )
    return router, primary, canary


def run_requests(router: Router, scopes: list[dict[str, Any]]) -> list[str]:
    """Serve each scope in turn in one loop; which side answered each."""

    async def run() -> list[str]:
        sides = []
        for scope in scopes:
            client = Client(body(b""), websocket=scope["type"] == "websocket")
            await router(scope, client.receive, client.send)
            sides.append(mount_label(scope))
        return sides

    return asyncio.run(run())


REQUESTS = 10_000


@pytest.mark.parametrize("percent", [0, 2.5, 10, 50, 90, 100])
def test_the_split_holds_within_two_points_over_10000_requests(percent: float) -> None:
    router, _, canary = canary_router(percent)
    sides = run_requests(router, [http_scope("/shop/item") for _ in range(REQUESTS)])
    share = 100 * sides.count("/shop>canary:newapi") / REQUESTS
    assert abs(share - percent) <= 2
    assert len(canary.scopes) == sides.count("/shop>canary:newapi")


def test_the_split_by_cookie_holds_over_10000_users_and_each_stays_on_one_side() -> None:
    router, _, _ = canary_router(10, "cookie:sid")
    users = [f"user-{n}" for n in range(REQUESTS)]

    def visit(user: str) -> dict[str, Any]:
        return http_scope("/shop", [(b"cookie", f"theme=dark; sid={user}; x=1".encode())])

    first = run_requests(router, [visit(user) for user in users])
    share = 100 * first.count("/shop>canary:newapi") / REQUESTS
    assert abs(share - 10) <= 2
    again = run_requests(router, [visit(user) for user in users[:500]])
    assert again == first[:500]


def test_raising_the_percent_keeps_the_canarys_users_on_it() -> None:
    users = [f"user-{n}".encode() for n in range(2000)]
    at_10 = {user for user in users if bucket(user) < 10 * BUCKETS // 100}
    at_20 = {user for user in users if bucket(user) < 20 * BUCKETS // 100}
    assert at_10 < at_20


# Buckets computed once with BLAKE2b and written down (gateway/migration/rules.py, rule
# "Canary"): a user's side must survive a restart, another worker and an upgrade, so a
# change of hash (Python's salted hash(), another digest size) fails here instead of
# moving every sticky user to the other side at once.
PINNED_BUCKETS = {b"alice": 4729, b"10.0.0.7": 5156}


def test_a_sticky_key_keeps_its_pinned_bucket_in_every_process_and_release() -> None:
    assert {key: bucket(key) for key in PINNED_BUCKETS} == PINNED_BUCKETS
    router, _, _ = canary_router(50, "header:x-user")  # buckets below 5,000: the canary
    scopes = [http_scope("/shop", [(b"x-user", key)]) for key in PINNED_BUCKETS]
    assert run_requests(router, scopes) == ["/shop>canary:newapi", "/shop"]


@pytest.mark.parametrize(
    ("sticky", "headers", "client"),
    [
        ("header:x-user", [(b"x-user", b"alice")], ("10.0.0.1", 1)),
        ("client", [], ("10.0.0.7", 1)),
    ],
)
def test_a_sticky_key_keeps_a_user_on_one_side(
    sticky: str, headers: list[tuple[bytes, bytes]], client: tuple[str, int]
) -> None:
    router, _, _ = canary_router(50, sticky)
    scopes = [{**http_scope("/shop", headers), "client": (client[0], n)} for n in range(200)]
    assert len(set(run_requests(router, scopes))) == 1
    others = [
        {**http_scope("/shop", [(b"x-user", f"u{n}".encode())]), "client": (f"10.1.{n}.1", 1)}
        for n in range(200)
    ]
    assert len(set(run_requests(router, others))) == 2  # other users: both sides


def test_a_request_without_its_sticky_key_is_drawn_at_random() -> None:
    router, _, _ = canary_router(50, "cookie:sid")
    sides = run_requests(router, [http_scope("/shop") for _ in range(2000)])
    assert abs(100 * sides.count("/shop>canary:newapi") / 2000 - 50) <= 5


@pytest.mark.parametrize(
    ("value", "percent", "side"),
    [
        (b"canary", 0, "/shop>canary:newapi"),
        (b"1", 0, "/shop>canary:newapi"),
        (b" TRUE ", 0, "/shop>canary:newapi"),
        (b"primary", 100, "/shop"),
        (b"0", 100, "/shop"),
        (b"false", 100, "/shop"),
    ],
)
def test_canary_header_forces_a_side(value: bytes, percent: float, side: str) -> None:
    router, _, _ = canary_router(percent, "none", "x-canary")
    scopes = [http_scope("/shop", [(b"x-canary", value)]) for _ in range(50)]
    assert set(run_requests(router, scopes)) == {side}


def test_an_unknown_canary_header_value_leaves_the_split_alone() -> None:
    router, _, _ = canary_router(0, "none", "x-canary")
    scopes = [http_scope("/shop", [(b"x-canary", b"maybe")]) for _ in range(50)]
    assert set(run_requests(router, scopes)) == {"/shop"}


def test_websockets_stay_on_the_primary_when_the_canary_is_wsgi() -> None:
    router, _, _ = canary_router(100, canary_interface=Interface.WSGI)
    assert set(run_requests(router, [ws_scope("/shop") for _ in range(20)])) == {"/shop"}
    assert run_requests(router, [http_scope("/shop")]) == ["/shop>canary:newapi"]


def test_canary_and_fallback_compose() -> None:
    """The canary's answers follow the canary mount's own fallback."""
    legacy = App(200, b"legacy")
    router = Router(
        [
            Mount("/shop", App(200), 1000, Interface.ASGI, rules=[CanaryRule("newapi", 100)]),
            Mount(
                "",
                App(404),
                1000,
                Interface.ASGI,
                name="newapi",
                rules=[FallbackRule("legacy", frozenset({404}), CAP)],
            ),
            Mount("", legacy, 1000, Interface.ASGI, name="legacy"),
        ]
    )
    client = Client(body(b""))
    scope = serve(router, http_scope("/shop/x"), client)
    assert mount_label(scope) == "/shop>canary:newapi>fallback:legacy"
    assert client.sent[1]["body"] == b"legacy"
    assert legacy.scopes[0]["root_path"] == "/shop"


# --- the router's side ----------------------------------------------------------------


def test_a_mount_without_rules_is_served_by_its_app_directly() -> None:
    app = App()
    router = Router([Mount("/", app, 1000, Interface.ASGI)])
    assert router.mounts[0].handler is app


def test_a_mount_without_a_prefix_is_reachable_only_by_name() -> None:
    router, _, canary = canary_router(0)
    assert router.match("/newapi") is None
    client = Client(body(b""))
    serve(router, http_scope("/newapi"), client)
    assert statuses(client) == [404] and not canary.scopes


def test_an_unknown_name_is_refused_at_startup() -> None:
    mount = Mount("/", App(), 1000, Interface.ASGI, rules=[CanaryRule("nobody", 5)])
    with pytest.raises(ValueError, match="no mount is named 'nobody'"):
        Router([mount])


def test_a_discarded_streams_send_raises_client_disconnected() -> None:
    """What a discarded app sees: the ASGI 2.4 signal of a departed client."""
    errors: list[BaseException] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 404, "headers": []})
        try:
            await send({"type": "http.response.body", "body": b"x", "more_body": True})
        except ClientDisconnected as exc:
            errors.append(exc)

    serve(fallback_router(app, App(200)), http_scope("/api/x"), Client(body(b"")))
    assert len(errors) == 1 and isinstance(errors[0], OSError)
