"""Per-mount metrics in the Prometheus text format, opt-in with `metrics_path` or
`admin_bind` (`metrics_on`): what they are, and prometheus_client, which holds them.
What runs per request and the endpoint are gateway/server/mount_metrics.py; room on
disk for the multiprocess files is gateway/server/metric_files.py; the admin listener
is gateway/server/admin.py.

Exported, per mount (label `mount`: MountConfig.label, the mount's prefix, or its name
when it has none):
- `gateway_requests_total{status_class}`: requests by the class of their final status
  ("2xx" .. "5xx"; "none" when no status went out: the client left first);
- `gateway_request_duration_seconds`: from the call of the mount's app to its last body
  message (work an app does after that, such as background tasks, is not the client's);
- `gateway_requests_in_flight`, and for WSGI mounts `gateway_wsgi_pool_threads`,
  `gateway_wsgi_pool_busy` and `gateway_wsgi_pool_queued`;
- `gateway_fallbacks_total`, `gateway_canary_requests_total`,
  `gateway_shadow_requests_total`, `gateway_shadow_dropped_total` and
  `gateway_shadow_mismatches_total`, counted by the routing code through
  `WorkerMetrics.count_*` (they stay at 0 until it calls them);
- per route (label `route`: a template of gateway/migration/routes.py, at most
  `routes_per_mount` per mount and worker, or "other"; `side`: "new" or "legacy", the
  side of the mount that answered): `gateway_route_requests_total{status_class}`,
  `gateway_route_duration_seconds` (the same clock and end as the mount's),
  `gateway_route_fallbacks_total`, `gateway_route_shadow_compared_total` (copies whose
  comparison ran) and `gateway_route_shadow_mismatches_total`, recorded by
  gateway/server/route_metrics.py;
- `gateway_worker_restarts_total{reason}`, counted by the supervisor (SupervisorMetrics);
- `gateway_metrics_dropped_writes_total`: the answering worker's metric writes that
  found no room in the metrics directory (rule "a full or read-only metrics directory").

Rules:
1. Off costs nothing: with `metrics_path = ""` and `admin_bind = ""` no middleware
   wraps a mount, no metric exists and no file is written.
2. prometheus_client is imported here and nowhere else, and only once metrics are on
   (`load`): installed but unused, it costs neither memory nor its GC callback. It is
   an optional extra (`metrics`): `require` turns its absence into MetricsUnavailable
   (exit 1), before anything binds.
3. Several workers sum through prometheus_client's multiprocess mode. The supervisor
   makes a directory (PROMETHEUS_MULTIPROC_DIR) before it imports preloaded apps or
   forks; every process writes its values to files of its own there, and whichever worker
   answers a scrape sums them all (MultiProcessCollector). A dead worker's counters stay
   in the totals; its live gauges go (mark_process_dead). The supervisor removes the
   directory when it exits. One worker: an in-process registry, and no files.
4. A full or read-only metrics directory never takes the server down (a write to a
   mapped file the disk cannot back is a SIGBUS): the directory is checked at start
   (exit 1, one line), every value's room on disk is reserved before prometheus_client
   maps it, and a value that gets none is kept in memory, its writes counted as dropped
   (`gateway_metrics_dropped_writes_total`, the answering worker's). The how is
   gateway/server/metric_files.py; prometheus_client's parts are handed to it from here.
"""

from __future__ import annotations

import atexit
import functools
import importlib.util
import os
import shutil
import types
from collections.abc import Iterator
from typing import TYPE_CHECKING

from gateway.config.server_table import ServerConfig
from gateway.errors import GatewayError
from gateway.migration.report import Sample
from gateway.server import metric_files

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry, Counter, Gauge

# Importing prometheus_client registers its default collectors (one of them a GC
# callback that runs on every collection) and costs ~4 MiB, so it is imported only by a
# server with metrics on (`load`), never merely because it is installed
# (rule "prometheus_client is imported here").
INSTALLED = importlib.util.find_spec("prometheus_client") is not None


@functools.cache
def load() -> types.SimpleNamespace:
    """prometheus_client's parts, imported on first use
    (rule "prometheus_client is imported here")."""
    import prometheus_client
    from prometheus_client import exposition, mmap_dict, multiprocess, parser, values
    from prometheus_client.core import CounterMetricFamily

    parts = types.SimpleNamespace(
        CollectorRegistry=prometheus_client.CollectorRegistry,
        Counter=prometheus_client.Counter,
        CounterMetricFamily=CounterMetricFamily,
        Gauge=prometheus_client.Gauge,
        Histogram=prometheus_client.Histogram,
        values=values,
        mmap_key=mmap_dict.mmap_key,
        INITIAL_FILE_BYTES=mmap_dict._INITIAL_MMAP_SIZE,
        CONTENT_TYPE_LATEST=exposition.CONTENT_TYPE_LATEST,
        generate_latest=exposition.generate_latest,
        add_files_collector=multiprocess.MultiProcessCollector,
        mark_process_dead=multiprocess.mark_process_dead,
        parse_text=parser.text_string_to_metric_families,
    )
    # PROMETHEUS_MULTIPROC_DIR was set (rule "a full or read-only metrics directory").
    if values.ValueClass._multiprocess:
        values.ValueClass = _reserving(parts, values.ValueClass)
    return parts


