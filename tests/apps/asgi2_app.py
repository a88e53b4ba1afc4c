"""An ASGI 2 ("double callable") app: the server must accept it through asgiref."""

from typing import Any


class LegacyASGI:
    def __init__(self, scope: dict[str, Any]) -> None:
        self.scope = scope

    async def __call__(self, receive: Any, send: Any) -> None:
        body = b"asgi2 at " + self.scope["root_path"].encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})


app = LegacyASGI
