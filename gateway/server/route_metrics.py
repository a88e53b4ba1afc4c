"""Per-route figures in a worker (issue 17, point 2): the recorder around each routing
mount, the per-route counters the shadow calls, and the worker's migration ledger with
its file in the multiprocess directory.

RouteMetrics is the worker's part (WorkerMetrics holds it, gateway/server/mount_metrics.py);
`recorder` gives the wrapper a routing mount's Mount puts outermost, around its fallback,
canary and shadow (gateway/routing/router.py `Mount`, `outer`).

Rules:
1. Off costs nothing: none of this exists while metrics are off (gateway/server/metrics.py,
   rule "off costs nothing"): no recorder wraps a mount, no ledger is kept.
2. One routing mount, one recorder: only mounts with a prefix are recorded, at the
   router's call, never when another mount's link enters them, so a fallback's request
   counts once, under the mount that routed it.
3. After the request, once: its route (the mount's RouteBook, gateway/migration/routes.py),
   its side (the side of the last mount that answered, read from the mount label's
   chain), its status class and its latency, with the clock and end point of the
   mount's own (gateway/server/mount_metrics.py RequestRecord: the last body message),
   whether it fell back, and a count into the ledger's minute. The route is known only
   once the app has answered, so the counting comes when the app returns.
4. Per request only what must be: the labelled children are made once per (route, side)
   and kept (at most `routes_per_mount` + 1 routes, two sides), the side of a label chain
   once per chain (the chains come from the mount file); no lock.
5. Several workers: each writes its ledger to LEDGER_PREFIX<pid>.json in the
   multiprocess directory, by an atomic rename, when it publishes its gauges (every
   GAUGE_INTERVAL_S, and before a scrape is collected) and only if it changed, in a
   thread (its samples may weigh some MiB); the worker asked for a report writes its
   own, then reads the newest MAX_LEDGER_FILES files and merges them
   (gateway/migration/ledger.py `merge`), removing older ones: those of workers long
   gone, whose mismatch samples then leave the report. A worker alone keeps it in
   memory. A file that cannot be written or read is left out, never an error of the
   request.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from gateway.asgi import ASGIApp, Receive, Scope, Send, mount_label
from gateway.config.server_table import ServerConfig
from gateway.migration.ledger import Doc, MigrationLedger, merge
from gateway.migration.report import STATUS_CLASSES, Report, Sample, Thresholds, build_report
from gateway.migration.routes import LEGACY, OTHER, RouteBook, answered_by
from gateway.server.metrics import MULTIPROC_ENV, RouteFamilies
from gateway.server.mount_metrics import RequestRecord, status_class

log = logging.getLogger("gateway.metrics")

LEDGER_PREFIX = "ledger_"
# Ledger files merged into a report: the live workers' (a server runs a few dozen at
# most) and the newest of those that have exited, whose counts stay in the report as
# their counters stay in the totals. Older ones are removed: a server that recycles its
# workers (max_requests) would otherwise leave a file per worker it ever ran.
MAX_LEDGER_FILES = 64
# Label chains remembered per mount: the mount file makes a handful ("/api",
# "/api>fallback:legacy", with ">shadow:NAME" after either); a bound all the same.
MAX_CHAINS = 64


class Observed:
    """A request's status and latency as RequestRecord observes them, kept until the
    route is known (rule "after the request, once")."""

    __slots__ = ("seconds", "status")

    def __init__(self) -> None:
        self.status = 0
        self.seconds = 0.0

    def observe(self, status: int, seconds: float) -> None:
        self.status = status
        self.seconds = seconds


class RouteSide:
    """One (route, side)'s labelled children (rule "per request only what must be")."""

    __slots__ = ("_by_class", "_latency")

    def __init__(self, families: RouteFamilies, mount: str, route: str, side: str) -> None:
        self._by_class = {
            c: families.requests.labels(mount, route, side, c) for c in STATUS_CLASSES
        }
        self._latency = families.latency.labels(mount, route, side)

    def observe(self, status_class: str, seconds: float) -> None:
        self._by_class[status_class].inc()
        self._latency.observe(seconds)


