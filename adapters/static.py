"""Static files as an ASGI 3 app: one directory served read-only, over GET and HEAD.

A `static = "DIR"` mount serves this app (gateway/process/worker.py); it needs nothing from the
gateway but the ASGI spec, so it is importable and testable on its own. Rules:
1. No escape from the directory. The part of the path below the mount's `root_path` is
   split into segments, and before the disk is touched the request is 404 when its raw
   target carries an encoded slash, backslash or NUL (%2F, %5C, %00: a separator that a
   decoded path would hide), or a segment is empty (`//`, an absolute path) or starts
   with "." (`..`, `.`, dotfiles such as .env or .git), or holds a backslash or a NUL.
   Then the path is resolved with every symlink followed (os.path.realpath) and must stay
   inside the resolved directory: a symlink that points out is 404, one that stays in
   is followed. The file is opened O_NOFOLLOW and O_NONBLOCK (a symlink swapped in after
   the check, or a FIFO, cannot make the open follow or hang).
2. Only regular files: a directory is 404 (no listing, no index.html: a collectstatic
   folder has no pages to index), and so is a FIFO, a device or an unreadable file.
3. GET and HEAD only; any other method is 405 with `Allow: GET, HEAD` (RFC 9110 §15.5.6).
4. Validators: a strong ETag made of the file's mtime (ns) and size, and Last-Modified.
   Strong because Range and If-Range need strong comparison (RFC 9110 §13.1.5); mtime
   in nanoseconds plus size changes with every rewrite that a client could observe apart
   from an in-place rewrite of the same length in the same clock tick (nginx makes the
   same trade with seconds). No inode in it: hosts serving one collectstatic output
   agree on the tags. Preconditions go in RFC 9110 §13.2.2's order: If-Match, else
   If-Unmodified-Since (412); If-None-Match, else If-Modified-Since (304).
5. Range (RFC 9110 §14): one `bytes` range on GET, `a-b`, `a-` or `-n`, is 206 with
   Content-Range; an unsatisfiable one is 416 with `Content-Range: bytes */SIZE`.
   Several ranges, another unit or a malformed value get the whole file (200), as
   §14.2 allows (it also spares us a multipart body, and overlapping-range abuse).
   If-Range is honoured: the range stands only when it holds our ETag (strong
   comparison) or our exact Last-Modified date, at least a second old (§13.1.5).
6. Content-Type from the stdlib's own table (mimetypes.MimeTypes(), not the host's
   /etc/mime.types: every host answers alike) plus a few web types it lacks; text types
   carry `; charset=utf-8`; an unknown type, or a compressed file (.gz), is
   application/octet-stream.
7. The loop never waits on a large read. Resolving, opening and stat-ing run in the loop
   (metadata of a local directory answers from the kernel's caches), and so does the
   read of a body up to SMALL_BODY_BYTES; a larger body is read CHUNK_BYTES at a time in
   the loop's default executor, one read in flight per response, each chunk sent (and,
   past the transport's high-water mark, drained) before the next read: backpressure.
   sendfile(2) is not used: uvloop (0.23) does not implement loop.sendfile, and a write
   to the socket beside the transport's own buffer could reorder bytes. A file that
   shrinks while it is sent ends the response early (FileChanged): a 500 before the
   head went out, a closed connection after.
"""

from __future__ import annotations

import asyncio
import mimetypes
import os
import re
import stat
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC
from email.utils import formatdate, parsedate_to_datetime
from http import HTTPStatus

from gateway.asgi import Receive, Scope, Send, send_plain
from gateway.errors import AppLoadError

Field = tuple[bytes, bytes]

# One read from the file, and one ASGI body message: 64 KiB is shutil's copy buffer on
# Linux (COPY_BUFSIZE), large enough that the executor hand-off (tens of microseconds)
# is small next to the copy, small enough that a few hundred concurrent downloads hold
# a few tens of MiB (one chunk each, plus what the transport buffers).
CHUNK_BYTES = 64 * 1024
# Bodies up to this size are read in the loop, in one pread: from the page cache that
# takes microseconds, less than the hand-off to a thread would. Larger bodies (and a
# cold cache is where a slow read hides) go to the executor.
SMALL_BODY_BYTES = CHUNK_BYTES
# Digits of a range position: up to int64's 19 (ext4 and XFS file sizes fit). Longer
# values are treated as malformed (the whole file is served) before int() sees them.
MAX_RANGE_DIGITS = 19

