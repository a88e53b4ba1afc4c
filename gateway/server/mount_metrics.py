"""Each mount's metrics in a worker: what runs per request, and the endpoint a scrape
asks (gateway/server/metrics.py declares the metrics and owns prometheus_client).

WorkerMetrics holds them: `wrap` puts a mount's app behind MetricsMiddleware, which
times each request and counts its final status into the mount's MountMetrics;
`endpoint` puts the router behind MetricsEndpoint; the routing code counts its events
through `count_*`. The supervisor's part is gateway/server/metrics.py SupervisorMetrics.

Rules:
1. Per request only what must be: the final status and the time of the last body, one
   counter increment and one histogram observation. In-flight is a plain int; it and the
   WSGI pools' state are published to gauges every GAUGE_INTERVAL_S from the event loop,
   and by the worker answering a scrape just before it collects.
2. A scrape is collected off the event loop, in a thread: in multiprocess mode it reads
   every worker's files.
3. Only HTTP requests are counted: WebSocket sessions and lifespan pass through.
4. prometheus_client is not imported here: the metric families, the registry and the
   exposition come from gateway/server/metrics.py, rule "prometheus_client is imported
   here"; and none of this exists while metrics are off (gateway/server/metrics.py, rule
   "off costs nothing").
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict
from http import HTTPStatus
from typing import Any, Protocol

from gateway.asgi import ASGIApp, Message, Receive, Scope, Send, send_plain, set_mount_label
from gateway.config.server_table import ServerConfig
from gateway.errors import ClientDisconnected, HTTPError
from gateway.migration.report import STATUS_CLASSES as STATUS_CLASSES  # re-exported
from gateway.routing.health import ALLOW, NO_STORE
from gateway.server.metrics import (
    Families,
    content_type,
    exposition,
    metrics_on,
    parse_exposition,
    require,
    worker_registry,
)

# How often the gauges (in-flight, pool busy and queued) are published. A scrape comes
# every 15 s or more (Prometheus' default interval is 1 min), so a gauge at most a second
# old is current; a few writes per mount per second cost nothing measurable.
GAUGE_INTERVAL_S = 1.0
# What the access log shows as the mount that answered a scrape.
METRICS_MOUNT = "metrics"


class Pool(Protocol):
    """A WSGI mount's pool as the metrics read it (adapters.WSGIAdapter)."""

    threads: int

    @property
    def active(self) -> int: ...


class MountMetrics:
    """One mount's instruments, labelled once at startup: `labels()` takes a lock and a
    lookup, which the per-request path does without (rule "per request only what must be")."""

    def __init__(self, families: Families, label: str, pool: Pool | None) -> None:
        self.label = label
        self.in_flight = 0
        self._by_class = {c: families.requests.labels(label, c) for c in STATUS_CLASSES}
        self._latency = families.latency.labels(label)
        self._in_flight = families.in_flight.labels(label)
        self._pool = pool
        if pool is not None:
            families.pool_threads.labels(label).set(pool.threads)
            self._busy = families.pool_busy.labels(label)
            self._queued = families.pool_queued.labels(label)
        for counter in families.routing.values():
            counter.labels(label)  # exported at 0 before the first event

    def observe(self, status: int, seconds: float) -> None:
        self._by_class[status_class(status)].inc()
        self._latency.observe(seconds)

    def publish(self) -> None:
        """Write the gauges: in-flight, and the pool's busy and queued
        (rule "per request only what must be")."""
        self._in_flight.set(self.in_flight)
        if self._pool is not None:
            active = self._pool.active
            busy = min(active, self._pool.threads)
            self._busy.set(busy)
            self._queued.set(active - busy)


