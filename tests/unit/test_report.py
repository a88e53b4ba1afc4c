"""The migration report's routes and verdicts (gateway/migration/report.py), from
samples as the per-route families export them. The mount-level figures and the
quantiles: tests/unit/test_status.py."""

from __future__ import annotations

from dataclasses import asdict

import pytest

from gateway.migration.ledger import HISTORY_MINUTES
from gateway.migration.report import (
    COLLECTING,
    DISAGREES,
    READY,
    ROUTING_EVENTS,
    SERVED_BY_NEW,
    STILL_FALLS_BACK,
    Sample,
    Thresholds,
    build_report,
)
from gateway.server.metrics import LATENCY_BUCKETS_S, ROUTING_COUNTERS

T0 = 1_800_000_000.0
THRESHOLDS = Thresholds(agreement_percent=99.0, min_compared=100)


def route_samples(
    route: str,
    *,
    new: dict[str, int] | None = None,
    legacy: dict[str, int] | None = None,
    fallbacks: int = 0,
    compared: int = 0,
    mismatches: int = 0,
    mount: str = "/api",
    seconds: float = 0.003,
) -> list[Sample]:
    """The samples a route's families export: requests by side and class, a histogram
    whose every request took `seconds`, and the route's counters."""
    samples = []
    for side, classes in (("new", new or {}), ("legacy", legacy or {})):
        for status_class, count in classes.items():
            labels = {"mount": mount, "route": route, "side": side, "status_class": status_class}
            samples.append(Sample("gateway_route_requests_total", labels, count))
        total = sum(classes.values())
        for bound in (*LATENCY_BUCKETS_S, float("inf")):
            labels = {"mount": mount, "route": route, "side": side, "le": str(bound)}
            counted = total if seconds <= bound else 0
            samples.append(Sample("gateway_route_duration_seconds_bucket", labels, counted))
    by_route = {"mount": mount, "route": route}
    samples.append(Sample("gateway_route_fallbacks_total", by_route, fallbacks))
    samples.append(Sample("gateway_route_shadow_compared_total", by_route, compared))
    samples.append(Sample("gateway_route_shadow_mismatches_total", by_route, mismatches))
    return samples


def verdict_of(samples: list[Sample]) -> str:
    [route] = build_report(samples, None, ["/api"], THRESHOLDS).routes
    return route.verdict


@pytest.mark.parametrize(
    ("samples", "expected"),
    [
        (route_samples("/r", new={"2xx": 10}), SERVED_BY_NEW),
        (route_samples("/r", new={"2xx": 10}, legacy={"2xx": 1}, fallbacks=1), STILL_FALLS_BACK),
        # fallback wins over a perfect shadow record
        (route_samples("/r", legacy={"2xx": 200}, fallbacks=1, compared=200), STILL_FALLS_BACK),
        (route_samples("/r", legacy={"2xx": 200}, compared=200, mismatches=3), DISAGREES),
        (route_samples("/r", legacy={"2xx": 200}, compared=200, mismatches=2), READY),
        (route_samples("/r", legacy={"2xx": 200}, compared=99), COLLECTING),
        (route_samples("/r", legacy={"2xx": 99}, compared=99, mismatches=50), COLLECTING),
        # the new side may not err more than legacy
        (
            route_samples("/r", new={"2xx": 9, "5xx": 1}, legacy={"2xx": 200}, compared=200),
            COLLECTING,
        ),
        (
            route_samples(
                "/r", new={"2xx": 9, "5xx": 1}, legacy={"2xx": 80, "5xx": 20}, compared=200
            ),
            READY,
        ),
        (route_samples("/r"), COLLECTING),  # nothing yet
    ],
)
def test_verdicts(samples: list[Sample], expected: str) -> None:
    assert verdict_of(samples) == expected


def test_the_thresholds_are_settable() -> None:
    samples = route_samples("/r", legacy={"2xx": 20}, compared=20, mismatches=2)
    lenient = Thresholds(agreement_percent=90.0, min_compared=20)
    [route] = build_report(samples, None, ["/api"], lenient).routes
    assert route.verdict == READY
    strict = Thresholds(agreement_percent=95.0, min_compared=20)
    [route] = build_report(samples, None, ["/api"], strict).routes
    assert route.verdict == DISAGREES


