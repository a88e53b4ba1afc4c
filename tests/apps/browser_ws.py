"""A page whose script opens a WebSocket to its own origin, for a real browser.

GET / is the page. Its script connects to /echo, sends one message, and reports what
came back with GET /report?echo=...; the WebSocket route notes each connection's
`http_version`. The test reads `seen` and `reports` (module state: the server runs in
the test's process), written on the server's loop thread.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

Scope = dict[str, Any]

MESSAGE = "hello from the browser"
PAGE = b"""<!doctype html>
<html><head><title>waiting</title></head><body>
<script>
const ws = new WebSocket(`wss://${location.host}/echo`);
ws.onopen = () => ws.send("%s");
ws.onmessage = (event) => {
  document.title = "echo";
  fetch("/report?echo=" + encodeURIComponent(event.data)).finally(() => ws.close(1000));
};
ws.onerror = () => fetch("/report?error=1");
</script></body></html>
""" % MESSAGE.encode()

seen: list[str] = []  # each WebSocket's scope["http_version"]
reports: list[dict[str, list[str]]] = []  # the page's reports, as parsed query strings


async def app(scope: Scope, receive: Any, send: Any) -> None:
    if scope["type"] == "websocket":
        await echo(scope, receive, send)
    elif scope["type"] == "http":
        await page_or_report(scope, send)
    elif scope["type"] == "lifespan":
        while True:
            kind = (await receive())["type"]
            await send({"type": kind + ".complete"})
            if kind == "lifespan.shutdown":
                return


async def echo(scope: Scope, receive: Any, send: Any) -> None:
    seen.append(scope["http_version"])
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    while (message := await receive())["type"] == "websocket.receive":
        await send({"type": "websocket.send", "text": message.get("text") or ""})


async def page_or_report(scope: Scope, send: Any) -> None:
    body = PAGE if scope["path"] == "/" else b""
    if scope["path"] == "/report":
        reports.append(parse_qs(scope["query_string"].decode()))
    headers = [(b"content-type", b"text/html; charset=utf-8")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})
