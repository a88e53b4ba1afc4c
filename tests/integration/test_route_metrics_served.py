"""Per-route figures over real sockets (issue 17, point 2): a FastAPI "new" app falling
back to a Flask "legacy" one, a Flask mount with a FastAPI canary, and a Flask mount
copied to a FastAPI shadow (tests/apps/migration_*.py, shadow_*.py), read back from the
metrics endpoint as a scraper reads them.

A route made from the path is admitted on its second sighting
(gateway/migration/routes.py, rule "bounded admission"): its first request counts as
"other". A framework's template counts from the first.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from support.deadlines import wait_until
from support.metric_samples import Samples, samples_of
from support.mount_files import SHADOW_NEW_MOUNTS, fallback_mounts
from support.servers import Server
from support.ws_clients import DEADLINE_S

PATH = "/_gateway/metrics"
MOUNTS = (
    f"""
[server]
metrics_path = "{PATH}"
routes_per_mount = 4
"""
    + fallback_mounts(1000)
    + """
[[mount]]
prefix = "/shop"
app = "migration_legacy:app"
interface = "wsgi"
canary = "new-shop"
canary_percent = 0
canary_header = "x-canary"

[[mount]]
name = "new-shop"
app = "migration_new:app"
interface = "asgi"

[[mount]]
prefix = "/copied"
app = "shadow_legacy:app"
interface = "wsgi"
shadow = "newapi"
"""
    + SHADOW_NEW_MOUNTS
)

Serve = Callable[[str], Server]


@pytest.fixture
def server(serve: Serve) -> Server:
    return serve(MOUNTS)


def scrape(client: httpx.Client) -> Samples:
    return samples_of(client.get(PATH).text)


def requests(samples: Samples, mount: str, route: str, side: str, status: str = "2xx") -> float:
    labels = {"mount": mount, "route": route, "side": side, "status_class": status}
    return samples.get(("gateway_route_requests_total", frozenset(labels.items())), 0.0)


def fallbacks(samples: Samples, mount: str, route: str) -> float:
    labels = frozenset({"mount": mount, "route": route}.items())
    return samples.get(("gateway_route_fallbacks_total", labels), 0.0)


def counted(client: httpx.Client, mount: str, route: str, side: str, wanted: float) -> Samples:
    """The samples, once the route's requests reach `wanted` (each is counted as its app
    returns, a moment after the client has its answer)."""
    found: list[Samples] = []

    def reached() -> bool:
        found[:] = [scrape(client)]
        return requests(found[0], mount, route, side) >= wanted

    wait_until(reached, DEADLINE_S)
    return found[0]


def test_the_new_app_s_routes_count_under_its_own_templates(server: Server) -> None:
    with httpx.Client(base_url=server.url) as client:
        for n in range(5):
            assert client.get(f"/api/users/{n}").json()["app"] == "new"
        samples = counted(client, "/api", "/users/{user_id}", "new", 5)
    assert requests(samples, "/api", "/users/{user_id}", "new") == 5
    assert requests(samples, "/api", "/users/{user_id}", "legacy") == 0
    assert fallbacks(samples, "/api", "/users/{user_id}") == 0
    latency = frozenset({"mount": "/api", "route": "/users/{user_id}", "side": "new"}.items())
    assert samples[("gateway_route_duration_seconds_count", latency)] == 5


def test_fallen_back_routes_are_legacy_s_and_counted_as_fallbacks(server: Server) -> None:
    with httpx.Client(base_url=server.url) as client:
        for n in range(4):
            assert client.get(f"/api/orders/{n}").json()["app"] == "legacy"
        assert client.post("/api/form", content=b"x").json()["app"] == "legacy"
        samples = counted(client, "/api", "/form", "legacy", 1)
        samples = counted(client, "/api", "/orders/{int}", "legacy", 3)
    # The new app knows /form (its 405 carries FastAPI's route); /orders is the path's.
    assert fallbacks(samples, "/api", "/form") == 1
    assert requests(samples, "/api", "other", "legacy") == 1  # /orders' first sighting
    assert fallbacks(samples, "/api", "/orders/{int}") == 3
    assert fallbacks(samples, "/api", "other") == 1
    assert requests(samples, "/api", "/orders/{int}", "new") == 0


def test_a_canary_s_template_names_the_legacy_side_s_requests_too(server: Server) -> None:
    with httpx.Client(base_url=server.url) as client:
        forced = {"x-canary": "canary"}
        assert client.get("/shop/users/1", headers=forced).json()["app"] == "new"
        for n in range(3):
            assert client.get(f"/shop/users/{n}").json()["app"] == "legacy"
        samples = counted(client, "/shop", "/users/{user_id}", "legacy", 3)
    assert requests(samples, "/shop", "/users/{user_id}", "new") == 1
    assert requests(samples, "/shop", "/users/{user_id}", "legacy") == 3
    assert fallbacks(samples, "/shop", "/users/{user_id}") == 0


def test_a_shadowed_mount_counts_its_primary_once_and_not_the_copy(server: Server) -> None:
    with httpx.Client(base_url=server.url) as client:
        for n in range(3):
            assert client.get(f"/copied/items/{n}").status_code == 200
        wait_until(lambda: server.worker.shadows.started >= 3, DEADLINE_S)
        wait_until(lambda: server.worker.shadows.in_flight == 0, DEADLINE_S)
        samples = counted(client, "/copied", "/items/{int}", "legacy", 2)
    assert requests(samples, "/copied", "/items/{int}", "legacy") == 2
    assert requests(samples, "/copied", "other", "legacy") == 1
    # The copies went to the shadow through its link: no request of the new side.
    sides = {
        dict(labels)["side"]
        for (name, labels), value in samples.items()
        if name == "gateway_route_requests_total" and value
    }
    assert sides == {"legacy"}


def test_routes_past_the_limit_count_as_other(server: Server) -> None:
    with httpx.Client(base_url=server.url) as client:
        for name in ("a", "b", "c", "d", "e", "f"):
            for _ in range(2):
                client.get(f"/api/{name}")
        wait_until(
            lambda: requests(scrape(client), "/api", "other", "legacy", "4xx") >= 8, DEADLINE_S
        )
        samples = scrape(client)
    routes = {
        dict(labels)["route"]
        for name, labels in samples
        if name == "gateway_route_requests_total" and dict(labels)["mount"] == "/api"
    }
    assert len(routes - {"other"}) == 4
