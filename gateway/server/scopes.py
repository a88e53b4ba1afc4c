"""The ASGI scopes a connection makes for its streams: `http` and `websocket`, and what
the connection adds to each of them.

Rules:
1. One builder per scope type, whatever the protocol below: an HTTP/1.1 connection
   calls them once per request, an HTTP/2 connection will once per stream. Each scope has
   the keys the ASGI spec lists and no others of ours.
2. The path is whole, root_path starts empty: the router adds a mount's prefix to
   root_path and leaves path alone (the ASGI spec: path includes root_path).
3. What a connection adds is settled once, at connection_made (ConnectionFields): the
   TLS extension, a trusted proxy's fields, the server's `root_path`. A connection that
   adds nothing has no ConnectionFields, and its requests pay one `is None` check.
4. `root_path` (uvicorn's --root-path), for a proxy that strips a prefix: every scope
   starts with it as its root_path, and its path and raw_path get it back in front; the
   router matches below it.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from gateway.asgi import ASGI_VERSION, HTTP_SPEC_VERSION
from gateway.http.events import RequestHead
from gateway.http.forwarded import ProxyTrust, apply_forwarded
from gateway.http.session import PathAndQuery
from gateway.http.ws_session import Handshake

# The scope claims the version of the keys we send (django/asgiref specs/www.rst, "Spec
# Versions"): 2.3 is `reason` on websocket.close, 2.4 `send` raising an OSError once the
# connection is closed, and 2.5 `reason` on websocket.disconnect, which we send
# (gateway/server/websocket.py, rule "`websocket.disconnect` comes once").
WEBSOCKET_SPEC_VERSION = "2.5"

Address = tuple[str, int | None] | None


def http_scope(
    head: RequestHead, target: PathAndQuery, client: Address, server: Address, tls: bool
) -> dict[str, Any]:
    """The `http` scope of one request (rule "one builder per scope type")."""
    return {
        "type": "http",
        "asgi": {"version": ASGI_VERSION, "spec_version": HTTP_SPEC_VERSION},
        "http_version": head.http_version,
        "method": head.method.decode("ascii"),
        "scheme": "https" if tls else "http",
        "path": target.path,
        "raw_path": target.raw_path,
        "query_string": target.query_string,
        "root_path": "",
        "headers": head.headers,
        "client": client,
        "server": server,
    }


def websocket_scope(
    head: RequestHead,
    target: PathAndQuery,
    handshake: Handshake,
    client: Address,
    server: Address,
    tls: bool,
) -> dict[str, Any]:
    """The `websocket` scope; path, root_path and the rest as for HTTP."""
    return {
        "type": "websocket",
        "asgi": {"version": ASGI_VERSION, "spec_version": WEBSOCKET_SPEC_VERSION},
        "http_version": head.http_version,
        "scheme": "wss" if tls else "ws",
        "path": target.path,
        "raw_path": target.raw_path,
        "query_string": target.query_string,
        "root_path": "",
        "headers": head.headers,
        "client": client,
        "server": server,
        "subprotocols": list(handshake.subprotocols),
        "extensions": {"websocket.http.response": {}},
    }


class ConnectionFields:
    """What one connection adds to every scope it makes (rule "what a connection adds is
    settled once")."""

    __slots__ = ("proxy", "root_path", "tls")

    def __init__(self, tls: dict[str, Any] | None, proxy: ProxyTrust | None, root_path: str):
        self.tls = tls
        self.proxy = proxy
        self.root_path = root_path

    def add_to(self, scope: dict[str, Any]) -> None:
        if self.tls is not None:
            scope.setdefault("extensions", {})["tls"] = self.tls
        if self.proxy is not None:
            apply_forwarded(scope, self.proxy)
        if self.root_path:
            apply_root_path(scope, self.root_path)


def connection_fields(
    tls: dict[str, Any] | None, proxy: ProxyTrust | None, root_path: str
) -> ConnectionFields | None:
    """The connection's additions, or None when it adds nothing (the common case)."""
    if tls is None and proxy is None and not root_path:
        return None
    return ConnectionFields(tls, proxy, root_path)


def apply_root_path(scope: dict[str, Any], root_path: str) -> None:
    """The proxy took `root_path` off the front of the path; put it back, and say so in
    root_path, so that the apps build their URLs with it (rule "`root_path`"; ASGI spec,
    "HTTP" connection scope: root_path, and path including it)."""
    scope["root_path"] = root_path
    scope["path"] = root_path + scope["path"]
    scope["raw_path"] = quote(root_path).encode("ascii") + scope["raw_path"]


def address(info: object) -> Address:
    """ASGI `client`/`server` from a socket address: [host, port], or [path, None]."""
    if isinstance(info, tuple) and len(info) >= 2:
        return (str(info[0]), int(info[1]))
    if isinstance(info, str) and info:
        return (info, None)
    return None
