"""The shadow's per-route figures reach the report (issue 17, points 2, 4 and 7): with
the admin listener on (so metrics are on) and shadow_denoise on, a Flask primary and a
FastAPI shadow whose answers carry a timestamp, random ids and a random request id next
to one real difference (tests/apps/shadow_noisy.py: odd orders are a cent off), read
back from the admin listener's /status.json over a real socket.

One route template carries it all: its comparisons, the real difference as a mismatch
kind with its count and a sample, and the noise the denoise learned. That is the
shadow wired to the route book and the ledger (gateway/process/worker.py
`_shadow_rule`), not only to its log.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.deadlines import CLIENT_TIMEOUT_S, wait_until
from support.servers import HTTP_SESSIONS, Server, served_with_admin, write_config

MOUNTS = """
[server]
http = "{http}"
admin_bind = "127.0.0.1:0"

[[mount]]
prefix = "/api"
app = "shadow_noisy:legacy"
interface = "wsgi"
threads = 4
shadow = "newapi"
shadow_denoise = true
shadow_denoise_percent = 100
shadow_log = "mismatches.jsonl"

[[mount]]
name = "newapi"
app = "shadow_noisy:new"
interface = "asgi"
"""
# Orders 1..ORDERS, one request each. The legacy app names no template, so the route is
# made from the path, "/orders/{int}", and counts from its second request: order 1 is
# "other" (gateway/migration/routes.py, rule "bounded admission").
ORDERS = 12
ROUTE = "/orders/{int}"
ON_ROUTE = range(2, ORDERS + 1)
ODD = [number for number in ON_ROUTE if number % 2]  # the real difference's orders
NOISE_PATHS = {"$.generated_at", "$.trace", "$.items[*].line_id"}
Report = dict[str, Any]


@pytest.fixture(params=HTTP_SESSIONS)
def served(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[Server, str]]:
    """The server and its admin listener's URL, on a socket the test bound (the worker
    never binds: gateway/process/worker.py, rule "the worker never binds")."""
    with served_with_admin(write_config(tmp_path, MOUNTS.format(http=request.param))) as both:
        yield both


def route_of(report: Report, route: str) -> Report:
    routes: list[Report] = report["routes"]
    [found] = [r for r in routes if (r["mount"], r["route"]) == ("/api", route)]
    return found


def compared_report(admin: str) -> Report:
    """/status.json once every copy is compared (each after its primary's answer, off
    the client's path)."""
    found: list[Report] = []

    def compared() -> bool:
        found[:] = [httpx.get(admin + "status.json", timeout=CLIENT_TIMEOUT_S).json()]
        compared: int = sum(r["shadow_compared"] for r in found[0]["routes"])
        return compared == ORDERS

    wait_until(compared)
    return found[0]


def test_the_route_reports_its_comparisons_mismatch_and_learned_noise(
    served: tuple[Server, str],
) -> None:
    server, admin = served
    with httpx.Client(base_url=server.url, timeout=CLIENT_TIMEOUT_S) as client:
        for number in range(1, ORDERS + 1):
            answer = client.get(f"/api/orders/{number}")
            assert answer.json()["total_cents"] == 1000 + number  # always the primary's
    route = route_of(compared_report(admin), ROUTE)

    assert route["requests"] == len(ON_ROUTE)
    assert route["shadow_compared"] == len(ON_ROUTE)
    assert route["shadow_agreement"] == pytest.approx(1 - len(ODD) / len(ON_ROUTE))
    # The real difference, and only it: the timestamp and the ids are noise.
    [mismatch] = route["mismatches"]
    assert (mismatch["kind"], mismatch["count"]) == ("body $.total_cents", len(ODD))
    sample = mismatch["sample"]
    assert sample["request"] in {f"GET /api/orders/{number}" for number in ODD}
    number = int(sample["request"].rsplit("/", 1)[1])
    assert sample["diff"] == {
        "json": [
            {"path": "$.total_cents", "primary": str(1000 + number), "shadow": str(1001 + number)}
        ]
    }
    # The noise, learned under the same route template from the primary's two answers.
    noise = route["noise"]
    assert set(noise["json_paths"]) == NOISE_PATHS
    assert noise["headers"] == ["x-request-id"]
    assert noise["samples"] == len(ON_ROUTE)


def test_the_first_sighting_is_other_with_its_own_figures(served: tuple[Server, str]) -> None:
    server, admin = served
    with httpx.Client(base_url=server.url, timeout=CLIENT_TIMEOUT_S) as client:
        for number in range(1, ORDERS + 1):
            assert client.get(f"/api/orders/{number}").status_code == 200
    report = compared_report(admin)
    other = route_of(report, "other")
    # Order 1 is odd: its copy differed too, noted under "other", not under the route.
    assert (other["requests"], other["shadow_compared"]) == (1, 1)
    assert [m["kind"] for m in other["mismatches"]] == ["body $.total_cents"]
    assert {r["route"] for r in report["routes"]} == {ROUTE, "other"}
    wait_until(lambda: len(log_lines(server)) == len(ODD) + 1)  # the log says it too


def log_lines(server: Server) -> list[str]:
    path = Path(server.config.path).parent / "mismatches.jsonl"
    return path.read_text().splitlines() if path.exists() else []
