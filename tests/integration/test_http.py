"""HTTP/1.1 behaviour over real sockets, against the probe ASGI and WSGI apps."""

from __future__ import annotations

import email.utils
import json
import socket
import time
from collections.abc import Callable, Iterator

import httpx
import pytest
from support.deadlines import read_response, wait_until
from support.mount_files import PROBE_MOUNTS
from support.servers import Server

MOUNTS = (
    """
[server]
keep_alive_timeout = 1
max_header_bytes = 4096
max_target_bytes = 1024
"""
    + PROBE_MOUNTS
    + """
[[mount]]
prefix = "/zo\u00eb"
app = "probe_wsgi:app"
interface = "wsgi"

[[mount]]
prefix = "/validated"
app = "probe_wsgi:validated_app"
interface = "wsgi"

[[mount]]
prefix = "/small"
app = "probe_asgi:app"
interface = "asgi"
max_body_bytes = 1000
"""
)

Serve = Callable[[str], Server]


@pytest.fixture
def server(serve: Serve) -> Server:
    return serve(MOUNTS)


def exchange(server: Server, raw: bytes) -> bytes:
    """Send raw bytes, half-close, and read everything until the server closes."""
    with server.connect() as sock:
        sock.sendall(raw)
        sock.shutdown(socket.SHUT_WR)
        return read_response(sock)


def test_responses_carry_date_and_server(server: Server) -> None:
    response = httpx.get(server.url + "/asgi/echo")
    assert response.headers["server"] == "gateway"
    parsed = email.utils.parsedate_to_datetime(response.headers["date"])
    assert abs(parsed.timestamp() - time.time()) < 5


def test_full_asgi_scope(server: Server) -> None:
    response = httpx.get(server.url + "/asgi/scope?x=1&y=%20", headers={"X-Custom": "v"})
    scope = response.json()
    assert scope["type"] == "http"
    assert scope["asgi"] == {"version": "3.0", "spec_version": "2.4"}
    assert (scope["http_version"], scope["method"], scheme := scope["scheme"]) == (
        "1.1",
        "GET",
        "http",
    )
    assert scheme == "http"
    assert (scope["path"], scope["raw_path"], scope["root_path"]) == (
        "/asgi/scope",
        "/asgi/scope",
        "/asgi",
    )
    assert scope["query_string"] == "x=1&y=%20"
    assert ["x-custom", "v"] in scope["headers"]
    assert scope["client"][0] == "127.0.0.1"
    assert scope["server"] == ["127.0.0.1", server.port]
    assert scope["state"] == {"probe": "started"}


def test_percent_encoded_and_non_ascii_paths(server: Server) -> None:
    scope = httpx.get(server.url + "/asgi/scope/caf%C3%A9%20x%2Fy").json()
    assert scope["path"] == "/asgi/scope/caf\u00e9 x/y"
    assert scope["raw_path"] == "/asgi/scope/caf%C3%A9%20x%2Fy"
    assert scope["root_path"] == "/asgi"
    environ = httpx.get(server.url + "/wsgi/environ/caf%C3%A9%20x?q=%C3%A9").json()
    # PEP 3333: native strings holding the UTF-8 bytes as latin-1 code points.
    assert environ["SCRIPT_NAME"] == "/wsgi"
    assert environ["PATH_INFO"] == "/environ/caf\u00e9 x".encode().decode("latin-1")
    assert environ["RAW_URI"] == "/wsgi/environ/caf%C3%A9%20x?q=%C3%A9"
    assert environ["QUERY_STRING"] == "q=%C3%A9"
    environ = httpx.get(server.url + "/zo%C3%AB/environ").json()
    assert environ["SCRIPT_NAME"] == "/zo\u00eb".encode().decode("latin-1")
    assert environ["PATH_INFO"] == "/environ"


