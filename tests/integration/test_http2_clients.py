"""HTTP/2 with the clients people use (issue 16, point 7): curl over TLS (ALPN h2) and
with prior knowledge in cleartext, to ASGI and WSGI mounts, with a body bigger than a
stream's window; h2load's load of many streams on a few connections; httpx
with many concurrent streams on one connection, and a download far bigger than the
windows. A client that speaks neither HTTP/1.x nor HTTP/2 gets no reply at all
(gateway/http/first_bytes.py). tests/integration/test_http2.py holds the rest of httpx.

curl and h2load are programs, not packages: their tests skip, saying so, without them.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from support.deadlines import CLIENT_TIMEOUT_S, read_until_closed
from support.mount_files import PROBE_ASGI_MOUNT, probe_wsgi_mount
from support.servers import Server, write_config
from support.tls_certs import Certs, make_certs

Serve = Callable[[str], Server]
MOUNTS = PROBE_ASGI_MOUNT + probe_wsgi_mount(threads=4)
# Bigger than a stream's initial window (65,535 bytes, RFC 9113 §6.9.2), so the upload
# waits for the server's WINDOW_UPDATEs.
BODY = bytes(range(256)) * 1024
# A program's whole run, far above what it takes here.
PROGRAM_DEADLINE_S = 60.0
needs_curl = pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
needs_h2load = pytest.mark.skipif(shutil.which("h2load") is None, reason="h2load is not installed")


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def h2c_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    config = write_config(tmp_path_factory.mktemp("h2c"), "[server]\n" + MOUNTS)
    server = Server(config).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory, certs: Certs) -> Iterator[Server]:
    settings = f"certfile = {str(certs.cert)!r}\nkeyfile = {str(certs.key)!r}\n"
    config = write_config(tmp_path_factory.mktemp("tls"), "[server]\n" + settings + MOUNTS)
    server = Server(config).start()
    yield server
    server.stop()


# -- curl -------------------------------------------------------------------------------


def curl_post(url: str, body: Path, *options: str) -> tuple[str, dict[str, object]]:
    """POST `body` with curl: the HTTP version it spoke, and the JSON it got back."""
    command = ["curl", "--silent", "--show-error", "--fail", *options]
    command += ["--data-binary", f"@{body}", "--write-out", "\n%{http_version}", url]
    run = subprocess.run(command, capture_output=True, text=True, timeout=PROGRAM_DEADLINE_S)
    assert run.returncode == 0, run.stderr
    answer, version = run.stdout.rsplit("\n", 1)
    return version, json.loads(answer)


@pytest.fixture(scope="module")
def body_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("body") / "body.bin"
    path.write_bytes(BODY)
    return path


def expected_digest() -> dict[str, object]:
    return {"length": len(BODY), "sha256": hashlib.sha256(BODY).hexdigest()}


@needs_curl
@pytest.mark.parametrize("mount", ["asgi", "wsgi"])
def test_curl_http2_over_tls_chooses_h2_by_alpn(
    tls_server: Server, certs: Certs, body_file: Path, mount: str
) -> None:
    url = f"https://127.0.0.1:{tls_server.port}/{mount}/digest"
    version, answer = curl_post(url, body_file, "--http2", "--cacert", str(certs.ca_pem))
    assert version == "2"
    assert answer == expected_digest()


@needs_curl
@pytest.mark.parametrize("mount", ["asgi", "wsgi"])
def test_curl_with_prior_knowledge_in_cleartext(
    h2c_server: Server, body_file: Path, mount: str
) -> None:
    url = f"{h2c_server.url}/{mount}/digest"
    version, answer = curl_post(url, body_file, "--http2-prior-knowledge")
    assert version == "2"
    assert answer == expected_digest()


@needs_curl
def test_curl_http2_in_cleartext_without_prior_knowledge_gets_http_1_1(
    serve: Serve, body_file: Path
) -> None:
    # `--http2` in cleartext asks for `Upgrade: h2c`, which RFC 9113 §3.1 deprecated: the
    # gateway ignores it (RFC 9110 §7.8 lets a server) and answers in HTTP/1.1, with
    # the body read as the request's (gateway/http/httptools_session.py, rule "an
    # Upgrade request (or CONNECT) stops llhttp").
    server = serve("[server]\n" + MOUNTS)
    version, answer = curl_post(f"{server.url}/asgi/digest", body_file, "--http2")
    assert version == "1.1"
    assert answer == expected_digest()


# -- h2load ------------------------------------------------------------------------------

H2LOAD_REQUESTS = 2000
H2LOAD_LINE = re.compile(
    rb"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
    rb"(\d+) failed, (\d+) errored, (\d+) timeout"
)


def h2load(url: str) -> tuple[int, ...]:
    """A bounded h2load run: 4 connections, 10 streams at a time on each; its counts of
    requests (total, started, done, succeeded, failed, errored, timeout)."""
    command = ["h2load", "-n", str(H2LOAD_REQUESTS), "-c", "4", "-m", "10", url]
    run = subprocess.run(command, capture_output=True, timeout=PROGRAM_DEADLINE_S)
    found = H2LOAD_LINE.search(run.stdout)
    assert run.returncode == 0 and found is not None, run.stdout + run.stderr
    return tuple(int(count) for count in found.groups())


@needs_h2load
@pytest.mark.parametrize("mount", ["asgi/echo", "wsgi/environ"])
def test_h2load_with_prior_knowledge(h2c_server: Server, mount: str) -> None:
    n = H2LOAD_REQUESTS
    assert h2load(f"{h2c_server.url}/{mount}") == (n, n, n, n, 0, 0, 0)


@needs_h2load
def test_h2load_over_tls(tls_server: Server) -> None:
    n = H2LOAD_REQUESTS
    assert h2load(f"https://127.0.0.1:{tls_server.port}/asgi/echo") == (n, n, n, n, 0, 0, 0)


# -- httpx -------------------------------------------------------------------------------

CONCURRENT_STREAMS = 60


def test_many_concurrent_streams_on_one_httpx_connection(h2c_server: Server) -> None:
    async def one(client: httpx.AsyncClient, i: int) -> tuple[bytes, list[object]]:
        posted = await client.post("/asgi/echo", content=b"%d;" % i * (i * 100))
        scope = (await client.get(f"/asgi/scope?{i}")).json()
        assert posted.http_version == "HTTP/2" and scope["query_string"] == str(i)
        return posted.content, scope["client"]

    async def all_at_once() -> list[tuple[bytes, list[object]]]:
        async with httpx.AsyncClient(
            base_url=h2c_server.url, http1=False, http2=True, timeout=CLIENT_TIMEOUT_S
        ) as client:
            await client.get("/asgi/scope")  # the connection, before the crowd
            return await asyncio.gather(*(one(client, i) for i in range(CONCURRENT_STREAMS)))

    answers = asyncio.run(all_at_once())
    assert [body for body, _ in answers] == [
        b"%d;" % i * (i * 100) for i in range(CONCURRENT_STREAMS)
    ]
    # One connection carried every stream: every scope saw the same client port.
    assert len({tuple(client) for _, client in answers}) == 1


def test_a_download_far_bigger_than_the_windows(h2c_server: Server) -> None:
    size = 0
    client = httpx.Client(http1=False, http2=True, timeout=CLIENT_TIMEOUT_S)
    with client, client.stream("GET", f"{h2c_server.url}/asgi/big") as response:
        assert response.http_version == "HTTP/2"
        for piece in response.iter_raw():
            assert piece == b"x" * len(piece)
            size += len(piece)
    assert size == 64 * 1024 * 1024  # 1,000 times the stream's initial window


# -- neither HTTP/1.x nor HTTP/2 ------------------------------------------------------------


def test_a_first_line_naming_another_protocol_gets_no_reply(h2c_server: Server) -> None:
    with h2c_server.connect() as sock:
        sock.sendall(b"INVALID CONNECTION PREFACE\r\n\r\n")  # h2spec's case 3.5/2
        assert read_until_closed(sock, CLIENT_TIMEOUT_S) == (b"", True)
    with h2c_server.connect() as sock:
        sock.sendall(b"GARBAGE\r\n\r\n")  # not shaped like a request line: HTTP/1.1's
        reply, closed = read_until_closed(sock, CLIENT_TIMEOUT_S)
        assert reply.startswith(b"HTTP/1.1 400 ") and closed
