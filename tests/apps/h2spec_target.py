"""The app h2spec (tests/system/test_h2spec.py) talks to: every path answers 200 after
reading the whole request body, and only after a short wait.

The wait is what h2spec's stream-concurrency case needs (RFC 9113 §5.1.2): it opens as
many streams as SETTINGS_MAX_CONCURRENT_STREAMS allows and expects the next one to be
refused, so the first ones must still be open when it arrives.
"""

from __future__ import annotations

import asyncio
from typing import Any

# Long enough that h2spec's streams are all open at once on a busy machine, short
# enough against h2spec's own 2 s timeout per case.
ANSWER_DELAY_S = 0.5


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    length = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return  # the client went away
        length += len(message.get("body", b""))
        if not message.get("more_body", False):
            break
    await asyncio.sleep(ANSWER_DELAY_S)
    body = b"read %d bytes\n" % length
    headers = [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})
