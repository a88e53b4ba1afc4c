"""A long WSGI view that stops once `gateway.client_disconnected()` turns true, and
reports what it saw at /state (tests/integration/test_client_disconnected.py)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

# The longest a view works unless its query string says otherwise (seconds): far longer
# than a test takes to hang up.
LONG_VIEW_S = 10.0
# How often the view looks at the callable: the "work" between two looks.
WORK_STEP_S = 0.01
state: dict[str, Any] = {"looping": 0, "saw_disconnect": 0, "closed": 0, "body": b""}


class Result:
    """A response whose close() the server must call, even for a client that left."""

    def __init__(self, body: bytes) -> None:
        self.body = body

    def __iter__(self) -> Iterator[bytes]:
        yield self.body

    def close(self) -> None:
        state["closed"] += 1


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
    if environ["PATH_INFO"] == "/state":
        shown = {key: value for key, value in state.items() if key != "body"}
        shown["body"] = state["body"].decode("latin-1")
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps(shown).encode()]
    state["body"] = environ["wsgi.input"].read()
    gone = environ["gateway.client_disconnected"]
    state["looping"] += 1
    end = time.monotonic() + float(environ["QUERY_STRING"] or LONG_VIEW_S)
    while time.monotonic() < end:
        if gone():
            state["saw_disconnect"] += 1
            break
        time.sleep(WORK_STEP_S)  # a step of the view's work
    start_response("200 OK", [("Content-Type", "text/plain")])
    return Result(b"done")
