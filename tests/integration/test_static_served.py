"""A `static = "DIR"` mount served by a real server, next to an app mounted at "/",
over both HTTP sessions: httpx for the ordinary requests, raw sockets for the targets
no well-behaved client would send (it would normalise them first)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from support.deadlines import read_response
from support.servers import Server

from gateway.adapters.static import CHUNK_BYTES

Serve = Callable[[str], Server]
SECRET = b"SECRET-OUTSIDE-THE-STATIC-DIR"
CSS = b"body { color: red }\n"
# Many chunks and many times the transport's high-water mark: the body is streamed.
BIG = hashlib.sha256(b"seed").digest() * (40 * CHUNK_BYTES // 32)

MOUNTS = """
[server]

[[mount]]
prefix = "/static"
static = "site/static"

[[mount]]
prefix = "/"
app = "probe_asgi:app"
interface = "asgi"
"""


@pytest.fixture
def server(serve: Serve, tmp_path: Path) -> Server:
    root = tmp_path / "site" / "static"
    (root / "css").mkdir(parents=True)
    (root / "css" / "site.css").write_bytes(CSS)
    (root / "big.bin").write_bytes(BIG)
    (root / ".env").write_bytes(SECRET)
    (root / "out.txt").symlink_to(tmp_path / "secret.txt")
    (root / "outdir").symlink_to(tmp_path / "outside")
    (tmp_path / "secret.txt").write_bytes(SECRET)
    (tmp_path / "site" / "secret.txt").write_bytes(SECRET)
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.txt").write_bytes(SECRET)
    return serve(MOUNTS)


def test_get_head_and_conditional_requests(server: Server) -> None:
    with httpx.Client(base_url=server.url, timeout=10) as client:
        full = client.get("/static/css/site.css")
        assert (full.status_code, full.content) == (200, CSS)
        assert full.headers["content-type"] == "text/css; charset=utf-8"
        etag, date = full.headers["etag"], full.headers["last-modified"]
        head = client.head("/static/css/site.css")  # same connection: framing holds
        assert (head.status_code, head.content) == (200, b"")
        assert head.headers["content-length"] == str(len(CSS))
        revalidated = client.get("/static/css/site.css", headers={"if-none-match": etag})
        assert (revalidated.status_code, revalidated.content) == (304, b"")
        cached = client.get("/static/css/site.css", headers={"if-modified-since": date})
        assert (cached.status_code, cached.content) == (304, b"")
        assert client.get("/static/css/site.css").content == CSS  # and still usable after


def test_ranges(server: Server) -> None:
    with httpx.Client(base_url=server.url, timeout=10) as client:
        part = client.get("/static/css/site.css", headers={"range": "bytes=5-9"})
        assert (part.status_code, part.content) == (206, CSS[5:10])
        assert part.headers["content-range"] == f"bytes 5-9/{len(CSS)}"
        suffix = client.get("/static/big.bin", headers={"range": "bytes=-100"})
        assert (suffix.status_code, suffix.content) == (206, BIG[-100:])
        start = 3 * CHUNK_BYTES + 7
        tail = client.get("/static/big.bin", headers={"range": f"bytes={start}-"})
        assert (tail.status_code, tail.content) == (206, BIG[start:])
        over = client.get("/static/css/site.css", headers={"range": "bytes=999-"})
        assert over.status_code == 416
        assert over.headers["content-range"] == f"bytes */{len(CSS)}"


def test_a_large_file_arrives_whole(server: Server) -> None:
    with httpx.stream("GET", server.url + "/static/big.bin", timeout=10) as response:
        assert response.headers["content-length"] == str(len(BIG))
        assert b"".join(response.iter_bytes()) == BIG


def test_methods_other_than_get_and_head_are_405(server: Server) -> None:
    response = httpx.post(server.url + "/static/css/site.css", content=b"x", timeout=10)
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD"


def test_the_app_beside_it_still_answers(server: Server) -> None:
    scope = httpx.get(server.url + "/scope", timeout=10)
    assert (scope.status_code, scope.json()["root_path"]) == (200, "")
    assert httpx.get(server.url + "/static/nope.css", timeout=10).status_code == 404


def raw_get(server: Server, target: bytes) -> tuple[int, bytes]:
    """Send one request with `target` as is; the status and everything that came back."""
    with server.connect() as sock:
        sock.sendall(b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        reply = read_response(sock)
    return int(reply.split(b" ", 2)[1]), reply


@pytest.mark.parametrize(
    "target",
    [
        b"/static/../secret.txt",
        b"/static/../../secret.txt",
        b"/static/%2e%2e/secret.txt",
        b"/static/%2E%2E/%2E%2E/secret.txt",
        b"/static/..%2fsecret.txt",
        b"/static/%2e%2e%2f%2e%2e%2fsecret.txt",
        b"/static/css/..%2F..%2F..%2Fsecret.txt",
        b"/static/..%5csecret.txt",
        b"/static/..\\secret.txt",  # raw backslashes: both parsers pass them to the app
        b"/static/css\\..\\..\\secret.txt",
        b"/static/css/site.css%00.png",
        b"/static//etc/passwd",
        b"/static/%2fetc%2fpasswd",
        b"/static/.env",
        b"/static/%2eenv",
        b"/static/out.txt",
        b"/static/outdir/secret.txt",
        b"/static/css",
        b"/static/css/",
    ],
)
def test_traversal_attempts_are_404(server: Server, target: bytes) -> None:
    status, reply = raw_get(server, target)
    assert status == 404, reply
    assert SECRET not in reply


def test_pipelined_head_304_and_get_keep_their_framing(server: Server) -> None:
    """A HEAD (a length and no body) and a 304 (neither) on one connection, then a GET:
    the third answer arrives whole, so neither left stray or missing bytes."""
    etag = httpx.get(server.url + "/static/css/site.css", timeout=10).headers["etag"]
    head = b"HEAD /static/css/site.css HTTP/1.1\r\nHost: x\r\n\r\n"
    cached = b"GET /static/css/site.css HTTP/1.1\r\nHost: x\r\nIf-None-Match: %s\r\n\r\n"
    last = b"GET /static/css/site.css HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    with server.connect() as sock:
        sock.sendall(head + cached % etag.encode() + last)
        reply = read_response(sock)
    statuses = [line.split(b" ")[1] for line in reply.split(b"\r\n") if line.startswith(b"HTTP/")]
    assert statuses == [b"200", b"304", b"200"]
    assert reply.endswith(b"\r\n\r\n" + CSS)
    assert reply.count(CSS) == 1
