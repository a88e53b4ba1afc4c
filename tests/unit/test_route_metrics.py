"""The per-route recorder and the worker's report (gateway/server/route_metrics.py), in
one process, through ASGI calls; the sides of a mount file's mounts
(gateway/migration/routes.py `mount_sides`). Over real sockets:
tests/integration/test_route_metrics_served.py."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import pytest
from support.asgi_seams import answer, call, http_scope
from support.metric_samples import PATH, scrape

from gateway.asgi import ASGIApp, Receive, Scope, Send, mount_label, set_mount_label
from gateway.config.loader import parse_config
from gateway.config.server_table import ServerConfig
from gateway.migration.routes import ROUTE_KEY, answered_by, mount_sides
from gateway.server import metrics
from gateway.server.metrics import MULTIPROC_ENV
from gateway.server.mount_metrics import WorkerMetrics
from gateway.server.route_metrics import (
    LEDGER_PREFIX,
    MAX_LEDGER_FILES,
    read_ledgers,
    write_ledger,
)

SIDES = {"/api": "new", "legacy": "legacy", "/shop": "legacy", "newshop": "new"}

MOUNT_FILE = """
[[mount]]
prefix = "/api"
app = "a:app"
interface = "asgi"
fallback = "legacy"

[[mount]]
name = "legacy"
app = "b:app"
interface = "wsgi"

[[mount]]
prefix = "/shop"
app = "b:app"
interface = "wsgi"
canary = "newshop"

[[mount]]
name = "newshop"
app = "a:app"
interface = "asgi"

[[mount]]
prefix = "/copied"
app = "a:app"
interface = "asgi"
shadow = "newshop"

[[mount]]
prefix = "/plain-asgi"
app = "a:app"
interface = "asgi"

[[mount]]
prefix = "/plain-wsgi"
app = "b:app"
interface = "wsgi"
"""


def test_sides_come_from_the_links() -> None:
    sides = mount_sides(parse_config(MOUNT_FILE, "gateway.toml").mounts)
    assert sides == {
        "/api": "new",
        "legacy": "legacy",
        "/shop": "legacy",
        "newshop": "new",
        "/copied": "legacy",  # a mount with a shadow is legacy, even when ASGI
        "/plain-asgi": "new",
        "/plain-wsgi": "legacy",
    }


@pytest.mark.parametrize(
    ("label", "answered"),
    [
        ("/api", ("/api", False)),
        ("/api>fallback:legacy", ("legacy", True)),
        ("/shop>canary:newshop", ("newshop", False)),
        ("/copied>shadow:newshop", ("/copied", False)),
        ("/api>fallback:legacy>shadow:newapi", ("legacy", True)),
    ],
)
def test_the_answering_mount_is_the_last_hop_but_a_shadow(
    label: str, answered: tuple[str, bool]
) -> None:
    assert answered_by(label) == answered


@pytest.fixture
def worker_metrics() -> WorkerMetrics:
    assert not metrics.multiprocess(), "these tests need single-process mode"
    return WorkerMetrics(PATH, ServerConfig(routes_per_mount=3))


def hopping(hop: str, status: int) -> ASGIApp:
    """An app that answers `status` as if a link to `hop` had served it ("" : none)."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if hop:
            set_mount_label(scope, mount_label(scope) + hop)
        await answer(status)(scope, receive, send)

    return app


def recorded(worker_metrics: WorkerMetrics, label: str, app: ASGIApp) -> ASGIApp:
    outer = worker_metrics.routes.recorder(label, label, SIDES)
    return outer(app)


def request(path: str, label: str) -> Scope:
    scope = http_scope(path, root_path=label)
    set_mount_label(scope, label)
    return scope


def route_requests(samples: dict[Any, float], route: str, side: str, cls: str = "2xx") -> float:
    labels = {"mount": "/api", "route": route, "side": side, "status_class": cls}
    return samples.get(("gateway_route_requests_total", frozenset(labels.items())), 0.0)


def test_each_request_is_counted_by_route_side_and_class(worker_metrics: WorkerMetrics) -> None:
    new = recorded(worker_metrics, "/api", hopping("", 200))
    fell_back = recorded(worker_metrics, "/api", hopping(">fallback:legacy", 500))
    for n in range(3):
        call(new, request(f"/api/users/{n}", "/api"))
        call(fell_back, request(f"/api/users/{n}", "/api"))
    samples = scrape(worker_metrics)
    # Two recorders of one label share its book: the first request was the first sighting.
    assert route_requests(samples, "/users/{int}", "new") == 2
    assert route_requests(samples, "/users/{int}", "legacy", "5xx") == 3
    assert route_requests(samples, "other", "new") == 1
    fallbacks = frozenset({"mount": "/api", "route": "/users/{int}"}.items())
    assert samples[("gateway_route_fallbacks_total", fallbacks)] == 3
    latency = frozenset({"mount": "/api", "route": "/users/{int}", "side": "new"}.items())
    assert samples[("gateway_route_duration_seconds_count", latency)] == 2


def test_the_route_is_kept_on_the_scope(worker_metrics: WorkerMetrics) -> None:
    app = recorded(worker_metrics, "/api", hopping("", 200))
    scope = request("/api/x", "/api")
    call(app, scope)
    assert scope[ROUTE_KEY] == "other"  # its first sighting


