"""What an ASGI app finds in its scope (issue 13, point 15): the spec's keys at the top
level, and the gateway's own additions under scope["extensions"]["gateway"].

Third-party suites (Starlette's, daphne's) compare whole scopes with what the ASGI spec
defines; a server-specific top-level key such as the old `gateway.mount` broke them.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

import httpx
import pytest
from support.deadlines import CLIENT_TIMEOUT_S, wait_until
from support.servers import Server
from support.ws_clients import DEADLINE_S, ws_connect

Serve = Callable[[str], Server]

# The top-level keys of the ASGI HTTP and WebSocket scopes (django/asgiref specs/www.rst,
# "HTTP Connection Scope", "WebSocket Connection Scope"), and lifespan's `state`.
HTTP_SCOPE_KEYS = frozenset(
    {
        "type",
        "asgi",
        "http_version",
        "method",
        "scheme",
        "path",
        "raw_path",
        "query_string",
        "root_path",
        "headers",
        "client",
        "server",
        "state",
        "extensions",
    }
)
WEBSOCKET_SCOPE_KEYS = (HTTP_SCOPE_KEYS - {"method"}) | {"subprotocols"}

MOUNTS = """
[server]
graceful_timeout = 5

[[mount]]
prefix = "/asgi"
app = "probe_asgi:app"
interface = "asgi"

[[mount]]
prefix = "/ws"
app = "ws_apps:app"
interface = "asgi"
"""


@pytest.fixture
def server(serve: Serve) -> Server:
    return serve(MOUNTS)


def test_an_http_scope_has_only_the_spec_keys_and_names_its_mount_under_extensions(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="gateway.access"):
        response = httpx.get(server.url + "/asgi/scope", timeout=CLIENT_TIMEOUT_S)
        scope = response.json()
        assert set(scope) <= HTTP_SCOPE_KEYS, set(scope) - HTTP_SCOPE_KEYS
        assert scope["extensions"]["gateway"] == {"mount": "/asgi"}
        # The access log still names the mount it read from there. The line is written
        # when the request's cycle ends, in the server's thread, which may come after
        # the client has read the response: wait for it.
        wait_until(
            lambda: any(
                "/asgi/scope" in r.message and "mount=/asgi" in r.message for r in caplog.records
            )
        )


def test_a_websocket_scope_has_only_the_spec_keys_and_keeps_its_extensions(
    server: Server,
) -> None:
    with ws_connect(server, "/ws/scope") as ws:
        scope = json.loads(ws.recv(timeout=DEADLINE_S))
    assert set(scope) <= WEBSOCKET_SCOPE_KEYS, set(scope) - WEBSOCKET_SCOPE_KEYS
    assert scope["extensions"]["gateway"] == {"mount": "/ws"}
    assert "websocket.http.response" in scope["extensions"]
