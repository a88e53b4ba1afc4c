"""ASGI 3 type names used across the package (the ASGI spec, django/asgiref specs/).

Messages and scopes are plain dicts on the hot path: typed dicts would cost nothing at run
time but make every producer spell out optional keys, so the names below stay loose and
the spec is the reference for their keys.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

ASGI_VERSION = "3.0"
# 2.4: `send` raises an OSError subclass once the client has gone (gateway.errors).
HTTP_SPEC_VERSION = "2.4"
LIFESPAN_SPEC_VERSION = "2.0"
