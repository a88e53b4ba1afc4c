"""TLS over real sockets, through the worker's own listen path, with certificates made
at test time: the scheme apps see, ALPN, client certificates (mTLS), WebSockets over
TLS, and handshakes that fail without costing the worker anything.
"""

from __future__ import annotations

import json
import logging
import socket
import ssl
from collections.abc import Callable

import httpx
import pytest
from cryptography import x509
from support.deadlines import read_response
from support.mount_files import PROBE_ASGI_MOUNT, WS_MOUNT, probe_wsgi_mount
from support.servers import Server
from support.tls_certs import Certs, make_certs
from websockets.sync.client import connect

import gateway.process.worker

Serve = Callable[[str], Server]
DEADLINE_S = 10.0

MOUNTS = PROBE_ASGI_MOUNT + WS_MOUNT + probe_wsgi_mount()


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("certs"))


def tls_mount_file(certs: Certs, *settings: str) -> str:
    lines = [f"certfile = {str(certs.cert)!r}", f"keyfile = {str(certs.key)!r}", *settings]
    return "\n".join(["[server]", *lines, MOUNTS])


def https_client(server: Server, context: ssl.SSLContext) -> httpx.Client:
    return httpx.Client(
        base_url=f"https://127.0.0.1:{server.port}", verify=context, timeout=DEADLINE_S
    )


def tls_socket(server: Server, context: ssl.SSLContext) -> ssl.SSLSocket:
    raw = socket.create_connection(("127.0.0.1", server.port), timeout=DEADLINE_S)
    return context.wrap_socket(raw, server_hostname="127.0.0.1")


def test_apps_see_https(serve: Serve, certs: Certs) -> None:
    server = serve(tls_mount_file(certs))
    with https_client(server, certs.client_context()) as client:
        scope = client.get("/asgi/scope").json()
        environ = client.get("/wsgi/environ").json()
    assert scope["scheme"] == "https"
    assert scope["client"][0] == "127.0.0.1"
    assert scope["server"] == ["127.0.0.1", server.port]
    assert environ["wsgi.url_scheme"] == "https"
    assert environ["REMOTE_ADDR"] == "127.0.0.1"