ALLOW = b"GET, HEAD"
_OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC
# Percent-encodings that would smuggle a separator or a NUL past the segment checks of
# the decoded path (rule "no escape from the directory"): "/static/..%2Fsecret" decodes
# to "/static/../secret".
_ENCODED_SEPARATORS = (b"%2f", b"%5c", b"%00")
_BYTE_RANGE = re.compile(rb"bytes=(\d{0,%d})-(\d{0,%d})" % (MAX_RANGE_DIGITS, MAX_RANGE_DIGITS))
_CONDITIONAL = (b"if-match", b"if-unmodified-since", b"if-none-match", b"if-modified-since")
_RANGE_FIELDS = (b"range", b"if-range")

# Web types the stdlib table lacks or names the legacy way (RFC 9239: text/javascript).
_WEB_TYPES = {
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".map": "application/json",
    ".woff": "font/woff",
    ".woff2": "font/woff2",
    ".ttf": "font/ttf",
    ".otf": "font/otf",
    ".webp": "image/webp",
    ".md": "text/markdown",
}


def _build_types() -> mimetypes.MimeTypes:
    types = mimetypes.MimeTypes()  # the stdlib's table only, without the host's files
    for extension, kind in _WEB_TYPES.items():
        types.add_type(kind, extension)
    return types


_TYPES = _build_types()


class FileChanged(OSError):
    """The file shrank between its stat and its read: the declared length cannot be met."""


def content_type(name: str) -> bytes:
    """The Content-Type of a file called `name` (rule "Content-Type from the stdlib's own
    table")."""
    kind, encoding = _TYPES.guess_type(name, strict=False)
    if kind is None or encoding is not None:
        return b"application/octet-stream"
    if kind.startswith("text/"):
        kind += "; charset=utf-8"
    return kind.encode("ascii")


@dataclass(frozen=True)
class FileMeta:
    """What the response says about the file, from one fstat."""

    size: int
    mtime_s: int  # whole seconds, the resolution of an HTTP-date
    etag: bytes
    last_modified: bytes
    content_type: bytes

    @classmethod
    def of(cls, info: os.stat_result, name: str) -> FileMeta:
        etag = b'"%x-%x"' % (info.st_mtime_ns, info.st_size)
        date = formatdate(info.st_mtime, usegmt=True).encode("ascii")  # IMF-fixdate
        return cls(info.st_size, int(info.st_mtime), etag, date, content_type(name))


# -- requests to decisions (pure) --------------------------------------------------------


def request_segments(scope: Scope) -> list[str] | None:
    """The path segments below the mount, or None when the path may not name a file
    of the directory (rule "no escape from the directory")."""
    raw = scope.get("raw_path")
    if raw and any(code in raw.lower() for code in _ENCODED_SEPARATORS):
        return None
    root: str = scope.get("root_path", "")
    path: str = scope["path"]
    if not path.startswith(root + "/"):
        return None  # the mount's own root (a directory), or a path not under it
    segments = path[len(root) + 1 :].split("/")
    for segment in segments:
        if not segment or segment[0] == "." or "\\" in segment or "\0" in segment:
            return None
    return segments


def request_fields(headers: Iterable[Field], wanted: tuple[bytes, ...]) -> dict[bytes, bytes]:
    """The `wanted` fields of a request, repeated lines joined by commas (RFC 9110
    §5.3); field names in ASGI scopes are lowercase already."""
    found: dict[bytes, bytes] = {}
    for name, value in headers:
        if name in wanted:
            found[name] = found[name] + b", " + value if name in found else value
    return found


def http_date(value: bytes | None) -> int | None:
    """An HTTP-date as POSIX seconds; None when absent or not a date, which the caller
    then ignores (RFC 9110 §13.1.3, §13.1.4)."""
    if value is None:
        return None
    try:
        date = parsedate_to_datetime(value.decode("latin-1"))
        # An HTTP-date is GMT (RFC 9110 §5.6.7); a "-0000" zone parses as naive, not local.
        return int(date.replace(tzinfo=date.tzinfo or UTC).timestamp())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def etag_listed(field: bytes, etag: bytes, *, weak: bool) -> bool:
    """Whether `field` (`*` or a list of entity tags) holds `etag`, by weak or strong
    comparison (RFC 9110 §8.8.3.2). Splitting on commas is safe here: our tags hold
    none, so a piece of a tag that did can never equal one of ours."""
    if field.strip() == b"*":
        return True
    for tag in field.split(b","):
        tag = tag.strip()
        if weak:
            tag = tag.removeprefix(b"W/")
        if tag == etag:
            return True
    return False


