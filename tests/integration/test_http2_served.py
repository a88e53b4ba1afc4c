"""What HTTP/1.1 serves, served per stream over HTTP/2 (issue 16, point 2): lifespan
state, fallback, canary, shadow, metrics, health endpoints and the access log, with
httpx speaking h2c by prior knowledge. The HTTP/1.1 versions, whose apps and mount
tables these reuse: test_migration.py, test_shadow_served.py, test_metrics_served.py,
test_health.py."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator

import httpx
import pytest
from support.deadlines import CLIENT_TIMEOUT_S, wait_until
from support.mount_files import PROBE_ASGI_MOUNT, SHADOW_NEW_MOUNTS, fallback_mounts
from support.servers import Server, write_config

from gateway.server.metrics import parse_exposition

CAP = 1000  # the /api mount's fallback_body_bytes
METRICS = "/_gateway/metrics"
CONFIG = (
    f"""
[server]
health_path = "/_gateway"
metrics_path = "{METRICS}"
"""
    + PROBE_ASGI_MOUNT
    + fallback_mounts(CAP)
    + """
[[mount]]
prefix = "/shop"
app = "migration_legacy:app"
interface = "wsgi"
canary = "new-shop"
canary_percent = 25
canary_header = "x-canary"

[[mount]]
name = "new-shop"
app = "migration_new:app"
interface = "asgi"

[[mount]]
prefix = "/shadowed"
app = "shadow_legacy:app"
interface = "wsgi"
threads = 4
shadow = "newapi"
shadow_methods = ["GET", "POST"]
shadow_log = "mismatches.jsonl"
"""
    + SHADOW_NEW_MOUNTS
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server for the module: HTTP/2 does not depend on the HTTP/1.1 parser."""
    server = Server(write_config(tmp_path_factory.mktemp("h2served"), CONFIG)).start()
    yield server
    server.stop()


@pytest.fixture
def h2(server: Server) -> Iterator[httpx.Client]:
    """An h2c client: every request a stream on one connection."""
    with httpx.Client(
        base_url=server.url, http1=False, http2=True, timeout=CLIENT_TIMEOUT_S
    ) as client:
        yield client


def on_h2(response: httpx.Response) -> httpx.Response:
    assert response.http_version == "HTTP/2"
    return response


def test_the_lifespan_state_reaches_each_stream(h2: httpx.Client) -> None:
    for _ in range(2):
        scope = on_h2(h2.get("/asgi/scope")).json()
        assert (scope["http_version"], scope["state"]) == ("2", {"probe": "started"})


def test_a_404_falls_back_and_a_small_body_is_replayed(h2: httpx.Client) -> None:
    assert on_h2(h2.get("/api/users/7")).json()["app"] == "new"
    answer = on_h2(h2.get("/api/orders/3")).json()
    assert answer == {"app": "legacy", "script_name": "/api", "url": "/api/orders/3"}
    replayed = on_h2(h2.post("/api/upload", content=b"x" * (CAP - 1))).json()
    assert replayed == {"app": "legacy", "script_name": "/api", "length": CAP - 1}


@pytest.mark.parametrize(
    ("side", "expected"),
    [
        ("canary", {"app": "new", "root_path": "/shop"}),
        ("primary", {"app": "legacy", "script_name": "/shop"}),
    ],
)
def test_the_canary_header_picks_a_side(
    h2: httpx.Client, side: str, expected: dict[str, str]
) -> None:
    assert on_h2(h2.get("/shop/item", headers={"x-canary": side})).json() == expected


def test_a_copy_reaches_the_shadow(server: Server, h2: httpx.Client) -> None:
    key = uuid.uuid4().hex
    response = on_h2(h2.post("/shadowed/echo", params={"id": key}, content=b"hello shadow"))
    assert response.json() == {"length": 12}
    shadows = server.worker.shadows
    wait_until(lambda: h2.get("/new/seen", params={"id": key}).json() != {}, CLIENT_TIMEOUT_S)
    wait_until(lambda: shadows.in_flight == 0, CLIENT_TIMEOUT_S)
    seen = h2.get("/new/seen", params={"id": key}).json()
    assert (seen["method"], seen["path"], seen["body"]) == (
        "POST",
        "/shadowed/echo",
        "hello shadow",
    )
    assert seen["mount"] == "/shadowed>shadow:newapi"


def requests_2xx(h2: httpx.Client, mount: str) -> float:
    samples = parse_exposition(on_h2(h2.get(METRICS)).text)
    labels = {"mount": mount, "status_class": "2xx"}
    found = [s.value for s in samples if s.name == "gateway_requests_total" and s.labels == labels]
    return found[0] if found else 0.0


def test_each_stream_is_counted_in_the_metrics(h2: httpx.Client) -> None:
    before = requests_2xx(h2, "/asgi")
    for _ in range(3):
        on_h2(h2.get("/asgi/echo"))
    wait_until(lambda: requests_2xx(h2, "/asgi") == before + 3, CLIENT_TIMEOUT_S)


@pytest.mark.parametrize("path", ["/_gateway/live", "/_gateway/ready"])
def test_the_health_endpoints_answer_on_a_stream(h2: httpx.Client, path: str) -> None:
    response = on_h2(h2.get(path))
    assert (response.status_code, response.text) == (200, "OK\n")
    assert response.headers["cache-control"] == "no-store"


def test_the_access_log_names_the_mount_of_each_stream(
    h2: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.access")
    on_h2(h2.get("/api/orders/1"))
    on_h2(h2.get("/api/users/1"))

    def logged() -> list[str]:
        return [r.getMessage() for r in caplog.records if "/api/" in r.getMessage()]

    wait_until(lambda: len(logged()) >= 2, CLIENT_TIMEOUT_S)
    fallback, own = logged()[:2]
    assert "/api/orders/1 HTTP/2" in fallback and fallback.endswith("mount=/api>fallback:legacy")
    assert "/api/users/1 HTTP/2" in own and own.endswith("mount=/api")
