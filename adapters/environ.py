"""The PEP 3333 environ for an ASGI HTTP scope, and the objects it carries.

Rules:
1. Path semantics follow the ASGI spec: SCRIPT_NAME is root_path and PATH_INFO the rest
   of path, both as native strings holding the URL's UTF-8 bytes as latin-1 code points
   (PEP 3333 "Unicode Issues"), so percent-encoded and non-ASCII paths round-trip.
   RAW_URI and REQUEST_URI keep the target as the client sent it.
2. No underscored header names: request headers with "_" in their names are dropped:
   "X_User" and "X-User" both map to HTTP_X_USER, so a client could spoof a header a
   proxy sets (nginx, gunicorn agree).
3. wsgi.input_terminated is always true: wsgi.input returns EOF at the end of the body,
   chunked or not.
4. `gateway.client_disconnected` (no arguments, returns a bool) turns true once the
   client has gone, so a long view can stop early. It is added with wsgi.input, by
   adapters/wsgi.py; adapters/disconnect.py states its rules. Apps that may run under
   another server read it with `environ.get(...)`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from typing import IO, Any
from urllib.parse import quote

from gateway.asgi import Scope

# wsgi.file_wrapper block: one post per block; 64 KiB keeps posts few without holding
# much of a large file in memory at once.
FILE_BLOCK_BYTES = 64 * 1024
error_log = logging.getLogger("gateway.error")
# Request field names seen so far and their environ keys: clients send the same few
# names on every request, and the mapping is pure. Bounded, since clients pick names.
_KNOWN_FIELD_NAMES = 1024
_DROPPED = ""  # the key of a name with "_" in it (rule "no underscored header names")
_ENVIRON_KEYS: dict[bytes, str] = {}


class ErrorStream:
    """wsgi.errors: each write is one error record on "gateway.error", named by mount."""

    def __init__(self, name: str) -> None:
        self.name = name

    def write(self, text: str, /) -> int:
        line = text.rstrip("\n")
        if line.strip():
            error_log.error("wsgi[%s]: %s", self.name, line)
        return len(text)

    def writelines(self, lines: Iterable[str], /) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        """Nothing to do: writes are not buffered (PEP 3333 allows a no-op)."""


class FileWrapper:
    """wsgi.file_wrapper (PEP 3333 "Optional Platform-Specific File Handling")."""

    def __init__(self, filelike: IO[bytes], block_size: int = FILE_BLOCK_BYTES) -> None:
        self.filelike = filelike
        self.block_size = block_size

    def __iter__(self) -> Iterator[bytes]:
        while block := self.filelike.read(self.block_size):
            yield block

    def close(self) -> None:
        close = getattr(self.filelike, "close", None)
        if close is not None:
            close()


def build_environ(scope: Scope, errors: ErrorStream) -> dict[str, Any]:
    """The PEP 3333 environ for an ASGI HTTP scope, all but `wsgi.input`."""
    script_name, path_info = _split_path(scope)
    query = scope.get("query_string", b"").decode("latin-1")
    scheme = scope.get("scheme", "http")
    environ: dict[str, Any] = {
        "REQUEST_METHOD": scope["method"],
        "SCRIPT_NAME": script_name,
        "PATH_INFO": path_info,
        "QUERY_STRING": query,
        "SERVER_PROTOCOL": "HTTP/" + scope.get("http_version", "1.1"),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scheme,
        "wsgi.errors": errors,
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        # Our input returns EOF at the end of the body, chunked or not; without this
        # flag Werkzeug reads an empty body for a request with no Content-Length.
        "wsgi.input_terminated": True,
        "wsgi.file_wrapper": FileWrapper,
        "asgi.scope": scope,
    }
    environ["RAW_URI"] = environ["REQUEST_URI"] = _request_uri(scope, query)
    _add_headers(environ, scope["headers"])
    environ["SERVER_NAME"], environ["SERVER_PORT"] = _server_address(
        scope, environ.get("HTTP_HOST"), scheme
    )
    client = scope.get("client")
    if client and client[1] is not None:
        environ["REMOTE_ADDR"], environ["REMOTE_PORT"] = str(client[0]), str(client[1])
    return environ


def _wsgi_str(text: str) -> str:
    # PEP 3333 "Unicode Issues": native strings carry the URL's bytes as latin-1.
    if text.isascii():
        return text  # the same either way; most paths are ASCII
    return text.encode("utf-8", "surrogateescape").decode("latin-1")


def _split_path(scope: Scope) -> tuple[str, str]:
    # ASGI keeps root_path inside path; WSGI splits it into SCRIPT_NAME + PATH_INFO.
    root = scope.get("root_path", "").rstrip("/")
    path: str = scope["path"]
    if not root:
        return "", _wsgi_str(path)
    if path.startswith(root) and path[len(root) : len(root) + 1] in ("", "/"):
        path = path[len(root) :]
    return _wsgi_str(root), _wsgi_str(path)


def _request_uri(scope: Scope, query: str) -> str:
    raw_path = scope.get("raw_path")
    if raw_path:
        target = raw_path.decode("latin-1")
    else:
        target = quote(scope["path"].encode("utf-8", "surrogateescape"))
    return f"{target}?{query}" if query else target


def _add_headers(environ: dict[str, Any], headers: Iterable[tuple[bytes, bytes]]) -> None:
    for raw_name, raw_value in headers:
        key = _ENVIRON_KEYS.get(raw_name)
        if key is None:
            key = _environ_key(raw_name)
        if not key:
            continue  # dropped (rule "no underscored header names")
        value = raw_value.decode("latin-1")
        old = environ.get(key)
        if old is None:
            environ[key] = value
        else:  # RFC 9110 5.3 joins repeats with ","; cookies use "; " (RFC 6265 5.4)
            environ[key] = old + ("; " if key == "HTTP_COOKIE" else ",") + value


def _environ_key(raw_name: bytes) -> str:
    """The environ key of a request field name, remembered for the next request."""
    name = raw_name.decode("latin-1")
    if "_" in name:
        key = _DROPPED
    else:
        key = name.upper().replace("-", "_")
        if key not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            key = "HTTP_" + key
    if len(_ENVIRON_KEYS) < _KNOWN_FIELD_NAMES:  # clients choose names: stay bounded
        _ENVIRON_KEYS[raw_name] = key
    return key


def _server_address(scope: Scope, host: str | None, scheme: str) -> tuple[str, str]:
    server = scope.get("server")
    if server and server[1] is not None:
        return str(server[0]), str(server[1])
    default_port = "443" if scheme == "https" else "80"
    if not host:
        return "localhost", default_port
    if host.endswith("]") or ":" not in host:  # "[::1]" or "example.com"
        return host, default_port
    name, _, port = host.rpartition(":")
    return name or "localhost", port if port.isdigit() else default_port
