"""A raw WSGI app for server behaviour: environ, uploads, slow views, errors."""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.validate import validator

StartResponse = Callable[..., Any]
SHOWN_KEYS = (
    "REQUEST_METHOD",
    "SCRIPT_NAME",
    "PATH_INFO",
    "QUERY_STRING",
    "RAW_URI",
    "REQUEST_URI",
    "SERVER_PROTOCOL",
    "CONTENT_LENGTH",
    "CONTENT_TYPE",
    "HTTP_UPGRADE",
    "HTTP_CONNECTION",
    "HTTP_HOST",
    "REMOTE_ADDR",
    "SERVER_NAME",
    "SERVER_PORT",
    "wsgi.url_scheme",
    "wsgi.input_terminated",
    "wsgi.multithread",
)


def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    route = environ["PATH_INFO"]
    if route.startswith("/environ"):
        shown = {key: environ.get(key) for key in SHOWN_KEYS}
        return _json(start_response, shown)
    if route == "/digest":
        body = b"".join(iter(lambda: environ["wsgi.input"].read(65536), b""))
        return _json(
            start_response, {"length": len(body), "sha256": hashlib.sha256(body).hexdigest()}
        )
    if route == "/sleep":
        _note("wsgi-sleep-start")
        time.sleep(float(environ["QUERY_STRING"] or "1"))
        return _json(start_response, {"slept": True})
    if route == "/thread":
        time.sleep(float(environ["QUERY_STRING"] or "0"))
        return _json(start_response, {"thread": threading.current_thread().name})
    if route == "/raise":
        raise RuntimeError("secret wsgi detail")
    if route == "/stream":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return (b"line %d\n" % i for i in range(5))
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"probe_wsgi: no such route"]


def _note(line: str) -> None:
    if log_path := os.environ.get("PROBE_LIFESPAN_LOG"):
        with open(log_path, "a") as log:
            log.write(line + "\n")


def _json(start_response: StartResponse, value: object) -> list[bytes]:
    body = json.dumps(value).encode()
    start_response(
        "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    )
    return [body]


validated_app = validator(app)
