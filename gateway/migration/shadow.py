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
   `methods`, drawn at `percent`, and whose body is known whole: none (RFC 9112 §6.3:
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
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from logging.handlers import WatchedFileHandler
from typing import Any, ClassVar

from gateway.asgi import ASGIApp, Message, Receive, Scope, Send, mount_label, set_mount_label
from gateway.config.limits import FALLBACK_BODY_BYTES, GRACEFUL_TIMEOUT_S, SHADOW_DROP_HEADERS
from gateway.config.mount_table import MountConfig
from gateway.errors import ConfigError
from gateway.migration.compare import Answer, Mismatch, compare
from gateway.migration.rules import RoutingCounters, Tape
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
# The request target shown in a mismatch line is cut here; max_target_bytes (8 KiB)
# bounds it already, but a line of the log should stay readable.
MAX_TARGET_CHARS = 1024

Copy = Callable[[], Coroutine[Any, Any, None]]


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


class MismatchLog:
    """Where a mount's mismatches go: a JSON-lines file, or the error log
    (rule "a mismatch is one JSON line")."""

    def __init__(self, path: str) -> None:
        # WatchedFileHandler reopens the file when logrotate moves it away, and appends
        # each line with one write, so the workers' lines do not interleave.
        self._file: logging.Handler | None = None
        if path:
            self._file = WatchedFileHandler(path, encoding="utf-8")

    def write(self, record: dict[str, Any]) -> None:
        line = json.dumps(record)  # ASCII: a path's undecodable bytes stay escaped
        if self._file is None:
            log.warning("shadow mismatch: %s", line)
        else:
            self._file.handle(logging.makeLogRecord({"msg": line, "levelno": logging.INFO}))

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


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
    kind: ClassVar[str] = "shadow"

    def wrap(self, inner: ASGIApp, link: MountLink) -> ASGIApp:
        return Shadow(inner, link, self)

    def dropped(self) -> None:
        if self.metrics is not None:
            self.metrics.count_shadow_dropped(self.label)


class Shadow:
    """Serves the primary and, once it has answered, starts the copy
    (rules "the client gets the primary's answer" and "which requests are copied")."""

    __slots__ = ("_inner", "_link", "_rule")

    def __init__(self, inner: ASGIApp, link: MountLink, rule: ShadowRule) -> None:
        self._inner = inner
        self._link = link
        self._rule = rule

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
        tape = None if framing(scope["headers"]) == 0 else Tape(receive, BODY_BYTES, False)
        watch = Watch(send)
        await self._inner(scope, receive if tape is None else tape, watch)
        if watch.answer.complete:
            body = b"" if tape is None else tape.recorded()
            if self._start_copy(pristine, body, watch.answer):
                # The access log's route (README: Logging): this request was copied.
                set_mount_label(scope, mount_label(scope) + self._link.route)

    def _wanted(self, scope: Scope) -> bool:
        rule = self._rule
        return (
            scope["type"] == "http"
            and scope["method"] in rule.methods
            and (rule.percent >= 100 or random.random() * 100 < rule.percent)
        )

    def _start_copy(self, scope: Scope, body: bytes | None, primary: Answer) -> bool:
        """Start the copy, or count it dropped; whether it started."""
        rule = self._rule
        # Over the cap, or not read whole by the primary (rule "which requests are copied").
        if body is None:
            rule.dropped()
            return False
        copy = ShadowCopy(self._link, scope, body, primary, rule)
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

    def __init__(self, send: Send) -> None:
        self._send = send
        self.answer = Answer(ANSWER_BYTES)

    async def __call__(self, message: Message) -> None:
        await self._send(message)
        self.answer.take(message)


class ShadowCopy:
    """One copy: the shadow's request and answer, then the comparison
    (rules "the copy is the request", "the shadow's errors stay there" and "a mismatch is
    one JSON line")."""

    def __init__(
        self, link: MountLink, scope: Scope, body: bytes, primary: Answer, rule: ShadowRule
    ) -> None:
        self.link = link
        self.scope = scope
        self.body: bytes | None = body
        self.primary = primary
        self.rule = rule
        self.answer = Answer(ANSWER_BYTES)
        self.done = asyncio.Event()  # the shadow's answer is complete

    async def run(self) -> None:
        """The task's body: never raises but CancelledError
        (rule "the shadow's errors stay there")."""
        await asyncio.sleep(COPY_DELAY_S)
        try:
            async with asyncio.timeout(TIMEOUT_S):
                await self.link(self.scope, self.receive, self.send)
        except TimeoutError:
            self.answer.error = f"no complete answer within {TIMEOUT_S:g} s"
        except Exception as exc:
            self.answer.error = repr(exc)
            log.debug("shadow app raised on %s", request_line(self.scope), exc_info=True)
        if not self.answer.complete and not self.answer.error:
            self.answer.error = "the app returned without a complete answer"
        mismatch = await self._compare()
        if mismatch is not None:
            self.report(mismatch)

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

    async def _compare(self) -> Mismatch | None:
        ignored = self.rule.ignore_json_keys
        size = max(len(self.primary.body), len(self.answer.body))
        if size <= INLINE_COMPARE_BYTES:
            return compare(self.primary, self.answer, ignored)
        return await asyncio.to_thread(compare, self.primary, self.answer, ignored)

    def report(self, mismatch: Mismatch) -> None:
        rule = self.rule
        if rule.metrics is not None:
            rule.metrics.count_shadow_mismatch(rule.label)
        rule.log.write(mismatch_record(rule, self.scope, self.primary, self.answer, mismatch))


def mismatch_record(
    rule: ShadowRule, scope: Scope, primary: Answer, shadow: Answer, mismatch: Mismatch
) -> dict[str, Any]:
    """One line of shadow_log (README: Shadow)."""
    return {
        "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "mount": rule.label,
        "shadow_mount": rule.to_mount,
        "request": request_line(scope),
        "differs": list(mismatch.parts),
        "primary": primary.summary(),
        "shadow": shadow.summary(),
        "diff": mismatch.diff,
    }


def request_line(scope: Scope) -> str:
    """The method and the whole target as the client sent it: "GET /api/users?page=2"."""
    target: str = scope["path"]
    query = scope.get("query_string", b"")
    if query:
        target += "?" + bytes(query).decode("latin-1")
    return f"{scope['method']} {target[:MAX_TARGET_CHARS]}"


class Shadows:
    """A worker's shadowing: a pool and a mismatch log for each mount that shadows."""

    def __init__(self) -> None:
        self._pools: list[ShadowPool] = []
        self._logs: list[MismatchLog] = []

    @property
    def started(self) -> int:
        """Copies started so far, by every mount (a test waits on it and in_flight)."""
        return sum(pool.started for pool in self._pools)

    @property
    def in_flight(self) -> int:
        return sum(pool.in_flight for pool in self._pools)

    def rule(
        self, mount: MountConfig, where: tuple[str, str], metrics: RoutingCounters | None
    ) -> ShadowRule:
        """The mount's ShadowRule; `where` is (file, table) for the error about a log
        file that cannot be opened."""
        try:
            mismatches = MismatchLog(mount.shadow_log)
        except OSError as exc:
            reason = f"cannot open {mount.shadow_log!r}: {exc.strerror or exc}"
            raise ConfigError(*where, "shadow_log", reason) from exc
        pool = ShadowPool(mount.shadow_max_in_flight)
        self._pools.append(pool)
        self._logs.append(mismatches)
        return ShadowRule(
            mount.shadow,
            mount.shadow_percent,
            frozenset(mount.shadow_methods),
            frozenset(mount.shadow_ignore_json_keys),
            pool,
            mismatches,
            mount.label,
            metrics,
            frozenset(name.encode("ascii") for name in mount.shadow_drop_headers),
        )

    async def close(self) -> None:
        """Cancel every copy still running (the drain is over), then close the logs."""
        for pool in self._pools:
            await pool.close()
        for mismatches in self._logs:
            with contextlib.suppress(OSError):
                mismatches.close()
