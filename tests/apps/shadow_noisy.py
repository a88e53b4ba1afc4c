"""The apps of the denoise tests (issue 17, point 4): a legacy Flask app (`legacy`) and
the new FastAPI app (`new`) whose JSON answers carry a timestamp, a random id (at the
top and in each item of a list) and a random request id header, next to one real
difference: the new app's total is one cent off for odd order numbers. `legacy` also
counts the POSTs it served, so a test can see that a write reached it once."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from flask import Flask, jsonify, request
from flask.typing import ResponseReturnValue

legacy = Flask(__name__)
new = FastAPI()

_posts: dict[str, int] = {}  # by key: POST /orders served by legacy
_lock = threading.Lock()  # the WSGI pool's threads share _posts


def order(number: int, total: int) -> dict[str, Any]:
    """An order as both apps answer it, with its noise drawn anew."""
    return {
        "order": number,
        "generated_at": datetime.now(UTC).isoformat(timespec="microseconds"),
        "trace": uuid.uuid4().hex,
        "total_cents": total,
        "items": [{"sku": f"sku-{n}", "line_id": uuid.uuid4().hex} for n in range(3)],
    }


@legacy.get("/orders/<int:number>")
def legacy_order(number: int) -> ResponseReturnValue:
    response = jsonify(order(number, 1000 + number))
    response.headers["X-Request-Id"] = uuid.uuid4().hex
    return response


@legacy.post("/orders")
def legacy_post() -> ResponseReturnValue:
    key = request.args["key"]
    with _lock:
        _posts[key] = _posts.get(key, 0) + 1
    return jsonify(created=True)


@legacy.get("/posts")
def legacy_posts() -> ResponseReturnValue:
    with _lock:
        return jsonify(count=_posts.get(request.args["key"], 0))


@new.get("/orders/{number}")
async def new_order(number: int) -> JSONResponse:
    total = 1000 + number + (number % 2)  # the real difference: odd orders are a cent off
    return JSONResponse(order(number, total), headers={"x-request-id": uuid.uuid4().hex})


@new.post("/orders")
async def new_post(key: str) -> dict[str, bool]:
    return {"created": True}
