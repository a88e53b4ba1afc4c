"""Shadow compare: a copy of a mount's request goes to another mount, off the critical
path, and the two answers are compared.

A ShadowRule is a rule like those of gateway/migration/rules.py (the router wraps the mount's
app in it, outermost, so the client's answer is the one compared, fallback and canary
included); it lives here, beside the tasks and files it needs, because a copy runs as a
task of its own, which the router's layer may not start.

Rules:
1. The client gets the primary's answer, untouched and undelayed: the wrapper only
   watches its messages go by, keeping the status, the content type and the first
   ANSWER_BYTES of the body. Once the primary's app has returned with a complete answer,
   the copy is started as a task and the wrapper returns at once; the primary never
   waits for the copy, its answer or the comparison. The copy calls the shadow only
   COPY_DELAY_S later, so the requests that came with its primary are served first.
2. Which requests are copied: HTTP only (a WebSocket never is), whose method is in
   `methods`; of those, the `share` whose key (method, path and query: share_key) falls
   in a bucket below share x 100 by gateway/migration/rules.py `bucket` (the canary's
   stable hash: the same requests in every worker, run and server); of those, drawn at
   random at `percent`; and whose body is known whole: none (RFC 9112 §6.3:
   neither Content-Length nor Transfer-Encoding; or a length of 0), or all of it read
   by the primary within BODY_BYTES. A declared length over that, a body that grows
   past it, or one the primary left unread: no copy, counted as dropped.
3. Bounded: a mount's copies in flight are at most `max_in_flight` per worker (its
   ShadowPool). When it is full, the copy is dropped and counted at once; nothing waits
   and nothing is queued. A copy gets TIMEOUT_S to answer; the worker's drain cancels
   the copies still running.
4. The copy is the request as the primary got it, less the header fields in
   `shadow_drop_headers` (Cookie and Authorization by default: the user's credentials
   stay with the code that serves the user): a copy of the scope taken before the
   primary could change it, entered through the MountLink (root_path is the routing
   mount's prefix, the state is the shadow mount's), and the whole body in one message.
   Once that is read, `receive` waits until the shadow's answer is complete, then
   reports a disconnect (so a streaming answer is not cut short). Its answer goes
   nowhere but into the comparison (gateway/migration/compare.py).
5. The shadow's errors stay there: an exception, a timeout or an incomplete answer is
   recorded in the mismatch it makes (`error`), with the traceback at debug level only;
   nothing of it reaches the primary's request or the client.
6. A mismatch is one JSON line (mismatch_record) appended to `shadow_log`, or written to
   the error log at warning level. Lines are short (gateway/migration/compare.py,
   rule "a difference is described within bounds"), written after the primary has
   answered; the file is reopened when logrotate moves it. Bodies over
   INLINE_COMPARE_BYTES are compared in a thread, so a big JSON parse does not hold up
   the loop.
7. Counted when metrics are on: each copy started (count_shadow), each dropped
   (count_shadow_dropped), each mismatch (count_shadow_mismatch), under the routing
   mount's label.
8. A copy that starts adds its route (">shadow:NAME") to the primary's mount label once
   the primary has answered, so the access line's route says the request was copied;
   the label of the copy's own scope is never the primary's.
9. Denoise (a rule with a NoiseBook: shadow_denoise): of the copies whose method is
   safe (SAFE_METHODS: a copy already runs the request twice; a write must never run
   a third time), `denoise_percent` drawn at random, while the route's book wants
   samples, also call the primary's own app (the app this rule wraps) a second time,
   inside the copy's task and pool slot, after the shadow has answered: the scope as
   it was before the primary ran, with every header field (this is the code that
   serves the user) and the same body. The two primary answers teach the route's noise
   (gateway/migration/noise.py) before the copy is compared, and the comparison leaves
   that noise out and compares header fields too, but `ignore_headers`. A second call
   that fails teaches nothing (counted in the book's `pairs_unusable`). It gets
   TIMEOUT_S of its own, and takes a place in the primary's own pool and queue like
   any request: refused there (503), it teaches nothing either. The primary mount's
   own request counters include the second calls.
10. A route for each copy, when something needs one (denoise, the ledger, the route
   counters): `route_of(scope)` after the primary has answered (a framework's template
   is in the scope by then), else the path below the mount's prefix. Each compared
   copy is counted per route (count_route_shadow) and each mismatch is noted in the
   `ledger` with its kind (gateway/migration/compare.py, rule "each mismatch has a
   `kind`"), when those are given.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, TypeVar, runtime_checkable

from gateway.asgi import ASGIApp, Message, Receive, Scope, Send, mount_label, set_mount_label
from gateway.config.limits import FALLBACK_BODY_BYTES, GRACEFUL_TIMEOUT_S, SHADOW_DROP_HEADERS
from gateway.migration.compare import Answer, Mismatch, compare
from gateway.migration.mismatches import MismatchLog, MismatchNotes, mismatch_record, request_line
from gateway.migration.noise import NoiseBook, difference
from gateway.migration.rules import BUCKETS, RoutingCounters, Tape, bucket
from gateway.routing.router import MountLink, declares_over, framing

log = logging.getLogger("gateway.shadow")

# The request body a copy can carry: fallback_body_bytes' default and reasoning (1 MiB,
# nginx's client_max_body_size: forms and JSON fit, uploads do not); kept only until the
# copy has been sent.
BODY_BYTES = FALLBACK_BODY_BYTES
# The body kept of each answer for the comparison: the same 1 MiB. An API answer fits
# whole; a larger one (a download) is compared on its first MiB and its length, so that
# watching it costs no hashing on the primary's path and no more memory than this.
ANSWER_BYTES = 1024 * 1024
# How long a copy may take to answer completely. It holds a slot of max_in_flight
# meanwhile; an answer later than the server's graceful_timeout (30 s) is a finding in
# itself (the mismatch says so), not a comparison worth holding the slot for.
TIMEOUT_S = GRACEFUL_TIMEOUT_S
# Bodies up to this size are compared on the loop, in well under a millisecond; larger
# ones (a JSON parse of up to 1 MiB takes several ms) in a thread, so that the loop keeps
# serving other requests meanwhile.
INLINE_COMPARE_BYTES = 64 * 1024
# How long the drain waits for cancelled copies to unwind (gateway/process/worker.py has the
# same bound for cancelled WebSocket apps).
CANCEL_GRACE_S = 1.0
# A copy starts this long after its primary's answer (rule "the client gets the
# primary's answer"): requests that arrive together, as a burst of clients does, are all
# answered before their copies take the loop, so a copy delays no primary of its own
# burst.
COPY_DELAY_S = 0.01
# Methods whose request may run a third time (rule "denoise"): the safe ones of RFC 9110
# §9.2.1, which a client may repeat and a server must not act on.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

Copy = Callable[[], Coroutine[Any, Any, None]]
T = TypeVar("T")
RouteOf = Callable[[Scope], str]


@runtime_checkable
class RouteShadowCounters(Protocol):
    """The per-route shadow counter (gateway/server/mount_metrics.py WorkerMetrics, once it
    counts per route; rule "a route for each copy")."""

    def count_route_shadow(self, mount: str, route: str, mismatch: bool) -> None: ...


class ShadowPool:
    """A mount's copies in flight in one worker, at most `limit` (rule "bounded")."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.started = 0  # copies started so far
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def full(self) -> bool:
        return len(self._tasks) >= self.limit

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    def spawn(self, copy: Copy) -> bool:
        """Start `copy()` as a task, or return False at once when the pool is full."""
        if self.full:
            return False
        task = asyncio.get_running_loop().create_task(copy())
        self.started += 1
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    async def join(self, timeout_s: float) -> bool:
        """Wait for the copies in flight now to end; False if some are still running
        after `timeout_s`."""
        if not self._tasks:
            return True
        _, pending = await asyncio.wait(set(self._tasks), timeout=timeout_s)
        return not pending

    async def close(self) -> None:
        """Cancel the copies in flight and let them unwind, up to CANCEL_GRACE_S."""
        for task in self._tasks:
            task.cancel()
        if not await self.join(CANCEL_GRACE_S):
            log.warning("%d shadow copies ignored cancellation; going on", self.in_flight)


