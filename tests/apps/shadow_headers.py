"""A primary and a shadow that record the header fields of the requests they get
(issue 13, point 12), for tests/integration/test_shadow_headers_served.py. The shadow,
mounted at a prefix of its own too, answers `.../seen` with both records."""

from __future__ import annotations

import json
from typing import Any

Fields = list[list[str]]
# Per app, the header fields of each request, in the order they came.
seen: dict[str, list[Fields]] = {"primary": [], "shadow": []}


def _fields(scope: dict[str, Any]) -> Fields:
    return [[name.decode(), value.decode()] for name, value in scope["headers"]]


async def _answer(send: Any, body: bytes) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


async def primary(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "http":
        seen["primary"].append(_fields(scope))
        await _answer(send, b"ok")


async def shadow(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    if scope["path"].endswith("/seen"):
        await _answer(send, json.dumps(seen).encode())
        return
    seen["shadow"].append(_fields(scope))
    await _answer(send, b"ok")
