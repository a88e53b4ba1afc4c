"""`gateway.client_disconnected` in the WSGI environ, with real clients that hang up.

A long view loops until the callable says the client has gone; the client closes its
socket mid-view. The view must see it, the result's close() must still be called, and
the worker serves the next request.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from support.deadlines import wait_until
from support.servers import Server

MOUNTS = """
[server]

[[mount]]
prefix = "/"
app = "long_views:app"
interface = "wsgi"
threads = 4
"""
# The view's own bound is 10 s (long_views.LONG_VIEW_S): one that did not see the
# hang-up is still looping when this deadline passes.
SEEN_DEADLINE_S = 5.0
# A view that runs to its end, for the client that stays.
SHORT_VIEW_S = 0.3


@pytest.fixture
def server(serve: Callable[[str], Server]) -> Server:
    return serve(MOUNTS)


def state(server: Server) -> dict[str, Any]:
    result: dict[str, Any] = httpx.get(server.url + "/state").json()
    return result


REQUESTS = {
    # A body read before the call reaches the pool: the watch may start at once.
    "get": [b"GET /long HTTP/1.1\r\nHost: t\r\n\r\n"],
    # A body that streams in through wsgi.input (the client waits for 100 Continue):
    # the watch starts once the view has read it all.
    "post-streamed": [
        b"POST /long HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n",
        b"hello",
    ],
}


@pytest.mark.parametrize("kind", REQUESTS)
def test_long_view_sees_the_client_leave_and_close_is_called(
    server: Server, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="gateway.error")
    before = state(server)
    head, *body = REQUESTS[kind]
    with server.connect() as sock:
        sock.sendall(head)
        if body:
            assert sock.recv(1024).startswith(b"HTTP/1.1 100 "), "no 100 Continue"
            sock.sendall(b"".join(body))
        wait_until(lambda: state(server)["looping"] > before["looping"], SEEN_DEADLINE_S)
        assert state(server)["saw_disconnect"] == before["saw_disconnect"]  # still here
    # The socket is closed: the view stops early, and its result is closed.
    wait_until(lambda: state(server)["closed"] > before["closed"], SEEN_DEADLINE_S)
    after = state(server)
    assert after["saw_disconnect"] == before["saw_disconnect"] + 1
    assert after["body"] == ("hello" if body else "")
    assert not caplog.records, "a response dropped for a client that left is no error"
    response = httpx.get(server.url + "/state")  # a new connection: the worker goes on
    assert response.status_code == 200


def test_a_client_that_stays_gets_the_whole_response(server: Server) -> None:
    """The callable stays false while the client waits: the view runs to its end."""
    before = state(server)
    response = httpx.get(server.url + f"/long?{SHORT_VIEW_S}", timeout=SEEN_DEADLINE_S)
    assert (response.status_code, response.text) == (200, "done")
    after = state(server)
    assert after["saw_disconnect"] == before["saw_disconnect"]
    assert after["closed"] == before["closed"] + 1