def precondition_status(fields: dict[bytes, bytes], meta: FileMeta) -> HTTPStatus | None:
    """412 or 304 when a precondition says so, else None (RFC 9110 §13.2.2, for GET
    and HEAD)."""
    if_match = fields.get(b"if-match")
    if if_match is not None:
        if not etag_listed(if_match, meta.etag, weak=False):
            return HTTPStatus.PRECONDITION_FAILED
    else:
        since = http_date(fields.get(b"if-unmodified-since"))
        if since is not None and meta.mtime_s > since:
            return HTTPStatus.PRECONDITION_FAILED
    if_none_match = fields.get(b"if-none-match")
    if if_none_match is not None:
        # §13.1.2: weak comparison; for GET and HEAD a match is 304, not 412.
        return HTTPStatus.NOT_MODIFIED if etag_listed(if_none_match, meta.etag, weak=True) else None
    since = http_date(fields.get(b"if-modified-since"))
    if since is not None and meta.mtime_s <= since:
        return HTTPStatus.NOT_MODIFIED
    return None


def byte_range(value: bytes, size: int) -> tuple[int, int] | None:
    """The one range of a Range field, as (start, stop) with stop exclusive; an empty
    one (start == stop) is unsatisfiable. None: serve the whole file (rule "range")."""
    match = _BYTE_RANGE.fullmatch(value.strip().lower())
    if match is None:
        return None  # another unit, several ranges, or not the grammar of §14.1.1
    first, last = match.group(1), match.group(2)
    if not first:
        if not last:
            return None  # "bytes=-"
        # §14.1.1: a suffix of 0 bytes, or of an empty file, is unsatisfiable.
        return (max(0, size - int(last)), size) if int(last) and size else (0, 0)
    start = int(first)
    if last and int(last) < start:
        return None  # §14.1.1: last-pos < first-pos makes the range-spec invalid
    if start >= size:
        return (0, 0)
    return (start, size if not last else min(int(last) + 1, size))


def range_applies(if_range: bytes | None, meta: FileMeta, now_s: float) -> bool:
    """Whether If-Range (if sent) lets a Range stand (RFC 9110 §13.1.5): the validator
    must be our ETag, strongly, or our Last-Modified, which counts as strong only once
    the file is at least a second older than now."""
    if if_range is None:
        return True
    value = if_range.strip()
    if value.startswith((b'"', b"W/")):
        return value == meta.etag  # a weak tag never matches strongly
    return value == meta.last_modified and meta.mtime_s <= now_s - 1


# -- the app -----------------------------------------------------------------------------


