"""The mount table as one ASGI app.

Rules:
1. Longest prefix wins, on a segment boundary: `/api` serves `/api` and `/api/x`, never
   `/apix` (the rule of Starlette's Mount; hypercorn's startswith-in-order is the bug to
   avoid). Matching walks the path's own segment boundaries from the longest, one dict
   lookup each, so the cost does not grow with the number of mounts.
2. `/` is an optional catch-all. With no match the answer is a plain-text 404.
3. Path semantics follow the ASGI spec: `root_path` grows by the prefix and `path` stays
   whole; the WSGI bridge derives SCRIPT_NAME and PATH_INFO from the two.
4. Each request gets a shallow copy of its mount's lifespan state (ASGI lifespan spec:
   "state"), and scope["extensions"]["gateway"]["mount"] names the mount for the access
   log and metrics (gateway/asgi.py `set_mount_label`: a server's additions live under
   "extensions", never as top-level scope keys).
5. A mount's body limit is enforced here: a declared Content-Length over it is answered
   413 before the app runs; a chunked body that grows past it makes `receive` raise
   RequestBodyTooLarge, whose status the connection layer sends.
6. WebSocket scopes are routed the same way (root_path, state, mount label). Only an
   ASGI mount speaks WebSocket: the connection layer asks `serves_websocket` first and
   serves any other upgrade request as plain HTTP, so a WSGI app never sees one.
7. Mounts reach each other by name. A mount's `rules` (fallback, canary: see
   gateway/migration/rules.py) are data; at startup the Router resolves each rule's name
   to its Mount and the rules wrap the mount's app, once: a middleware of its own
   (metrics) is put around the app before the Mount is built. A request is served by
   `mount.handler` with no per-request branching, and a mount without rules is served
   by its app directly. A mount without a prefix is reachable only that way. The router
   calls `mount.front`: the handler, inside the mount's `outer` wrapper if it has one
   (the per-route recorder), which a link never enters. A
   `MountLink` enters a mount with the routing mount's root_path, its own state, and the
   route as its mount label ("/api>fallback:legacy").
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from http import HTTPStatus
from typing import Any, Protocol

from gateway.asgi import (
    ASGIApp,
    Interface,
    Message,
    Receive,
    Scope,
    Send,
    gateway_extension,
    mount_label,
    send_plain,
    set_gateway_extension,
    set_mount_label,
)
from gateway.config.mount_table import label_of
from gateway.errors import RequestBodyTooLarge


class Rule(Protocol):
    """Sends some of a mount's requests to the mount it names (gateway/migration/rules.py)."""

    @property
    def to_mount(self) -> str: ...  # the name of the mount it sends requests to
    @property
    def kind(self) -> str: ...  # "fallback", "canary": how the access log names the hop
    def wrap(self, inner: ASGIApp, link: MountLink) -> ASGIApp: ...


class Mount:
    """One routed app: where it is mounted and the limits it is served with."""

    __slots__ = (
        "app",
        "extension",
        "front",
        "handler",
        "interface",
        "label",
        "max_body_bytes",
        "name",
        "outer",
        "prefix",
        "root",
        "rules",
        "state",
    )

    def __init__(
        self,
        prefix: str,
        app: ASGIApp,
        max_body_bytes: int,
        interface: Interface,
        *,
        name: str = "",
        rules: Sequence[Rule] = (),
        outer: Callable[[ASGIApp], ASGIApp] | None = None,
    ) -> None:
        self.prefix = prefix  # "": reachable only by name, as another mount's target
        self.root = "" if prefix in ("/", "") else prefix  # what root_path grows by
        self.max_body_bytes = max_body_bytes
        self.interface = interface
        self.state: dict[str, Any] = {}  # filled by the mount's lifespan startup
        self.name = name
        self.label = label_of(prefix, name)  # the mount label, lifespan and error messages
        self.extension = gateway_extension(self.label)  # built once, shared read-only
        self.rules = tuple(rules)
        self.app = app  # whole: any middleware of its own is already around it
        self.handler = app  # what serves its requests: the app wrapped in its rules
        # What the router calls: the handler, inside `outer` if given (the per-route
        # recorder, gateway/server/route_metrics.py); a link enters the handler.
        self.outer = outer
        self.front = app if outer is None else outer(app)

    def link(self, links: Sequence[MountLink]) -> None:
        """Wrap the app in its rules, each with its resolved link (the Router does, once,
        at startup: rule "mounts reach each other by name")."""
        handler = self.app
        for rule, link in zip(self.rules, links, strict=True):
            handler = rule.wrap(handler, link)
        self.handler = handler
        self.front = handler if self.outer is None else self.outer(handler)