@dataclass(frozen=True)
class ShadowRule:
    """`shadow` and the shadow_* keys of a [[mount]] table, with the worker's pool and
    log for that mount."""

    to_mount: str  # the shadow
    percent: float  # 0-100
    methods: frozenset[str]
    ignore_json_keys: frozenset[str]
    pool: ShadowPool = field(compare=False)
    log: MismatchLog = field(compare=False)
    label: str = ""  # the routing mount's: counters and mismatch lines
    metrics: RoutingCounters | None = field(default=None, compare=False, repr=False)
    # Lower-cased field names, as ASGI gives them (rule "the copy is the request").
    drop_headers: frozenset[bytes] = frozenset(name.encode() for name in SHADOW_DROP_HEADERS)
    share: float = 100.0  # 0-100 (rule "which requests are copied")
    noise: NoiseBook | None = field(default=None, compare=False)  # None: denoise off
    denoise_percent: float = 10.0  # 0-100 (rule "denoise")
    ignore_headers: frozenset[str] = frozenset()  # lower-cased, as compare.py keeps names
    route_of: RouteOf | None = field(default=None, compare=False, repr=False)
    ledger: MismatchNotes | None = field(default=None, compare=False, repr=False)
    route_counters: RouteShadowCounters | None = field(default=None, compare=False, repr=False)
    kind: ClassVar[str] = "shadow"

    @property
    def needs_route(self) -> bool:
        return not (self.noise is None and self.ledger is None and self.route_counters is None)

    def wrap(self, inner: ASGIApp, link: MountLink) -> ASGIApp:
        return Shadow(inner, link, self)

    def dropped(self) -> None:
        if self.metrics is not None:
            self.metrics.count_shadow_dropped(self.label)


