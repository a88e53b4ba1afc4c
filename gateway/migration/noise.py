"""Noise: what differs between two answers of the same code to the same request, learned
per route, so that a shadow comparison leaves it out (shadow_denoise; the idea of
Twitter's Diffy: ask the old code twice, and what changes between the two calls is not
a finding).

A mount's NoiseBook is filled by gateway/migration/shadow.py from the two answers of the
primary to one request, and read by the comparison of that route's copies.

Rules:
1. Only a pair of complete answers with the same status teaches: a failed second call
   or a status that changed says the code is flaky, not which fields are noise.
2. What is learned: the JSON paths that differ between the two bodies, made general
   (gateway/migration/compare.py `general_path`: "$.items[*].id", so a list of ids is one
   path, not one per element), when both bodies are JSON; and the names of the header
   fields that differ (the compared ones: compare.py UNCOMPARED_HEADERS never count).
   Bodies that are not JSON teach nothing of their body: a whole body is never ignored
   because it changed once.
3. Learned noise is never unlearned while the worker runs: a field that changed once
   between two identical calls can change again.
4. Bounded, each bound with its reason below: MAX_ROUTES routes per book, MAX_PATHS per
   route, MAX_HEADERS per route, paths of at most MAX_PATH_CHARS characters and names
   of at most MAX_HEADER_CHARS (a longer one is not learned), and MAX_SAMPLES pairs
   per route, after which the route asks for no more second calls (`wants_sample`).
   A route past MAX_ROUTES is not learned at all (counted in `routes_refused`).
5. Layer 1, pure data: no event loop, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gateway.migration.compare import Answer, differing_general_paths, differing_header_names

# Routes a mount's book learns, per worker: the route book keeps at most
# routes_per_mount (50) templates per mount plus "other", so this leaves room for
# raw paths while no route book is wired, and still bounds the memory.
MAX_ROUTES = 200
# JSON paths learned per route: the noise of an answer is a handful of fields (a
# timestamp, a request id, a nonce); a route that differs in more places than this
# between two identical calls is not one a comparison can help with.
MAX_PATHS = 32
# Header names learned per route: the same reasoning (a request id, a cookie, an etag).
MAX_HEADERS = 16
# A learned path or name longer than this is not kept: paths are made of an answer's
# own keys, and one long key must not cost every route its share of the bound.
MAX_PATH_CHARS = 256
MAX_HEADER_CHARS = 64
# Pairs of answers a route learns from. Noise shows in the first few pairs (a timestamp
# differs every time); after this many, the route's noise is taken as known and the
# primary is no longer called twice for it, which also bounds the extra load on it.
MAX_SAMPLES = 200


@dataclass
class RouteNoise:
    """What one route has learned (rule "what is learned")."""

    json_paths: dict[str, None] = field(default_factory=dict)  # ordered set
    headers: dict[str, None] = field(default_factory=dict)
    samples: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "json_paths": list(self.json_paths),
            "headers": list(self.headers),
            "samples": self.samples,
        }


@dataclass(frozen=True)
class Ignored:
    """What the comparison of a route's copies leaves out."""

    json_paths: frozenset[str] = frozenset()
    headers: frozenset[str] = frozenset()


NOTHING = Ignored()


@dataclass(frozen=True)
class Difference:
    """What differs between two answers of the primary (rule "what is learned")."""

    json_paths: tuple[str, ...]
    headers: tuple[str, ...]


def difference(a: Answer, b: Answer, ignored_keys: frozenset[str]) -> Difference | None:
    """What differs between two answers of the primary to one request, within MAX_PATHS
    paths; None when the pair cannot teach (rule "only a pair of complete answers"). Pure: it
    touches no book, so it may run in a thread."""
    if not (a.complete and b.complete) or a.error or b.error or a.status != b.status:
        return None
    paths: list[str] | None = None
    if not (a.cut or b.cut) and a.body != b.body:
        paths = differing_general_paths(bytes(a.body), bytes(b.body), ignored_keys, MAX_PATHS)
    return Difference(tuple(paths or ()), tuple(differing_header_names(a, b)))


class NoiseBook:
    """A mount's learned noise in one worker, by route (rules "only a pair of complete answers",
    "what is learned" and "bounded")."""

    def __init__(self, ignored_keys: frozenset[str] = frozenset()) -> None:
        # shadow_ignore_json_keys: left out of the comparison already, so never learned.
        self._ignored_keys = ignored_keys
        self._routes: dict[str, RouteNoise] = {}
        self._frozen: dict[str, Ignored] = {}  # each route's Ignored, rebuilt on a change
        self.pairs = 0  # pairs of the primary's answers given to learn from
        # Of those, pairs that could not teach (rule "only a pair of complete answers").
        self.pairs_unusable = 0
        self.routes_refused = 0  # pairs not learned from: the book was full

    def wants_sample(self, route: str) -> bool:
        """Whether a second call of the primary for `route` would teach anything
        (rule "bounded")."""
        noise = self._routes.get(route)
        if noise is None:
            return len(self._routes) < MAX_ROUTES
        return noise.samples < MAX_SAMPLES

    def learn(self, route: str, a: Answer, b: Answer) -> None:
        """Learn from two answers of the primary to one request (rules "only a pair of
        complete answers" and "what is learned")."""
        self.record(route, difference(a, b, self._ignored_keys))

    def record(self, route: str, found: Difference | None) -> None:
        """Learn what `difference` found (it may run in a thread: a big body's JSON parse
        should not hold up the loop; this part is quick and stays on it)."""
        self.pairs += 1
        if found is None:
            self.pairs_unusable += 1
            return
        noise = self._routes.get(route)
        if noise is None:
            if len(self._routes) >= MAX_ROUTES:
                self.routes_refused += 1
                return
            noise = self._routes[route] = RouteNoise()
        if noise.samples >= MAX_SAMPLES:
            return
        noise.samples += 1
        paths = _add(noise.json_paths, found.json_paths, MAX_PATHS, MAX_PATH_CHARS)
        headers = _add(noise.headers, found.headers, MAX_HEADERS, MAX_HEADER_CHARS)
        if paths or headers:
            self._frozen.pop(route, None)

    def ignored(self, route: str) -> Ignored:
        """What the comparison of `route`'s copies leaves out."""
        frozen = self._frozen.get(route)
        if frozen is not None:
            return frozen
        noise = self._routes.get(route)
        if noise is None:
            return NOTHING
        frozen = Ignored(frozenset(noise.json_paths), frozenset(noise.headers))
        self._frozen[route] = frozen
        return frozen

    def to_json(self) -> dict[str, dict[str, Any]]:
        """Per route: {"json_paths": [...], "headers": [...], "samples": n}, the shape of
        one mount in the ledger's "noise" section (gateway/migration/ledger.py)."""
        return {route: noise.to_json() for route, noise in self._routes.items()}


def _add(learned: dict[str, None], found: tuple[str, ...], limit: int, max_chars: int) -> bool:
    """Add what was `found` to `learned`, within the bounds; whether anything was new."""
    added = False
    for item in found:
        if len(learned) >= limit:
            break
        if item not in learned and len(item) <= max_chars:
            learned[item] = None
            added = True
    return added
