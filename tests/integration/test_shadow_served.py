"""Shadow compare over real sockets: a Flask primary (tests/apps/shadow_legacy.py) whose
requests are copied to a FastAPI shadow (tests/apps/shadow_new.py)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from support.deadlines import wait_until
from support.mount_files import SHADOW_NEW_MOUNTS
from support.servers import Server
from support.shadow_runs import mismatches, settle
from support.ws_clients import DEADLINE_S

from gateway.errors import ConfigError
from gateway.server import metrics

MOUNTS = (
    """
[server]
metrics_path = "/_gateway/metrics"

[[mount]]
prefix = "/api"
app = "shadow_legacy:app"
interface = "wsgi"
threads = 4
shadow = "newapi"
shadow_methods = ["GET", "POST"]
shadow_ignore_json_keys = ["served_at"]
shadow_log = "mismatches.jsonl"

[[mount]]
prefix = "/small"
app = "shadow_legacy:app"
interface = "wsgi"
threads = 4
shadow = "newapi"
shadow_max_in_flight = 1
shadow_log = "small.jsonl"
"""
    + SHADOW_NEW_MOUNTS
)

Serve = Callable[[str], Server]


@pytest.fixture
def server(serve: Serve) -> Server:
    return serve(MOUNTS)


def counters(client: httpx.Client, mount: str) -> dict[str, float]:
    """This mount's shadow counters, from the metrics endpoint."""
    text = client.get("/_gateway/metrics").text
    wanted = {
        "gateway_shadow_requests_total": "copies",
        "gateway_shadow_dropped_total": "dropped",
        "gateway_shadow_mismatches_total": "mismatches",
    }
    return {
        wanted[s.name]: s.value
        for s in metrics.parse_exposition(text)
        if s.name in wanted and s.labels.get("mount") == mount
    }


def test_a_copy_reaches_the_shadow_with_the_same_request(
    server: Server, client: httpx.Client
) -> None:
    key = uuid.uuid4().hex
    response = client.post("/api/echo", params={"id": key}, content=b"hello shadow")
    assert response.json() == {"length": 12}
    settle(server, 1)
    assert client.get("/new/seen", params={"id": key}).json() == {
        "method": "POST",
        "path": "/api/echo",
        "root_path": "/api",
        "body": "hello shadow",
        "mount": "/api>shadow:newapi",
    }
    assert not (Path(server.config.path).parent / "mismatches.jsonl").read_text()


def test_answers_that_differ_only_in_an_ignored_key_match(
    server: Server, client: httpx.Client
) -> None:
    for n in range(3):
        assert client.get(f"/api/items/{n}").json()["name"] == f"item {n}"
    settle(server, 3)
    assert mismatches(server) == []
    assert counters(client, "/api") == {"copies": 3, "dropped": 0, "mismatches": 0}


def test_mismatches_are_logged_as_json_lines(server: Server, client: httpx.Client) -> None:
    assert client.get("/api/price/3").json() == {"id": 3, "price": 10}  # the primary's
    settle(server, 1)
    assert client.get("/api/page").text == "<p>hello</p>"
    settle(server, 2)
    price, page = sorted(mismatches(server), key=lambda line: line["request"], reverse=True)
    assert price["request"] == "GET /api/price/3"
    assert (price["mount"], price["shadow_mount"], price["differs"]) == ("/api", "newapi", ["body"])
    assert price["diff"] == {"json": [{"path": "$.price", "primary": "10", "shadow": "12"}]}
    assert price["primary"]["status"] == price["shadow"]["status"] == 200
    assert page["request"] == "GET /api/page"
    assert page["differs"] == ["content-type"]
    assert page["primary"]["content_type"] == "text/html; charset=utf-8"
    assert page["shadow"]["content_type"] == "text/plain; charset=utf-8"
    assert counters(client, "/api")["mismatches"] == 2


def test_a_shadow_that_raises_does_not_touch_the_primary(
    server: Server, client: httpx.Client
) -> None:
    response = client.get("/api/boom")
    assert (response.status_code, response.json()) == (200, {"ok": True})
    settle(server, 1)
    [line] = mismatches(server)
    assert line["shadow"]["status"] == 500  # Starlette's answer before it re-raised
    assert line["shadow"]["error"] == "RuntimeError('the new code is broken')"


def test_the_primary_answers_while_its_copy_is_blocked(
    server: Server, client: httpx.Client
) -> None:
    key = uuid.uuid4().hex
    assert client.get("/api/slow", params={"id": key}).json() == {"ok": True}
    wait_until(lambda: client.get("/new/waiting", params={"id": key}).json(), DEADLINE_S)
    # The copy is still blocked; the primary answered, and keeps answering.
    for n in range(5):
        assert client.get(f"/api/items/{n}").status_code == 200
    assert client.get("/new/waiting", params={"id": key}).json() is True
    client.get("/new/release", params={"id": key})
    settle(server, 6)


def test_a_full_shadow_drops_copies_and_counts_them(server: Server, client: httpx.Client) -> None:
    key = uuid.uuid4().hex
    client.get("/small/slow", params={"id": key})
    wait_until(lambda: client.get("/new/waiting", params={"id": key}).json(), DEADLINE_S)
    for n in range(5):  # shadow_max_in_flight = 1, taken by the blocked copy
        assert client.get(f"/small/price/{n}").json() == {"id": n, "price": 10}
    assert counters(client, "/small") == {"copies": 1, "dropped": 5, "mismatches": 0}
    client.get("/new/release", params={"id": key})
    settle(server, 1)
    assert mismatches(server, "small.jsonl") == []  # no copy of /price was made


def test_a_shadow_log_that_cannot_be_opened_stops_the_worker(serve: Serve) -> None:
    text = MOUNTS.replace('"mismatches.jsonl"', '"no/such/dir/mismatches.jsonl"')
    with pytest.raises(ConfigError) as caught:
        serve(text)
    assert (caught.value.table, caught.value.key) == ("mount #1", "shadow_log")


def test_a_blocked_copy_does_not_hold_up_the_stop(server: Server, client: httpx.Client) -> None:
    key = uuid.uuid4().hex
    client.get("/api/slow", params={"id": key})
    wait_until(lambda: client.get("/new/waiting", params={"id": key}).json(), DEADLINE_S)
    client.close()
    server.stop(timeout_s=DEADLINE_S)  # the drain cancels the copy (never released)
    assert server.worker.shadows.in_flight == 0
