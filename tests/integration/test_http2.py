"""HTTP/2 over real sockets with a real client (httpx with h2): prior knowledge in
cleartext (h2c) and ALPN over TLS, ASGI and WSGI mounts, routing, several streams on
one connection, and `http2 = false`."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from pathlib import Path

import h2.events
import httpx
import hyperframe.frame
import pytest
from support.deadlines import read_response, read_until_closed, wait_until
from support.h2_clients import RawH2, frames
from support.mount_files import PROBE_MOUNTS
from support.servers import Server
from support.tls_certs import Certs, make_certs

from gateway.http.first_bytes import PREFACE
from gateway.http.h2_goaway import MAX_STREAM_ID

Serve = Callable[[str], Server]
DEADLINE_S = 10.0


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("certs"))


def h2c_client(server: Server) -> httpx.Client:
    """Prior knowledge: the client opens with the HTTP/2 preface (RFC 9113 §3.3)."""
    return httpx.Client(base_url=server.url, http1=False, http2=True, timeout=DEADLINE_S)


def check_asgi_and_wsgi(client: httpx.Client, scheme: str) -> None:
    scope = client.get("/asgi/scope?a=1").json()
    assert (scope["http_version"], scope["scheme"], scope["method"]) == ("2", scheme, "GET")
    assert (scope["root_path"], scope["path"], scope["query_string"]) == (
        "/asgi",
        "/asgi/scope",
        "a=1",
    )
    # :authority became the Host field the apps read (RFC 9113 §8.3.1).
    assert ["host", client.base_url.netloc.decode()] in scope["headers"]
    posted = client.post("/asgi/echo", content=b"x" * 100_000)
    assert posted.http_version == "HTTP/2"
    assert posted.content == b"x" * 100_000
    environ = client.get("/wsgi/environ").json()
    assert environ["SERVER_PROTOCOL"] == "HTTP/2"
    assert environ["wsgi.url_scheme"] == scheme
    assert (environ["SCRIPT_NAME"], environ["PATH_INFO"]) == ("/wsgi", "/environ")
    digest = client.post("/wsgi/digest", content=b"y" * 70_000).json()
    assert digest["length"] == 70_000
    assert client.get("/nowhere").status_code == 404
    assert client.get("/asgi/nowhere").status_code == 404


def test_prior_knowledge_in_cleartext(serve: Serve) -> None:
    server = serve("[server]\n" + PROBE_MOUNTS)
    with h2c_client(server) as client:
        check_asgi_and_wsgi(client, "http")


def test_alpn_chooses_h2_over_tls(serve: Serve, certs: Certs) -> None:
    settings = f"certfile = {str(certs.cert)!r}\nkeyfile = {str(certs.key)!r}\n"
    server = serve("[server]\n" + settings + PROBE_MOUNTS)
    url = f"https://127.0.0.1:{server.port}"
    context = certs.client_context()
    with httpx.Client(base_url=url, http2=True, verify=context, timeout=DEADLINE_S) as client:
        assert client.get("/asgi/scope").http_version == "HTTP/2"
        check_asgi_and_wsgi(client, "https")


def test_root_path_is_added_per_stream(serve: Serve) -> None:
    server = serve('[server]\nroot_path = "/outer"\n' + PROBE_MOUNTS)
    with h2c_client(server) as client:
        scope = client.get("/asgi/scope").json()
    assert (scope["root_path"], scope["path"]) == ("/outer/asgi", "/outer/asgi/scope")


def test_a_slow_stream_does_not_hold_up_a_fast_one(serve: Serve) -> None:
    server = serve("[server]\n" + PROBE_MOUNTS)
    finished: list[str] = []

    async def fetch(client: httpx.AsyncClient, path: str) -> None:
        response = await client.get(path)
        assert response.status_code == 200 and response.http_version == "HTTP/2"
        finished.append(path)

    async def both() -> None:
        async with httpx.AsyncClient(
            base_url=server.url, http1=False, http2=True, timeout=DEADLINE_S
        ) as client:
            await fetch(client, "/asgi/echo")  # the connection, before the race
            slow = asyncio.create_task(fetch(client, "/asgi/sleep?2"))
            await asyncio.sleep(0)
            await fetch(client, "/asgi/stream")
            await slow

    asyncio.run(both())
    assert finished == ["/asgi/echo", "/asgi/stream", "/asgi/sleep?2"]


def test_http2_off_answers_the_preface_as_http_1_1_does(serve: Serve) -> None:
    server = serve("[server]\nhttp2 = false\n" + PROBE_MOUNTS)
    with socket.create_connection(("127.0.0.1", server.port), timeout=DEADLINE_S) as sock:
        sock.sendall(PREFACE)
        assert read_response(sock).startswith(b"HTTP/1.1 505 ")


def test_the_preface_in_pieces_is_still_http2(serve: Serve) -> None:
    server = serve("[server]\n" + PROBE_MOUNTS)
    with socket.create_connection(("127.0.0.1", server.port), timeout=DEADLINE_S) as sock:
        for piece in (PREFACE[:3], PREFACE[3:10], PREFACE[10:]):
            sock.sendall(piece)
        sock.sendall(b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")  # an empty SETTINGS
        head = b""
        while len(head) < 9:  # recv may return less than asked: read the frame's head
            piece = sock.recv(9 - len(head))
            assert piece, "closed before the server's preface"
            head += piece
    # The server's preface is a SETTINGS frame (RFC 9113 §3.4): type 4 on stream 0.
    assert head[3] == 0x4 and head[5:9] == bytes(4)


def test_a_stream_waiting_for_its_window_does_not_hold_up_another(serve: Serve) -> None:
    server = serve("[server]\n" + PROBE_MOUNTS)
    client = RawH2(server.port, window=1024)
    with client.sock:
        client.get(1, "/asgi/big")  # 64 MiB: its stream's window closes after 1 KiB
        client.read_until(lambda events: any(isinstance(e, h2.events.DataReceived) for e in events))
        client.get(3, "/asgi/stream")
        client.read_until(lambda events: client.ended(3))
        assert client.status(3) == b"200" and not client.ended(1)
        big = [
            e for e in client.events if isinstance(e, h2.events.DataReceived) and e.stream_id == 1
        ]
        assert sum(len(e.data or b"") for e in big) <= 1024


def test_limit_concurrency_counts_streams(
    serve: Serve, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    probe_log = tmp_path / "probe.log"
    monkeypatch.setenv("PROBE_LIFESPAN_LOG", str(probe_log))
    server = serve("[server]\nlimit_concurrency = 1\n" + PROBE_MOUNTS)
    client = RawH2(server.port)
    with client.sock:
        client.get(1, "/asgi/sleep?1")
        wait_until(lambda: probe_log.exists() and "sleep-start" in probe_log.read_text())
        client.get(3, "/asgi/scope")
        client.read_until(lambda events: client.ended(3) and client.ended(1))
        assert (client.status(3), client.status(1)) == (b"503", b"200")


def test_a_graceful_stop_sends_goaway_and_finishes_the_streams_in_flight(
    serve: Serve, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    probe_log = tmp_path / "probe.log"  # tests/apps/probe_asgi.py notes "sleep-start"
    monkeypatch.setenv("PROBE_LIFESPAN_LOG", str(probe_log))
    server = serve("[server]\n" + PROBE_MOUNTS)
    client = RawH2(server.port)
    with client.sock:
        client.get(1, "/asgi/sleep?1")
        wait_until(lambda: probe_log.exists() and "sleep-start" in probe_log.read_text())
        server.loop.call_soon_threadsafe(server.worker.request_stop)
        received, closed = read_until_closed(client.sock, DEADLINE_S)
    assert closed
    # Parsed frame by frame: h2's client refuses any frame after a GOAWAY, though RFC
    # 9113 §6.8 lets the streams up to its last one go on.
    sent = frames(received)
    goaway = [f for f in sent if isinstance(f, hyperframe.frame.GoAwayFrame)]
    data = [f for f in sent if isinstance(f, hyperframe.frame.DataFrame) and f.stream_id == 1]
    # The two steps (gateway/http/h2_goaway.py): this client answers no PING, so the
    # final GOAWAY comes at the bound.
    assert [(f.last_stream_id, f.error_code) for f in goaway] == [(MAX_STREAM_ID, 0), (1, 0)]
    assert sent.index(goaway[0]) < sent.index(data[0])
    assert b"".join(f.data for f in data) == b"slept" and "END_STREAM" in data[-1].flags


def test_each_stream_has_its_access_line(serve: Serve, caplog: pytest.LogCaptureFixture) -> None:
    server = serve("[server]\n" + PROBE_MOUNTS)
    with caplog.at_level(logging.INFO, logger="gateway.access"), h2c_client(server) as client:
        for n in range(3):
            assert client.get(f"/asgi/scope?n={n}").status_code == 200
        # Written as each stream's cycle ends, in the server's thread: wait for them.
        wait_until(lambda: sum("/asgi/scope?n=" in r.message for r in caplog.records) == 3)
    lines = [r.message for r in caplog.records if "/asgi/scope?n=" in r.message]
    assert all("HTTP/2" in line for line in lines), lines


def test_part_of_a_preface_then_the_end_gets_http_1_1_s_answer(serve: Serve) -> None:
    server = serve("[server]\n" + PROBE_MOUNTS)
    with socket.create_connection(("127.0.0.1", server.port), timeout=DEADLINE_S) as sock:
        sock.sendall(PREFACE[:16])  # "PRI * HTTP/2.0\r\n", then no more
        sock.shutdown(socket.SHUT_WR)
        received, _ = read_until_closed(sock, DEADLINE_S)
    assert received.startswith(b"HTTP/1.1 "), received
