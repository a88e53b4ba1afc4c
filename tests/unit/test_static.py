"""adapters.static: the static-file app driven with real files and real ASGI calls.

No sockets: each request is one call of the app with a hand-built http scope (mounted
at /static, as the router would hand it over), and the messages it sends are kept.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from email.utils import formatdate
from pathlib import Path
from typing import Any

import pytest

from gateway.adapters import load_static
from gateway.adapters.static import CHUNK_BYTES, FileChanged, StaticFiles, byte_range
from gateway.asgi import Message
from gateway.errors import AppLoadError, ClientDisconnected

CSS = b"body { color: red }\n"
BIG = bytes(range(256)) * (3 * CHUNK_BYTES // 256) + b"tail-bytes-17-long"
OLD_MTIME_S = 1_600_000_000  # 2020-09-13: older than any "now" by far


class Reply:
    """What the app sent: status, fields (names lowercase, as sent) and the body."""

    def __init__(self, messages: list[Message]) -> None:
        start, *bodies = messages
        assert start["type"] == "http.response.start"
        self.status: int = start["status"]
        self.headers: dict[bytes, bytes] = dict(start["headers"])
        assert len(self.headers) == len(start["headers"]), "a field sent twice"
        assert all(m["type"] == "http.response.body" for m in bodies)
        assert not bodies[-1].get("more_body", False), "the response never ended"
        self.bodies = [m.get("body", b"") for m in bodies]
        self.body = b"".join(self.bodies)


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A collectstatic-like folder, with a secret beside it to try to reach."""
    root = tmp_path / "static"
    (root / "css").mkdir(parents=True)
    (root / "css" / "site.css").write_bytes(CSS)
    (root / "big.bin").write_bytes(BIG)
    (root / "empty.txt").write_bytes(b"")
    (root / ".env").write_bytes(b"SECRET=1\n")
    (root / ".git").mkdir()
    (root / ".git" / "config").write_bytes(b"[core]\n")
    (tmp_path / "secret.txt").write_bytes(b"outside\n")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.txt").write_bytes(b"outside\n")
    return root


def call(
    app: StaticFiles,
    path: str,
    method: str = "GET",
    headers: list[tuple[bytes, bytes]] | None = None,
    raw_path: bytes | None = None,
) -> Reply:
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    asyncio.run(app(scope(path, method, headers, raw_path), receive, send))
    return Reply(sent)


def scope(
    path: str, method: str, headers: list[tuple[bytes, bytes]] | None, raw_path: bytes | None
) -> dict[str, Any]:
    return {
        "type": "http",
        "method": method,
        "path": path,
        "raw_path": raw_path if raw_path is not None else path.encode(),
        "root_path": "/static",
        "query_string": b"",
        "headers": headers or [],
    }


def get(app: StaticFiles, path: str, *fields: tuple[bytes, bytes]) -> Reply:
    return call(app, path, headers=list(fields))


# -- what a file is served as -------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("site.css", b"text/css; charset=utf-8"),
        ("app.js", b"text/javascript; charset=utf-8"),
        ("page.html", b"text/html; charset=utf-8"),
        ("logo.png", b"image/png"),
        ("logo.svg", b"image/svg+xml"),
        ("font.woff2", b"font/woff2"),
        ("data.json", b"application/json"),
        ("site.css.gz", b"application/octet-stream"),  # not text/css: it is gzip bytes
        ("blob.unknownext", b"application/octet-stream"),
        ("LICENSE", b"application/octet-stream"),
    ],
)
def test_content_types(site: Path, name: str, kind: bytes) -> None:
    (site / name).write_bytes(b"x")
    reply = get(StaticFiles(str(site)), f"/static/{name}")
    assert (reply.status, reply.headers[b"content-type"]) == (200, kind)


def test_get_serves_the_file_with_its_validators(site: Path) -> None:
    os.utime(site / "css" / "site.css", (OLD_MTIME_S, OLD_MTIME_S))
    reply = get(StaticFiles(str(site)), "/static/css/site.css")
    assert reply.status == 200
    assert reply.body == CSS
    assert reply.headers[b"content-length"] == str(len(CSS)).encode()
    assert reply.headers[b"accept-ranges"] == b"bytes"
    assert reply.headers[b"last-modified"] == b"Sun, 13 Sep 2020 12:26:40 GMT"
    etag = reply.headers[b"etag"]
    assert etag.startswith(b'"') and etag.endswith(b'"'), "a strong entity tag"


