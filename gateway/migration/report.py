"""The migration report: per mount and per route, from the metrics' samples and the
ledger (issue 17, points 2, 3 and 6). `gateway status` prints it, the admin listener
serves it as JSON and renders it as the page; both build it here.

Rules:
1. The figures are the server's since it started, summed over its workers: per mount,
   its share of all requests (legacy against new), its 5xx rate, p50 and p99, its WSGI
   pool's saturation (busy threads over threads, now), its fallback rate (fallbacks over
   its requests) and its shadow mismatch rate (mismatches over copies sent).
2. p50 and p99 are estimated from the latency histogram as Prometheus'
   histogram_quantile does: linear within the bucket the quantile falls in, so they are
   as precise as the buckets (gateway/server/metrics.py LATENCY_BUCKETS_S); past the last
   finite bucket, its bound is the answer.
3. Mounts come in the mount file's order, then any the samples name that the file no
   longer has (it was edited since the server started).
4. Per route (gateway_route_* families): requests, the new side's share, the fallback
   rate (fallbacks over requests), each side's requests, 5xx rate, p50 and p99, the shadow
   comparisons and agreement (comparisons without a mismatch over comparisons), the
   ledger's mismatches and learned noise. Each worker keeps its own routes; summed, a
   mount keeps its `top` routes by requests and folds the rest into "other". Routes come
   in their mount's order, then by requests, most first, and "other" last.
5. The verdict, first that holds: "served by new" (requests, none by legacy, no
   fallback); "still falls back" (a fallback); "disagrees" (at least `min_compared`
   comparisons, agreement under `agreement_percent`); "ready to cut over" (at least
   `min_compared` comparisons, agreement at or over the threshold, and a 5xx rate on the
   new side no higher than legacy's, a side without requests counting 0); else
   "collecting".
6. Rates are fractions, None when the denominator is 0. History: the last
   HISTORY_MINUTES minutes up to the report's, oldest first, a minute without requests 0;
   none without a ledger (a report read from the metrics endpoint alone).
7. Layer 1: plain data in, dataclasses out (`asdict` is the JSON).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from gateway.migration.ledger import HISTORY_MINUTES, MINUTE_S
from gateway.migration.routes import LEGACY, NEW, OTHER

QUANTILES = (0.5, 0.99)
STATUS_CLASSES = ("2xx", "3xx", "4xx", "5xx", "none")
ROUTING_EVENTS = {  # the routing counters' names, by event (gateway/server/metrics.py)
    "fallback": "gateway_fallbacks_total",
    "canary": "gateway_canary_requests_total",
    "shadow": "gateway_shadow_requests_total",
    "shadow_mismatch": "gateway_shadow_mismatches_total",
}
SERVED_BY_NEW = "served by new"
STILL_FALLS_BACK = "still falls back"
DISAGREES = "disagrees"
READY = "ready to cut over"
COLLECTING = "collecting"
# A report keeps this many routes per mount when not told (routes_per_mount's default).
TOP_ROUTES = 50


@dataclass(frozen=True)
class Sample:
    """One line of an exposition: `name{labels} value`."""

    name: str
    labels: dict[str, str]
    value: float


@dataclass(frozen=True)
class Thresholds:
    """When a route is "ready to cut over" (server keys ready_agreement_percent and
    ready_min_compared)."""

    agreement_percent: float = 99.0
    min_compared: int = 100


DEFAULT_THRESHOLDS = Thresholds()


@dataclass
class Pool:
    threads: int
    busy: int
    queued: int
    saturation: float  # busy / threads


@dataclass
class MountStatus:
    """One mount's line of the report (rule "the figures are the server's")."""

    mount: str
    requests: int = 0
    share: float | None = None
    error_rate: float | None = None
    p50_s: float | None = None
    p99_s: float | None = None
    pool: Pool | None = None
    fallback_rate: float | None = None
    canary_requests: int = 0
    shadow_requests: int = 0
    shadow_mismatch_rate: float | None = None


@dataclass
class SideStatus:
    requests: int = 0
    error_rate: float | None = None
    p50_s: float | None = None
    p99_s: float | None = None


@dataclass
class RouteStatus:
    """One route's line (rules "per route" and "the verdict")."""

    mount: str
    route: str
    requests: int = 0
    new_share: float | None = None
    fallback_rate: float | None = None
    new: SideStatus = field(default_factory=SideStatus)
    legacy: SideStatus = field(default_factory=SideStatus)
    shadow_compared: int = 0
    shadow_agreement: float | None = None
    verdict: str = COLLECTING
    mismatches: list[dict[str, Any]] = field(default_factory=list)
    noise: dict[str, Any] | None = None


@dataclass
class Minute:
    minute: int
    new: int
    legacy: int


