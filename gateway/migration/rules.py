"""Sending a mount's requests to another mount by name: fallback and canary.

A mount's rules (FallbackRule, CanaryRule) are data from its [[mount]] table. At startup
the router resolves the mount each rule names (`to_mount`) to a MountLink and calls
`rule.wrap`, which puts one of the small ASGI apps below around the mount's app; a
mount without rules is served by its app directly and pays nothing for this module
(gateway/routing/router.py, rule "mounts reach each other by name").

Rules:
1. A linked mount serves with the routing mount's path semantics: root_path (and so
   SCRIPT_NAME) is the routing mount's prefix; its app, state, pool and lifespan are
   its own. The access log names the route taken: "/api>fallback:legacy".
2. Fallback decides at the first message the app sends: an http.response.start (or,
   for a WebSocket, a websocket.http.response.start, or a websocket.close before accept,
   which ASGI answers 403) whose status is in `statuses` is held back, so no byte of it
   reaches the client; any other message goes out at once, and the rest of that response
   passes untouched. Only the status decides: a response is never replayed once started.
3. A discarded response: a final body is swallowed; a streaming one is cut the way a
   departed client cuts it (`send` raises ClientDisconnected, ASGI spec 2.4), so the
   replay does not wait on it; `receive` reports a disconnect. Once the first app has
   returned (an error of its own is then of no consequence), the request is replayed to
   the linked mount with a copy of the scope taken before the first app could change it, and
   a `receive` that gives back the body the first app read, then the rest as it
   arrives. A WebSocket replay begins with websocket.connect.
4. The body the first app reads is kept up to `body_bytes`. A declared Content-Length
   over it, or a body that passes it while the first app reads, keeps the first answer.
5. Canary: the `header` forces a side when its value says which; otherwise a sticky key
   (a cookie, a header, the client address), hashed with BLAKE2b, picks one of BUCKETS,
   the same in every worker and after every restart; a request without the key, or with
   sticky "none", draws at random. Buckets below percent x 100 go to the canary, so
   raising the percent keeps the canary's users on it.
6. WebSockets go to a linked mount only if it is ASGI: otherwise a canary keeps them on the
   primary, and a fallback lets the first answer stand.
7. Counted when metrics are on: a rule built with `metrics` (the worker's WorkerMetrics,
   seen through RoutingCounters) counts each replay and each request sent to the canary
   under `label`, the routing mount's; without it nothing is counted, at no cost.
8. Layer 1: no event loop; the router's helpers only.
9. A Tape's recording is one enum, Recording, moved through its table (TAPE_LIFECYCLE,
   gateway/lifecycle.py): it keeps the body, has kept all of it, or gave up past the
   limit.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import ClassVar, Protocol

from gateway.asgi import ASGIApp, Message, Receive, Scope, Send, mount_label, set_mount_label
from gateway.errors import ClientDisconnected
from gateway.lifecycle import Transitions
from gateway.routing.router import MountLink, declares_over

log = logging.getLogger("gateway.error")

# Canary buckets: percent in steps of 0.01 point, and a split that holds to well within a
# point over a few thousand distinct users (one bucket is 0.01% of them).
BUCKETS = 10_000
# canary_header values (case-insensitive) that force a side; any other value is ignored.
FORCE_CANARY = frozenset({b"canary", b"1", b"true"})
FORCE_PRIMARY = frozenset({b"primary", b"0", b"false"})
# The code a discarded WebSocket app reads in websocket.disconnect: from its side the
# connection ended without a Close frame (RFC 6455 §7.1.5).
DISCARDED_CLOSE_CODE = 1006


class RoutingCounters(Protocol):
    """The routing events a rule counts (gateway/server/mount_metrics.py WorkerMetrics),
    each under the label of the mount that routes (rule "counted when metrics are on")."""

    def count_fallback(self, mount: str) -> None: ...
    def count_canary(self, mount: str) -> None: ...
    def count_shadow(self, mount: str) -> None: ...
    def count_shadow_dropped(self, mount: str) -> None: ...
    def count_shadow_mismatch(self, mount: str) -> None: ...
    def count_route_shadow(self, mount: str, route: str, mismatch: bool) -> None: ...


# -- fallback ------------------------------------------------------------------------


@dataclass(frozen=True)
class FallbackRule:
    """`fallback`, `fallback_on` and `fallback_body_bytes` of a [[mount]] table."""

    to_mount: str  # the mount that answers instead
    statuses: frozenset[int]
    body_bytes: int
    label: str = ""  # the routing mount's, for the counter
    metrics: RoutingCounters | None = dataclasses.field(default=None, compare=False, repr=False)
    kind: ClassVar[str] = "fallback"

    def wrap(self, inner: ASGIApp, link: MountLink) -> ASGIApp:
        return Fallback(inner, link, self)


class Fallback:
    """The strangler fig: the first app answers, unless its status sends the request
    on to the linked mount (rules "fallback decides at the first message", "a discarded
    response" and "the body the first app reads is kept")."""

    __slots__ = ("_body_bytes", "_inner", "_link", "_rule", "_statuses")

    def __init__(self, inner: ASGIApp, link: MountLink, rule: FallbackRule) -> None:
        self._inner = inner
        self._link = link
        self._statuses = rule.statuses
        self._body_bytes = rule.body_bytes
        self._rule = rule

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            replayable = self._link.serves_websocket
        else:
            replayable = not declares_over(scope["headers"], self._body_bytes)
        if not replayable:
            await self._inner(scope, receive, send)
            return
        pristine = dict(scope)  # apps may change their scope (Starlette's router does)
        tape = Tape(receive, self._body_bytes, scope["type"] == "websocket")
        gate = Gate(send, self._statuses, tape)
        try:
            await self._inner(scope, tape, gate)
        except Exception as exc:
            if gate.decision is not Decision.DISCARDING:
                raise
            log.debug("app of a discarded response raised %r; falling back anyway", exc)
        if gate.decision is Decision.DISCARDING:
            if self._rule.metrics is not None:
                self._rule.metrics.count_fallback(self._rule.label)
            try:
                await self._link(pristine, tape.replay(receive), send)
            finally:
                set_mount_label(scope, mount_label(pristine))  # what the log reads


class Decision(Enum):
    """Where a Gate stands (rule "fallback decides at the first message")."""

    UNDECIDED = "undecided"  # the first app has sent nothing yet
    PASSING = "passing"  # its response goes to the client
    DISCARDING = "discarding"  # its response is dropped; the linked mount answers


class Gate:
    """The first app's `send`: its first message decides (rules "fallback decides at the
    first message" and "a discarded response")."""

    __slots__ = ("_send", "_statuses", "_tape", "decision")

    def __init__(self, send: Send, statuses: frozenset[int], tape: Tape) -> None:
        self._send = send
        self._statuses = statuses
        self._tape = tape
        self.decision = Decision.UNDECIDED

    async def __call__(self, message: Message) -> None:
        decision = self.decision
        if decision is Decision.PASSING:
            await self._send(message)
        elif decision is Decision.UNDECIDED:
            if _status_of(message) in self._statuses and self._tape.hand_over():
                self.decision = Decision.DISCARDING
                return
            self.decision = Decision.PASSING
            await self._send(message)
        elif message.get("more_body"):
            raise ClientDisconnected("response discarded: the fallback answers this request")


def _status_of(message: Message) -> int | None:
    """The HTTP status a message gives the client, if it starts an answer."""
    kind = message["type"]
    if kind == "http.response.start" or kind == "websocket.http.response.start":
        status: int = message["status"]
        return status
    if kind == "websocket.close":
        return 403  # ASGI WebSocket spec: a close before accept denies the handshake
    return None


class Recording(Enum):
    """What a Tape holds of the body the first app reads (rules "the body the first app
    reads is kept" and "a Tape's recording is one enum")."""

    KEEPING = "keeping"  # every chunk read so far; more may come
    KEPT = "kept"  # the whole body: the first app read its end within the limit
    OVER = "over"  # it passed the limit: nothing kept, no replay


TAPE_LIFECYCLE = Transitions(
    "tape",
    {
        Recording.KEEPING: {Recording.KEPT, Recording.OVER},
        Recording.KEPT: (),
        Recording.OVER: (),
    },
)


class Tape:
    """The first app's `receive`: keeps what it reads, for the replay (rules "a discarded
    response" and "the body the first app reads is kept")."""

    __slots__ = (
        "_chunks",
        "_handed_over",
        "_limit",
        "_receive",
        "_recording",
        "_size",
        "_took_connect",
        "_websocket",
    )

    def __init__(self, receive: Receive, limit: int, websocket: bool) -> None:
        self._receive = receive
        self._limit = limit
        self._websocket = websocket
        self._chunks: list[bytes] = []
        self._size = 0  # bytes kept
        self._recording = Recording.KEEPING
        self._took_connect = False
        # Cut off (hand_over): the first app's answer is discarded, so what it reads
        # next is a disconnect. Not part of Recording: a cut-off tape still replays what
        # it kept, and says whether that was the whole body.
        self._handed_over = False

    async def __call__(self) -> Message:
        if self._handed_over:
            if self._websocket:
                return {"type": "websocket.disconnect", "code": DISCARDED_CLOSE_CODE}
            return {"type": "http.disconnect"}
        message = await self._receive()
        kind = message["type"]
        if kind == "http.request":
            self._keep(message.get("body", b""), message.get("more_body", False))
        elif kind == "websocket.connect":
            self._took_connect = True
        return message

    def _keep(self, body: bytes, more_body: bool) -> None:
        if self._recording is not Recording.KEEPING:
            return  # over the limit; or a body after its end, which ASGI never sends
        self._size += len(body)
        if self._size > self._limit:
            self._move(Recording.OVER)
            self._chunks.clear()
            return
        if body:
            self._chunks.append(body)
        if not more_body:
            self._move(Recording.KEPT)

    def _move(self, recording: Recording) -> None:
        self._recording = TAPE_LIFECYCLE.move(self._recording, recording)

    def hand_over(self) -> bool:
        """Stop serving the first app; False if the body it read cannot be replayed."""
        if self._recording is Recording.OVER:
            return False
        self._handed_over = True
        return True

    def recorded(self) -> bytes | None:
        """The whole body, if the first app read all of it within the limit; else None
        (the shadow copy's body, gateway/migration/shadow.py)."""
        if self._recording is not Recording.KEPT:
            return None
        return b"".join(self._chunks)

    def replay(self, receive: Receive) -> Receive:
        """The linked mount's `receive`: what the first app took, then the live `receive`."""
        first: Message | None = None
        ended = self._recording is Recording.KEPT
        if self._websocket:
            if self._took_connect:
                first = {"type": "websocket.connect"}
        elif self._chunks or ended:
            body = b"".join(self._chunks)
            first = {"type": "http.request", "body": body, "more_body": not ended}
        return receive if first is None else Replay(first, receive)


class Replay:
    """A `receive` that gives one kept message, then the live ones."""

    __slots__ = ("_first", "_receive")

    def __init__(self, first: Message, receive: Receive) -> None:
        self._first: Message | None = first
        self._receive = receive

    async def __call__(self) -> Message:
        first, self._first = self._first, None
        return first if first is not None else await self._receive()


# -- canary --------------------------------------------------------------------------

StickyKey = Callable[[Scope], bytes | None]


@dataclass(frozen=True)
class CanaryRule:
    """`canary`, `canary_percent`, `canary_sticky` and `canary_header` of a [[mount]]."""

    to_mount: str  # the canary
    percent: float  # 0-100
    sticky: str = "none"  # "none" | "client" | "cookie:NAME" | "header:name" (validated)
    header: str = ""  # lower-case field name that forces a side; "": none
    label: str = ""  # the routing mount's, for the counter
    metrics: RoutingCounters | None = dataclasses.field(default=None, compare=False, repr=False)
    kind: ClassVar[str] = "canary"

    def wrap(self, inner: ASGIApp, link: MountLink) -> ASGIApp:
        return Canary(inner, link, self)


class Canary:
    """Sends a share of a mount's requests to the linked mount, the rest to its own app
    (rules "canary" and "WebSockets go to a linked mount only if it is ASGI")."""

    __slots__ = ("_canary", "_header", "_key", "_primary", "_rule", "_threshold")

    def __init__(self, primary: ASGIApp, canary: MountLink, rule: CanaryRule) -> None:
        self._primary = primary
        self._canary = canary
        self._threshold = round(rule.percent * BUCKETS / 100)
        self._key = sticky_key(rule.sticky)
        self._header = rule.header.encode("latin-1")
        self._rule = rule

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.picks_canary(scope):
            if self._rule.metrics is not None:
                self._rule.metrics.count_canary(self._rule.label)
            await self._canary(scope, receive, send)
        else:
            await self._primary(scope, receive, send)

    def picks_canary(self, scope: Scope) -> bool:
        if scope["type"] == "websocket" and not self._canary.serves_websocket:
            return False
        if self._header:
            forced = _forced_side(scope["headers"], self._header)
            if forced is not None:
                return forced
        key = self._key(scope)
        return bucket(key) < self._threshold


def bucket(key: bytes | None) -> int:
    """A key's bucket, 0 to BUCKETS - 1: stable across processes (unlike hash()); no
    key: a random one."""
    if key is None:
        return int(random.random() * BUCKETS)
    digest = hashlib.blake2b(key, digest_size=8).digest()
    return int.from_bytes(digest, "big") % BUCKETS


def _forced_side(headers: list[tuple[bytes, bytes]], name: bytes) -> bool | None:
    for field, value in headers:
        if field == name:
            value = value.strip().lower()
            if value in FORCE_CANARY:
                return True
            if value in FORCE_PRIMARY:
                return False
    return None


def sticky_key(spec: str) -> StickyKey:
    """The function that reads a request's sticky key, from `canary_sticky`."""
    kind, _, name = spec.partition(":")
    if kind == "client":
        return _client_address
    if kind == "cookie":
        return _cookie_reader(name.encode("latin-1"))
    if kind == "header":
        return _header_reader(name.encode("latin-1"))
    return _no_key


def _no_key(scope: Scope) -> bytes | None:
    return None


def _client_address(scope: Scope) -> bytes | None:
    # The proxy's client, with proxy_headers on: the connection has applied them.
    client = scope.get("client")
    return str(client[0]).encode() if client else None


def _header_reader(name: bytes) -> StickyKey:
    def read(scope: Scope) -> bytes | None:
        for field, value in scope["headers"]:
            if field == name and value:
                return bytes(value)
        return None

    return read


def _cookie_reader(name: bytes) -> StickyKey:
    def read(scope: Scope) -> bytes | None:
        # RFC 6265 §5.4: "name=value" pairs joined by "; " (more than one field only
        # from a client that splits them, as HTTP/2 allows).
        for field, value in scope["headers"]:
            if field == b"cookie":
                for pair in value.split(b";"):
                    key, eq, found = pair.strip().partition(b"=")
                    if eq and key == name and found:
                        return bytes(found)
        return None

    return read