def test_an_app_that_raises_is_counted_as_the_server_answers_it(
    worker_metrics: WorkerMetrics,
) -> None:
    async def raising(scope: Scope, receive: Receive, send: Send) -> None:
        raise RuntimeError("boom")

    app = recorded(worker_metrics, "/api", raising)
    for _ in range(2):
        with pytest.raises(RuntimeError):
            call(app, request("/api/boom", "/api"))
    assert route_requests(scrape(worker_metrics), "/boom", "new", "5xx") == 1


def test_websockets_pass_through_uncounted(worker_metrics: WorkerMetrics) -> None:
    seen: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope["type"])

    recorder = recorded(worker_metrics, "/api", app)
    asyncio.run(recorder(http_scope("/api/ws", type="websocket"), None, None))  # type: ignore[arg-type]
    assert seen == ["websocket"]
    assert not [k for k in scrape(worker_metrics) if k[0] == "gateway_route_requests_total"]


def test_shadow_comparisons_count_per_route_within_the_book(
    worker_metrics: WorkerMetrics,
) -> None:
    app = recorded(worker_metrics, "/api", hopping("", 200))
    for _ in range(2):
        call(app, request("/api/items/1", "/api"))
    worker_metrics.count_route_shadow("/api", "/items/{int}", mismatch=False)
    worker_metrics.count_route_shadow("/api", "/items/{int}", mismatch=True)
    worker_metrics.count_route_shadow("/api", "/never/admitted", mismatch=True)
    worker_metrics.count_route_shadow("/nowhere", "/items/{int}", mismatch=True)
    samples = scrape(worker_metrics)

    def counted(name: str, route: str) -> float:
        return samples.get((name, frozenset({"mount": "/api", "route": route}.items())), 0.0)

    assert counted("gateway_route_shadow_compared_total", "/items/{int}") == 2
    assert counted("gateway_route_shadow_mismatches_total", "/items/{int}") == 1
    assert counted("gateway_route_shadow_mismatches_total", "other") == 1  # kept bounded


def test_the_shadow_s_route_of_is_the_recorder_s_book(worker_metrics: WorkerMetrics) -> None:
    route_of = worker_metrics.routes.route_of("/api", "/api")  # the shadow is built first
    app = recorded(worker_metrics, "/api", hopping("", 200))
    call(app, request("/api/a", "/api"))
    assert route_of(request("/api/a", "/api")) == "/a"  # its second sighting, in one book


def test_the_report_json_has_routes_verdicts_and_history(worker_metrics: WorkerMetrics) -> None:
    worker_metrics.wrap(answer(200), "/api")
    app = recorded(worker_metrics, "/api", hopping("", 200))
    for _ in range(3):
        call(app, request("/api/items/1", "/api"))
    worker_metrics.routes.ledger.note_mismatch("/api", "/items/{int}", "status", {"s": 1})
    report = asyncio.run(worker_metrics.report_json())
    json.dumps(report)  # it is JSON
    [route] = [r for r in report["routes"] if r["route"] == "/items/{int}"]
    assert route["requests"] == 2 and route["verdict"] == "served by new"
    assert route["mismatches"] == [{"kind": "status", "count": 1, "sample": {"s": 1}}]
    assert sum(minute["new"] for minute in report["history"]) == 3
    assert report["thresholds"] == {"agreement_percent": 99.0, "min_compared": 100}
    assert [m["mount"] for m in report["mounts"]] == ["/api"]


def test_ledger_files_are_written_whole_and_read_back(tmp_path: Path) -> None:
    write_ledger(str(tmp_path), 11, {"history": [[60, 1, 0]]})
    write_ledger(str(tmp_path), 12, {"history": [[60, 0, 2]]})
    (tmp_path / f"{LEDGER_PREFIX}13.json").write_text("{not json")
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        f"{LEDGER_PREFIX}11.json",
        f"{LEDGER_PREFIX}12.json",
        f"{LEDGER_PREFIX}13.json",
    ]
    docs = read_ledgers(str(tmp_path))
    assert sorted(d["history"][0][1:] for d in docs) == [[0, 2], [1, 0]]


def test_only_the_newest_ledger_files_are_kept(tmp_path: Path) -> None:
    """Recycled workers leave a file each: past MAX_LEDGER_FILES the oldest go."""
    for pid in range(MAX_LEDGER_FILES + 5):
        write_ledger(str(tmp_path), pid, {"history": [[60, pid, 0]]})
        path = tmp_path / f"{LEDGER_PREFIX}{pid}.json"
        os.utime(path, (1_000 + pid, 1_000 + pid))  # written in pid order
    docs = read_ledgers(str(tmp_path))
    assert sorted(doc["history"][0][1] for doc in docs) == list(range(5, MAX_LEDGER_FILES + 5))
    assert len(list(tmp_path.glob(f"{LEDGER_PREFIX}*.json"))) == MAX_LEDGER_FILES


def test_a_worker_sharing_a_directory_writes_its_ledger_when_it_publishes(
    worker_metrics: WorkerMetrics, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(MULTIPROC_ENV, str(tmp_path))
    app = recorded(worker_metrics, "/api", hopping("", 200))
    call(app, request("/api/a", "/api"))
    worker_metrics.publish()
    [written] = tmp_path.glob(f"{LEDGER_PREFIX}*.json")
    assert json.loads(written.read_text())["history"][0][1:] == [1, 0]
    # Another worker's file joins the report.
    write_ledger(
        str(tmp_path), 1, {"history": [[json.loads(written.read_text())["history"][0][0], 0, 5]]}
    )
    report = asyncio.run(worker_metrics.report_json())
    assert sum(minute["legacy"] for minute in report["history"]) == 5
