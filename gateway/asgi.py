"""ASGI 3 type names used across the package (the ASGI spec, django/asgiref specs/), and
the plain-text answer the gateway gives itself, and the interface a mount's app is called by.

Messages and scopes are plain dicts on the hot path: typed dicts would cost nothing at run
time but make every producer spell out optional keys, so the names below stay loose and
the spec is the reference for their keys.

Every answer the gateway gives in place of an app (a path no mount serves, a body over
its limit, a probe, a static file's 404, an error reply from the HTTP session) is built
by `plain_reply`, here in layer 0 so that every layer that answers can reach it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from enum import StrEnum
from http import HTTPStatus
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class Interface(StrEnum):
    """How a mount's app is called. A mount declares ASGI, WSGI or AUTO (detect it from
    the callable); once loaded it is ASGI, WSGI or STATIC (files, no code). Here in layer
    0 because the config (which reads the declaration) and adapters/ (which resolves it)
    may not import each other. A StrEnum: each member is its TOML and CLI text."""

    ASGI = "asgi"
    WSGI = "wsgi"
    AUTO = "auto"
    STATIC = "static"


# What a [[mount]] table's `interface` may say, in the order the messages list them.
DECLARED_INTERFACES = (Interface.ASGI, Interface.WSGI, Interface.AUTO)

ASGI_VERSION = "3.0"
# 2.4: `send` raises an OSError subclass once the client has gone (gateway.errors).
HTTP_SPEC_VERSION = "2.4"
LIFESPAN_SPEC_VERSION = "2.0"

# The key of the gateway's own additions to a scope. The ASGI spec ("Extensions") keeps a
# server's additions under scope["extensions"], beside the TLS extension and
# `websocket.http.response`: apps and test suites that compare scopes with the spec's
# keys see nothing else at the top level.
GATEWAY_EXTENSION = "gateway"
NO_MOUNT = "-"  # the access log's mount for a request no mount served (a 404)


def set_mount_label(scope: Scope, label: str) -> None:
    """Name the mount (or route, "/api>fallback:legacy") serving `scope`, for the access
    log and metrics, as scope["extensions"]["gateway"]["mount"]."""
    set_gateway_extension(scope, gateway_extension(label))


def gateway_extension(label: str) -> dict[str, str]:
    """The gateway's extension naming `label`; a mount builds its own once and shares it
    with every request it serves, read-only (the router's hot path)."""
    return {"mount": label}


def set_gateway_extension(scope: Scope, ours: dict[str, str]) -> None:
    """Put `ours` in scope["extensions"]["gateway"].

    Copy on write: a fallback or shadow copy of a scope is shallow and shares the
    original's `extensions`, so its own route must not change what the original logs.
    """
    extensions = scope.get("extensions")
    if extensions is None:
        scope["extensions"] = {GATEWAY_EXTENSION: ours}
    else:
        scope["extensions"] = {**extensions, GATEWAY_EXTENSION: ours}


def mount_label(scope: Scope) -> str:
    """The label `set_mount_label` gave `scope`, or NO_MOUNT."""
    ours = (scope.get("extensions") or {}).get(GATEWAY_EXTENSION)
    return NO_MOUNT if ours is None else str(ours.get("mount", NO_MOUNT))


Field = tuple[bytes, bytes]
PLAIN_TEXT = b"text/plain; charset=utf-8"


def plain_reply(
    status: int, fields: Iterable[Field] = (), *, head_request: bool = False
) -> tuple[list[Field], bytes]:
    """The fields and body of an answer the gateway gives itself: the status's reason
    phrase as plain text, after `fields`. An error reply to a HEAD request has no body
    and says so (the HTTP session's; an ASGI answer leaves HEAD to the session)."""
    body = b"" if head_request else _reason_phrase(status) + b"\n"
    length = (b"content-length", b"%d" % len(body))
    return [*fields, (b"content-type", PLAIN_TEXT), length], body


async def send_plain(
    send: Send, status: int, fields: Iterable[Field] = (), scope_type: str = "http"
) -> None:
    """`plain_reply` as ASGI messages. A WebSocket scope gets it through the
    `websocket.http.response` extension, which the gateway declares."""
    headers, body = plain_reply(status, fields)
    kind = "websocket.http.response" if scope_type == "websocket" else "http.response"
    await send({"type": f"{kind}.start", "status": status, "headers": headers})
    await send({"type": f"{kind}.body", "body": body})


def _reason_phrase(status: int) -> bytes:
    try:
        return HTTPStatus(status).phrase.encode("ascii")
    except ValueError:  # a status HTTPStatus does not name: still a body that says why
        return b"Error"
