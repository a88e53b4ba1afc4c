"""examples/migration/ as its README walks through it: `gateway serve` on the example's
own mount file, as a subprocess, with curl's requests made by httpx.

The mount file is copied to a temporary directory with two changes: `pythonpath` names
examples/migration/ itself, since "." would then be the temporary directory, and the
admin listener takes a port the kernel picks (read from the server's log line), not
9100. Files the example writes next to its mount file land there, never in the source
tree. The server listens on a socket bound here (`--bind fd://N`), not on the file's
127.0.0.1:8000.

The walkthrough's claims (issue 17, point 7: a route per verdict, the learned noise, a
mismatch kind) are checked on a server of their own, fresh as the README's run is, so
that the other tests' requests (a 404 that falls back, say) do not move its verdicts.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.deadlines import wait_until
from support.paths import EXAMPLES_DIR
from support.processes import GATEWAY, GatewayProcess

from gateway.migration.report import COLLECTING, DISAGREES, READY, SERVED_BY_NEW, STILL_FALLS_BACK
from gateway.server.metrics import parse_exposition
from gateway.status import COLUMNS

EXAMPLE_DIR = EXAMPLES_DIR / "migration"
DEADLINE_S = 30.0
ADMIN_LINE = re.compile(r"admin listener on (http://127\.0\.0\.1:\d+/)")
NEW = "new (FastAPI)"
LEGACY = "legacy (Flask)"
# Users drawn for the canary's share: enough that 10% is told apart from 0% and 30%,
# few enough to take a second or two.
CANARY_USERS = 300


def example_config(directory: Path) -> Path:
    """The example's mount file, in `directory`, changed as the module docstring says."""
    text = (EXAMPLE_DIR / "gateway.toml").read_text()
    for here, there in (
        ('pythonpath = ["."]', f"pythonpath = [{str(EXAMPLE_DIR)!r}]"),
        ('admin_bind = "127.0.0.1:9100"', 'admin_bind = "127.0.0.1:0"'),
    ):
        assert here in text, f"the example's {here.split()[0]} changed: update this test"
        text = text.replace(here, there)
    path = directory / "gateway.toml"
    path.write_text(text)
    return path


def serve_example(config: Path) -> Generator[tuple[GatewayProcess, str]]:
    """The example served, and its admin listener's URL, from the log line that comes
    once the apps' listener serves too (gateway/process/worker.py starts it first)."""
    process = GatewayProcess(config)
    try:
        match = ADMIN_LINE.search(process.wait_for_line("admin listener on", DEADLINE_S))
        assert match is not None
        yield process, match.group(1)
    finally:
        assert process.stop() == 0, "".join(process.all_lines())


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return example_config(tmp_path_factory.mktemp("migration"))


@pytest.fixture(scope="module")
def example(config: Path) -> Iterator[tuple[GatewayProcess, str]]:
    yield from serve_example(config)


@pytest.fixture(scope="module")
def server(example: tuple[GatewayProcess, str]) -> GatewayProcess:
    return example[0]


@pytest.fixture(scope="module")
def admin(example: tuple[GatewayProcess, str]) -> str:
    """The admin listener's URL: http://127.0.0.1:PORT/."""
    return example[1]


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


def metric(admin: str, name: str, mount: str) -> float:
    """A mount's total of one metric (all its labels summed), scraped now from the admin
    listener."""
    response = httpx.get(admin + "metrics", timeout=DEADLINE_S)
    samples = parse_exposition(response.text)
    return sum(s.value for s in samples if s.name == name and s.labels.get("mount") == mount)


def served(admin: str, mount: str) -> float:
    """Requests a mount has answered (a shadow's copies included)."""
    return metric(admin, "gateway_requests_total", mount)


def test_the_shadow_logs_what_differs_and_only_that(
    config: Path, admin: str, client: httpx.Client
) -> None:
    logged, copies = len(shadow_lines(config)), served(admin, "new-search")
    for _ in range(3):  # took_ms differs each time: learned as noise (shadow_denoise)
        response = client.get("/search/products", params={"q": "desk"})
        assert (response.status_code, served_by(response)) == (200, LEGACY)
        assert len(response.json()["results"]) == 4
    response = client.get("/search/products", params={"q": "hair"})
    assert response.json()["results"] == [{"id": 5, "name": "Desk chair"}]  # legacy's
    assert served_by(response) == LEGACY

    # The copies run in the order they were made: once the last one's mismatch is
    # written, the three before it have been compared.
    wait_until(lambda: served(admin, "new-search") >= copies + 4, DEADLINE_S)
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