class OpenFile:
    """A file descriptor and its one read in flight; closed only once no thread reads
    it, so its number cannot be reused under a read that outlived a cancelled request."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._reading: asyncio.Future[bytes] | None = None

    def read_now(self, size: int, offset: int) -> bytes:
        return self._checked(os.pread(self.fd, size, offset), size)

    async def read(self, size: int, offset: int) -> bytes:
        loop = asyncio.get_running_loop()
        self._reading = loop.run_in_executor(None, os.pread, self.fd, size, offset)
        # Shielded: a cancelled request leaves the read to finish, and close() waits.
        return self._checked(await asyncio.shield(self._reading), size)

    @staticmethod
    def _checked(data: bytes, size: int) -> bytes:
        if len(data) < size:
            raise FileChanged("the file shrank while it was being sent")
        return data

    def close(self) -> None:
        reading = self._reading
        if reading is not None and not reading.done():
            reading.add_done_callback(self._close_after)
        else:
            os.close(self.fd)

    def _close_after(self, reading: asyncio.Future[bytes]) -> None:
        if not reading.cancelled():
            reading.exception()  # retrieved: nobody awaits this read any more
        os.close(self.fd)


class StaticFiles:
    """Serves the regular files under `directory` (see the module's rules)."""

    def __init__(self, directory: str) -> None:
        root = os.path.realpath(directory)
        if not os.path.isdir(root):
            reason = "does not exist" if not os.path.exists(root) else "is not a directory"
            raise AppLoadError(f"cannot serve static files from {directory!r}: it {reason}")
        self.directory = directory
        self.root = root
        self._inside = root if root.endswith(os.sep) else root + os.sep

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            # ASGI: an app raises for a scope type it does not serve (lifespan included).
            raise ValueError(f"static files serve http scopes only, not {scope['type']!r}")
        if scope["method"] not in ("GET", "HEAD"):
            await send_plain(send, HTTPStatus.METHOD_NOT_ALLOWED, [(b"allow", ALLOW)])
            return
        opened = self.open(scope)
        if opened is None:
            await send_plain(send, HTTPStatus.NOT_FOUND)
            return
        file, meta = opened
        try:
            await respond(scope, send, file, meta)
        finally:
            file.close()

    def open(self, scope: Scope) -> tuple[OpenFile, FileMeta] | None:
        """The regular file the request names and its metadata, or None (rules "no escape
        from the directory" and "only regular files")."""
        segments = request_segments(scope)
        if segments is None:
            return None
        path = os.path.realpath(os.path.join(self.root, *segments))
        if not path.startswith(self._inside):
            return None
        try:
            fd = os.open(path, _OPEN_FLAGS)
        except OSError:
            return None  # missing, unreadable, a symlink swapped in, a name too long
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            os.close(fd)
            return None
        # Typed by the name asked for, as nginx does, not by a symlink's target.
        return OpenFile(fd), FileMeta.of(info, segments[-1])


async def respond(scope: Scope, send: Send, file: OpenFile, meta: FileMeta) -> None:
    """The answer for an open file: 304, 412, 416, 206 or 200."""
    status = precondition_status(request_fields(scope["headers"], _CONDITIONAL), meta)
    if status == HTTPStatus.NOT_MODIFIED:
        # RFC 9110 §15.4.5: the validators a 200 would carry, and no content fields.
        validators = [(b"etag", meta.etag), (b"last-modified", meta.last_modified)]
        await send({"type": "http.response.start", "status": status, "headers": validators})
        await send({"type": "http.response.body", "body": b""})
        return
    if status is not None:
        await send_plain(send, status)
        return
    span = None
    if scope["method"] == "GET":  # §14.2: Range is defined for GET only
        span = chosen_range(request_fields(scope["headers"], _RANGE_FIELDS), meta)
        if span is not None and span[0] == span[1]:
            unsatisfiable = [(b"content-range", b"bytes */%d" % meta.size)]
            await send_plain(send, HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE, unsatisfiable)
            return
    await send_file(scope, send, file, meta, span)


def chosen_range(fields: dict[bytes, bytes], meta: FileMeta) -> tuple[int, int] | None:
    """The range to serve, from Range and If-Range; None: the whole file."""
    value = fields.get(b"range")
    if value is None or not range_applies(fields.get(b"if-range"), meta, time.time()):
        return None
    return byte_range(value, meta.size)


async def send_file(
    scope: Scope, send: Send, file: OpenFile, meta: FileMeta, span: tuple[int, int] | None
) -> None:
    """A 200 with the whole file, or a 206 with `span`; the body unless it is HEAD."""
    start, stop = span or (0, meta.size)
    headers = [
        (b"content-type", meta.content_type),
        (b"content-length", b"%d" % (stop - start)),
        (b"etag", meta.etag),
        (b"last-modified", meta.last_modified),
        (b"accept-ranges", b"bytes"),
    ]
    if span is not None:
        headers.append((b"content-range", b"bytes %d-%d/%d" % (start, stop - 1, meta.size)))
    status = HTTPStatus.OK if span is None else HTTPStatus.PARTIAL_CONTENT
    if scope["method"] == "HEAD":
        stop = start
    # Read before the head goes out when it fits in one read, so that a failed read is
    # still a clean 500 (DESIGN §5) rather than a cut connection.
    body = file.read_now(stop - start, start) if stop - start <= SMALL_BODY_BYTES else None
    await send({"type": "http.response.start", "status": status, "headers": headers})
    if body is not None:
        await send({"type": "http.response.body", "body": body})
        return
    offset = start
    while offset < stop:
        chunk = await file.read(min(CHUNK_BYTES, stop - offset), offset)
        offset += len(chunk)
        await send({"type": "http.response.body", "body": chunk, "more_body": offset < stop})