def test_head_has_the_fields_of_get_and_no_body(site: Path) -> None:
    app = StaticFiles(str(site))
    for path in ("/static/css/site.css", "/static/big.bin"):
        head, full = call(app, path, "HEAD"), get(app, path)
        assert (head.status, head.headers, head.body) == (200, full.headers, b"")


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
def test_other_methods_are_405_with_allow(site: Path, method: str) -> None:
    reply = call(StaticFiles(str(site)), "/static/css/site.css", method)
    assert reply.status == 405
    assert reply.headers[b"allow"] == b"GET, HEAD"


def test_load_static_is_a_static_mount(site: Path) -> None:
    loaded = load_static(str(site))
    assert (loaded.interface, loaded.reference, loaded.pool_size) == ("static", str(site), None)
    assert not loaded.supports_lifespan


def test_a_missing_directory_fails_to_load(tmp_path: Path) -> None:
    with pytest.raises(AppLoadError, match="does not exist"):
        StaticFiles(str(tmp_path / "nope"))
    (tmp_path / "file").write_text("x")
    with pytest.raises(AppLoadError, match="is not a directory"):
        load_static(str(tmp_path / "file"))


def test_other_scopes_are_refused(site: Path) -> None:
    async def receive() -> Message:
        return {"type": "lifespan.startup"}

    async def send(message: Message) -> None:
        raise AssertionError("nothing may be sent")

    with pytest.raises(ValueError, match="http scopes only"):
        asyncio.run(StaticFiles(str(site))({"type": "lifespan"}, receive, send))


# -- conditional requests -------------------------------------------------------------------


def test_if_none_match(site: Path) -> None:
    app = StaticFiles(str(site))
    etag = get(app, "/static/css/site.css").headers[b"etag"]
    for field in (etag, b"W/" + etag, b"*", b'"other", ' + etag):
        reply = get(app, "/static/css/site.css", (b"if-none-match", field))
        assert (reply.status, reply.body) == (304, b""), field
        assert reply.headers[b"etag"] == etag
        assert b"content-length" not in reply.headers
    assert get(app, "/static/css/site.css", (b"if-none-match", b'"other"')).status == 200


def test_if_modified_since(site: Path) -> None:
    os.utime(site / "css" / "site.css", (OLD_MTIME_S, OLD_MTIME_S))
    app = StaticFiles(str(site))
    same = formatdate(OLD_MTIME_S, usegmt=True).encode()
    later = formatdate(OLD_MTIME_S + 60, usegmt=True).encode()
    earlier = formatdate(OLD_MTIME_S - 1, usegmt=True).encode()
    assert get(app, "/static/css/site.css", (b"if-modified-since", same)).status == 304
    assert get(app, "/static/css/site.css", (b"if-modified-since", later)).status == 304
    assert get(app, "/static/css/site.css", (b"if-modified-since", earlier)).status == 200
    assert get(app, "/static/css/site.css", (b"if-modified-since", b"yesterday")).status == 200


def test_if_none_match_takes_precedence_over_if_modified_since(site: Path) -> None:
    """RFC 9110 §13.1.3: with If-None-Match present, If-Modified-Since is not looked at."""
    os.utime(site / "css" / "site.css", (OLD_MTIME_S, OLD_MTIME_S))
    app = StaticFiles(str(site))
    etag = get(app, "/static/css/site.css").headers[b"etag"]
    fresh = (b"if-modified-since", formatdate(OLD_MTIME_S, usegmt=True).encode())
    stale = (b"if-modified-since", formatdate(OLD_MTIME_S - 60, usegmt=True).encode())
    assert get(app, "/static/css/site.css", (b"if-none-match", b'"x"'), fresh).status == 200
    assert get(app, "/static/css/site.css", (b"if-none-match", etag), stale).status == 304


