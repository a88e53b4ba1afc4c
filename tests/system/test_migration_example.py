"""examples/migration/ as its README walks through it: `gateway serve` on the example's
own mount file, as a subprocess, with curl's requests made by httpx.

The mount file is copied to a temporary directory with one change: `pythonpath` names
examples/migration/ itself, since "." would then be the temporary directory. Files the
example writes next to its mount file land there, never in the source tree. The server
listens on a socket bound here (`--bind fd://N`), not on the file's 127.0.0.1:8000.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.deadlines import wait_until
from support.paths import EXAMPLES_DIR
from support.processes import GATEWAY, GatewayProcess

from gateway.server.metrics import parse_exposition
from gateway.status import COLUMNS

EXAMPLE_DIR = EXAMPLES_DIR / "migration"
DEADLINE_S = 30.0
METRICS_PATH = "/_gateway/metrics"
NEW = "new (FastAPI)"
LEGACY = "legacy (Flask)"
# Users drawn for the canary's share: enough that 10% is told apart from 0% and 30%,
# few enough to take a second or two.
CANARY_USERS = 300


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    text = (EXAMPLE_DIR / "gateway.toml").read_text()
    here = 'pythonpath = ["."]'
    assert here in text, "the example's pythonpath changed: update this test"
    path = tmp_path_factory.mktemp("migration") / "gateway.toml"
    path.write_text(text.replace(here, f"pythonpath = [{str(EXAMPLE_DIR)!r}]"))
    return path


@pytest.fixture(scope="module")
def server(config: Path) -> Iterator[GatewayProcess]:
    process = GatewayProcess(config)
    try:
        process.wait_for_line("serving on", DEADLINE_S)
        yield process
    finally:
        assert process.stop() == 0, "".join(process.all_lines())


@pytest.fixture
def client(server: GatewayProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=DEADLINE_S) as client:
        yield client


def served_by(response: httpx.Response) -> str:
    return response.headers["x-served-by"]


def access_line(server: GatewayProcess, request_line: str) -> str:
    """The access-log line (stdout) of the request, once the server has written it."""
    lines: list[str] = []

    def logged() -> bool:
        lines[:] = [line for line in server.stdout if f'"{request_line} HTTP/1.1"' in line]
        return bool(lines)

    wait_until(logged, DEADLINE_S)
    return lines[-1].rstrip("\n")


# --- /api: fallback ----------------------------------------------------------------------


def test_a_taken_over_route_is_the_new_apps(server: GatewayProcess, client: httpx.Client) -> None:
    response = client.get("/api/users/1")
    assert response.status_code == 200
    assert served_by(response) == NEW
    assert response.json() == {"id": 1, "name": "Ada", "email": "ada@example.com"}
    assert access_line(server, "GET /api/users/1").endswith(" mount=/api")


def test_a_route_the_new_app_lacks_falls_back_to_legacy(
    server: GatewayProcess, client: httpx.Client
) -> None:
    response = client.get("/api/users/2/orders")
    assert response.status_code == 200
    assert served_by(response) == LEGACY
    assert response.json() == [{"id": 1002, "user_id": 2, "product_ids": [3]}]
    line = access_line(server, "GET /api/users/2/orders")
    assert line.endswith(" mount=/api>fallback:legacy-api")


def test_a_post_is_replayed_with_its_body(client: httpx.Client) -> None:
    response = client.post("/api/orders", json={"user_id": 3, "product_ids": [4, 5]})
    assert response.status_code == 201
    assert served_by(response) == LEGACY
    created = response.json()
    assert created["user_id"] == 3
    # Legacy's url_for() saw SCRIPT_NAME = "/api"; the new app serves what it names.
    assert response.headers["location"] == f"/api/orders/{created['id']}"
    again = client.get(response.headers["location"])
    assert (served_by(again), again.json()) == (NEW, created)


def test_a_404_of_both_apps_is_legacys(client: httpx.Client) -> None:
    response = client.get("/api/users/99")
    assert (response.status_code, served_by(response)) == (404, LEGACY)


# --- /shop: canary ---------------------------------------------------------------------


@pytest.mark.parametrize(("force", "side"), [("canary", NEW), ("primary", LEGACY)])
def test_the_canary_header_forces_a_side(client: httpx.Client, force: str, side: str) -> None:
    for user in range(10):
        headers = {"x-canary": force, "cookie": f"session=user{user}"}
        response = client.get("/shop/products/1", headers=headers)
        assert response.status_code == 200
        assert served_by(response) == side
        # Either side builds its links with the /shop prefix.
        assert 'href="/shop/"' in response.text


def test_a_tenth_of_the_users_get_the_new_shop_and_stay(client: httpx.Client) -> None:
    sides = {}
    for user in range(CANARY_USERS):
        response = client.get("/shop/", headers={"cookie": f"session=user{user}"})
        sides[user] = served_by(response)
    share = 100 * list(sides.values()).count(NEW) / CANARY_USERS
    assert 5 <= share <= 15, share
    for user in range(0, CANARY_USERS, 10):  # a user comes back: the same side
        response = client.get("/shop/products/2", headers={"cookie": f"session=user{user}"})
        assert served_by(response) == sides[user]


# --- /search: shadow --------------------------------------------------------------------


def shadow_lines(config: Path) -> list[dict[str, Any]]:
    """The mismatches written so far (shadow_log, relative to the mount file)."""
    log = config.parent / "shadow.jsonl"
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines()]


def metric(server: GatewayProcess, name: str, mount: str) -> float:
    """A mount's total of one metric (all its labels summed), scraped now."""
    response = httpx.get(server.url + METRICS_PATH, timeout=DEADLINE_S)
    samples = parse_exposition(response.text)
    return sum(s.value for s in samples if s.name == name and s.labels.get("mount") == mount)