def status_class(status: int) -> str:
    """ "2xx" .. "5xx"; "none" for 0 (no response) or anything not a final status."""
    return STATUS_CLASSES[status // 100 - 2] if 200 <= status < 600 else "none"


class MetricsMiddleware:
    """Wraps one mount's app: times each HTTP request and counts its final status."""

    __slots__ = ("app", "mount")

    def __init__(self, app: ASGIApp, mount: MountMetrics) -> None:
        self.app = app
        self.mount = mount

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # rule "only HTTP requests are counted"
            await self.app(scope, receive, send)
            return
        request = RequestRecord(self.mount, send)
        self.mount.in_flight += 1
        try:
            await self.app(scope, receive, request.send)
        except BaseException as exc:
            request.failed(exc)
            raise
        finally:
            self.mount.in_flight -= 1
            request.finish()


class Observer(Protocol):
    """What a RequestRecord reports to: a mount's instruments, or the per-route
    recorder's (gateway/server/route_metrics.py)."""

    def observe(self, status: int, seconds: float) -> None: ...


class RequestRecord:
    """One request's status and start time; recorded once, at the last body message or
    when the app ends without one."""

    __slots__ = ("_mount", "_send", "_started", "done", "status")

    def __init__(self, mount: Observer, send: Send) -> None:
        self._mount = mount
        self._send = send
        self._started = time.perf_counter()
        self.status = 0
        self.done = False

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            self.status = message["status"]
        elif kind == "http.response.body" and not message.get("more_body", False):
            # Before the bytes go out: a client that reads its answer and then asks for
            # the metrics finds this request counted.
            self.finish()
        await self._send(message)

    def failed(self, exc: BaseException) -> None:
        """The status the server answers in place of an app that raised before its
        response started (gateway/server/connection.py `_app_failed`)."""
        if self.status == 0:
            if isinstance(exc, HTTPError):
                self.status = exc.status
            elif isinstance(exc, Exception) and not isinstance(exc, ClientDisconnected):
                self.status = HTTPStatus.INTERNAL_SERVER_ERROR

    def finish(self) -> None:
        if not self.done:
            self.done = True
            self._mount.observe(self.status, time.perf_counter() - self._started)


class WorkerMetrics:
    """One worker's metrics: the middleware for each mount, the endpoint, the gauges'
    publisher, and the counters the routing code calls."""

    def __init__(self, path: str, server: ServerConfig | None = None) -> None:
        from gateway.server.route_metrics import RouteMetrics  # it imports this module

        self.path = path
        self._registry, self._families = worker_registry()
        self._mounts: dict[str, MountMetrics] = {}
        self.routes = RouteMetrics(self._families.route, server or ServerConfig())

    def wrap(self, app: ASGIApp, label: str, pool: Pool | None = None) -> ASGIApp:
        """`app` behind the metrics middleware, counted under `mount=label`."""
        mount = self._mounts[label] = MountMetrics(self._families, label, pool)
        return MetricsMiddleware(app, mount)

    def endpoint(self, app: ASGIApp) -> ASGIApp:
        """`app` behind the metrics endpoint; `app` itself when `path` is "" (the
        metrics are the admin listener's only, gateway/server/admin.py)."""
        return MetricsEndpoint(app, self) if self.path else app

    def publish(self) -> None:
        """Write the gauges of every mount (rule "per request only what must be")."""
        for mount in self._mounts.values():
            mount.publish()
        self.routes.publish()

    def publish_every(self, interval_s: float = GAUGE_INTERVAL_S) -> None:
        """Publish now and every `interval_s` on the running loop, for as long as it runs."""
        self.publish()
        asyncio.get_running_loop().call_later(interval_s, self.publish_every, interval_s)

    def collect(self) -> bytes:
        """The exposition: summed over the workers' files in multiprocess mode
        (gateway/server/metrics.py, rule "several workers sum")."""
        return exposition(self._registry)

    async def report_json(self, url: str = "") -> dict[str, Any]:
        """The migration report as JSON (gateway/migration/report.py), saying it was read
        at `url`, for the admin listener: the gauges and this worker's ledger as of now,
        then the exposition collected and the ledgers read off the event loop (rule "a
        scrape is collected off the event loop")."""
        self.publish()
        mine = self.routes.ledger.to_json()
        return await asyncio.to_thread(self._report_json, mine, url)

    def _report_json(self, mine: dict[str, Any], url: str) -> dict[str, Any]:
        samples = parse_exposition(self.collect().decode("utf-8"))
        return asdict(self.routes.report(samples, list(self._mounts), mine, url))

    # The routing code's API: `mount` is the label (MountConfig.label) of the mount the event
    # belongs to, the one that routes: the mount whose answer fell back, whose share
    # went to its canary, whose requests were copied to its shadow.

    def count_fallback(self, mount: str) -> None:
        self._count("fallback", mount)

    def count_canary(self, mount: str) -> None:
        self._count("canary", mount)

    def count_shadow(self, mount: str) -> None:
        self._count("shadow", mount)

    def count_shadow_dropped(self, mount: str) -> None:
        self._count("shadow_dropped", mount)

    def count_shadow_mismatch(self, mount: str) -> None:
        self._count("shadow_mismatch", mount)

    def count_route_shadow(self, mount: str, route: str, mismatch: bool) -> None:
        """A shadow comparison that ran for `route` of `mount`, and whether it differed."""
        self.routes.count_shadow(mount, route, mismatch)

    def _count(self, event: str, mount: str) -> None:
        self._families.routing[event].labels(mount).inc()


def worker_metrics(server: ServerConfig) -> WorkerMetrics | None:
    """A worker's metrics, or None when they are off (gateway/server/metrics.py, rule
    "off costs nothing"). With an empty `metrics_path` (on for the admin listener only)
    the apps' port serves none."""
    if not metrics_on(server):
        return None
    require(server)
    return WorkerMetrics(server.metrics_path, server)


class MetricsEndpoint:
    """An ASGI app that answers GET and HEAD on the metrics path and passes the rest on,
    like the health endpoints (gateway/routing/health.py)."""

    def __init__(self, app: ASGIApp, metrics: WorkerMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"][len(scope["root_path"]) :]  # below --root-path, if any
        if scope["type"] != "http" or path != self.metrics.path:
            await self.app(scope, receive, send)
            return
        set_mount_label(scope, METRICS_MOUNT)
        if scope["method"] not in ("GET", "HEAD"):
            await send_plain(send, HTTPStatus.METHOD_NOT_ALLOWED, [NO_STORE, (b"allow", ALLOW)])
            return
        await send_exposition(self.metrics, send)


async def send_exposition(metrics: WorkerMetrics, send: Send) -> None:
    """Answer a scrape (here, and on the admin listener): this worker's gauges as of now
    (rule "per request only what must be"), then the exposition, collected off the loop
    (rule "a scrape is collected off the event loop")."""
    metrics.publish()
    body = await asyncio.to_thread(metrics.collect)
    headers = [
        (b"content-type", content_type()),
        (b"content-length", str(len(body)).encode("ascii")),
        (b"cache-control", b"no-store"),
    ]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})
