"""A shadow copy over real sockets goes without the user's credentials (issue 13,
point 12): Cookie and Authorization by default, the fields `shadow_drop_headers` lists
otherwise. Both apps are in tests/apps/shadow_headers.py."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from support.deadlines import wait_until
from support.servers import Server
from support.ws_clients import DEADLINE_S

Serve = Callable[[str], Server]
CREDENTIALS = {"Cookie": "sessionid=s3cret", "Authorization": "Bearer t0ken", "X-Trace": "t1"}


def mount_file(drop: str) -> str:
    return f"""
[server]

[[mount]]
prefix = "/site"
app = "shadow_headers:primary"
interface = "asgi"
shadow = "trial"
{drop}

[[mount]]
name = "trial"
app = "shadow_headers:shadow"
interface = "asgi"

[[mount]]
prefix = "/trial"
app = "shadow_headers:shadow"
interface = "asgi"
"""


@pytest.mark.parametrize(
    ("drop", "kept"),
    [
        ("", {"x-trace"}),  # the default: cookie and authorization
        ('shadow_drop_headers = ["X-Trace"]', {"cookie", "authorization"}),
        ("shadow_drop_headers = []", {"cookie", "authorization", "x-trace"}),
    ],
)
def test_a_copy_carries_no_dropped_field(serve: Serve, drop: str, kept: set[str]) -> None:
    server = serve(mount_file(drop))
    shadows = server.worker.shadows
    with httpx.Client(base_url=server.url, timeout=DEADLINE_S) as client:
        assert client.get("/site/page", headers=CREDENTIALS).text == "ok"
        wait_until(lambda: shadows.started >= 1 and shadows.in_flight == 0, DEADLINE_S)
        seen = client.get("/trial/seen").json()
    watched = {"cookie", "authorization", "x-trace"}
    assert {name for name, _ in seen["primary"][-1]} & watched == watched  # all, as sent
    assert {name for name, _ in seen["shadow"][-1]} & watched == kept