def test_a_changed_file_gets_a_new_etag(site: Path) -> None:
    app = StaticFiles(str(site))
    path = site / "css" / "site.css"
    os.utime(path, (OLD_MTIME_S, OLD_MTIME_S))
    etag = get(app, "/static/css/site.css").headers[b"etag"]
    path.write_bytes(CSS + b"/* more */\n")
    os.utime(path, (OLD_MTIME_S, OLD_MTIME_S))  # same mtime: the size tells them apart
    reply = get(app, "/static/css/site.css", (b"if-none-match", etag))
    assert (reply.status, reply.body) == (200, CSS + b"/* more */\n")
    os.utime(path, (OLD_MTIME_S + 1, OLD_MTIME_S + 1))  # same size: the mtime does
    assert reply.headers[b"etag"] != get(app, "/static/css/site.css").headers[b"etag"]


def test_if_match_and_if_unmodified_since_give_412(site: Path) -> None:
    os.utime(site / "css" / "site.css", (OLD_MTIME_S, OLD_MTIME_S))
    app = StaticFiles(str(site))
    etag = get(app, "/static/css/site.css").headers[b"etag"]
    earlier = formatdate(OLD_MTIME_S - 1, usegmt=True).encode()
    assert get(app, "/static/css/site.css", (b"if-match", b'"x"')).status == 412
    assert get(app, "/static/css/site.css", (b"if-match", b"W/" + etag)).status == 412
    assert get(app, "/static/css/site.css", (b"if-match", etag)).status == 200
    assert get(app, "/static/css/site.css", (b"if-unmodified-since", earlier)).status == 412


# -- ranges ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "start", "stop"),
    [
        (b"bytes=0-4", 0, 5),
        (b"bytes=5-", 5, len(CSS)),
        (b"bytes=-3", len(CSS) - 3, len(CSS)),
        (b"bytes=3-999999", 3, len(CSS)),  # last-pos past the end: up to the end
        (b"bytes=-999999", 0, len(CSS)),  # a suffix longer than the file: all of it
        (b"BYTES=0-0", 0, 1),
        (b"bytes=0-", 0, len(CSS)),  # the whole file, still as a 206
    ],
)
def test_range_is_206(site: Path, field: bytes, start: int, stop: int) -> None:
    reply = get(StaticFiles(str(site)), "/static/css/site.css", (b"range", field))
    assert reply.status == 206
    assert reply.body == CSS[start:stop]
    assert reply.headers[b"content-range"] == f"bytes {start}-{stop - 1}/{len(CSS)}".encode()
    assert reply.headers[b"content-length"] == str(stop - start).encode()


@pytest.mark.parametrize("field", [b"bytes=%d-" % len(CSS), b"bytes=999-1000", b"bytes=-0"])
def test_unsatisfiable_range_is_416(site: Path, field: bytes) -> None:
    reply = get(StaticFiles(str(site)), "/static/css/site.css", (b"range", field))
    assert reply.status == 416
    assert reply.headers[b"content-range"] == b"bytes */%d" % len(CSS)


def test_any_range_of_an_empty_file_is_416(site: Path) -> None:
    reply = get(StaticFiles(str(site)), "/static/empty.txt", (b"range", b"bytes=0-"))
    assert (reply.status, reply.headers[b"content-range"]) == (416, b"bytes */0")


@pytest.mark.parametrize(
    "field",
    [
        b"bytes=0-1,4-5",  # several ranges: the whole file rather than multipart
        b"bytes=5-2",  # last-pos before first-pos: invalid, ignored
        b"items=0-1",
        b"bytes=abc",
        b"bytes=-",
        b"bytes=" + b"9" * 30 + b"-",
    ],
)
def test_other_ranges_get_the_whole_file(site: Path, field: bytes) -> None:
    reply = get(StaticFiles(str(site)), "/static/css/site.css", (b"range", field))
    assert (reply.status, reply.body) == (200, CSS)
    assert b"content-range" not in reply.headers


def test_head_ignores_range(site: Path) -> None:
    reply = call(StaticFiles(str(site)), "/static/css/site.css", "HEAD", [(b"range", b"bytes=0-1")])
    assert (reply.status, reply.body) == (200, b"")
    assert reply.headers[b"content-length"] == str(len(CSS)).encode()


