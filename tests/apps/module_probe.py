"""A raw ASGI app that says whether a module is loaded in the worker that answers.

GET /?NAME answers "NAME loaded in PID" or "NAME not loaded in PID": whether NAME is in
that worker's sys.modules. The system tests use it to see what a worker has imported
(tests/system/test_http2_lazy_import.py: HTTP/1.1 alone never loads h2).
"""

from __future__ import annotations

import os
import sys
from typing import Any


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return  # no lifespan: the server carries on without one
    name = scope["query_string"].decode()
    loaded = "loaded" if name in sys.modules else "not loaded"
    body = f"{name} {loaded} in {os.getpid()}".encode()
    headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})
