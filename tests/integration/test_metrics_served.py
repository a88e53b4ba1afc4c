"""Per-mount metrics over real sockets, in one worker (`metrics_path`), once per HTTP
parser; and `gateway status` reading them from the running server.

Several workers summing their figures: tests/system/test_metrics_workers.py.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from support.deadlines import wait_until
from support.mount_files import PROBE_MOUNTS
from support.servers import Server

from gateway import cli
from gateway.server.metrics import parse_exposition

Serve = Callable[[str], Server]
PATH = "/_gateway/metrics"
DEADLINE_S = 30.0
# A WSGI request that holds its thread long enough for the test to see the pool busy.
HOLD_S = 1.5

CONFIG = (
    f"""
[server]
metrics_path = "{PATH}"
"""
    + PROBE_MOUNTS
)


@pytest.fixture
def server(serve: Serve) -> Server:
    return serve(CONFIG)


def scrape(server: Server) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    response = httpx.get(server.url + PATH)
    assert response.status_code == 200
    return {(s.name, frozenset(s.labels.items())): s.value for s in parse_exposition(response.text)}


def counted(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], **labels: str) -> float:
    return samples[("gateway_requests_total", frozenset(labels.items()))]


def gauge(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str) -> float:
    return samples[(name, frozenset({("mount", "/wsgi")}))]


def send_requests(server: Server) -> None:
    """8 requests to the ASGI mount (one 404, one 500), 4 to the WSGI one (one 500)."""
    with httpx.Client(base_url=server.url) as client:
        paths = ["/asgi/echo"] * 6 + ["/asgi/nothing", "/asgi/raise-before"]
        paths += ["/wsgi/environ"] * 3 + ["/wsgi/raise"]
        for path in paths:
            client.get(path)


def test_requests_are_counted_per_mount_and_status_class(server: Server) -> None:
    send_requests(server)
    samples = scrape(server)
    assert counted(samples, mount="/asgi", status_class="2xx") == 6
    assert counted(samples, mount="/asgi", status_class="4xx") == 1
    assert counted(samples, mount="/asgi", status_class="5xx") == 1
    assert counted(samples, mount="/wsgi", status_class="2xx") == 3
    assert counted(samples, mount="/wsgi", status_class="5xx") == 1
    assert gauge(samples, "gateway_wsgi_pool_threads") == 2
    assert gauge(samples, "gateway_requests_in_flight") == 0


def test_the_wsgi_pool_is_seen_busy_and_queued(server: Server) -> None:
    holds = [
        threading.Thread(target=httpx.get, args=(f"{server.url}/wsgi/sleep?{HOLD_S}",))
        for _ in range(3)
    ]
    for hold in holds:
        hold.start()

    def pool_full() -> bool:
        samples = scrape(server)
        busy = gauge(samples, "gateway_wsgi_pool_busy")
        return (busy, gauge(samples, "gateway_wsgi_pool_queued")) == (2, 1)

    wait_until(pool_full, DEADLINE_S)
    for hold in holds:
        hold.join(DEADLINE_S)
    wait_until(lambda: gauge(scrape(server), "gateway_wsgi_pool_busy") == 0, DEADLINE_S)


def test_gateway_status_reads_the_running_server(
    server: Server, capsys: pytest.CaptureFixture[str]
) -> None:
    send_requests(server)
    status = cli.main(["status", server.config.path, "--json", "--url", server.url + PATH])
    assert status == 0
    report = json.loads(capsys.readouterr().out)
    rows = {row["mount"]: row for row in report["mounts"]}
    assert [rows["/asgi"]["requests"], rows["/wsgi"]["requests"]] == [8, 4]
    assert rows["/asgi"]["share"] == pytest.approx(8 / 12)
    assert rows["/asgi"]["error_rate"] == pytest.approx(1 / 8)
    assert rows["/wsgi"]["error_rate"] == pytest.approx(1 / 4)
    assert rows["/wsgi"]["pool"]["threads"] == 2
    assert rows["/asgi"]["pool"] is None


def test_gateway_status_without_a_server_exits_1(
    server: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = "http+unix://" + str(tmp_path / "nobody.sock").replace("/", "%2F") + PATH
    assert cli.main(["status", server.config.path, "--url", url]) == 1
    assert "is the server running?" in capsys.readouterr().err


def test_gateway_status_of_a_server_without_metrics_exits_1(
    serve: Serve, capsys: pytest.CaptureFixture[str]
) -> None:
    plain = serve(CONFIG.replace(f'metrics_path = "{PATH}"', ""))
    assert cli.main(["status", plain.config.path, "--url", plain.url + PATH]) == 1
    assert "answered 404 Not Found" in capsys.readouterr().err
    assert cli.main(["status", plain.config.path]) == 1
    assert "metrics are off" in capsys.readouterr().err
