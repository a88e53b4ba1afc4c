"""The router: prefix matching, path semantics, state, body limits. No sockets."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from gateway.asgi import Interface, Message, Receive, Scope, Send, mount_label, plain_reply
from gateway.config.mount_table import MountConfig
from gateway.errors import RequestBodyTooLarge
from gateway.routing.router import Mount, Router, declares_over, framing


class Recorder:
    """An ASGI app that records the scope it was called with and answers 200."""

    def __init__(self) -> None:
        self.scopes: list[Scope] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.scopes.append(dict(scope))
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


def make_router(*prefixes: str, max_body_bytes: int = 1000) -> tuple[Router, dict[str, Recorder]]:
    apps = {prefix: Recorder() for prefix in prefixes}
    mounts = [Mount(p, app, max_body_bytes, Interface.ASGI) for p, app in apps.items()]
    return Router(mounts), apps


def call(
    router: Router,
    path: str,
    headers: list[tuple[bytes, bytes]] | None = None,
    bodies: list[bytes] | None = None,
) -> list[Message]:
    scope: dict[str, Any] = {
        "type": "http",
        "path": path,
        "root_path": "",
        "headers": headers or [],
    }
    chunks = list(bodies or [b""])
    sent: list[Message] = []

    async def receive() -> Message:
        body = chunks.pop(0)
        return {"type": "http.request", "body": body, "more_body": bool(chunks)}

    async def send(message: Message) -> None:
        sent.append(message)

    asyncio.run(router(scope, receive, send))
    return sent


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/api", "/api"),
        ("/api/", "/api"),
        ("/api/users/1", "/api"),
        ("/api/v2/x", "/api/v2"),
        ("/api/v2", "/api/v2"),
        ("/api/v2x", "/api"),
        ("/apix", "/"),
        ("/", "/"),
        ("/other/deep/path", "/"),
    ],
)
def test_longest_prefix_on_segment_boundary(path: str, expected: str) -> None:
    router, _ = make_router("/", "/api", "/api/v2")
    mount = router.match(path)
    assert mount is not None and mount.prefix == expected


def test_no_catch_all_means_plain_404() -> None:
    router, apps = make_router("/api")
    assert router.match("/apix") is None
    sent = call(router, "/apix")
    assert sent[0]["status"] == 404
    assert (b"content-type", b"text/plain; charset=utf-8") in sent[0]["headers"]
    assert not apps["/api"].scopes


def test_root_path_grows_and_path_stays_whole() -> None:
    router, apps = make_router("/", "/api")
    call(router, "/api/users")
    call(router, "/about")
    api_scope = apps["/api"].scopes[0]
    assert (api_scope["root_path"], api_scope["path"]) == ("/api", "/api/users")
    root_scope = apps["/"].scopes[0]
    assert (root_scope["root_path"], root_scope["path"]) == ("", "/about")


def test_each_request_gets_a_copy_of_its_mounts_state() -> None:
    router, apps = make_router("/a", "/b")
    router.mounts[0].state["db"] = "A"
    call(router, "/a/x")
    call(router, "/b/x")
    first = apps["/a"].scopes[0]["state"]
    assert first == {"db": "A"} and first is not router.mounts[0].state
    assert apps["/b"].scopes[0]["state"] == {}
    assert mount_label(apps["/a"].scopes[0]) == "/a"


@pytest.mark.parametrize(("prefix", "name"), [("/api", "new"), ("/", ""), ("", "legacy")])
def test_a_mount_has_its_configs_label(prefix: str, name: str) -> None:
    """One mount label: the router's Mount (in scopes, lifespan and errors) and the mount
    file's MountConfig (in metrics and gateway status) give the same (issue 15, point 4)."""
    config = MountConfig(prefix=prefix, name=name, app="m:a")
    mount = Mount(prefix, Recorder(), 1000, Interface.ASGI, name=name)
    assert mount.label == config.label == (prefix or name)


def test_declared_length_over_limit_is_413_before_the_app() -> None:
    router, apps = make_router("/", max_body_bytes=10)
    sent = call(router, "/", headers=[(b"content-length", b"11")], bodies=[b"x" * 11])
    assert sent[0]["status"] == 413
    assert not apps["/"].scopes


def test_chunked_body_over_limit_raises_413() -> None:
    router, _ = make_router("/", max_body_bytes=10)
    with pytest.raises(RequestBodyTooLarge) as caught:
        call(router, "/", headers=[(b"transfer-encoding", b"chunked")], bodies=[b"x" * 6] * 2)
    assert caught.value.status == 413


@pytest.mark.parametrize(
    ("headers", "length"),
    [
        ([], 0),  # neither field: no body (RFC 9112 §6.3)
        ([(b"host", b"x"), (b"content-length", b"12")], 12),
        ([(b"content-length", b"0")], 0),
        ([(b"transfer-encoding", b"chunked")], None),  # known only once it has arrived
    ],
)
def test_framing_reads_the_body_length_from_the_fields(
    headers: list[tuple[bytes, bytes]], length: int | None
) -> None:
    assert framing(headers) == length
    assert declares_over(headers, 11) is (length is not None and length > 11)


def test_the_gateway_answers_in_plain_text_with_its_reason_phrase() -> None:
    router, _ = make_router("/api")
    start, body = call(router, "/other")
    assert (start["status"], body["body"]) == (404, b"Not Found\n")
    assert start["headers"] == plain_reply(404)[0]
    assert plain_reply(599, [(b"x-a", b"1")]) == (
        [
            (b"x-a", b"1"),
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"content-length", b"6"),
        ],
        b"Error\n",
    )


def test_body_within_limit_passes() -> None:
    router, _ = make_router("/", max_body_bytes=10)
    sent = call(router, "/", headers=[(b"transfer-encoding", b"chunked")], bodies=[b"x" * 5] * 2)
    assert sent[0]["status"] == 200