def test_if_range(site: Path) -> None:
    os.utime(site / "css" / "site.css", (OLD_MTIME_S, OLD_MTIME_S))
    app = StaticFiles(str(site))
    full = get(app, "/static/css/site.css")
    etag, date = full.headers[b"etag"], full.headers[b"last-modified"]
    span = (b"range", b"bytes=0-3")
    assert get(app, "/static/css/site.css", span, (b"if-range", etag)).status == 206
    assert get(app, "/static/css/site.css", span, (b"if-range", date)).status == 206
    for stale in (b'"other"', b"W/" + etag, formatdate(OLD_MTIME_S + 5, usegmt=True).encode()):
        reply = get(app, "/static/css/site.css", span, (b"if-range", stale))
        assert (reply.status, reply.body) == (200, CSS), stale


def test_if_range_date_of_a_file_changed_this_second_is_not_strong(site: Path) -> None:
    app = StaticFiles(str(site))
    full = get(app, "/static/css/site.css")  # written just now, by the fixture
    reply = get(
        app,
        "/static/css/site.css",
        (b"range", b"bytes=0-3"),
        (b"if-range", full.headers[b"last-modified"]),
    )
    assert reply.status == 200


def test_byte_range_table() -> None:
    assert byte_range(b"bytes=0-9", 100) == (0, 10)
    assert byte_range(b" bytes=90- ", 100) == (90, 100)
    assert byte_range(b"bytes=-10", 100) == (90, 100)
    assert byte_range(b"bytes=100-", 100) == (0, 0)
    assert byte_range(b"bytes=0-0, 5-9", 100) is None


# -- large files: streamed in chunks ------------------------------------------------------


def test_a_large_file_is_streamed_in_chunks(site: Path) -> None:
    reply = get(StaticFiles(str(site)), "/static/big.bin")
    assert reply.body == BIG
    assert len(reply.bodies) == -(-len(BIG) // CHUNK_BYTES)
    assert max(len(body) for body in reply.bodies) == CHUNK_BYTES


def test_a_range_across_chunks_of_a_large_file(site: Path) -> None:
    start, stop = CHUNK_BYTES - 10, 2 * CHUNK_BYTES + 10
    field = (b"range", b"bytes=%d-%d" % (start, stop - 1))
    reply = get(StaticFiles(str(site)), "/static/big.bin", field)
    assert (reply.status, reply.body) == (206, BIG[start:stop])


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_a_client_gone_mid_file_leaves_no_file_open(site: Path) -> None:
    app = StaticFiles(str(site))
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)
        if len(sent) == 3:  # the start and one chunk went out; then the client is gone
            raise ClientDisconnected("client went away")

    async def receive() -> Message:
        return {"type": "http.disconnect"}

    async def main() -> None:
        with pytest.raises(ClientDisconnected):
            await app(scope("/static/big.bin", "GET", None, None), receive, send)

    before = open_fds()
    asyncio.run(main())
    assert open_fds() == before
    assert len(sent) == 3


class GatedExecutor(ThreadPoolExecutor):
    """The loop's default executor, with its calls held at a gate the test opens: a
    read stays in flight for as long as the test wants."""

    def __init__(self) -> None:
        super().__init__(max_workers=1)
        self.gate = threading.Event()
        self.submitted = 0

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        self.submitted += 1

        def gated() -> Any:
            self.gate.wait(10)
            return fn(*args, **kwargs)

        return super().submit(gated)


async def wait_for(condition: Callable[[], bool], deadline_s: float = 10.0) -> None:
    end = time.monotonic() + deadline_s
    while not condition():
        assert time.monotonic() < end, "condition not met before the deadline"
        await asyncio.sleep(0.001)