def test_a_route_s_figures() -> None:
    samples = route_samples(
        "/users/{id}",
        new={"2xx": 30, "5xx": 10},
        legacy={"2xx": 60},
        fallbacks=15,
        compared=50,
        mismatches=5,
    )
    [route] = build_report(samples, None, ["/api"], THRESHOLDS).routes
    assert (route.mount, route.route, route.requests) == ("/api", "/users/{id}", 100)
    assert route.new_share == 0.4
    assert route.fallback_rate == 0.15
    assert route.new.requests == 40 and route.new.error_rate == 0.25
    assert route.legacy.requests == 60 and route.legacy.error_rate == 0.0
    assert route.new.p50_s is not None and 0.0025 < route.new.p50_s <= 0.005
    assert route.shadow_compared == 50 and route.shadow_agreement == 0.9


def test_rates_without_a_denominator_are_none() -> None:
    [route] = build_report(route_samples("/r", new={"2xx": 3}), None, ["/api"]).routes
    assert route.legacy.error_rate is None and route.legacy.p99_s is None
    assert route.shadow_agreement is None


def test_workers_samples_are_summed() -> None:
    samples = route_samples("/r", new={"2xx": 3}) + route_samples("/r", new={"2xx": 4})
    [route] = build_report(samples, None, ["/api"]).routes
    assert route.requests == 7 and route.new.requests == 7


def test_routes_past_top_are_folded_into_other() -> None:
    samples = []
    for n in range(5):
        samples += route_samples(f"/r{n}", new={"2xx": 10 * (n + 1)}, fallbacks=n)
    samples += route_samples("other", legacy={"2xx": 1})
    routes = build_report(samples, None, ["/api"], top=2).routes
    assert [(r.route, r.requests) for r in routes] == [("/r4", 50), ("/r3", 40), ("other", 61)]
    assert routes[2].fallback_rate == pytest.approx(3 / 61)


def test_routes_come_in_mount_order_then_by_requests() -> None:
    samples = route_samples("/a", new={"2xx": 1}, mount="/")
    samples += route_samples("/b", new={"2xx": 5}) + route_samples("/c", new={"2xx": 9})
    routes = build_report(samples, None, ["/api", "/"]).routes
    assert [(r.mount, r.route) for r in routes] == [("/api", "/c"), ("/api", "/b"), ("/", "/a")]


def test_the_ledger_gives_mismatches_noise_and_history() -> None:
    kinds = [{"kind": "body $.price", "count": 3, "sample": {"path": "/api/r"}}]
    noise = {"json_paths": ["$.ts"], "headers": ["x-request-id"], "samples": 12}
    minute = int(T0)
    ledger = {
        "history": [[minute - 60, 1, 2], [minute, 3, 4], [minute - 3600, 9, 9]],
        "mismatches": {"/api": {"/r": kinds}},
        "noise": {"/api": {"/r": noise}},
    }
    report = build_report(route_samples("/r", legacy={"2xx": 5}), ledger, ["/api"], now_s=T0 + 5)
    assert report.routes[0].mismatches == kinds
    assert report.routes[0].noise == noise
    assert len(report.history) == HISTORY_MINUTES
    assert asdict(report.history[-1]) == {"minute": minute, "new": 3, "legacy": 4}
    assert asdict(report.history[-2]) == {"minute": minute - 60, "new": 1, "legacy": 2}
    assert report.history[0].minute == minute - (HISTORY_MINUTES - 1) * 60  # an hour ago: gone
    assert sum(m.new for m in report.history) == 4


def test_the_json_has_the_spec_s_shape() -> None:
    report = asdict(build_report(route_samples("/r", new={"2xx": 1}), None, ["/api"], now_s=T0))
    assert set(report) == {
        "url",
        "generated_at",
        "thresholds",
        "mounts",
        "routes",
        "history",
        "worker_restarts",
    }
    assert report["thresholds"] == {"agreement_percent": 99.0, "min_compared": 100}
    assert set(report["routes"][0]["new"]) == {"requests", "error_rate", "p50_s", "p99_s"}


def test_the_routing_counters_names_match_the_families() -> None:
    for event, name in ROUTING_EVENTS.items():
        assert f"{ROUTING_COUNTERS[event][0]}_total" == name


def test_counters_read_apart_never_make_a_rate_past_whole() -> None:
    """A scrape reads the families one after another while requests go on: a request
    that ended between two reads is in the later family only."""
    samples = route_samples("/r", legacy={"2xx": 75}, fallbacks=76, compared=10, mismatches=11)
    [route] = build_report(samples, None, ["/api"], THRESHOLDS).routes
    assert route.fallback_rate == 1.0
    assert route.shadow_agreement == 0.0
