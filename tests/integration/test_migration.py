"""Fallback and canary over real sockets: a FastAPI "new" app in front of a Flask
"legacy" app (tests/apps/migration_new.py, migration_legacy.py)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable

import httpx
import pytest
from support.deadlines import wait_until
from support.mount_files import fallback_mounts
from support.servers import Server
from support.ws_clients import DEADLINE_S, rejection, ws_connect

CAP = 1000  # the /api mount's fallback_body_bytes

MOUNTS = (
    """
[server]
"""
    + fallback_mounts(CAP)
    + """
[[mount]]
prefix = "/live"
app = "migration_new:app"
interface = "asgi"
fallback = "legacy-ws"

[[mount]]
name = "legacy-ws"
app = "migration_legacy:ws_app"
interface = "asgi"

[[mount]]
prefix = "/shop"
app = "migration_legacy:app"
interface = "wsgi"
canary = "new-shop"
canary_percent = 25
canary_sticky = "cookie:sid"
canary_header = "x-canary"

[[mount]]
prefix = "/by-user"
app = "migration_legacy:app"
interface = "wsgi"
canary = "new-shop"
canary_percent = 50
canary_sticky = "header:x-user"

[[mount]]
prefix = "/by-client"
app = "migration_legacy:app"
interface = "wsgi"
canary = "new-shop"
canary_percent = 50
canary_sticky = "client"

[[mount]]
name = "new-shop"
app = "migration_new:app"
interface = "asgi"
"""
)

Serve = Callable[[str], Server]


@pytest.fixture
def server(serve: Serve) -> Server:
    return serve(MOUNTS)


# --- fallback -------------------------------------------------------------------------


def test_a_route_the_new_app_has_is_its_own(client: httpx.Client) -> None:
    answer = client.get("/api/users/7").json()
    assert answer == {"app": "new", "root_path": "/api", "url": "/api/users/7"}


def test_404_falls_back_with_the_routing_mounts_script_name(client: httpx.Client) -> None:
    response = client.get("/api/orders/3")
    assert response.status_code == 200
    assert response.json() == {"app": "legacy", "script_name": "/api", "url": "/api/orders/3"}


@pytest.mark.parametrize("path", ["/api/form", "/api/upload"])  # 405 and 404 in the new app
def test_a_body_below_the_cap_is_replayed_whole(client: httpx.Client, path: str) -> None:
    response = client.post(path, content=b"x" * (CAP - 1))
    assert response.status_code == 200
    assert response.json() == {"app": "legacy", "script_name": "/api", "length": CAP - 1}


@pytest.mark.parametrize(("path", "status"), [("/api/form", 405), ("/api/upload", 404)])
def test_a_body_above_the_cap_keeps_the_first_answer(
    client: httpx.Client, path: str, status: int
) -> None:
    response = client.post(path, content=b"x" * (CAP + 1))
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"  # FastAPI's own answer


def test_a_chunked_body_is_replayed_whole(client: httpx.Client) -> None:
    chunks = iter([b"a" * 300, b"b" * 300])
    response = client.post("/api/upload", content=chunks)  # no length: chunked
    assert response.json()["length"] == 600


def test_a_streaming_200_is_never_replayed_nor_held_back(client: httpx.Client) -> None:
    key = uuid.uuid4().hex
    with client.stream("GET", f"/api/stream?id={key}") as response:
        assert response.status_code == 200
        lines = response.iter_lines()
        # The first chunk arrives while the app still waits for its release.
        assert next(lines) == "new-first"
        with httpx.Client(base_url=str(client.base_url), timeout=DEADLINE_S) as other:
            assert other.get(f"/api/release?id={key}").json() == {"released": True}
        assert list(lines) == ["new-last"]


def test_a_streaming_404_is_replayed_before_any_byte_reaches_the_client(
    client: httpx.Client,
) -> None:
    response = client.get("/api/stream404")
    assert response.status_code == 200
    assert response.json() == {"app": "legacy", "script_name": "/api"}
    assert b"new-404-part" not in response.content


def test_the_access_log_names_both_mounts(
    server: Server, client: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.access")
    client.get("/api/orders/1")
    client.get("/api/users/1")

    def logged() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.name == "gateway.access"]

    wait_until(lambda: len(logged()) >= 2, DEADLINE_S)
    assert "/api/orders/1 HTTP/1.1" in logged()[0]
    assert logged()[0].endswith("mount=/api>fallback:legacy")
    assert logged()[1].endswith("mount=/api")


def test_a_websocket_denied_with_404_falls_back(server: Server) -> None:
    with ws_connect(server, "/live/chat") as ws:
        assert ws.recv(timeout=DEADLINE_S) == "legacy /live"
    with ws_connect(server, "/live/ws-new") as ws:
        assert ws.recv(timeout=DEADLINE_S) == "new"


def test_a_websocket_the_fallback_refuses_too_gets_the_fallbacks_answer(server: Server) -> None:
    # The new app denies with 404; the legacy Starlette app has no such route either
    # and closes before accept: a 403 (ASGI), which is the answer.
    assert rejection(server, "/live/nowhere").status_code == 403


# --- canary ---------------------------------------------------------------------------

USERS = 1000


def cookie(user: str) -> dict[str, str]:
    """The session cookie the canary sticks to, among others."""
    return {"cookie": f"theme=dark; sid={user}"}


def side(response: httpx.Response) -> str:
    assert response.status_code == 200
    answer: str = response.json()["app"]
    return answer


def test_the_canary_share_by_cookie(client: httpx.Client) -> None:
    sides = [side(client.get("/shop/item", headers=cookie(f"u{n}"))) for n in range(USERS)]
    share = 100 * sides.count("new") / USERS
    assert abs(share - 25) <= 5  # 1000 users: the unit test holds ±2 over 10,000


def test_the_canary_serves_with_the_routing_prefix(client: httpx.Client) -> None:
    response = client.get("/shop/item", headers={"x-canary": "canary"})
    assert response.json() == {"app": "new", "root_path": "/shop"}
    response = client.get("/shop/item", headers={"x-canary": "primary"})
    assert response.json() == {"app": "legacy", "script_name": "/shop"}


def test_a_cookie_keeps_a_user_on_one_side(client: httpx.Client) -> None:
    for n in range(10):
        sides = {side(client.get("/shop/item", headers=cookie(f"user{n}"))) for _ in range(10)}
        assert len(sides) == 1


def test_a_header_keeps_a_user_on_one_side(client: httpx.Client) -> None:
    seen = set()
    for n in range(20):
        headers = {"x-user": f"user{n}"}
        sides = {side(client.get("/by-user/item", headers=headers)) for _ in range(10)}
        assert len(sides) == 1
        seen |= sides
    assert seen == {"new", "legacy"}  # 20 users at 50%: both sides have some


def test_the_client_address_keeps_a_client_on_one_side(server: Server) -> None:
    sides = set()
    for _ in range(20):  # a new connection, and so a new port, each time
        with httpx.Client(base_url=server.url, timeout=DEADLINE_S) as one_off:
            sides.add(side(one_off.get("/by-client/item")))
    assert len(sides) == 1


@pytest.mark.parametrize(("value", "expected"), [("canary", "new"), ("1", "new"), ("0", "legacy")])
def test_canary_header_forces_a_side_for_every_user(
    client: httpx.Client, value: str, expected: str
) -> None:
    for n in range(30):
        response = client.get("/shop/item", headers={**cookie(f"u{n}"), "x-canary": value})
        assert side(response) == expected
