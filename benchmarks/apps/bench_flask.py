"""Flask app for the `flask-json` and `mixed` cases: GET /json returns a small dict."""

from __future__ import annotations

from flask import Flask

app = Flask(__name__)

PAYLOAD = {"message": "hello", "items": [1, 2, 3]}


@app.get("/json")
def json_view() -> dict[str, object]:
    return PAYLOAD
