"""The admin listener's app (issue 17, points 1 and 3): the migration page, the metrics
and the report as JSON, served on a listener of its own (`admin_bind`), never on the
apps' port. The worker serves it (gateway/process/worker.py) with the same connection
machinery as the apps, behind a WorkerShared of its own.

Rules:
1. Three paths, GET and HEAD only: `/` the migration page (gateway/migration/page.py),
   `/metrics` the exposition (the same answer as `metrics_path`,
   gateway/server/mount_metrics.py `send_exposition`), `/status.json` the report. Any
   other path is a 404; another method on one of them a 405 with `allow`.
2. With `admin_token` set, a request without `authorization: Bearer TOKEN` gets a 401
   with `www-authenticate: Bearer realm="gateway"` (RFC 6750 §3) before its path is
   looked at, so that nothing tells a stranger which paths exist. The token is compared
   in constant time (hmac.compare_digest).
3. Nothing here reaches the apps: no router, no health endpoints, no metrics
   middleware. Its data come from the worker: the WorkerMetrics, and `report_source`, a
   coroutine function that returns the report as a JSON-ready dict (gateway/migration/
   report.py's shape, spec "The report").
4. Every answer carries `cache-control: no-store`: it describes this moment.
5. Only HTTP: the worker's admin WorkerShared takes no WebSocket, and the admin app runs
   no lifespan; any other scope is left unanswered.
6. Serving (`serve_admin`): the same connection machinery as the apps, behind a
   WorkerShared of its own: plain HTTP even when the apps' listeners have TLS (bind it
   to loopback or a private address), HTTP/2 by prior knowledge as `http2` allows, and
   its requests do not count towards max_requests.
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import json
import logging
import socket
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any

from gateway.asgi import Receive, Scope, Send, send_plain, set_mount_label
from gateway.config.server_table import ServerConfig
from gateway.migration.page import render_page
from gateway.routing.health import ALLOW, NO_STORE
from gateway.server.connection import HTTPConnection
from gateway.server.mount_metrics import WorkerMetrics, send_exposition
from gateway.server.shared import WorkerShared

log = logging.getLogger("gateway.server")

ReportSource = Callable[[], Awaitable[dict[str, Any]]]
# What the access log shows as the mount that answered an admin request.
ADMIN_MOUNT = "admin"
PAGE_PATH, METRICS_PATH, REPORT_PATH = "/", "/metrics", "/status.json"
CHALLENGE = (b"www-authenticate", b'Bearer realm="gateway"')


class AdminApp:
    """The ASGI app of the admin listener (module rules)."""

    def __init__(self, metrics: WorkerMetrics, report_source: ReportSource, token: str) -> None:
        self.metrics = metrics
        self.report_source = report_source
        self._expected = f"Bearer {token}".encode("ascii") if token else b""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # rule "only HTTP"
            return
        set_mount_label(scope, ADMIN_MOUNT)
        if not self._authorized(scope):
            await send_plain(send, HTTPStatus.UNAUTHORIZED, [NO_STORE, CHALLENGE])
            return
        path = scope["path"]
        if path not in (PAGE_PATH, METRICS_PATH, REPORT_PATH):
            await send_plain(send, HTTPStatus.NOT_FOUND, [NO_STORE])
        elif scope["method"] not in ("GET", "HEAD"):
            await send_plain(send, HTTPStatus.METHOD_NOT_ALLOWED, [NO_STORE, (b"allow", ALLOW)])
        elif path == METRICS_PATH:
            await send_exposition(self.metrics, send)
        elif path == REPORT_PATH:
            body = json.dumps(await self.report_source(), indent=1).encode("utf-8")
            await _send_ok(send, b"application/json", body)
        else:
            page = render_page(await self.report_source()).encode("utf-8")
            await _send_ok(send, b"text/html; charset=utf-8", page)

    def _authorized(self, scope: Scope) -> bool:
        """Rule "with `admin_token` set": the one authorization field, compared in
        constant time."""
        if not self._expected:
            return True
        given = [value for name, value in scope["headers"] if name == b"authorization"]
        return len(given) == 1 and hmac.compare_digest(given[0], self._expected)


async def serve_admin(
    sock: socket.socket, metrics: WorkerMetrics, config: ServerConfig
) -> tuple[asyncio.Server, WorkerShared]:
    """Serve the admin app on `sock` with the connections' machinery, behind a
    WorkerShared of its own (rule "serving"). Its idle sweep runs until the caller (the
    worker, which drains it) stops it."""
    url = _url(sock)
    app = AdminApp(metrics, functools.partial(metrics.report_json, url), config.admin_token)
    shared = WorkerShared(app, config, serves_websocket=lambda path: False)
    shared.start_idle_sweep()
    loop = asyncio.get_running_loop()
    # asyncio calls listen() again with its own default backlog of 100: pass ours.
    server = await loop.create_server(
        lambda: HTTPConnection(shared), sock=sock, backlog=config.backlog
    )
    log.info("admin listener on %s", url)
    return server, shared


def _url(sock: socket.socket) -> str:
    address = sock.getsockname()
    if sock.family == socket.AF_INET6:
        return f"http://[{address[0]}]:{address[1]}/"
    if sock.family == socket.AF_INET:
        return f"http://{address[0]}:{address[1]}/"
    return f"unix:{address}"


async def _send_ok(send: Send, content_type: bytes, body: bytes) -> None:
    headers = [
        (b"content-type", content_type),
        (b"content-length", str(len(body)).encode("ascii")),
        NO_STORE,
    ]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})