def _reserving(parts: types.SimpleNamespace, file_values: type) -> metric_files.ReservingValues:
    """`file_values` (prometheus_client's multiprocess value class), reserving its room."""
    return metric_files.ReservingValues(
        file_values, parts.values.MutexValue, parts.mmap_key, parts.INITIAL_FILE_BYTES
    )


MULTIPROC_ENV = metric_files.MULTIPROC_ENV
# Latency buckets, in seconds. From 1 ms (a small JSON answer from an ASGI app takes
# less, so the first bucket tells "fast" apart) to 30 s (body_timeout and
# graceful_timeout: a request longer than that is cut anyway), 2 to 2.5x apart, so a
# p50 or p99 read from them (`gateway status`) is within one step of the truth.
LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
RESTART_REASONS = ("exited", "max_requests")

# The routing code's events, one counter each: (name, help).
ROUTING_COUNTERS = {
    "fallback": ("gateway_fallbacks", "responses discarded and replayed to the fallback mount"),
    "canary": ("gateway_canary_requests", "requests sent to this mount's canary"),
    "shadow": ("gateway_shadow_requests", "request copies sent to this mount's shadow"),
    "shadow_dropped": (
        "gateway_shadow_dropped",
        "shadow copies dropped: the shadow was full, or the request body too large to copy",
    ),
    "shadow_mismatch": ("gateway_shadow_mismatches", "shadow responses unlike the primary's"),
}


class MetricsUnavailable(GatewayError):
    """`metrics_path` or `admin_bind` is set but prometheus_client is not installed
    (exit status 1)."""


def metrics_on(server: ServerConfig) -> bool:
    """Metrics exist: served at `metrics_path` on the apps' port, or by the admin
    listener (`admin_bind`), or both."""
    return bool(server.metrics_path or server.admin_bind)


def require(server: ServerConfig) -> None:
    """Raise MetricsUnavailable when metrics are on without prometheus_client
    (rule "prometheus_client is imported here")."""
    if metrics_on(server) and not INSTALLED:
        key = "metrics_path" if server.metrics_path else "admin_bind"
        raise MetricsUnavailable(f"{key} needs prometheus_client: pip install 'gateway[metrics]'")


def multiprocess() -> bool:
    """Values go to files in PROMETHEUS_MULTIPROC_DIR (rule "several workers sum")."""
    return bool(load().values.ValueClass._multiprocess)


# -- the worker's side (gateway/server/mount_metrics.py) -----------------------------------


class Families:
    """Every metric family of a worker, unlabelled; in one worker they live in
    `registry`, with several they only write files (rule "several workers sum")."""

    def __init__(self, registry: CollectorRegistry | None) -> None:
        by_mount = ("mount",)
        by_class = ("mount", "status_class")
        self.requests = load().Counter(
            "gateway_requests", "requests by status class", by_class, registry=registry
        )
        self.latency = load().Histogram(
            "gateway_request_duration_seconds",
            "seconds from the app's call to its last body message",
            by_mount,
            registry=registry,
            buckets=LATENCY_BUCKETS_S,
        )
        self.in_flight = _live_gauge("gateway_requests_in_flight", "requests served", registry)
        self.pool_threads = _live_gauge("gateway_wsgi_pool_threads", "pool size", registry)
        self.pool_busy = _live_gauge("gateway_wsgi_pool_busy", "threads on a request", registry)
        self.pool_queued = _live_gauge("gateway_wsgi_pool_queued", "requests waiting", registry)
        self.routing = {
            event: load().Counter(name, text, by_mount, registry=registry)
            for event, (name, text) in ROUTING_COUNTERS.items()
        }
        self.route = RouteFamilies(registry)


class RouteFamilies:
    """The per-route families (gateway/server/route_metrics.py records them)."""

    def __init__(self, registry: CollectorRegistry | None) -> None:
        by_side = ("mount", "route", "side")
        self.requests = load().Counter(
            "gateway_route_requests",
            "requests by route, side and status class",
            (*by_side, "status_class"),
            registry=registry,
        )
        self.latency = load().Histogram(
            "gateway_route_duration_seconds",
            "seconds from the app's call to its last body message, by route and side",
            by_side,
            registry=registry,
            buckets=LATENCY_BUCKETS_S,
        )
        self.fallbacks = self._by_route(
            "gateway_route_fallbacks", "requests replayed to the fallback", registry
        )
        self.shadow_compared = self._by_route(
            "gateway_route_shadow_compared", "shadow copies whose comparison ran", registry
        )
        self.shadow_mismatches = self._by_route(
            "gateway_route_shadow_mismatches", "shadow responses unlike the primary's", registry
        )

    @staticmethod
    def _by_route(name: str, text: str, registry: CollectorRegistry | None) -> Counter:
        counter: Counter = load().Counter(name, text, ("mount", "route"), registry=registry)
        return counter


