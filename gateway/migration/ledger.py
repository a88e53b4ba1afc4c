"""What a migration page shows that is not a Prometheus number: the new/legacy split per
minute, the shadow's mismatches with a sample of each, and the learned noise
(issue 17, points 2 to 4).

A MigrationLedger belongs to one worker. The recorder counts each request served
(gateway/server/route_metrics.py), the shadow notes each mismatch
(gateway/migration/shadow.py); with several workers each writes its `to_json()` to a
file and the worker asked for a report `merge`s them all.

Rules:
1. Bounded, whatever the traffic: the history keeps HISTORY_MINUTES minutes (one entry
   per minute that saw a request); mismatches are kept for at most MAX_ROUTES routes
   over all mounts, MAX_KINDS kinds per route, each with its count and one sample (the
   first seen; a mismatch record is short already: gateway/migration/compare.py). A kind
   past MAX_KINDS, or a route past MAX_ROUTES, is not kept: the per-route counters
   (gateway_route_shadow_mismatches_total) still count it.
2. Pure data: the caller gives the time (`now_s`), so a test gives any clock; no file, no
   lock, no event loop here.
3. A JSON document: {"history": [[minute_start_s, new, legacy], ...], "mismatches":
   {mount: {route: [{"kind", "count", "sample"}]}}, "noise": {mount: {route: {...}}}}.
   `merge` sums histories by minute and counts by (mount, route, kind), keeps one
   sample, unions the noise, and keeps the bounds of rule "bounded, whatever the traffic".
4. A clock that steps back counts into the newest minute: the history never reorders.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

# The page's chart spans the last hour.
HISTORY_MINUTES = 60
MINUTE_S = 60
# Kinds of mismatch per route: the page shows the most frequent few; past five, a route
# disagrees in so many ways that the first five tell the story.
MAX_KINDS = 5
# Routes with mismatches kept: 4 mounts at routes_per_mount's default of 50. Each keeps
# at most MAX_KINDS samples of at most ~5 KiB (gateway/migration/compare.py's bounds:
# 10 paths of 200 characters a side), so a ledger stays within 5 MiB, written once a
# second at most.
MAX_ROUTES = 200

Doc = dict[str, Any]
NoiseSource = Callable[[], dict[str, Any]]


class MigrationLedger:
    """One worker's ledger (rules "bounded, whatever the traffic" and "pure data")."""

    def __init__(self) -> None:
        # [minute_start_s, new, legacy], oldest first.
        self._minutes: deque[list[int]] = deque(maxlen=HISTORY_MINUTES)
        # (mount, route) -> kind -> [count, sample]
        self._mismatches: dict[tuple[str, str], dict[str, list[Any]]] = {}
        self._noise: list[NoiseSource] = []
        self.changed = False  # since the last `to_json`: the file needs writing

    def attach_noise(self, source: NoiseSource) -> None:
        """A source of the noise section (a shadow's NoiseBook.to_json: {mount: {route:
        learned}}); several are united."""
        self._noise.append(source)

    def count_served(self, side: str, now_s: float) -> None:
        """A request served by `side` ("new" or "legacy") at `now_s` (epoch seconds)."""
        minute = int(now_s // MINUTE_S) * MINUTE_S
        if not self._minutes or self._minutes[-1][0] < minute:
            self._minutes.append([minute, 0, 0])
        self._minutes[-1][1 if side == "new" else 2] += 1  # rule "a clock that steps back"
        self.changed = True

    def note_mismatch(self, mount: str, route: str, kind: str, sample: dict[str, Any]) -> None:
        """A shadow mismatch of `kind` ("status", "body $.price") on a route."""
        kinds = self._mismatches.get((mount, route))
        if kinds is None:
            if len(self._mismatches) >= MAX_ROUTES:
                return
            kinds = self._mismatches[(mount, route)] = {}
        entry = kinds.get(kind)
        if entry is None:
            if len(kinds) >= MAX_KINDS:
                return
            entry = kinds[kind] = [0, sample]
        entry[0] += 1
        self.changed = True

    def to_json(self) -> Doc:
        """The ledger as a JSON document (rule "a JSON document")."""
        self.changed = False
        mismatches: dict[str, dict[str, list[Doc]]] = {}
        for (mount, route), kinds in self._mismatches.items():
            mismatches.setdefault(mount, {})[route] = [
                {"kind": kind, "count": count, "sample": sample}
                for kind, (count, sample) in kinds.items()
            ]
        return {
            "history": [list(minute) for minute in self._minutes],
            "mismatches": mismatches,
            "noise": _united([source() for source in self._noise]),
        }


def merge(docs: Iterable[Doc]) -> Doc:
    """Several workers' documents as one (rule "a JSON document")."""
    minutes: dict[int, list[int]] = {}
    kinds: dict[tuple[str, str], dict[str, Doc]] = {}
    noise: dict[str, dict[str, Doc]] = {}
    for doc in docs:
        for minute, new, legacy in doc.get("history", []):
            counts = minutes.setdefault(int(minute), [0, 0])
            counts[0] += int(new)
            counts[1] += int(legacy)
        for mount, routes in doc.get("mismatches", {}).items():
            for route, entries in routes.items():
                _merge_kinds(kinds, (mount, route), entries)
        _unite(noise, doc.get("noise", {}))
    history = [[m, *minutes[m]] for m in sorted(minutes)[-HISTORY_MINUTES:]]
    mismatches: dict[str, dict[str, list[Doc]]] = {}
    for (mount, route), by_kind in kinds.items():
        ranked = sorted(by_kind.values(), key=lambda entry: -int(entry["count"]))
        mismatches.setdefault(mount, {})[route] = ranked[:MAX_KINDS]
    return {"history": history, "mismatches": mismatches, "noise": noise}


def _merge_kinds(
    kinds: dict[tuple[str, str], dict[str, Doc]], key: tuple[str, str], entries: list[Doc]
) -> None:
    by_kind = kinds.get(key)
    if by_kind is None:
        if len(kinds) >= MAX_ROUTES:
            return
        by_kind = kinds[key] = {}
    for entry in entries:
        kept = by_kind.get(entry["kind"])
        if kept is None:
            by_kind[entry["kind"]] = dict(entry)
        else:
            kept["count"] += entry["count"]


def _united(sections: list[dict[str, Any]]) -> dict[str, dict[str, Doc]]:
    noise: dict[str, dict[str, Doc]] = {}
    for section in sections:
        _unite(noise, section)
    return noise


def _unite(noise: dict[str, dict[str, Doc]], section: dict[str, Any]) -> None:
    for mount, routes in section.items():
        for route, learned in routes.items():
            _merge_noise(noise.setdefault(mount, {}), route, learned)


def _merge_noise(routes: dict[str, Doc], route: str, learned: Doc) -> None:
    kept = routes.get(route)
    if kept is None:
        routes[route] = {
            "json_paths": sorted(learned.get("json_paths", [])),
            "headers": sorted(learned.get("headers", [])),
            "samples": int(learned.get("samples", 0)),
        }
        return
    kept["json_paths"] = sorted({*kept["json_paths"], *learned.get("json_paths", [])})
    kept["headers"] = sorted({*kept["headers"], *learned.get("headers", [])})
    kept["samples"] += int(learned.get("samples", 0))