class Shadow:
    """Serves the primary and, once it has answered, starts the copy
    (rules "the client gets the primary's answer" and "which requests are copied")."""

    __slots__ = ("_inner", "_link", "_rule", "_share_below")

    def __init__(self, inner: ASGIApp, link: MountLink, rule: ShadowRule) -> None:
        self._inner = inner
        self._link = link
        self._rule = rule
        self._share_below = round(rule.share * BUCKETS / 100)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self._wanted(scope):
            await self._inner(scope, receive, send)
            return
        rule = self._rule
        if rule.pool.full or declares_over(scope["headers"], BODY_BYTES):
            rule.dropped()  # decided before the primary runs: nothing is recorded
            await self._inner(scope, receive, send)
            return
        pristine = dict(scope)  # apps may change their scope (Starlette's router does)
        # A list of its own, as apps may change the scope's (Starlette's MutableHeaders).
        pristine["headers"] = [
            (name, value) for name, value in scope["headers"] if name not in rule.drop_headers
        ]
        again = self._second_call_scope(scope)
        tape = None if framing(scope["headers"]) == 0 else Tape(receive, BODY_BYTES, False)
        watch = Watch(send, keep_headers=rule.noise is not None)
        await self._inner(scope, receive if tape is None else tape, watch)
        if watch.answer.complete:
            body = b"" if tape is None else tape.recorded()
            route = self._route(scope, pristine) if rule.needs_route else ""
            if self._start_copy(pristine, body, watch.answer, route, again):
                # The access log's route (README: Logging): this request was copied.
                set_mount_label(scope, mount_label(scope) + self._link.route)

    def _wanted(self, scope: Scope) -> bool:
        rule = self._rule
        return (
            scope["type"] == "http"
            and scope["method"] in rule.methods
            and (rule.share >= 100 or bucket(share_key(scope)) < self._share_below)
            and (rule.percent >= 100 or random.random() * 100 < rule.percent)
        )

    def _second_call_scope(self, scope: Scope) -> Scope | None:
        """The scope of the primary's second call, if this request is drawn for one
        (rule "denoise"): taken now, before the primary can change it."""
        rule = self._rule
        if (
            rule.noise is None
            or scope["method"] not in SAFE_METHODS
            or random.random() * 100 >= rule.denoise_percent
        ):
            return None
        again = dict(scope)
        again["headers"] = list(scope["headers"])
        if "state" in scope:  # the primary's own copy of its mount's state, as the router gave
            again["state"] = dict(scope["state"])
        return again

    def _route(self, scope: Scope, pristine: Scope) -> str:
        """The request's route (rule "a route for each copy")."""
        if self._rule.route_of is not None:
            return self._rule.route_of(scope)
        path: str = pristine["path"]
        return path[len(pristine.get("root_path", "")) :] or "/"

    def _start_copy(
        self, scope: Scope, body: bytes | None, primary: Answer, route: str, again: Scope | None
    ) -> bool:
        """Start the copy, or count it dropped; whether it started."""
        rule = self._rule
        # Over the cap, or not read whole by the primary (rule "which requests are copied").
        if body is None:
            rule.dropped()
            return False
        if again is not None and rule.noise is not None and not rule.noise.wants_sample(route):
            again = None
        second = None if again is None else (self._inner, again)
        copy = ShadowCopy(self._link, scope, body, primary, rule, route, second)
        if not rule.pool.spawn(copy.run):
            rule.dropped()
            return False
        if rule.metrics is not None:
            rule.metrics.count_shadow(rule.label)
        return True


class Watch:
    """The primary's `send`: passes each message on, then notes it
    (rule "the client gets the primary's answer")."""

    __slots__ = ("_send", "answer")

    def __init__(self, send: Send, *, keep_headers: bool = False) -> None:
        self._send = send
        self.answer = Answer(ANSWER_BYTES, keep_headers=keep_headers)

    async def __call__(self, message: Message) -> None:
        await self._send(message)
        self.answer.take(message)


