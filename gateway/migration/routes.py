"""The route of a request: a template such as "/users/{int}" below its routing mount's
prefix, with a bounded number of them per mount (issue 17, point 2).

A RouteBook belongs to one routing mount in one worker. `route_of(scope)` names the
request's route, once the app has answered (the recorder asks then, and so does the
shadow: gateway/server/route_metrics.py, gateway/migration/shadow.py).

Rules:
1. A route is computed once per request, by whoever asks first, and kept on the scope
   under ROUTE_KEY; every later ask reads it back. It is asked for only after the app has
   answered, so a framework's template is there to be read.
2. A framework's own template wins: FastAPI (and Starlette's router since 0.39) puts the
   matched route object in `scope["route"]`; its `path_format` ("/users/{user_id}", the
   convertors left out) or else its `path` is the template. A Starlette Mount inside the
   app grows `root_path`; what it grew by is put in front. A template that is not a str,
   or longer than MAX_TEMPLATE_CHARS, is not used.
3. Otherwise the path below the prefix is made a template, segment by segment
   (`path_template`): a number is "{int}", a UUID "{uuid}", hex of HEX_CHARS or more
   "{hex}", a token-like segment (TOKEN_CHARS or more of [A-Za-z0-9_-], with a digit)
   "{token}", and a segment over SEGMENT_CHARS "{long}". Past MAX_SEGMENTS segments
   the rest is "/{rest}". The query never counts.
4. Learned aliases: when the framework's template T is read for a path whose own
   template is R, R -> T is kept (at most `limit` aliases), so the other side's
   requests to the same path (the legacy app, which tells nothing) count under T too.
5. Bounded admission: at most `limit` routes per book; the rest is OTHER. A framework
   template is admitted at once (the app's own route table bounds them). A template made
   from the path is admitted on its ADMIT_AFTER-th sighting while slots are free: a
   scanner's one-off paths never take a slot. Its earlier sightings count as OTHER.
   The candidates are counted in a table of at most CANDIDATES_PER_ROUTE x `limit`
   entries, emptied when full, so the table never grows and a real route, asked for
   twice among that many distinct newcomers, still gets in. The reader of the metrics
   keeps the top routes over all workers and folds the rest into OTHER
   (gateway/migration/report.py).
6. Sides: "new" or "legacy", per mount, from the links at startup (`mount_sides`): a
   mount with a `fallback` is new and its fallback legacy; a mount with a `canary` or a
   `shadow` is legacy and its target new; a mount no link names and with none: ASGI is
   new, WSGI (and static files) legacy. A mount's own links decide before another's.
   A request's side is the side of the last mount that answered it (`answered_by`).
7. Layer 1: no event loop, no lock: a book is used from its worker's event loop only.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from gateway.asgi import Interface, Scope
from gateway.config.mount_table import MountConfig

# Where the route is kept on the scope (rule "a route is computed once per request").
ROUTE_KEY = "gateway.route"
# The overflow bucket (rule "bounded admission").
OTHER = "other"
NEW = "new"
LEGACY = "legacy"
# A template read from a framework is at most this long: a real route table's longest
# paths are well under 200 characters; anything longer is not a template we label with.
MAX_TEMPLATE_CHARS = 200
# Segments kept of a path: REST APIs nest 3 to 6 deep; deeper paths are file trees,
# where the first 8 segments already tell the routes apart.
MAX_SEGMENTS = 8
# A segment longer than this is data (a slug, a base64 blob), not a name in a route table.
SEGMENT_CHARS = 64
# Hex of 16 or more: 64-bit ids, hashes (git's 40, sha256's 64). Shorter hex is too often
# an English word ("cafe", "added", "facade").
HEX_CHARS = 16
# Token-like ids (base64url, nanoid's 21, ULIDs' 26) of 20 or more characters with a digit:
# route names are words, and seldom that long.
TOKEN_CHARS = 20
# Sightings a path's template needs before it is admitted (rule "bounded admission"):
# two, so a single scanned path never takes a slot.
ADMIT_AFTER = 2
# The candidates table, per route slot: room for four newcomers per slot before it is
# emptied, so a route seen twice among a burst of 4 x limit distinct one-off paths gets in.
CANDIDATES_PER_ROUTE = 4

_UUID = re.compile(
    r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}"
)
_HEX = re.compile(rf"[0-9a-fA-F]{{{HEX_CHARS},}}")
_TOKEN = re.compile(rf"(?=[A-Za-z_-]*[0-9])[A-Za-z0-9_-]{{{TOKEN_CHARS},}}")


def path_template(path: str) -> str:
    """The template of a path below a mount's prefix (rule "otherwise the path below the
    prefix is made a template"): "/users/42/orders" -> "/users/{int}/orders"."""
    segments = path.split("/")[1:] if path.startswith("/") else path.split("/")
    rest = len(segments) > MAX_SEGMENTS
    words = [_placeholder(segment) for segment in segments[:MAX_SEGMENTS]]
    return "/" + "/".join(words) + ("/{rest}" if rest else "")