class MountRoutes:
    """One routing mount's book and children."""

    def __init__(
        self, families: RouteFamilies, label: str, book: RouteBook, sides: dict[str, str]
    ) -> None:
        self.label = label
        self.book = book
        self._families = families
        self.sides = sides  # by mount label and by name (routes.mount_sides)
        self._by_route: dict[tuple[str, str], RouteSide] = {}
        self._fallbacks: dict[str, Any] = {}
        self._chains: dict[str, tuple[str, bool]] = {}

    def side(self, route: str, side: str) -> RouteSide:
        found = self._by_route.get((route, side))
        if found is None:
            found = self._by_route[(route, side)] = RouteSide(
                self._families, self.label, route, side
            )
        return found

    def chain(self, label: str) -> tuple[str, bool]:
        """The side that answered, and whether it fell back, of a mount label's chain."""
        found = self._chains.get(label)
        if found is None:
            name, fell_back = answered_by(label)
            found = (self.sides.get(name, LEGACY), fell_back)
            if len(self._chains) < MAX_CHAINS:
                self._chains[label] = found
        return found

    def count_fallback(self, route: str) -> None:
        child = self._fallbacks.get(route)
        if child is None:
            child = self._fallbacks[route] = self._families.fallbacks.labels(self.label, route)
        child.inc()

    def count_shadow(self, route: str, mismatch: bool) -> None:
        if not self.book.knows(route):
            route = OTHER  # a route the book did not give: keep the labels bounded
        self._families.shadow_compared.labels(self.label, route).inc()
        if mismatch:
            self._families.shadow_mismatches.labels(self.label, route).inc()


class RouteRecorder:
    """Wraps a routing mount's handler, outermost (rule "after the request, once")."""

    __slots__ = ("_app", "_ledger", "_routes")

    def __init__(self, app: ASGIApp, routes: MountRoutes, ledger: MigrationLedger) -> None:
        self._app = app
        self._routes = routes
        self._ledger = ledger

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        observed = Observed()
        request = RequestRecord(observed, send)
        try:
            await self._app(scope, receive, request.send)
        except BaseException as exc:
            request.failed(exc)
            raise
        finally:
            request.finish()
            routes = self._routes
            route = routes.book.route_of(scope)
            side, fell_back = routes.chain(mount_label(scope))
            routes.side(route, side).observe(status_class(observed.status), observed.seconds)
            if fell_back:
                routes.count_fallback(route)
            self._ledger.count_served(side, time.time())


