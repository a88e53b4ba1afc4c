"""Health endpoints for orchestrators, answered by the gateway before routing.

With `health_path = "/_gateway"`:
- `GET /_gateway/live`: 200 whenever the worker's event loop runs this code at all; a
  stuck loop answers nothing, which is what a liveness probe must notice.
- `GET /_gateway/ready`: 200 once lifespan startup has completed in every mount and the
  worker is not draining; 503 otherwise. On SIGTERM it turns 503 before the drain, so a
  load balancer stops sending traffic first (`shutdown_delay` widens that window).

Rules:
1. Only these two exact paths are taken, for GET and HEAD (others get 405); everything
   else, including other paths under the health prefix, goes to the router unchanged.
2. Layer 1: no event loop; readiness is a callable the worker supplies.
"""

from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus

from gateway.asgi import ASGIApp, Receive, Scope, Send
from gateway.router import send_plain

PROBE_METHODS = frozenset({"GET", "HEAD"})


class HealthCheck:
    """An ASGI app that answers the two probe paths and passes the rest to `app`."""

    def __init__(self, app: ASGIApp, path: str, is_ready: Callable[[], bool]) -> None:
        self.app = app
        self.live_path = path + "/live"
        self.ready_path = path + "/ready"
        self._is_ready = is_ready

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path = scope["path"]
            if path == self.live_path:
                await self._answer(scope, send, HTTPStatus.OK)
                return
            if path == self.ready_path:
                ready = self._is_ready()
                status = HTTPStatus.OK if ready else HTTPStatus.SERVICE_UNAVAILABLE
                await self._answer(scope, send, status)
                return
        await self.app(scope, receive, send)

    async def _answer(self, scope: Scope, send: Send, status: HTTPStatus) -> None:
        scope["gateway.mount"] = "health"  # the access log names who answered
        if scope["method"] not in PROBE_METHODS:
            status = HTTPStatus.METHOD_NOT_ALLOWED
        await send_plain(send, status)