class Call:
    """One call of an app with a body known whole: the request in one message, then,
    once the answer is complete, a disconnect (rules "the copy is the request" and "the
    shadow's errors stay there")."""

    def __init__(self, app: ASGIApp, scope: Scope, body: bytes, keep_headers: bool) -> None:
        self.app = app
        self.scope = scope
        self.body: bytes | None = body
        self.answer = Answer(ANSWER_BYTES, keep_headers=keep_headers)
        self.done = asyncio.Event()  # the answer is complete

    async def run(self) -> Answer:
        """The answer, or what went wrong in `error`; never raises but CancelledError."""
        try:
            async with asyncio.timeout(TIMEOUT_S):
                await self.app(self.scope, self.receive, self.send)
        except TimeoutError:
            self.answer.error = f"no complete answer within {TIMEOUT_S:g} s"
        except Exception as exc:
            self.answer.error = repr(exc)
            log.debug("shadowed app raised on %s", request_line(self.scope), exc_info=True)
        if not self.answer.complete and not self.answer.error:
            self.answer.error = "the app returned without a complete answer"
        return self.answer

    async def receive(self) -> Message:
        body, self.body = self.body, None
        if body is not None:
            return {"type": "http.request", "body": body, "more_body": False}
        await self.done.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        self.answer.take(message)
        if self.answer.complete:
            self.done.set()


class ShadowCopy:
    """One copy: the shadow's request and answer, the primary's second call if drawn, then
    the comparison (rules "the copy is the request", "the shadow's errors stay there",
    "a mismatch is one JSON line", "denoise" and "a route for each copy")."""

    def __init__(
        self,
        link: MountLink,
        scope: Scope,
        body: bytes,
        primary: Answer,
        rule: ShadowRule,
        route: str = "",
        second: tuple[ASGIApp, Scope] | None = None,
    ) -> None:
        self.link = link
        self.scope = scope
        self.body = body
        self.primary = primary
        self.rule = rule
        self.route = route
        self.second = second  # the primary's own app and the scope of its second call
        self.answer = Answer(ANSWER_BYTES)

    async def run(self) -> None:
        """The task's body: never raises but CancelledError
        (rule "the shadow's errors stay there")."""
        await asyncio.sleep(COPY_DELAY_S)
        rule = self.rule
        self.answer = await Call(self.link, self.scope, self.body, rule.noise is not None).run()
        if self.second is not None and rule.noise is not None:
            again = await Call(*self.second, self.body, True).run()
            found = await self._off_loop(difference, self.primary, again, rule.ignore_json_keys)
            rule.noise.record(self.route, found)
        mismatch = await self._compare()
        if rule.route_counters is not None:
            rule.route_counters.count_route_shadow(rule.label, self.route, mismatch is not None)
        if mismatch is not None:
            self.report(mismatch)

    async def _off_loop(self, work: Callable[..., T], a: Answer, b: Answer, *args: Any) -> T:
        """`work(a, b, *args)`, in a thread when the bodies are big (rule "a mismatch is
        one JSON line": a large JSON parse must not hold up the loop)."""
        if max(len(a.body), len(b.body)) <= INLINE_COMPARE_BYTES:
            return work(a, b, *args)
        return await asyncio.to_thread(work, a, b, *args)

    async def _compare(self) -> Mismatch | None:
        rule = self.rule
        if rule.noise is None:  # gateway/migration/compare.py, rule "two answers match"
            return await self._off_loop(compare, self.primary, self.answer, rule.ignore_json_keys)
        noise = rule.noise.ignored(self.route)
        headers = rule.ignore_headers | noise.headers
        keys, paths = rule.ignore_json_keys, noise.json_paths
        return await self._off_loop(compare, self.primary, self.answer, keys, paths, headers)

    def report(self, mismatch: Mismatch) -> None:
        rule = self.rule
        if rule.metrics is not None:
            rule.metrics.count_shadow_mismatch(rule.label)
        scope, primary, answer = self.scope, self.primary, self.answer
        record = mismatch_record(rule.label, rule.to_mount, scope, primary, answer, mismatch)
        if rule.ledger is not None:
            rule.ledger.note_mismatch(rule.label, self.route, mismatch.kind, record)
        rule.log.write(record)


def share_key(scope: Scope) -> bytes:
    """What shadow_share hashes: "GET /api/items/7?lang=en" as bytes (rule "which
    requests are copied"); surrogatepass: a path of undecodable bytes still has a key."""
    path: str = scope["path"]
    query = bytes(scope.get("query_string", b""))
    return f"{scope['method']} {path}?".encode("utf-8", "surrogatepass") + query
