"""Health endpoints (`health_path`) over real sockets, once per HTTP parser.

The probes are answered before routing; every other path, including other paths under
the health prefix, is routed as usual. Readiness turns 503 as soon as a stop is asked
for, while `shutdown_delay` keeps ordinary requests served.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from support.deadlines import wait_until
from support.servers import Server

Serve = Callable[[str], Server]

WITH_HEALTH = """
[server]
health_path = "/_gateway"

[[mount]]
prefix = "/asgi"
app = "probe_asgi:app"
interface = "asgi"
"""

PROBES = ("/_gateway/live", "/_gateway/ready")


@pytest.fixture
def server(serve: Serve) -> Server:
    return serve(WITH_HEALTH)


@pytest.mark.parametrize("path", PROBES)
def test_probe_answers_200_once_started(server: Server, path: str) -> None:
    response = httpx.get(server.url + path)
    assert response.status_code == 200
    assert response.text == "OK\n"
    assert response.headers["cache-control"] == "no-store"


def test_probe_ignores_the_query_string(server: Server) -> None:
    assert httpx.get(server.url + "/_gateway/ready?verbose=1").status_code == 200


@pytest.mark.parametrize("path", PROBES)
def test_head_probe_has_no_body(server: Server, path: str) -> None:
    response = httpx.head(server.url + path)
    assert response.status_code == 200
    assert response.content == b""


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "OPTIONS"])
@pytest.mark.parametrize("path", PROBES)
def test_other_methods_get_405_with_allow(server: Server, path: str, method: str) -> None:
    response = httpx.request(method, server.url + path, content=b"x")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD"


@pytest.mark.parametrize(
    "path",
    ["/_gateway", "/_gateway/", "/_gateway/other", "/_gateway/live/x", "/_gateway/readyz"],
)
def test_other_paths_under_the_prefix_go_to_the_router(server: Server, path: str) -> None:
    response = httpx.get(server.url + path)
    assert response.status_code == 404
    assert response.text == "Not Found\n"  # the router's own answer: no mount serves it


def test_a_mount_under_the_health_prefix_serves_the_rest(serve: Serve) -> None:
    server = serve(WITH_HEALTH.replace('prefix = "/asgi"', 'prefix = "/_gateway"'))
    assert httpx.get(server.url + "/_gateway/ready").text == "OK\n"
    echoed = httpx.post(server.url + "/_gateway/echo", content=b"to the app")
    assert (echoed.status_code, echoed.text) == (200, "to the app")


def test_without_health_path_the_probe_paths_are_routed(serve: Serve) -> None:
    # probe_asgi echoes the body at its mount's root: only the app answers like this.
    server = serve(
        '[server]\n\n[[mount]]\nprefix = "/_gateway/ready"\n'
        'app = "probe_asgi:app"\ninterface = "asgi"\n'
    )
    response = httpx.post(server.url + "/_gateway/ready", content=b"routed")
    assert (response.status_code, response.text) == (200, "routed")
    assert httpx.get(server.url + "/_gateway/live").status_code == 404


def test_readiness_turns_503_on_stop_while_requests_are_still_served(serve: Serve) -> None:
    # A delay far longer than the test: the teardown's second stop request cuts it short.
    server = serve(WITH_HEALTH.replace("[server]", "[server]\nshutdown_delay = 120", 1))
    server.loop.call_soon_threadsafe(server.worker.request_stop)
    wait_until(lambda: httpx.get(server.url + "/_gateway/ready").status_code == 503)
    assert httpx.post(server.url + "/asgi/echo", content=b"still").text == "still"
    assert httpx.get(server.url + "/_gateway/live").status_code == 200
    assert httpx.get(server.url + "/_gateway/ready").status_code == 503
