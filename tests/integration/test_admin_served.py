"""The admin listener over real sockets, in one worker (issue 17, point 1): the page,
/metrics and /status.json on a socket of its own, the bearer token, 404 and 405, and an
apps' port that serves none of it. Once per HTTP parser.

Served by `gateway serve` (workers 1 and 2): tests/system/test_admin_serve.py.
"""

from __future__ import annotations

import json
from collections.abc import Generator, Iterator
from pathlib import Path

import httpx
import pytest
from support.deadlines import CLIENT_TIMEOUT_S
from support.mount_files import PROBE_MOUNTS
from support.servers import HTTP_SESSIONS, Server, served_with_admin, write_config
from support.tls_certs import make_certs

from gateway.server.metrics import parse_exposition

TOKEN = "s3cret-token"
AUTH = {"authorization": f"Bearer {TOKEN}"}
REPORT_KEYS = {"url", "generated_at", "thresholds", "mounts", "routes", "history"}


@pytest.fixture(params=HTTP_SESSIONS)
def admin(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[Server, str]]:
    """A worker serving the probe apps, with an admin listener (and its token) on a
    socket the test bound; no metrics_path, so the apps' port serves no metrics."""
    yield from serve_with_admin(tmp_path, f"http = {request.param!r}")


def serve_with_admin(tmp_path: Path, settings: str) -> Generator[tuple[Server, str]]:
    # admin_bind turns metrics and the admin app on; the socket is the test's own, as
    # the apps' is (gateway/process/worker.py, rule "the worker never binds").
    text = f'[server]\n{settings}\nadmin_bind = "127.0.0.1:0"\n'
    text += f'admin_token = "{TOKEN}"\n' + PROBE_MOUNTS
    with served_with_admin(write_config(tmp_path, text)) as (server, url):
        yield server, url.rstrip("/")


def get(url: str, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.get(url, headers=headers, timeout=CLIENT_TIMEOUT_S)


def test_without_the_token_every_path_is_401_with_a_bearer_challenge(
    admin: tuple[Server, str],
) -> None:
    _, url = admin
    for path in ("/", "/metrics", "/status.json", "/nothing-here"):
        for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": TOKEN}):
            response = get(url + path, headers=headers)
            assert response.status_code == 401, (path, headers)
            assert response.headers["www-authenticate"] == 'Bearer realm="gateway"'
            assert response.headers["cache-control"] == "no-store"


def test_the_page_the_metrics_and_the_report_with_the_token(admin: tuple[Server, str]) -> None:
    server, url = admin
    assert httpx.get(server.url + "/asgi/echo").status_code == 200  # the apps' port
    page = get(url + "/", headers=AUTH)
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert page.headers["cache-control"] == "no-store"
    assert "<h1>Migration</h1>" in page.text and 'id="mounts"' in page.text

    metrics = get(url + "/metrics", headers=AUTH)
    assert metrics.status_code == 200 and metrics.headers["cache-control"] == "no-store"
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value for s in parse_exposition(metrics.text)
    }
    assert samples[("gateway_requests_total", (("mount", "/asgi"), ("status_class", "2xx")))] == 1

    status = get(url + "/status.json", headers=AUTH)
    assert status.headers["content-type"] == "application/json"
    report = json.loads(status.text)
    assert set(report) >= REPORT_KEYS
    assert report["url"] == url + "/"
    assert "/asgi" in {mount["mount"] for mount in report["mounts"]}


def test_other_paths_are_404_and_other_methods_405(admin: tuple[Server, str]) -> None:
    _, url = admin
    with httpx.Client(base_url=url, headers=AUTH, timeout=CLIENT_TIMEOUT_S) as client:
        assert client.get("/metrics/").status_code == 404
        assert client.get("/asgi/echo").status_code == 404  # never the apps
        assert client.get("/status.json/x").status_code == 404
        for path in ("/", "/metrics", "/status.json"):
            # Its own connection: answered before its body came, a request leaves a
            # connection that is closed, not reused (gateway/server/connection.py).
            response = client.post(path, content=b"x", headers={"connection": "close"})
            assert response.status_code == 405
            assert response.headers["allow"] == "GET, HEAD"
        head = client.head("/")
        assert head.status_code == 200 and head.content == b""


def test_the_apps_port_serves_none_of_the_admin_paths(admin: tuple[Server, str]) -> None:
    server, _ = admin
    with httpx.Client(base_url=server.url, headers=AUTH, timeout=CLIENT_TIMEOUT_S) as client:
        for path in ("/", "/metrics", "/status.json", "/_gateway/metrics"):
            response = client.get(path)
            assert response.status_code == 404, path  # no mount there: the router's 404
            assert "Migration" not in response.text and "gateway_requests" not in response.text


def test_the_admin_listener_stops_with_the_worker(admin: tuple[Server, str]) -> None:
    server, url = admin
    with httpx.Client(base_url=url, headers=AUTH, timeout=CLIENT_TIMEOUT_S) as client:
        assert client.get("/status.json").status_code == 200  # a keep-alive connection
        server.stop()
        with pytest.raises(httpx.TransportError):
            client.get("/status.json")


def test_the_admin_listener_is_plain_http_beside_apps_on_tls(tmp_path: Path) -> None:
    (tmp_path / "certs").mkdir()
    certs = make_certs(tmp_path / "certs")
    tls = f"certfile = {str(certs.cert)!r}\nkeyfile = {str(certs.key)!r}"
    served = serve_with_admin(tmp_path, tls)
    server, url = next(served)
    try:
        apps = httpx.get(
            f"https://127.0.0.1:{server.port}/asgi/echo",
            verify=certs.client_context(),
            timeout=CLIENT_TIMEOUT_S,
        )
        assert apps.status_code == 200
        assert get(url + "/status.json", headers=AUTH).status_code == 200  # http://
    finally:
        served.close()
