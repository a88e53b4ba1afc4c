"""Health endpoints for orchestrators, answered by the gateway before routing.

With `health_path = "/_gateway"`:
- `GET /_gateway/live`: 200 whenever the worker's event loop runs this code at all; a
  stuck loop answers nothing, which is what a liveness probe must notice.
- `GET /_gateway/ready`: 200 once lifespan startup has completed in every mount and the
  worker is not draining; 503 otherwise. On SIGTERM it turns 503 before the drain, so a
  load balancer stops sending traffic first (`shutdown_delay` widens that window).

Rules:
1. Only these two exact paths are taken, for GET and HEAD; any other method gets 405
   with `Allow` (RFC 9110 §15.5.6). Everything else, including other paths under the
   health prefix and WebSocket requests, goes to the router unchanged.
2. A probe's answer describes this moment: it is marked `no-store`, so no cache between
   the orchestrator and us replays an old "ready".
3. Layer 1: no event loop; readiness is a callable the worker supplies.
"""

from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus

from gateway.asgi import ASGIApp, Receive, Scope, Send, send_plain, set_mount_label

PROBE_METHODS = frozenset({"GET", "HEAD"})
ALLOW = b"GET, HEAD"
NO_STORE = (b"cache-control", b"no-store")  # rule "a probe's answer describes this moment"
# What the access log shows as the mount that answered a probe.
HEALTH_MOUNT = "health"


class HealthCheck:
    """An ASGI app that answers the two probe paths and passes the rest to `app`."""

    def __init__(self, app: ASGIApp, path: str, is_ready: Callable[[], bool]) -> None:
        self.app = app
        self.live_path = path + "/live"
        self.ready_path = path + "/ready"
        self._is_ready = is_ready

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        status = self._probe_status(scope)
        if status is None:
            await self.app(scope, receive, send)
            return
        set_mount_label(scope, HEALTH_MOUNT)
        if scope["method"] not in PROBE_METHODS:
            await send_plain(send, HTTPStatus.METHOD_NOT_ALLOWED, [NO_STORE, (b"allow", ALLOW)])
        else:
            await send_plain(send, status, [NO_STORE])

    def _probe_status(self, scope: Scope) -> HTTPStatus | None:
        """The probe's answer for this request, or None when it is not a probe."""
        if scope["type"] != "http":
            return None
        path = scope["path"][len(scope["root_path"]) :]  # below --root-path, if any
        if path == self.live_path:
            return HTTPStatus.OK
        if path == self.ready_path:
            return HTTPStatus.OK if self._is_ready() else HTTPStatus.SERVICE_UNAVAILABLE
        return None
