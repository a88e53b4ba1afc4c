"""Plain WSGI apps for the benchmark cases: no framework, the least a WSGI app can do.

`hello` answers "Hello, world!", `big` answers 64 KiB, `echo` sends the request body back
(read by CONTENT_LENGTH, as every WSGI server passes it for the benchmark's POST).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

StartResponse = Callable[..., Any]

HELLO = b"Hello, world!"
BIG = b"x" * 65536  # 64 KiB
# Guard for the echo app: the benchmark posts 16 KiB; anything far larger is a mistake.
MAX_ECHO_BYTES = 1 << 20


def _respond(start_response: StartResponse, body: bytes, content_type: str) -> list[bytes]:
    headers = [("Content-Type", content_type), ("Content-Length", str(len(body)))]
    start_response("200 OK", headers)
    return [body]


def hello(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    return _respond(start_response, HELLO, "text/plain")


def big(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    return _respond(start_response, BIG, "text/plain")


def echo(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    length = min(int(environ.get("CONTENT_LENGTH") or 0), MAX_ECHO_BYTES)
    body = environ["wsgi.input"].read(length) if length else b""
    return _respond(start_response, body, "application/octet-stream")