class RouteMetrics:
    """A worker's per-route figures and ledger (rules "one routing mount, one recorder"
    and "several workers")."""

    def __init__(self, families: RouteFamilies, server: ServerConfig) -> None:
        self._families = families
        self._limit = server.routes_per_mount
        self._root_path = server.root_path  # every scope's root_path starts so
        self.thresholds = Thresholds(server.ready_agreement_percent, server.ready_min_compared)
        self.ledger = MigrationLedger()
        self.mounts: dict[str, MountRoutes] = {}
        self._writing = False  # a ledger file write is under way in a thread

    def recorder(
        self, label: str, prefix_root: str, sides: dict[str, str]
    ) -> Callable[[ASGIApp], ASGIApp]:
        """What wraps the routing mount `label` (whose root_path grows by `prefix_root`)."""
        routes = self._mount_routes(label, prefix_root)
        routes.sides = sides
        return lambda handler: RouteRecorder(handler, routes, self.ledger)

    def route_of(self, label: str, prefix_root: str) -> Callable[[Scope], str]:
        """The routing mount's RouteBook.route_of, for its shadow, which is built before
        the recorder: the book is the same whoever asks first."""
        return self._mount_routes(label, prefix_root).book.route_of

    def _mount_routes(self, label: str, prefix_root: str) -> MountRoutes:
        routes = self.mounts.get(label)
        if routes is None:
            book = RouteBook(self._limit, self._root_path + prefix_root)
            routes = self.mounts[label] = MountRoutes(self._families, label, book, {})
        return routes

    def count_shadow(self, mount: str, route: str, mismatch: bool) -> None:
        routes = self.mounts.get(mount)
        if routes is not None:
            routes.count_shadow(route, mismatch)

    def publish(self) -> None:
        """Write the ledger's file, if several workers share a directory and it changed,
        in a thread: its samples may weigh some MiB (rule "several workers"). One write
        at a time; a change meanwhile is written at the next publish."""
        directory = os.environ.get(MULTIPROC_ENV, "")
        if not directory or not self.ledger.changed or self._writing:
            return
        doc = self.ledger.to_json()  # on the loop: the ledger is the loop's
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (a test, a worker's last words): write now
            write_ledger(directory, os.getpid(), doc)
            return
        self._writing = True
        written = loop.run_in_executor(None, write_ledger, directory, os.getpid(), doc)
        written.add_done_callback(self._written)

    def _written(self, _: object) -> None:
        self._writing = False

    def report(
        self, samples: Iterable[Sample], order: list[str], mine: Doc, url: str = ""
    ) -> Report:
        """The migration report from the exposition's samples and every worker's ledger
        (`mine`: this worker's, taken on the event loop, written first so the files
        are current), saying it was read at `url`. Reads and writes files: call it in a thread
        (gateway/server/mount_metrics.py, rule "a scrape is collected off the event
        loop")."""
        directory = os.environ.get(MULTIPROC_ENV, "")
        docs = [mine]
        if directory:
            write_ledger(directory, os.getpid(), mine)
            docs = read_ledgers(directory)
        return build_report(
            samples,
            merge(docs),
            order,
            self.thresholds,
            url=url,
            now_s=time.time(),
            top=self._limit,
        )


def write_ledger(directory: str, pid: int, doc: dict[str, Any]) -> None:
    """Write `doc` as this worker's ledger file, whole or not at all (rule "several
    workers")."""
    path = os.path.join(directory, f"{LEDGER_PREFIX}{pid}.json")
    partial = f"{path}.{threading.get_ident()}.partial"  # two writers never share one
    try:
        with open(partial, "w", encoding="utf-8") as file:
            json.dump(doc, file, separators=(",", ":"))
        os.replace(partial, path)
    except OSError as exc:
        log.debug("cannot write %s: %s", path, exc)
        with contextlib.suppress(OSError):
            os.remove(partial)


def read_ledgers(directory: str) -> list[dict[str, Any]]:
    """The newest MAX_LEDGER_FILES ledger files in `directory`, the older ones removed
    (rule "several workers"); one that cannot be read is left out."""
    docs = []
    for path in _newest_ledgers(directory):
        try:
            with open(path, encoding="utf-8") as file:
                doc = json.load(file)
        except (OSError, ValueError) as exc:
            log.debug("cannot read %s: %s", path, exc)
            continue
        if isinstance(doc, dict):
            docs.append(doc)
    return docs


def _newest_ledgers(directory: str) -> list[str]:
    """The newest MAX_LEDGER_FILES ledger paths; the rest are dead workers' (every live
    worker writes its own as it changes), removed so that recycled workers
    (`max_requests`) do not fill the directory."""
    dated = []
    for path in glob.glob(os.path.join(directory, f"{LEDGER_PREFIX}*.json")):
        with contextlib.suppress(OSError):
            dated.append((os.stat(path).st_mtime, path))
    dated.sort(reverse=True)
    for _, path in dated[MAX_LEDGER_FILES:]:
        with contextlib.suppress(OSError):
            os.remove(path)
    return [path for _, path in dated[:MAX_LEDGER_FILES]]