def served(server: GatewayProcess, mount: str) -> float:
    """Requests a mount has answered (a shadow's copies included)."""
    return metric(server, "gateway_requests_total", mount)


def test_the_shadow_logs_what_differs_and_only_that(
    config: Path, server: GatewayProcess, client: httpx.Client
) -> None:
    logged, copies = len(shadow_lines(config)), served(server, "new-search")
    for _ in range(3):  # took_ms differs each time: ignored (shadow_ignore_json_keys)
        response = client.get("/search/products", params={"q": "desk"})
        assert (response.status_code, served_by(response)) == (200, LEGACY)
        assert len(response.json()["results"]) == 4
    response = client.get("/search/products", params={"q": "hair"})
    assert response.json()["results"] == [{"id": 5, "name": "Desk chair"}]  # legacy's
    assert served_by(response) == LEGACY

    # The copies run in the order they were made: once the last one's mismatch is
    # written, the three before it have been compared.
    wait_until(lambda: served(server, "new-search") >= copies + 4, DEADLINE_S)
    wait_until(lambda: len(shadow_lines(config)) > logged, DEADLINE_S)
    [line] = shadow_lines(config)[logged:]
    assert line["mount"] == "/search"
    assert line["shadow_mount"] == "new-search"
    assert line["request"] == "GET /search/products?q=hair"
    assert line["differs"] == ["body"]
    assert line["primary"]["status"] == line["shadow"]["status"] == 200
    assert line["diff"]["json"] == [
        {"path": "$.results[0]", "primary": '{"id": 5, "name": "Desk chair"}'}
    ]


def test_a_post_to_search_is_not_copied(server: GatewayProcess, client: httpx.Client) -> None:
    sent = metric(server, "gateway_shadow_requests_total", "/search")
    copies = served(server, "new-search")
    assert client.post("/search/products").status_code == 405  # legacy's answer
    assert client.get("/search/products").status_code == 200  # this one is copied
    wait_until(lambda: served(server, "new-search") >= copies + 1, DEADLINE_S)
    # The POST's answer ended before the GET was sent, and so did its chance of a copy.
    assert metric(server, "gateway_shadow_requests_total", "/search") == sent + 1
    assert served(server, "new-search") == copies + 1


# --- gateway status --------------------------------------------------------------------


def gateway_status(config: Path, server: GatewayProcess, *args: str) -> str:
    url = server.url + METRICS_PATH
    result = subprocess.run(
        [*GATEWAY, "status", str(config), "--url", url, *args],
        capture_output=True,
        text=True,
        timeout=DEADLINE_S,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_gateway_status_reports_every_mount(
    config: Path, server: GatewayProcess, client: httpx.Client
) -> None:
    assert client.get("/api/users/1").status_code == 200
    assert client.get("/api/users").status_code == 200  # a fallback
    assert client.get("/shop/", headers={"x-canary": "canary"}).status_code == 200
    assert client.get("/search/products", params={"q": "hair"}).status_code == 200

    def report() -> dict[str, Any]:
        answer: dict[str, Any] = json.loads(gateway_status(config, server, "--json"))
        return answer

    def by_mount(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
        return {mount["mount"]: mount for mount in report["mounts"]}

    # The shadow's comparison comes after the client's answer: wait for it.
    wait_until(lambda: by_mount(report())["/search"]["shadow_mismatch_rate"] is not None)
    figures = report()
    mounts = by_mount(figures)
    assert list(mounts) == ["/api", "legacy-api", "/shop", "new-shop", "/search", "new-search"]
    for label in ("/api", "legacy-api", "new-shop"):
        assert mounts[label]["requests"] >= 1
        assert mounts[label]["error_rate"] == 0.0
        assert mounts[label]["p99_s"] > 0
    assert mounts["legacy-api"]["pool"]["threads"] == 8
    assert mounts["/api"]["pool"] is None  # ASGI: no pool
    assert sum(mount["share"] or 0 for mount in mounts.values()) == pytest.approx(1)
    assert 0 < mounts["/api"]["fallback_rate"] < 1
    assert mounts["/shop"]["canary_requests"] >= 1
    assert mounts["/search"]["shadow_requests"] >= 1
    assert 0 < mounts["/search"]["shadow_mismatch_rate"] <= 1
    assert figures["worker_restarts"] == 0

    table = gateway_status(config, server).splitlines()
    assert table[0] == f"metrics:  {server.url}{METRICS_PATH}"
    assert tuple(table[1].split()) == COLUMNS
    mount_lines = table[2 : table.index("")]  # the routes follow, after a blank line
    assert [line.split()[0] for line in mount_lines] == list(mounts)
    assert any(line.endswith("still falls back") for line in table)