def test_a_request_cancelled_mid_read_closes_its_file_after_the_read(site: Path) -> None:
    """The fd stays open while a thread still reads it (its number must not be reused
    under that read), and is closed once the read is over."""
    app = StaticFiles(str(site))

    async def send(message: Message) -> None:
        pass

    async def receive() -> Message:
        return {"type": "http.disconnect"}

    async def main() -> None:
        executor = GatedExecutor()
        asyncio.get_running_loop().set_default_executor(executor)
        before = open_fds()
        task = asyncio.create_task(app(scope("/static/big.bin", "GET", None, None), receive, send))
        await wait_for(lambda: executor.submitted == 1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert open_fds() == before + 1, "closed under a read still in flight"
        executor.gate.set()
        await wait_for(lambda: open_fds() == before)
        executor.shutdown()

    asyncio.run(main())


def test_a_file_that_shrinks_while_sent_ends_the_response(site: Path) -> None:
    app = StaticFiles(str(site))

    async def send(message: Message) -> None:
        if message["type"] == "http.response.body":
            (site / "big.bin").write_bytes(b"short")  # truncated under the download

    async def receive() -> Message:
        return {"type": "http.disconnect"}

    before = open_fds()
    with pytest.raises(FileChanged):
        asyncio.run(app(scope("/static/big.bin", "GET", None, None), receive, send))
    assert open_fds() == before


# -- what is never served -------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/static", "/static/", "/static/css", "/static/css/", "/static/css/nope.css"]
)
def test_directories_and_missing_files_are_404(site: Path, path: str) -> None:
    (site / "css" / "index.html").write_bytes(b"<p>no index pages</p>")
    reply = get(StaticFiles(str(site)), path)
    assert reply.status == 404
    assert b"index" not in reply.body and b"site.css" not in reply.body


@pytest.mark.parametrize(
    ("path", "raw_path"),
    [
        ("/static/../secret.txt", None),
        ("/static/css/../../secret.txt", None),
        ("/static/../secret.txt", b"/static/%2e%2e/secret.txt"),
        ("/static/../secret.txt", b"/static/..%2Fsecret.txt"),
        ("/static/css/site.css", b"/static/css%2fsite.css"),  # exists, but not by that name
        ("/static/css/site.css", b"/static/css%5Csite.css"),
        ("/static/..\\secret.txt", None),
        ("/static/css\\site.css", None),
        ("/static/css/site.css\x00.png", b"/static/css/site.css%00.png"),
        ("/static/css/site.css\x00", None),
        ("/static//etc/passwd", None),
        ("/static/" + str(Path("/etc/passwd")), None),
        ("/static/./css/site.css", None),
        ("/static/.env", None),
        ("/static/.git/config", None),
    ],
)
def test_traversal_attempts_are_404(site: Path, path: str, raw_path: bytes | None) -> None:
    reply = call(StaticFiles(str(site)), path, raw_path=raw_path)
    assert reply.status == 404
    assert b"outside" not in reply.body and CSS not in reply.body


def test_symlinks_out_of_the_directory_are_404(site: Path, tmp_path: Path) -> None:
    (site / "link.txt").symlink_to(tmp_path / "secret.txt")
    (site / "linkdir").symlink_to(tmp_path / "outside")
    (site / "passwd").symlink_to("/etc/passwd")
    (site / "inside.css").symlink_to(site / "css" / "site.css")
    app = StaticFiles(str(site))
    for path in ("/static/link.txt", "/static/linkdir/secret.txt", "/static/passwd"):
        assert get(app, path).status == 404, path
    assert get(app, "/static/inside.css").body == CSS  # a link that stays inside is followed


def test_a_directory_reached_through_a_symlink_is_served_from_its_target(tmp_path: Path) -> None:
    """DIR itself may be a symlink (a release directory): resolved once, at load."""
    real = tmp_path / "releases" / "v2"
    real.mkdir(parents=True)
    (real / "app.css").write_bytes(CSS)
    (tmp_path / "current").symlink_to(real)
    assert get(StaticFiles(str(tmp_path / "current")), "/static/app.css").body == CSS


def test_fifos_and_unreadable_files_are_404_without_hanging(site: Path) -> None:
    os.mkfifo(site / "pipe")
    (site / "locked.css").write_bytes(CSS)
    (site / "locked.css").chmod(0)
    app = StaticFiles(str(site))
    assert get(app, "/static/pipe").status == 404
    if os.geteuid() != 0:  # root reads a mode-0 file anyway
        assert get(app, "/static/locked.css").status == 404


def test_mounted_at_the_root(site: Path) -> None:
    app = StaticFiles(str(site))
    root_scope = scope("/css/site.css", "GET", None, None) | {"root_path": ""}
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    async def receive() -> Message:
        return {"type": "http.disconnect"}

    asyncio.run(app(root_scope, receive, send))
    assert Reply(sent).body == CSS
    sent.clear()
    asyncio.run(app(scope("/", "GET", None, None) | {"root_path": ""}, receive, send))
    assert Reply(sent).status == 404