def _placeholder(segment: str) -> str:
    if segment.isdigit():
        return "{int}"
    if len(segment) < HEX_CHARS:  # the shortest of the patterns below: most words end here
        return segment
    if len(segment) > SEGMENT_CHARS:
        return "{long}"
    if _UUID.fullmatch(segment):
        return "{uuid}"
    if _HEX.fullmatch(segment):
        return "{hex}"
    if _TOKEN.fullmatch(segment):
        return "{token}"
    return segment


def framework_template(scope: Scope, root: str) -> str | None:
    """The template the app's framework left in the scope, below the routing mount's
    `root` (rule "a framework's own template wins"), or None."""
    route = scope.get("route")
    if route is None:
        return None
    template = getattr(route, "path_format", None) or getattr(route, "path", None)
    if not isinstance(template, str) or not template.startswith("/"):
        return None
    root_path = scope.get("root_path", "")
    if root_path.startswith(root):  # a Mount inside the app grew it
        template = root_path[len(root) :] + template
    return template if len(template) <= MAX_TEMPLATE_CHARS else None


class RouteBook:
    """One routing mount's routes in one worker (rules "bounded admission" and "learned
    aliases"). `root` is what the mount's requests' root_path is when the router hands
    them over: the server's root_path and the mount's prefix."""

    __slots__ = ("_admitted", "_aliases", "_candidates", "limit", "root")

    def __init__(self, limit: int, root: str = "") -> None:
        self.limit = limit
        self.root = root
        self._admitted: set[str] = set()
        self._aliases: dict[str, str] = {}
        self._candidates: dict[str, int] = {}

    @property
    def routes(self) -> frozenset[str]:
        """The routes admitted so far."""
        return frozenset(self._admitted)

    def knows(self, route: str) -> bool:
        """`route` is one this book gives: admitted, or OTHER."""
        return route in self._admitted or route == OTHER

    def route_of(self, scope: Scope) -> str:
        """The request's route, computed once and kept on the scope (rule "a route is
        computed once per request")."""
        route: str | None = scope.get(ROUTE_KEY)
        if route is None:
            route = scope[ROUTE_KEY] = self._route(scope)
        return route

    def _route(self, scope: Scope) -> str:
        path: str = scope["path"]
        below = path[len(self.root) :] if path.startswith(self.root) else path
        template = path_template(below)
        known = framework_template(scope, self.root)
        if known is not None:
            self._learn(template, known)
            return self._admit_known(known)
        alias = self._aliases.get(template)
        if alias is not None:
            return alias if alias in self._admitted else OTHER
        return self._admit_seen(template)

    def _learn(self, template: str, known: str) -> None:
        if template != known and len(self._aliases) < self.limit:
            self._aliases[template] = known

    def _admit_known(self, template: str) -> str:
        if template in self._admitted:
            return template
        if len(self._admitted) < self.limit:
            self._admitted.add(template)
            return template
        return OTHER

    def _admit_seen(self, template: str) -> str:
        if template in self._admitted:
            return template
        if len(self._admitted) >= self.limit:
            return OTHER
        seen = self._candidates.get(template, 0) + 1
        if seen >= ADMIT_AFTER:
            self._candidates.pop(template, None)
            self._admitted.add(template)
            return template
        if len(self._candidates) >= CANDIDATES_PER_ROUTE * self.limit:
            self._candidates.clear()
        self._candidates[template] = seen
        return OTHER


def mount_sides(mounts: Sequence[MountConfig]) -> dict[str, str]:
    """Each mount's side, by its label and by its name (rule "sides"): a label is a prefix
    ("/api") or a name, and a name never starts with "/" (checks.mount_name)."""
    named: dict[str, str] = {}
    own: dict[str, str] = {}
    for mount in mounts:
        if mount.fallback:
            own[mount.label] = NEW
            named.setdefault(mount.fallback, LEGACY)
        for target in (mount.canary, mount.shadow):
            if target:
                own.setdefault(mount.label, LEGACY)
                named.setdefault(target, NEW)
    sides = {}
    for mount in mounts:
        by_interface = NEW if mount.interface == Interface.ASGI and not mount.static else LEGACY
        side = own.get(mount.label) or named.get(mount.name) or by_interface
        sides[mount.label] = side
        if mount.name:
            sides[mount.name] = side
    return sides


def answered_by(label: str) -> tuple[str, bool]:
    """The name (or, with no hop, the label) of the mount that answered a request whose
    mount label is `label` ("/api>fallback:legacy>shadow:newapi"), and whether it fell
    back (rule "sides"). A shadow hop only says the request was copied."""
    hops = label.split(">")
    fell_back = False
    answered = hops[0]
    for hop in hops[1:]:
        kind, _, name = hop.partition(":")
        if kind == "shadow":
            continue
        fell_back = fell_back or kind == "fallback"
        answered = name
    return answered, fell_back