def _live_gauge(name: str, text: str, registry: CollectorRegistry | None) -> Gauge:
    # livesum: summed over the live workers only (rule "several workers sum").
    gauge: Gauge = load().Gauge(
        name, text, ("mount",), registry=registry, multiprocess_mode="livesum"
    )
    return gauge


def worker_registry() -> tuple[CollectorRegistry, Families]:
    """A worker's registry and its metric families (gateway/server/mount_metrics.py
    WorkerMetrics): in multiprocess mode the registry sums every worker's files and
    reports this worker's dropped writes (rules "several workers sum" and "a full or
    read-only metrics directory"), and the families only write files."""
    registry = load().CollectorRegistry()
    if not multiprocess():
        return registry, Families(registry)
    load().add_files_collector(registry, os.environ[MULTIPROC_ENV])
    registry.register(DroppedWrites())
    return registry, Families(None)


def exposition(registry: CollectorRegistry) -> bytes:
    """What `registry` holds, in the Prometheus text format."""
    return bytes(load().generate_latest(registry))


def content_type() -> bytes:
    """The Content-Type of an exposition."""
    return str(load().CONTENT_TYPE_LATEST).encode("ascii")


# -- room for the multiprocess files (gateway/server/metric_files.py) ----------------------
# The rule "a full or read-only metrics directory", on the metrics side.


def check_directory(directory: str) -> None:
    metric_files.check_directory(directory, load().INITIAL_FILE_BYTES)


def check_user_directory(server: ServerConfig) -> None:
    """`workers = 1` with PROMETHEUS_MULTIPROC_DIR set by the user (prometheus_client
    then writes files there too): check it at start, as the supervisor checks its own."""
    directory = os.environ.get(MULTIPROC_ENV, "")
    if metrics_on(server) and directory:
        check_directory(directory)


class DroppedWrites:
    """A collector for the worker's registry: the metric writes this worker dropped."""

    def collect(self) -> Iterator[object]:
        family = load().CounterMetricFamily(
            "gateway_metrics_dropped_writes",
            "metric writes this worker dropped: no room for them in the metrics directory",
        )
        family.add_metric([], metric_files.dropped_writes())
        yield family


# -- the supervisor's side ----------------------------------------------------------------


class SupervisorMetrics:
    """The supervisor's part (rule "several workers sum"): the shared directory, dead workers'
    gauges, and the restarts counter. Inert while metrics are off."""

    def __init__(self) -> None:
        self.directory = ""
        self._owned = False
        self._restarts: Counter | None = None

    def enable(self, server: ServerConfig) -> None:
        """Metrics on in `server` (at start, or a reload that turns them on): make the
        directory, before any app is imported or any worker forked. Idempotent."""
        if not metrics_on(server) or self.directory:
            return
        require(server)
        self.directory = os.environ.get(MULTIPROC_ENV, "")
        if not self.directory:  # one set by the user is used as it is, and kept
            self.directory = metric_files.make_directory()
            self._owned = True
            os.environ[MULTIPROC_ENV] = self.directory
            # Also when the supervisor fails before its loop (a preloaded app that does
            # not import); never in a worker, which leaves through os._exit.
            atexit.register(self.close)
        # Before any file of ours is mapped (rule "a full or read-only metrics directory").
        check_directory(self.directory)
        if not multiprocess():
            # prometheus_client picks its value class when it is first imported (in
            # `values`), which here came before the variable was set: pick again.
            values = load().values
            values.ValueClass = _reserving(load(), values.get_value_class())
        self._restarts = load().Counter(
            "gateway_worker_restarts", "workers replaced", ("reason",), registry=None
        )
        for reason in RESTART_REASONS:
            self._restarts.labels(reason)  # exported at 0 before the first restart

    def count_restart(self, reason: str) -> None:
        """A worker replaced: "exited" (died, killed, stuck) or "max_requests"."""
        if self._restarts is not None:
            self._restarts.labels(reason).inc()

    def worker_exited(self, pid: int) -> None:
        if self.directory:
            load().mark_process_dead(pid, self.directory)

    def close(self) -> None:
        if self._owned:
            shutil.rmtree(self.directory, ignore_errors=True)
            os.environ.pop(MULTIPROC_ENV, None)
            self._owned = False


# -- reading an exposition (`gateway status`) ---------------------------------------------


def parse_exposition(text: str) -> Iterator[Sample]:
    """The samples of a Prometheus text exposition; ValueError if it is not one."""
    for family in load().parse_text(text):
        for sample in family.samples:
            yield Sample(sample.name, dict(sample.labels), float(sample.value))
