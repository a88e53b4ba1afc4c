"""Readiness before lifespan startup has completed: the probe answers 503.

A worker does not listen until lifespan startup is done in every mount, so a probe that
reaches it at all while it starts would find `Worker.ready` false; this holds the
HealthCheck to that answer with real ASGI calls, no sockets.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from support.servers import write_config

from gateway.asgi import Message
from gateway.process.mounts import load_mounts
from gateway.process.worker import Worker
from gateway.routing.health import HealthCheck

MOUNTS = """
[server]
health_path = "/_gateway"

[[mount]]
prefix = "/"
app = "probe_asgi:app"
interface = "asgi"
"""


async def _unrouted(scope: Any, receive: Any, send: Any) -> None:
    raise AssertionError("a probe must be answered before routing")


def _probe(app: HealthCheck, path: str) -> int:
    sent: list[Message] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": path, "root_path": "", "headers": []}
    asyncio.run(app(scope, receive, send))
    return int(sent[0]["status"])


def test_readiness_is_503_until_startup_has_completed(tmp_path: Path) -> None:
    config = write_config(tmp_path, MOUNTS)
    worker = Worker(config, [], load_mounts(config))
    health = HealthCheck(_unrouted, "/_gateway", lambda: worker.ready)
    assert not worker.ready  # lifespan startup has not run
    assert _probe(health, "/_gateway/ready") == 503
    assert _probe(health, "/_gateway/live") == 200
