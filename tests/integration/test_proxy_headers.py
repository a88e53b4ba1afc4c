"""Proxy headers over real sockets: a trusted peer's X-Forwarded-*/Forwarded fields reach
the ASGI scope and the WSGI environ alike; an untrusted peer's change nothing.

The test client connects from 127.0.0.1. It is a trusted proxy under the default
`forwarded_allow_ips`, and an untrusted peer when the list names other addresses.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.mount_files import PROBE_ASGI_MOUNT, WS_MOUNT, probe_wsgi_mount
from support.servers import HTTP_SESSIONS, Server, write_config
from websockets.sync.client import connect

Serve = Callable[[str], Server]
DEADLINE_S = 10.0

MOUNTS = PROBE_ASGI_MOUNT + WS_MOUNT + probe_wsgi_mount()
# What a proxy in front of 127.0.0.1 adds: the client forged the first address.
PROXY_FIELDS = {
    "X-Forwarded-For": "198.51.100.1, 203.0.113.7",
    "X-Forwarded-Proto": "https",
    "X-Forwarded-Host": "www.example.com",
}


def mount_file(*settings: str) -> str:
    return "\n".join(["[server]", *settings, MOUNTS])


def asgi_scope(client: httpx.Client, headers: dict[str, str]) -> dict[str, Any]:
    scope: dict[str, Any] = client.get("/asgi/scope", headers=headers).json()
    scope["host"] = dict(scope["headers"])["host"]
    return scope


def wsgi_environ(client: httpx.Client, headers: dict[str, str]) -> dict[str, Any]:
    environ: dict[str, Any] = client.get("/wsgi/environ", headers=headers).json()
    return environ


def http_client(server: Server) -> httpx.Client:
    return httpx.Client(base_url=server.url, timeout=DEADLINE_S)


def test_a_trusted_proxy_sets_client_scheme_and_host_for_asgi_and_wsgi(serve: Serve) -> None:
    server = serve(mount_file("proxy_headers = true", "forwarded_host = true"))
    with http_client(server) as client:
        scope = asgi_scope(client, PROXY_FIELDS)
        environ = wsgi_environ(client, PROXY_FIELDS)
    assert scope["client"] == ["203.0.113.7", 0]
    assert scope["scheme"] == "https"
    assert scope["host"] == "www.example.com"
    assert scope["server"] == ["127.0.0.1", server.port]  # the socket, as ever
    assert environ["REMOTE_ADDR"] == "203.0.113.7"
    assert environ["wsgi.url_scheme"] == "https"
    assert environ["HTTP_HOST"] == "www.example.com"


@pytest.mark.parametrize(
    "settings",
    [
        ('forwarded_allow_ips = ["10.0.0.0/8", "unix"]', "proxy_headers = true"),
        ("proxy_headers = false",),  # the default list trusts 127.0.0.1, but it is off
    ],
)
def test_an_untrusted_peer_changes_nothing(serve: Serve, settings: tuple[str, ...]) -> None:
    server = serve(mount_file(*settings))
    fields = {**PROXY_FIELDS, "Forwarded": "for=192.0.2.60;proto=https;host=evil.example"}
    with http_client(server) as client:
        scope = asgi_scope(client, fields)
        environ = wsgi_environ(client, fields)
    assert scope["client"][0] == "127.0.0.1"
    assert scope["scheme"] == "http"
    assert scope["host"] == f"127.0.0.1:{server.port}"
    assert environ["REMOTE_ADDR"] == "127.0.0.1"
    assert environ["wsgi.url_scheme"] == "http"
    assert environ["HTTP_HOST"] == f"127.0.0.1:{server.port}"


@pytest.mark.parametrize(
    "fields",
    [PROXY_FIELDS, {"Forwarded": "for=203.0.113.7;proto=https;host=www.example.com"}],
    ids=["x-forwarded", "forwarded"],
)
def test_a_trusted_proxys_host_is_ignored_unless_forwarded_host_is_on(
    serve: Serve, fields: dict[str, str]
) -> None:
    """issue 13, point 12: nginx passes a client's own X-Forwarded-Host through, so by
    default it must not become the Host an app builds links from; client and scheme
    are still taken from the trusted proxy."""
    server = serve(mount_file("proxy_headers = true"))
    with http_client(server) as client:
        scope = asgi_scope(client, fields)
        environ = wsgi_environ(client, fields)
    assert (scope["client"][0], scope["scheme"]) == ("203.0.113.7", "https")
    assert (environ["REMOTE_ADDR"], environ["wsgi.url_scheme"]) == ("203.0.113.7", "https")
    assert scope["host"] == f"127.0.0.1:{server.port}"
    assert environ["HTTP_HOST"] == f"127.0.0.1:{server.port}"


def test_a_chain_of_trusted_proxies_is_walked_from_the_right(serve: Serve) -> None:
    server = serve(mount_file("proxy_headers = true", 'forwarded_allow_ips = ["127.0.0.0/8"]'))
    fields = {"X-Forwarded-For": "198.51.100.1, 203.0.113.7, 127.0.0.5, 127.0.0.9"}
    with http_client(server) as client:
        assert asgi_scope(client, fields)["client"] == ["203.0.113.7", 0]
        assert wsgi_environ(client, fields)["REMOTE_ADDR"] == "203.0.113.7"


def test_rfc_7239_forwarded(serve: Serve) -> None:
    server = serve(mount_file("proxy_headers = true", "forwarded_host = true"))
    fields = {"Forwarded": 'for="[2001:db8:cafe::17]:4711";proto=https;host=shop.example'}
    with http_client(server) as client:
        scope = asgi_scope(client, fields)
        environ = wsgi_environ(client, fields)
    assert (scope["client"], scope["scheme"], scope["host"]) == (
        ["2001:db8:cafe::17", 4711],
        "https",
        "shop.example",
    )
    assert (environ["REMOTE_ADDR"], environ["wsgi.url_scheme"], environ["HTTP_HOST"]) == (
        "2001:db8:cafe::17",
        "https",
        "shop.example",
    )


def test_malformed_fields_leave_the_request_as_it_came(serve: Serve) -> None:
    server = serve(mount_file("proxy_headers = true"))
    fields = {
        "X-Forwarded-For": "not-an-address",
        "X-Forwarded-Proto": "gopher",
        "X-Forwarded-Host": "bad host/with path",
    }
    with http_client(server) as client:
        scope = asgi_scope(client, fields)
        assert client.get("/asgi/scope", headers={"Forwarded": 'for="unclosed'}).status_code == 200
    assert scope["client"][0] == "127.0.0.1"
    assert scope["scheme"] == "http"
    assert scope["host"] == f"127.0.0.1:{server.port}"


def test_a_websocket_behind_a_trusted_proxy_sees_wss(serve: Serve) -> None:
    server = serve(mount_file("proxy_headers = true", "forwarded_host = true"))
    with connect(
        f"ws://127.0.0.1:{server.port}/ws/scope",
        additional_headers=PROXY_FIELDS,
        proxy=None,
        open_timeout=DEADLINE_S,
        close_timeout=DEADLINE_S,
    ) as ws:
        scope = json.loads(ws.recv(timeout=DEADLINE_S))
    assert scope["scheme"] == "wss"
    assert scope["client"] == ["203.0.113.7", 0]
    assert dict(scope["headers"])["host"] == "www.example.com"


# --- a unix-socket peer -----------------------------------------------------------------------


@pytest.fixture(params=HTTP_SESSIONS)
def unix_server(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[Server, str]]:
    """Trusts unix-socket peers only; serves on 127.0.0.1 too (an untrusted peer)."""
    text = mount_file(
        f"http = {request.param!r}", "proxy_headers = true", 'forwarded_allow_ips = ["unix"]'
    )
    server = Server(write_config(tmp_path, text))
    path = str(tmp_path / "gateway.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(path)
    sock.listen(16)
    server.worker.sockets.append(sock)  # before start(): the worker listens on both
    try:
        yield server.start(), path
    finally:
        server.stop()
        sock.close()


def test_unix_socket_peers_are_trusted_by_unix(unix_server: tuple[Server, str]) -> None:
    server, path = unix_server
    transport = httpx.HTTPTransport(uds=path)
    with httpx.Client(transport=transport, base_url="http://gateway", timeout=DEADLINE_S) as uds:
        scope = asgi_scope(uds, PROXY_FIELDS)
        environ = wsgi_environ(uds, PROXY_FIELDS)
    assert (scope["client"], scope["scheme"]) == (["203.0.113.7", 0], "https")
    assert (environ["REMOTE_ADDR"], environ["wsgi.url_scheme"]) == ("203.0.113.7", "https")
    with http_client(server) as tcp:  # 127.0.0.1 is not in the list
        scope = asgi_scope(tcp, PROXY_FIELDS)
    assert (scope["client"][0], scope["scheme"]) == ("127.0.0.1", "http")