def test_alpn_negotiates_http_1_1_and_tls_1_2_or_later(serve: Serve, certs: Certs) -> None:
    server = serve(tls_mount_file(certs, "http2 = false"))  # h2 by ALPN: test_http2.py
    offers_h2 = certs.client_context()
    offers_h2.set_alpn_protocols(["h2", "http/1.1"])
    with tls_socket(server, offers_h2) as tls:
        assert tls.selected_alpn_protocol() == "http/1.1"
        assert tls.version() in ("TLSv1.2", "TLSv1.3")
        tls.sendall(b"GET /asgi/scope HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        assert read_response(tls).startswith(b"HTTP/1.1 200 ")
    only_h2 = certs.client_context()
    only_h2.set_alpn_protocols(["h2"])
    with tls_socket(server, only_h2) as tls:  # no ALPN answer, but a handshake
        assert tls.selected_alpn_protocol() is None


def test_a_tls_1_2_client_is_served(serve: Serve, certs: Certs) -> None:
    """TLS 1.2 clients still exist (older Java and .NET); 1.1 and below are refused by
    the context's minimum version (tests/unit/test_tls.py)."""
    server = serve(tls_mount_file(certs))
    context = certs.client_context()
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    with tls_socket(server, context) as tls:
        assert tls.version() == "TLSv1.2"
        tls.sendall(b"GET /wsgi/environ HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        assert b'"wsgi.url_scheme": "https"' in read_response(tls)


def test_the_scope_carries_the_asgi_tls_extension(serve: Serve, certs: Certs) -> None:
    server = serve(
        tls_mount_file(certs, f"ca_certs = {str(certs.ca_pem)!r}", 'client_cert = "optional"')
    )
    with https_client(server, certs.client_context(certs.client)) as client:
        tls = client.get("/asgi/scope").json()["extensions"]["tls"]
    with https_client(server, certs.client_context()) as client:
        anonymous = client.get("/asgi/scope").json()["extensions"]["tls"]
    with httpx.Client(timeout=DEADLINE_S) as plain:  # a plain listener: no extension
        plain_server = serve("[server]\n" + MOUNTS)
        extensions = plain.get(f"{plain_server.url}/asgi/scope").json()["extensions"]
        assert "tls" not in extensions  # only the gateway's own mount label
    sent = x509.load_pem_x509_certificate(certs.client.read_bytes())
    [pem] = tls["client_cert_chain"]
    assert x509.load_pem_x509_certificate(pem.encode()) == sent
    assert tls["client_cert_name"] == sent.subject.rfc4514_string()
    assert tls["tls_version"] in (0x0303, 0x0304)
    assert (tls["client_cert_error"], tls["server_cert"], tls["cipher_suite"]) == (None,) * 3
    assert (anonymous["client_cert_chain"], anonymous["client_cert_name"]) == ([], None)


def test_client_cert_required(serve: Serve, certs: Certs) -> None:
    server = serve(
        tls_mount_file(certs, f"ca_certs = {str(certs.ca_pem)!r}", 'client_cert = "required"')
    )
    with https_client(server, certs.client_context(certs.client)) as client:
        assert client.get("/asgi/scope").json()["scheme"] == "https"
    for refused in (certs.client_context(), certs.client_context(certs.stranger)):
        with https_client(server, refused) as client, pytest.raises(httpx.TransportError):
            client.get("/asgi/scope")
    with https_client(server, certs.client_context(certs.client)) as client:
        assert client.get("/wsgi/environ").status_code == 200  # and the worker serves on


def test_client_cert_optional(serve: Serve, certs: Certs) -> None:
    server = serve(
        tls_mount_file(certs, f"ca_certs = {str(certs.ca_pem)!r}", 'client_cert = "optional"')
    )
    for allowed in (certs.client_context(), certs.client_context(certs.client)):
        with https_client(server, allowed) as client:
            assert client.get("/asgi/scope").status_code == 200
    # Sent, it must verify.
    stranger = certs.client_context(certs.stranger)
    with https_client(server, stranger) as client, pytest.raises(httpx.TransportError):
        client.get("/asgi/scope")


def test_a_websocket_over_tls_sees_wss(serve: Serve, certs: Certs) -> None:
    server = serve(tls_mount_file(certs))
    with connect(
        f"wss://127.0.0.1:{server.port}/ws/scope",
        ssl=certs.client_context(),
        proxy=None,
        open_timeout=DEADLINE_S,
        close_timeout=DEADLINE_S,
    ) as ws:
        scope = json.loads(ws.recv(timeout=DEADLINE_S))
    assert scope["scheme"] == "wss"
    assert scope["client"][0] == "127.0.0.1"
    assert scope["extensions"]["tls"]["tls_version"] in (0x0303, 0x0304)


# --- failed handshakes cost nothing ------------------------------------------------------------

# The first bytes of a ClientHello (a TLS record header and the start of the handshake).
PARTIAL_CLIENT_HELLO = bytes.fromhex("160301020001000200")
GARBAGE = [
    b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",  # plain HTTP to the TLS port
    b"\x00" * 64,
    bytes(range(256)),
    PARTIAL_CLIENT_HELLO,  # then the client closes mid-handshake
]


def test_failed_handshakes_log_no_error_and_the_worker_serves_on(
    serve: Serve, certs: Certs, caplog: pytest.LogCaptureFixture
) -> None:
    server = serve(tls_mount_file(certs))
    caplog.set_level(logging.DEBUG)
    for junk in GARBAGE:
        with server.connect() as raw:
            raw.sendall(junk)
            raw.shutdown(socket.SHUT_WR)
            read_response(raw, DEADLINE_S)  # the server drops it: EOF, not a hang
    with tls_socket(server, certs.client_context()) as tls:
        tls.sendall(b"GET /asgi/scope HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        assert read_response(tls).startswith(b"HTTP/1.1 200 ")
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors]


def test_a_silent_client_is_dropped_after_the_handshake_timeout(
    serve: Serve, certs: Certs, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gateway.process.worker, "TLS_HANDSHAKE_TIMEOUT_S", 0.5)
    server = serve(tls_mount_file(certs))
    with server.connect() as raw:
        raw.settimeout(5.0)  # half the real bound: only the patched one closes it in time
        assert raw.recv(1024) == b""
    with https_client(server, certs.client_context()) as client:
        assert client.get("/asgi/scope").status_code == 200