@dataclass
class Report:
    url: str
    generated_at: float = 0.0
    thresholds: Thresholds = field(default_factory=Thresholds)
    mounts: list[MountStatus] = field(default_factory=list)
    routes: list[RouteStatus] = field(default_factory=list)
    history: list[Minute] = field(default_factory=list)
    worker_restarts: int = 0


def build_report(
    samples: Iterable[Sample],
    ledger_doc: dict[str, Any] | None = None,
    order: Iterable[str] = (),
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
    *,
    url: str = "",
    now_s: float = 0.0,
    top: int = TOP_ROUTES,
) -> Report:
    """The report (rules "mounts come in the mount file's order" and "per route")."""
    by_mount: dict[str, list[Sample]] = defaultdict(list)
    by_route: dict[tuple[str, str], RouteTally] = {}
    restarts = 0.0
    for sample in samples:
        if sample.name.startswith("gateway_route_"):
            key = (sample.labels["mount"], sample.labels["route"])
            tally = by_route.get(key) or by_route.setdefault(key, RouteTally())
            tally.add(sample)
        elif "mount" in sample.labels:
            by_mount[sample.labels["mount"]].append(sample)
        elif sample.name == "gateway_worker_restarts_total":
            restarts += sample.value
    labels = list(dict.fromkeys([*order, *by_mount]))
    mounts = [mount_status(label, by_mount.get(label, [])) for label in labels]
    total = sum(m.requests for m in mounts)
    for mount in mounts:
        mount.share = ratio(mount.requests, total)
    ledger = ledger_doc or {}
    routes = route_statuses(_folded(by_route, top), labels, thresholds, ledger)
    history = _history(ledger["history"], now_s) if "history" in ledger else []
    return Report(url, now_s, thresholds, mounts, routes, history, int(restarts))


def mount_status(label: str, samples: list[Sample]) -> MountStatus:
    """One mount's figures from its samples (rule "the figures are the server's")."""
    total: dict[str, float] = defaultdict(float)
    buckets: list[tuple[float, float]] = []
    for sample in samples:
        if sample.name == "gateway_request_duration_seconds_bucket":
            buckets.append((float(sample.labels["le"]), sample.value))
        elif sample.name == "gateway_requests_total":
            total[sample.labels["status_class"]] += sample.value
        else:
            total[sample.name] += sample.value
    requests = int(sum(total[c] for c in STATUS_CLASSES))
    status = MountStatus(label, requests, error_rate=ratio(total["5xx"], requests))
    status.p50_s, status.p99_s = (quantile(q, buckets) for q in QUANTILES)
    status.pool = _pool(total)
    counted = {event: total[name] for event, name in ROUTING_EVENTS.items()}
    status.fallback_rate = ratio(counted["fallback"], requests)
    status.canary_requests = int(counted["canary"])
    status.shadow_requests = int(counted["shadow"])
    status.shadow_mismatch_rate = ratio(counted["shadow_mismatch"], counted["shadow"])
    return status


def _pool(total: dict[str, float]) -> Pool | None:
    threads = int(total["gateway_wsgi_pool_threads"])
    if not threads:
        return None  # an ASGI mount
    busy = int(total["gateway_wsgi_pool_busy"])
    return Pool(threads, busy, int(total["gateway_wsgi_pool_queued"]), busy / threads)


class RouteTally:
    """A route's samples, summed (over workers, and over the routes folded into it)."""

    def __init__(self) -> None:
        self.by_side: dict[str, defaultdict[str, float]] = {
            side: defaultdict(float) for side in (NEW, LEGACY)
        }
        self.buckets: dict[str, defaultdict[float, float]] = {
            side: defaultdict(float) for side in (NEW, LEGACY)
        }
        self.fallbacks = 0.0
        self.compared = 0.0
        self.mismatches = 0.0

    @property
    def requests(self) -> float:
        return sum(sum(classes.values()) for classes in self.by_side.values())

    def add(self, sample: Sample) -> None:
        name, labels = sample.name, sample.labels
        side = labels.get("side", NEW)
        if name == "gateway_route_requests_total" and side in self.by_side:
            self.by_side[side][labels["status_class"]] += sample.value
        elif name == "gateway_route_duration_seconds_bucket" and side in self.buckets:
            self.buckets[side][float(labels["le"])] += sample.value
        elif name == "gateway_route_fallbacks_total":
            self.fallbacks += sample.value
        elif name == "gateway_route_shadow_compared_total":
            self.compared += sample.value
        elif name == "gateway_route_shadow_mismatches_total":
            self.mismatches += sample.value

    def absorb(self, other: RouteTally) -> None:
        for side in (NEW, LEGACY):
            for key, value in other.by_side[side].items():
                self.by_side[side][key] += value
            for bound, count in other.buckets[side].items():
                self.buckets[side][bound] += count
        self.fallbacks += other.fallbacks
        self.compared += other.compared
        self.mismatches += other.mismatches

    def side(self, side: str) -> SideStatus:
        classes = self.by_side[side]
        requests = int(sum(classes.values()))
        status = SideStatus(requests, ratio(classes["5xx"], requests))
        buckets = list(self.buckets[side].items())
        status.p50_s, status.p99_s = (quantile(q, buckets) for q in QUANTILES)
        return status


