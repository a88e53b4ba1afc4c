"""Per-route figures summed across workers (issue 17, points 2 and 6): `gateway serve
--workers 2` with `metrics_path`, a FastAPI "new" app at /api falling back to a Flask
"legacy" one (tests/apps/migration_*.py), and `gateway status` printing the routes.

Each request to /api goes on the connection of a /pid request (the worker probe at "/"),
so the test knows which worker served it, and goes on until both workers have served
some: a total equal to the requests sent counts both workers' requests, whoever answered
the scrape.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.deadlines import wait_until
from support.metric_samples import Samples, scrape_url
from support.mount_files import fallback_mounts
from support.processes import GatewayProcess, gateway_status, mount_file

from gateway.server.route_metrics import LEDGER_PREFIX

PATH = "/_gateway/metrics"
DEADLINE_S = 30.0
# Pairs of requests sent, each pair on a new connection, until both workers have served
# some: the kernel spreads new connections over the workers, so a few dozen almost
# always do.
MAX_PAIRS = 200
SCRAPES = 6  # each on a new connection, so any worker may answer it
FALLING_BACK = 4  # requests to a route only the legacy app has


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return mount_file(tmp_path / "gateway.toml", f'metrics_path = "{PATH}"', fallback_mounts(1000))


@pytest.fixture
def metrics_dir_parent(tmp_path: Path) -> Path:
    """Where the supervisor makes its metrics directory (TMPDIR for the server)."""
    parent = tmp_path / "tmp"
    parent.mkdir()
    return parent


@pytest.fixture
def gateway(config: Path, metrics_dir_parent: Path) -> Iterator[GatewayProcess]:
    env = {"TMPDIR": str(metrics_dir_parent)}
    process = GatewayProcess(config, "--workers", "2", env=env)
    try:
        process.wait_for_line("2 workers ready")
        yield process
    finally:
        process.stop()


def scrape(gateway: GatewayProcess) -> Samples:
    """One scrape on a connection of its own."""
    return scrape_url(gateway.url + PATH)


def route_requests(samples: Samples, route: str, side: str) -> float:
    labels = {"mount": "/api", "route": route, "side": side, "status_class": "2xx"}
    return samples.get(("gateway_route_requests_total", frozenset(labels.items())), 0.0)


def users_from_both_workers(gateway: GatewayProcess) -> Counter[int]:
    """/api/users/N requests, each after a /pid on its connection, until both workers
    served some: how many each did."""
    served: Counter[int] = Counter()
    end = time.monotonic() + DEADLINE_S
    while len(served) < 2 and sum(served.values()) < MAX_PAIRS:
        assert time.monotonic() < end, "the workers did not both answer in time"
        with httpx.Client(base_url=gateway.url, timeout=DEADLINE_S) as client:
            pid = int(client.get("/pid").text)
            assert client.get(f"/api/users/{len(served)}").json()["app"] == "new"
        served[pid] += 1
    assert len(served) == 2, f"one worker answered all {MAX_PAIRS} requests"
    return served


def test_per_route_figures_are_summed_across_two_workers(
    gateway: GatewayProcess, config: Path
) -> None:
    sent = sum(users_from_both_workers(gateway).values())
    with httpx.Client(base_url=gateway.url, timeout=DEADLINE_S) as client:
        for n in range(FALLING_BACK):
            assert client.get(f"/api/orders/{n}").json()["app"] == "legacy"
    for _ in range(SCRAPES):
        samples = scrape(gateway)
        assert route_requests(samples, "/users/{user_id}", "new") == sent
        assert route_requests(samples, "/users/{user_id}", "legacy") == 0
        fallbacks = sum(
            v for (name, _), v in samples.items() if name == "gateway_route_fallbacks_total"
        )
        assert fallbacks == FALLING_BACK

    result = gateway_status(config, "--json", "--url", gateway.url + PATH)
    assert result.returncode == 0, result.stderr
    routes = {route["route"]: route for route in json.loads(result.stdout)["routes"]}
    assert routes["/users/{user_id}"]["requests"] == sent
    assert routes["/users/{user_id}"]["new_share"] == 1.0
    assert routes["/users/{user_id}"]["verdict"] == "served by new"
    falling = [route for route in routes.values() if route["fallback_rate"]]
    assert sum(route["legacy"]["requests"] for route in falling) == FALLING_BACK
    assert {route["verdict"] for route in falling} == {"still falls back"}

    table = gateway_status(config, "--url", gateway.url + PATH)
    assert table.returncode == 0, table.stderr
    [line] = [line for line in table.stdout.splitlines() if "/users/{user_id}" in line]
    assert line.split()[:4] == ["/api", "/users/{user_id}", str(sent), "100.0%"]
    assert line.endswith("served by new")


def ledgers(parent: Path) -> dict[int, dict[str, Any]]:
    """The workers' ledger files in the metrics directory, by pid (a file being
    replaced is read at the next try)."""
    found = {}
    for path in parent.glob(f"*/{LEDGER_PREFIX}*.json"):
        with contextlib.suppress(OSError, ValueError):
            found[int(path.stem.removeprefix(LEDGER_PREFIX))] = json.loads(path.read_text())
    return found


def test_each_worker_writes_its_ledger_to_the_metrics_directory(
    gateway: GatewayProcess, metrics_dir_parent: Path
) -> None:
    served = users_from_both_workers(gateway)

    def new_requests(doc: dict[str, Any]) -> int:
        return sum(new for _, new, _ in doc["history"])

    # Written when the worker publishes its gauges, once a second. Each /api request came
    # after a /pid, which the worker probe (an ASGI mount: the new side) served.
    wanted = {pid: 2 * count for pid, count in served.items()}

    def written() -> dict[int, int]:
        return {pid: new_requests(doc) for pid, doc in ledgers(metrics_dir_parent).items()}

    wait_until(lambda: written() == wanted, DEADLINE_S)