def test_a_post_to_search_is_not_copied(admin: str, client: httpx.Client) -> None:
    sent = metric(admin, "gateway_shadow_requests_total", "/search")
    copies = served(admin, "new-search")
    assert client.post("/search/products").status_code == 405  # legacy's answer
    assert client.get("/search/products").status_code == 200  # this one is copied
    wait_until(lambda: served(admin, "new-search") >= copies + 1, DEADLINE_S)
    # The POST's answer ended before the GET was sent, and so did its chance of a copy.
    assert metric(admin, "gateway_shadow_requests_total", "/search") == sent + 1
    assert served(admin, "new-search") == copies + 1


# --- gateway status --------------------------------------------------------------------


def gateway_status(config: Path, admin: str, *args: str) -> str:
    """`gateway status`, reading the admin listener's report (the mount file names port
    0, which no client can reach: hence --url)."""
    url = admin + "status.json"
    result = subprocess.run(
        [*GATEWAY, "status", str(config), "--url", url, *args],
        capture_output=True,
        text=True,
        timeout=DEADLINE_S,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_gateway_status_reports_every_mount(config: Path, admin: str, client: httpx.Client) -> None:
    assert client.get("/api/users/1").status_code == 200
    assert client.get("/api/users").status_code == 200  # a fallback
    assert client.get("/shop/", headers={"x-canary": "canary"}).status_code == 200
    assert client.get("/search/products", params={"q": "hair"}).status_code == 200

    def report() -> dict[str, Any]:
        answer: dict[str, Any] = json.loads(gateway_status(config, admin, "--json"))
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

    table = gateway_status(config, admin).splitlines()
    assert table[0] == f"metrics:  {admin}"
    assert tuple(table[1].split()) == COLUMNS
    mount_lines = table[2 : table.index("")]  # the routes follow, after a blank line
    assert [line.split()[0] for line in mount_lines] == list(mounts)
    assert any(line.endswith("still falls back") for line in table)


# --- the walkthrough: a route per verdict on the page's report ---------------------------

# The README's loop: rounds of five requests, each round's user and search drawn as its
# shell does (`u=$((i % 3 + 1))`; "hair", one search in three, is where the two searches
# differ). Thirty rounds give each shadowed route more than the example's
# ready_min_compared (20) comparisons.
ROUNDS = 30
SEARCHES = {1: "desk", 2: "lamp", 3: "hair"}
# The "hair" searches the route /products counts: round 1's search is its first
# sighting, counted as "other" (a template made from a path counts from its second).
HAIR = sum(1 for i in range(2, ROUNDS + 1) if SEARCHES[i % 3 + 1] == "hair")
# Per round, one copy of each of the two searches is compared (shadow_percent 100).
COPIES_PER_ROUND = 2
Report = dict[str, Any]


def walkthrough_traffic(client: httpx.Client) -> None:
    """The README's traffic loop, request for request, as httpx sends it."""
    for i in range(1, ROUNDS + 1):
        u = i % 3 + 1
        for path, headers in (
            (f"/api/users/{u}", {}),
            (f"/api/users/{u}/orders", {}),
            ("/shop/", {"cookie": f"session=visitor{i}"}),  # curl -b session=visitor$i
            (f"/search/products?q={SEARCHES[u]}", {}),
            (f"/search/products/{u}", {}),
        ):
            assert client.get(path, headers=headers).status_code == 200, path


@pytest.fixture(scope="module")
def walkthrough(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """A fresh example, the walkthrough's traffic sent to it: its config and admin URL."""
    config = example_config(tmp_path_factory.mktemp("walkthrough"))
    served = serve_example(config)
    process, admin = next(served)
    try:
        with httpx.Client(base_url=process.url, timeout=DEADLINE_S) as client:
            walkthrough_traffic(client)
        yield config, admin
    finally:
        served.close()  # stops the server, and fails the test if it did not exit 0


def routes_of(report: Report) -> dict[tuple[str, str], Report]:
    return {(route["mount"], route["route"]): route for route in report["routes"]}


def settled_report(admin: str) -> Report:
    """/status.json once every request of the loop is counted: each is recorded as its
    app returns and each copy compared after its primary's answer, both a moment after
    the client has its answer."""
    found: list[Report] = []

    def counted(mount: str, figure: Callable[[Report], int]) -> int:
        return sum(figure(r) for r in found[0]["routes"] if r["mount"] == mount)

    def complete() -> bool:
        found[:] = [httpx.get(admin + "status.json", timeout=DEADLINE_S).json()]
        return (
            counted("/api", lambda route: route["requests"]) == 2 * ROUNDS
            and counted("/shop", lambda route: route["requests"]) == ROUNDS
            and counted("/search", lambda route: route["shadow_compared"])
            == COPIES_PER_ROUND * ROUNDS
        )

    wait_until(complete, DEADLINE_S)
    return found[0]


def test_the_walkthrough_reaches_every_verdict(walkthrough: tuple[Path, str]) -> None:
    _, admin = walkthrough
    report = settled_report(admin)
    assert report["thresholds"]["min_compared"] == 20  # the example's ready_min_compared
    routes = routes_of(report)
    verdicts = {key: route["verdict"] for key, route in routes.items()}
    shop = {verdicts.pop(key) for key in list(verdicts) if key[0] == "/shop"}
    assert shop == {COLLECTING}  # a canary compares nothing: its routes keep collecting
    # A template made from a path counts from its second request: the first is "other".
    assert verdicts == {
        ("/api", "/users/{user_id}"): SERVED_BY_NEW,  # FastAPI's own template
        ("/api", "/users/{int}/orders"): STILL_FALLS_BACK,
        ("/api", "other"): STILL_FALLS_BACK,
        ("/search", "/products"): DISAGREES,  # the "hair" searches
        ("/search", "/products/{int}"): READY,
        ("/search", "other"): COLLECTING,
    }
    assert routes[("/api", "/users/{int}/orders")]["fallback_rate"] == 1.0
    ready = routes[("/search", "/products/{int}")]
    assert ready["shadow_compared"] == ROUNDS - 1 and ready["shadow_agreement"] == 1.0
    assert ready["mismatches"] == []


def test_the_disagreeing_route_names_its_mismatch_with_a_sample(
    walkthrough: tuple[Path, str],
) -> None:
    _, admin = walkthrough
    route = routes_of(settled_report(admin))[("/search", "/products")]
    mismatches = {mismatch["kind"]: mismatch for mismatch in route["mismatches"]}
    found = mismatches["body $.results[*]"]
    assert found["count"] == HAIR
    assert found["sample"]["request"] == "GET /search/products?q=hair"
    assert found["sample"]["diff"]["json"] == [
        {"path": "$.results[0]", "primary": '{"id": 5, "name": "Desk chair"}'}
    ]
    # took_ms, which differs on every call, is never a mismatch: it is the learned noise.
    assert not any("took_ms" in kind for kind in mismatches)
    assert route["shadow_agreement"] == pytest.approx(1 - HAIR / (ROUNDS - 1))


def test_the_shadowed_route_learned_its_noise(walkthrough: tuple[Path, str]) -> None:
    _, admin = walkthrough
    routes = routes_of(settled_report(admin))
    noise = routes[("/search", "/products")]["noise"]
    assert noise["json_paths"] == ["$.took_ms"]
    assert noise["headers"] == []  # x-served-by is in shadow_ignore_headers
    assert noise["samples"] == ROUNDS - 1  # shadow_denoise_percent 100: every copy
    # The product page's answers carry no noise: nothing learned, every copy agreed.
    assert routes[("/search", "/products/{int}")]["noise"]["json_paths"] == []


def test_gateway_status_prints_the_walkthrough_s_verdicts(walkthrough: tuple[Path, str]) -> None:
    config, admin = walkthrough
    settled_report(admin)
    table = gateway_status(config, admin)
    for route, verdict in (
        ("/users/{user_id}", SERVED_BY_NEW),
        ("/users/{int}/orders", STILL_FALLS_BACK),
        ("/products", DISAGREES),
        ("/products/{int}", READY),
    ):
        assert any(
            line.split()[1:2] == [route] and line.endswith(verdict) for line in table.splitlines()
        )
    assert "noise     /search /products: $.took_ms" in table
    assert "mismatch  /search /products: body $.results[*]" in table