class MountLink:
    """Enters a mount by name on behalf of another mount's rule (rule "mounts reach each
    other by name")."""

    __slots__ = ("mount", "route", "serves_websocket")

    def __init__(self, mount: Mount, kind: str) -> None:
        self.mount = mount
        self.route = f">{kind}:{mount.name}"
        self.serves_websocket = mount.interface == Interface.ASGI

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope["state"] = self.mount.state.copy()
        set_mount_label(scope, mount_label(scope) + self.route)
        await self.mount.handler(scope, receive, send)


class Router:
    """Routes each HTTP request to the mount with the longest matching prefix."""

    def __init__(self, mounts: Sequence[Mount]) -> None:
        self.mounts = tuple(mounts)
        self._by_prefix = {mount.prefix: mount for mount in mounts if mount.prefix}
        self._link()

    def _link(self) -> None:
        """Resolve each rule's name to its mount and wrap the mount's app (rule "mounts
        reach each other by name"). A MountLink looks its mount's handler up when called,
        so the order does not matter; the config has already refused unknown names and
        loops (gateway/config/links.py, rules "a link names a mount" and "links never
        loop")."""
        by_name = {mount.name: mount for mount in self.mounts if mount.name}
        for mount in self.mounts:
            links = []
            for rule in mount.rules:
                other = by_name.get(rule.to_mount)
                if other is None:
                    raise ValueError(f"mount {mount.label}: no mount is named {rule.to_mount!r}")
                links.append(MountLink(other, rule.kind))
            mount.link(links)

    def match(self, path: str) -> Mount | None:
        """The mount for `path`: try the path, then each shorter segment boundary."""
        candidate = path
        while True:
            mount = self._by_prefix.get(candidate)
            if mount is not None:
                return mount
            if candidate == "/":
                return None
            cut = candidate.rfind("/")
            candidate = candidate[:cut] if cut > 0 else "/"

    def serves_websocket(self, path: str) -> bool:
        """A WebSocket upgrade to `path` goes to an app: its mount is ASGI (rule
        "WebSocket scopes are routed the same way")."""
        mount = self.match(path)
        return mount is not None and mount.interface == Interface.ASGI

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        root_path = scope.get("root_path", "")
        path = scope["path"]
        if root_path and path.startswith(root_path):
            path = path[len(root_path) :]
        mount = self.match(path)
        if mount is None:
            await send_plain(send, HTTPStatus.NOT_FOUND, scope_type=scope["type"])
            return
        scope["root_path"] = root_path + mount.root
        scope["state"] = mount.state.copy()
        set_gateway_extension(scope, mount.extension)
        length = framing(scope["headers"])  # rule "a mount's body limit is enforced here"
        if length is None:
            receive = LimitedReceive(receive, mount.max_body_bytes)
        elif length > mount.max_body_bytes:
            await send_plain(send, HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
            return
        await mount.front(scope, receive, send)


def framing(headers: list[tuple[bytes, bytes]]) -> int | None:
    """The request body's length by its framing fields (RFC 9112 §6.3): the declared
    Content-Length; 0 when neither field was sent (such a request has no body); None
    for chunked (RFC 9112 §7.1), whose length is known only once it has all arrived.
    The session has already refused malformed or conflicting fields (check_request_head)."""
    for name, value in headers:
        if name == b"content-length":
            return int(value)
        if name == b"transfer-encoding":
            return None
    return 0


def declares_over(headers: list[tuple[bytes, bytes]], limit: int) -> bool:
    """The request declares a Content-Length over `limit` (a chunked one cannot)."""
    length = framing(headers)
    return length is not None and length > limit


class LimitedReceive:
    """`receive` that raises RequestBodyTooLarge once the body passes its limit."""

    __slots__ = ("_receive", "_remaining")

    def __init__(self, receive: Receive, limit: int) -> None:
        self._receive = receive
        self._remaining = limit

    async def __call__(self) -> Message:
        message = await self._receive()
        if message["type"] == "http.request":
            self._remaining -= len(message.get("body", b""))
            if self._remaining < 0:
                raise RequestBodyTooLarge("request body over the mount's max_body_bytes")
        return message