def _folded(
    by_route: dict[tuple[str, str], RouteTally], top: int
) -> dict[tuple[str, str], RouteTally]:
    """Each mount's `top` routes by requests, the rest folded into OTHER (rule "per
    route")."""
    ranked = sorted(by_route.items(), key=lambda item: -item[1].requests)
    kept: dict[tuple[str, str], RouteTally] = {}
    per_mount: dict[str, int] = defaultdict(int)
    for (mount, route), tally in ranked:
        if route != OTHER and per_mount[mount] < top:
            per_mount[mount] += 1
            kept[(mount, route)] = tally
            continue
        other = kept.get((mount, OTHER)) or kept.setdefault((mount, OTHER), RouteTally())
        other.absorb(tally)
    return kept


def route_statuses(
    by_route: dict[tuple[str, str], RouteTally],
    order: list[str],
    thresholds: Thresholds,
    ledger: dict[str, Any],
) -> list[RouteStatus]:
    place = {label: n for n, label in enumerate(order)}
    ranked = sorted(
        by_route.items(),
        key=lambda item: (
            place.get(item[0][0], len(place)),
            item[0][0],
            item[0][1] == OTHER,
            -item[1].requests,
        ),
    )
    statuses = []
    for (mount, route), tally in ranked:
        status = route_status(mount, route, tally, thresholds)
        status.mismatches = ledger.get("mismatches", {}).get(mount, {}).get(route, [])
        status.noise = ledger.get("noise", {}).get(mount, {}).get(route)
        statuses.append(status)
    return statuses


def route_status(mount: str, route: str, tally: RouteTally, thresholds: Thresholds) -> RouteStatus:
    """One route's figures and verdict (rules "per route" and "the verdict")."""
    new, legacy = tally.side(NEW), tally.side(LEGACY)
    requests = new.requests + legacy.requests
    status = RouteStatus(mount, route, requests, ratio(new.requests, requests))
    # The families are read one after another while requests go on, so a request that
    # ends between two reads may be in the later one only: no rate passes 100%.
    fallbacks = min(tally.fallbacks, requests)
    status.fallback_rate = ratio(fallbacks, requests)
    status.new, status.legacy = new, legacy
    status.shadow_compared = int(tally.compared)
    mismatches = min(tally.mismatches, tally.compared)
    status.shadow_agreement = ratio(tally.compared - mismatches, tally.compared)
    status.verdict = verdict(status, int(fallbacks), thresholds)
    return status


def verdict(route: RouteStatus, fallbacks: int, thresholds: Thresholds) -> str:
    """Rule "the verdict"."""
    if route.requests and not route.legacy.requests and not fallbacks:
        return SERVED_BY_NEW
    if fallbacks:
        return STILL_FALLS_BACK
    agreement = route.shadow_agreement
    if route.shadow_compared < thresholds.min_compared or agreement is None:
        return COLLECTING
    if agreement * 100 < thresholds.agreement_percent:
        return DISAGREES
    if (route.new.error_rate or 0.0) <= (route.legacy.error_rate or 0.0):
        return READY
    return COLLECTING


def _history(rows: list[list[int]], now_s: float) -> list[Minute]:
    """The last HISTORY_MINUTES minutes (rule "rates are fractions")."""
    counted = {int(minute): (int(new), int(legacy)) for minute, new, legacy in rows}
    if not now_s and not counted:
        return []
    last = int(now_s // MINUTE_S) * MINUTE_S if now_s else max(counted)
    first = last - (HISTORY_MINUTES - 1) * MINUTE_S
    return [
        Minute(minute, *counted.get(minute, (0, 0)))
        for minute in range(first, last + MINUTE_S, MINUTE_S)
    ]


def quantile(q: float, buckets: list[tuple[float, float]]) -> float | None:
    """The q-quantile of a histogram's cumulative (upper bound, count) buckets
    (rule "p50 and p99 are estimated"); None when it counted nothing."""
    ordered = sorted(buckets)
    if not ordered or ordered[-1][1] == 0:
        return None
    rank = q * ordered[-1][1]
    lower, below = 0.0, 0.0
    for bound, count in ordered:
        if count >= rank:
            if math.isinf(bound):
                return lower  # past the last finite bucket: its bound
            return lower + (bound - lower) * (rank - below) / (count - below)
        lower, below = bound, count
    return lower


def ratio(part: float, whole: float) -> float | None:
    return part / whole if whole else None