def test_keep_alive_across_mounts_on_one_connection(server: Server) -> None:
    with httpx.Client(base_url=server.url) as client:
        ports = set()
        for path in ("/asgi/echo", "/wsgi/environ", "/asgi/scope", "/wsgi/environ"):
            response = client.get(path)
            assert response.status_code == 200
            ports.add(response.extensions["network_stream"].get_extra_info("client_addr")[1])
        assert len(ports) == 1


def test_pipelined_requests_answered_in_order(server: Server) -> None:
    requests = b"".join(
        b"GET %s HTTP/1.1\r\nHost: t\r\n\r\n" % path
        for path in (b"/asgi/sleep?0.2", b"/wsgi/environ", b"/asgi/echo")
    )
    reply = exchange(
        server, requests + b"GET /asgi/echo HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    )
    assert reply.count(b"HTTP/1.1 200 OK\r\n") == 4
    assert reply.index(b"slept") < reply.index(b"SCRIPT_NAME")


def test_keep_alive_timeout_closes_idle_connections(server: Server) -> None:
    with server.connect() as sock:
        sock.sendall(b"GET /asgi/echo HTTP/1.1\r\nHost: t\r\n\r\n")
        started = time.monotonic()
        reply = read_response(sock, deadline_s=10)
        assert reply.startswith(b"HTTP/1.1 200")
        assert 0.5 < time.monotonic() - started < 5  # keep_alive_timeout = 1


def test_head_has_no_body(server: Server) -> None:
    reply = exchange(server, b"HEAD /asgi/echo HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert body == b""
    reply = exchange(server, b"HEAD /wsgi/environ HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    assert reply.partition(b"\r\n\r\n")[2] == b""


def test_http10_client_gets_a_response_then_close(server: Server) -> None:
    with server.connect() as sock:
        sock.sendall(b"GET /asgi/echo HTTP/1.0\r\n\r\n")
        reply = read_response(sock)
    assert reply.startswith(b"HTTP/1.1 200")


def test_connection_close_is_honoured(serve: Serve) -> None:
    # A long idle timer, so that a close well before it can only be the Connection field's.
    server = serve(MOUNTS.replace("keep_alive_timeout = 1", "keep_alive_timeout = 60"))
    with server.connect() as sock:
        sock.sendall(b"GET /asgi/echo HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        started = time.monotonic()
        reply = read_response(sock, deadline_s=45)
    assert reply.startswith(b"HTTP/1.1 200")
    assert time.monotonic() - started < 30  # closed at once, not by the idle timer


def test_chunked_request_and_response_bodies(server: Server) -> None:
    def chunks() -> Iterator[bytes]:
        for i in range(50):
            yield b"%04d" % i * 256

    response = httpx.post(server.url + "/asgi/echo", content=chunks())
    assert response.status_code == 200
    assert response.content == b"".join(chunks())
    streamed = httpx.get(server.url + "/asgi/stream")
    assert streamed.headers["transfer-encoding"] == "chunked"
    assert streamed.text == "".join(f"chunk {i}\n" for i in range(5))


def test_expect_continue_sent_only_when_the_body_is_read(server: Server) -> None:
    head = b"POST /asgi/%s HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"
    with server.connect() as sock:
        sock.sendall(head % b"echo")
        first = sock.recv(65536)
        assert first.startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        sock.sendall(b"hello")
        rest = first[len(b"HTTP/1.1 100 Continue\r\n\r\n") :] or sock.recv(65536)
        assert rest.startswith(b"HTTP/1.1 200") and rest.endswith(b"hello")
    with server.connect() as sock:
        sock.sendall(head % b"no-read")
        reply = sock.recv(65536)
        assert reply.startswith(b"HTTP/1.1 200") and b"100 Continue" not in reply


def test_header_limit_is_431_and_target_limit_is_414(server: Server) -> None:
    reply = exchange(server, b"GET /asgi/echo HTTP/1.1\r\nHost: t\r\n" + b"X-A: b\r\n" * 1000)
    assert reply.startswith(b"HTTP/1.1 431")
    reply = exchange(server, b"GET /asgi/" + b"a" * 2000 + b" HTTP/1.1\r\nHost: t\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 414")


def test_body_limit_per_mount_is_413(server: Server) -> None:
    assert httpx.post(server.url + "/small/echo", content=b"x" * 1001).status_code == 413
    assert httpx.post(server.url + "/small/echo", content=b"x" * 1000).status_code == 200
    chunked = httpx.post(server.url + "/small/echo", content=iter([b"x" * 600, b"x" * 600]))
    assert chunked.status_code == 413
    assert httpx.post(server.url + "/asgi/echo", content=b"x" * 1001).status_code == 200


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"GARBAGE\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: t\r\nBad Header\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: t\r\nContent-Length: -1\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
        (b"GET / HTTP/1.1\r\n\r\n", 400),
        (b"GET example.com HTTP/1.1\r\nHost: t\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
    ],
)
def test_malformed_requests_get_4xx_and_the_server_lives(
    server: Server, raw: bytes, status: int
) -> None:
    reply = exchange(server, raw)
    assert reply.startswith(b"HTTP/1.1 %d" % status)
    assert b"Traceback" not in reply
    assert httpx.get(server.url + "/asgi/echo").status_code == 200


def test_app_raising_before_start_is_a_500_without_details(server: Server) -> None:
    for path in ("/asgi/raise-before", "/wsgi/raise"):
        response = httpx.get(server.url + path)
        assert response.status_code == 500
        assert b"secret" not in response.content
        assert "Traceback" not in response.text


def test_app_raising_after_a_complete_response_keeps_the_connection(server: Server) -> None:
    with httpx.Client(base_url=server.url) as client:
        first = client.get("/asgi/raise-after")
        assert (first.status_code, first.text) == (200, "complete")
        stream = first.extensions["network_stream"]
        second = client.get("/asgi/echo")
        assert second.status_code == 200
        assert second.extensions["network_stream"] is stream


def test_app_raising_mid_response_closes_the_connection(server: Server) -> None:
    reply = exchange(server, b"GET /asgi/raise-mid HTTP/1.1\r\nHost: t\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 200")
    assert b"partial" in reply
    assert not reply.endswith(b"0\r\n\r\n")  # no terminating chunk: the client sees a cut


def test_request_body_is_flow_controlled(server: Server) -> None:
    """While the app does not read, the server stops reading: the client's send blocks."""
    total = 64 * 1024 * 1024
    with server.connect() as sock:
        sock.sendall(
            b"POST /asgi/gated-digest HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % total
        )
        sock.setblocking(False)
        sent, piece = 0, b"x" * 65536
        deadline = time.monotonic() + 10
        while sent < total and time.monotonic() < deadline:
            try:
                sent += sock.send(piece[: total - sent])
            except BlockingIOError:
                break
        assert sent < total // 2, "the server read an unread body without bound"
        assert httpx.get(server.url + "/asgi/release").status_code == 200
        sock.setblocking(True)
        sock.settimeout(20)
        while sent < total:
            sent += sock.send(piece[: total - sent])
        reply = sock.recv(65536)
    assert reply.startswith(b"HTTP/1.1 200")
    assert json.loads(reply.partition(b"\r\n\r\n")[2])["length"] == total


def test_response_send_waits_for_a_slow_reader(server: Server) -> None:
    """A client that does not read holds the app's `send`, not server memory."""
    with server.connect() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        sock.sendall(b"GET /asgi/big HTTP/1.1\r\nHost: t\r\n\r\n")
        wait_until(lambda: httpx.get(server.url + "/asgi/progress").json()["bytes_sent"] > 0)
        first = httpx.get(server.url + "/asgi/progress").json()["bytes_sent"]
        time.sleep(0.3)  # give an unbounded server time to run ahead; not synchronisation
        stalled = httpx.get(server.url + "/asgi/progress").json()["bytes_sent"]
        assert stalled < 16 * 1024 * 1024, "send did not wait for the slow client"
        assert first <= stalled
        received = 0
        sock.settimeout(20)
        while received < 64 * 1024 * 1024:
            chunk = sock.recv(1 << 20)
            assert chunk
            received += len(chunk)
    wait_until(lambda: httpx.get(server.url + "/asgi/progress").json()["bytes_sent"] == 1 << 26)


def test_disconnect_is_delivered_to_the_app(server: Server) -> None:
    before = httpx.get(server.url + "/asgi/progress").json()["disconnects"]
    with server.connect() as sock:
        sock.sendall(b"GET /asgi/wait-disconnect HTTP/1.1\r\nHost: t\r\n\r\n")
    wait_until(lambda: httpx.get(server.url + "/asgi/progress").json()["disconnects"] > before)


def test_slow_wsgi_mount_never_delays_asgi(server: Server) -> None:
    """Both WSGI threads sleep; ASGI requests still answer at once."""
    import threading

    slow = [
        threading.Thread(
            target=httpx.get, args=(server.url + "/wsgi/sleep?2.5",), kwargs={"timeout": 20}
        )
        for _ in range(3)
    ]
    for thread in slow:
        thread.start()
    time.sleep(0.2)  # let the slow requests reach the pool; not synchronisation
    for _ in range(5):
        assert httpx.get(server.url + "/asgi/echo").status_code == 200
    # Every ASGI answer came while every WSGI request was still sleeping (an event
    # order, not a clock: a busy machine delays both sides alike).
    assert all(thread.is_alive() for thread in slow)
    for thread in slow:
        thread.join(20)


def test_websocket_upgrade_to_wsgi_mount_is_plain_http(server: Server) -> None:
    response = httpx.get(
        server.url + "/wsgi/environ",
        headers={
            "Upgrade": "websocket",
            "Connection": "Upgrade",
            "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        },
    )
    assert response.status_code == 200
    assert response.json()["HTTP_UPGRADE"] == "websocket"


def test_unrouted_path_is_plain_text_404(server: Server) -> None:
    response = httpx.get(server.url + "/nowhere")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/plain")


def test_each_wsgi_mount_has_its_own_pool_of_its_size(server: Server) -> None:
    from concurrent.futures import ThreadPoolExecutor

    def thread_name(path: str) -> str:
        return str(httpx.get(server.url + path, timeout=20).json()["thread"])

    with ThreadPoolExecutor(8) as clients:
        names = set(clients.map(thread_name, ["/wsgi/thread?0.2"] * 8))
        other = set(clients.map(thread_name, ["/zo%C3%AB/thread?0.2"] * 8))
    assert len(names) == 2  # threads = 2
    assert all(name.startswith("wsgi-/wsgi") for name in names)
    assert len(other) > 2  # the default pool size (10), not shared with /wsgi
    assert names.isdisjoint(other)


def test_environ_passes_wsgiref_validate_through_the_server(server: Server) -> None:
    assert httpx.get(server.url + "/validated/environ").status_code == 200
    body = b"v" * 100_000
    response = httpx.post(
        server.url + "/validated/digest", content=iter([body[:50_000], body[50_000:]])
    )
    assert response.status_code == 200 and response.json()["length"] == len(body)
    streamed = httpx.get(server.url + "/validated/stream")
    assert streamed.status_code == 200 and streamed.text.count("line") == 5


@pytest.mark.parametrize(
    "first",
    [
        b"GET /asgi/echo HTTP/1.0\r\n\r\n",
        b"GET /asgi/echo HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    ],
)
def test_bytes_after_a_closing_request_do_not_cost_its_response(
    server: Server, first: bytes
) -> None:
    """RFC 9112 §9.6: the request that ends the connection is answered, then it closes."""
    reply = exchange(server, first + b"GET /asgi/echo HTTP/1.1\r\nHost: t\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 200 OK\r\n")
    assert reply.count(b"HTTP/1.1 ") == 1
