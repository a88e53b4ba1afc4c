"""The primary of the shadow tests: a Flask app, the code being replaced. Its answers
match tests/apps/shadow_new.py's except where a test wants a mismatch."""

from __future__ import annotations

import time

from flask import Flask, jsonify, request
from flask.typing import ResponseReturnValue

app = Flask(__name__)


@app.get("/items/<int:item_id>")
def item(item_id: int) -> ResponseReturnValue:
    # `served_at` differs on every call: the tests list it in shadow_ignore_json_keys.
    return jsonify(id=item_id, name=f"item {item_id}", served_at=time.time())


@app.get("/price/<int:item_id>")
def price(item_id: int) -> ResponseReturnValue:
    return jsonify(id=item_id, price=10)


@app.get("/page")
def page() -> ResponseReturnValue:
    return "<p>hello</p>"  # text/html


@app.get("/slow")
@app.get("/boom")
def plain() -> ResponseReturnValue:
    return jsonify(ok=True)


@app.post("/echo")
def echo() -> ResponseReturnValue:
    return jsonify(length=len(request.get_data()))
