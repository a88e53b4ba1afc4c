"""The "legacy" side of the migration tests: a Flask app written for its prefix (it
sees SCRIPT_NAME = the routing mount's prefix), and, for WebSockets, which a WSGI app
cannot serve, a small Starlette app standing in for the legacy ASGI side."""

from __future__ import annotations

from flask import Flask, jsonify, request, url_for
from flask.typing import ResponseReturnValue
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket

app = Flask(__name__)


def _answer(**extra: object) -> ResponseReturnValue:
    return jsonify(app="legacy", script_name=request.environ["SCRIPT_NAME"], **extra)


@app.get("/users/<int:user_id>")
def user(user_id: int) -> ResponseReturnValue:
    return _answer(url=url_for("user", user_id=user_id))


@app.get("/orders/<int:order_id>")
def order(order_id: int) -> ResponseReturnValue:
    return _answer(url=url_for("order", order_id=order_id))


@app.post("/form")
@app.post("/upload")
def upload() -> ResponseReturnValue:
    return _answer(length=len(request.get_data()))


@app.get("/stream")
@app.get("/stream404")
@app.get("/item")
def plain() -> ResponseReturnValue:
    return _answer()


async def chat(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text(f"legacy {websocket.scope['root_path']}")
    await websocket.close()


ws_app = Starlette(routes=[WebSocketRoute("/chat", chat)])
