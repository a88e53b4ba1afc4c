"""The interface every HTTP/1.1 session offers, and the request-target rules they share.

A session is one connection's protocol state. The connection layer feeds it bytes and
pulls events; it hands it response parts and writes the bytes it gets back. Rules:
1. `next_event` raises a gateway.errors.ProtocolError for bad input; its `status` is the
   reply, sent with `error_response` before the connection closes.
2. After the response and the request body are both complete, `reusable` tells whether
   the connection may carry another request (keep-alive, RFC 9112 §9.3); if so the
   connection calls `start_next_cycle`.
3. The connection layer owns the values of `date` and `server`; it passes them as the
   defaults of `response_head`.
4. A request that asks to switch protocols comes as an UpgradeRequest, and the session
   parses nothing after it (PAUSED). If the connection switches, `take_upgraded` hands
   over the bytes that followed the head and the session is done; if not, the request
   is served as plain HTTP and `start_next_cycle` parses those bytes as HTTP.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import Protocol
from urllib.parse import unquote_to_bytes

from gateway.errors import BadRequest, MethodNotImplemented, VersionNotSupported
from gateway.http.events import Event, RequestHead

Headers = list[tuple[bytes, bytes]]

REASONS = {status.value: status.phrase.encode("ascii") for status in HTTPStatus}
NO_BODY_STATUSES = frozenset({204, 304})  # RFC 9110 §15.3.5, §15.4.5
SUPPORTED_VERSIONS = frozenset({"1.0", "1.1"})
# The methods llhttp parses in a request (RFC 9110 §9, WebDAV, CalDAV, QUERY and a few
# more): the httptools session's parser refuses any other, h11 takes any token. Both
# sessions serve this set, so the `http` setting never changes which requests reach an
# app. Any other method token is a 501 (RFC 9110 "Methods": a server that does not
# recognise a method SHOULD answer 501); a method that is not a token is a 400.
SERVED_METHODS = frozenset(
    b"GET HEAD POST PUT DELETE CONNECT OPTIONS TRACE PATCH QUERY PURGE LINK UNLINK SOURCE "
    b"COPY LOCK MKCOL MOVE PROPFIND PROPPATCH SEARCH UNLOCK BIND REBIND UNBIND ACL REPORT "
    b"MKACTIVITY CHECKOUT MERGE MKCALENDAR M-SEARCH NOTIFY SUBSCRIBE UNSUBSCRIBE".split()
)


class HTTPSession(Protocol):
    """What the connection layer needs from an HTTP/1.1 parser and serialiser."""

    def feed(self, data: bytes) -> None:
        """Take bytes from the peer; b"" means the peer closed its sending side."""

    def next_event(self) -> Event:
        """The next event, or NEED_DATA / PAUSED. Raises ProtocolError on bad input."""

    def continue_response(self) -> bytes:
        """The bytes of `100 Continue` if the client still waits for it, else b""."""

    def response_head(
        self,
        status: int,
        headers: Iterable[tuple[bytes, bytes]],
        defaults: Sequence[tuple[bytes, bytes]] = (),
    ) -> bytes:
        """Serialise the status line and fields, adding each of `defaults` whose name
        the app did not send."""

    def response_body(self, data: bytes) -> bytes:
        """Serialise a piece of the body (chunked or not, as the head decided)."""

    def response_end(self) -> bytes:
        """Serialise the end of the response."""

    def discard_response(self) -> None:
        """Forget a response serialised but never written; an error reply may follow."""

    def error_response(self, status: int, headers: Headers) -> bytes:
        """A whole plain-text response for `status` if one can still be sent, else b""."""

    @property
    def reusable(self) -> bool:
        """Both sides finished this cycle and the connection may be kept alive."""

    @property
    def response_started(self) -> bool:
        """The status line of the current response has been serialised."""

    def start_next_cycle(self) -> None:
        """Reset for the next request on a kept-alive connection."""

    def take_upgraded(self) -> bytes:
        """After an UpgradeRequest the connection switched protocols: the bytes that came
        after the request's head. The session is not used again."""


@dataclass(slots=True)
class UpgradeRequest(RequestHead):
    """A request head that asks to switch protocols: an Upgrade field with the `upgrade`
    connection option (RFC 9110 §7.8). Its own type, so that ordinary requests pay
    nothing for the check in the connection layer (rule "a request that asks to switch
    protocols")."""


class PathAndQuery:
    """What a request target (RFC 9112 §3.2) gives the scope: `raw_path` as sent, the
    `query_string` after its `?`, and `path`, percent-decoded (the ASGI HTTP scope)."""

    __slots__ = ("path", "query_string", "raw_path")

    def __init__(self, raw_path: bytes, query_string: bytes, path: str) -> None:
        self.raw_path = raw_path
        self.query_string = query_string
        self.path = path


# Most requests go to a few targets: the split of this many short ones is remembered
# (a PathAndQuery is never changed once made). The bound on their length keeps the
# cache well under a megabyte whatever clients send.
_KNOWN_TARGETS = 1024
_KNOWN_TARGET_BYTES = 256
_known_targets: dict[bytes, PathAndQuery] = {}


def parse_target(target: bytes) -> PathAndQuery:
    """Split origin-form (`/a?b`) and asterisk-form (`*`) targets.

    The path is percent-decoded and read as UTF-8 (ASGI: "percent escapes decoded and
    UTF-8 byte sequences decoded into characters"); invalid UTF-8 becomes U+FFFD rather
    than an error, so a stray `%FF` reaches the app instead of a 400. `raw_path` keeps
    the bytes as sent. An absolute-form target was already made origin-form by
    `check_request_head`, so any other form is refused here.
    """
    known = _known_targets.get(target)
    if known is not None:
        return known
    parsed = _split_target(target)
    if len(target) <= _KNOWN_TARGET_BYTES:
        if len(_known_targets) >= _KNOWN_TARGETS:
            _known_targets.clear()
        _known_targets[target] = parsed
    return parsed


def _split_target(target: bytes) -> PathAndQuery:
    raw_path, _, query_string = target.partition(b"?")
    if raw_path == b"*":
        return PathAndQuery(raw_path, query_string, "*")
    if not raw_path.startswith(b"/"):
        raise BadRequest("request target must be origin-form, starting with '/'")
    if b"%" in raw_path:
        path = unquote_to_bytes(raw_path).decode("utf-8", "replace")
    else:
        path = raw_path.decode("utf-8", "replace")
    return PathAndQuery(raw_path, query_string, path)


def field_tokens(value: bytes) -> list[bytes]:
    """A comma-separated field value (RFC 9110 §5.6.1) as lowercased tokens."""
    return [token.strip().lower() for token in value.split(b",")]


# Bytes a field line adds to the head beyond its name and value: ": " and CRLF.
FIELD_OVERHEAD_BYTES = 4


def head_size(target: bytes, headers: Headers) -> int:
    """The bytes of a request head as the limits count them: target and field lines."""
    return len(target) + sum(len(n) + len(v) + FIELD_OVERHEAD_BYTES for n, v in headers)


def check_request_head(head: RequestHead) -> None:
    """Framing rules both sessions enforce the same way, whatever their parser allows.

    - Only HTTP/1.0 and 1.1 are served (505, RFC 9110 §15.6.6); this also answers an
      HTTP/2 preface sent to this port. A request line without a version (HTTP/0.9's,
      which llhttp reports as 0.9) is not an HTTP/1.x request line: 400, as h11 says.
    - Only SERVED_METHODS: 501 for any other token (h11 hands those over; the httptools
      session sorts llhttp's refusals the same way: gateway/http/httptools_session.py,
      rule "llhttp refuses a method").
    - HTTP/1.1 requires exactly one Host field (RFC 9112 §3.2).
    - Content-Length together with Transfer-Encoding is refused outright: a proxy in
      front may have framed the body the other way (request smuggling, RFC 9112 §6.1).
    - The only transfer coding accepted is a lone `chunked` (501 otherwise, §6.1), and
      only from HTTP/1.1: in HTTP/1.0 its framing is faulty by definition (400, §6.1).
    - A target other than origin-form (RFC 9112 "Request Target"): absolute-form is
      served, as an origin server MUST accept it, and becomes origin-form; asterisk-form
      only with OPTIONS; authority-form (CONNECT's) is refused (`_check_other_target_form`).

    The same pass over the fields notes `Connection: close` and, from HTTP/1.1,
    `Expect: 100-continue` on the head, so no later step reads the fields again.
    """
    if head.http_version not in SUPPORTED_VERSIONS:
        if head.http_version == "0.9":
            raise BadRequest("a request line without an HTTP version")
        raise VersionNotSupported(f"HTTP/{head.http_version} is not supported")
    if head.method not in SERVED_METHODS:
        raise MethodNotImplemented(f"unknown method {head.method[:20]!r}")
    hosts = 0
    length = coding = None
    for name, value in head.headers:
        if name == b"host":
            hosts += 1
        elif name == b"content-length":
            length = value
        elif name == b"transfer-encoding":
            coding = value if coding is None else coding + b"," + value
        elif name == b"connection" and b"close" in value.lower():
            head.wants_close = True
        elif name == b"expect" and value.lower() == b"100-continue":
            head.expects_continue = head.http_version == "1.1"
    if hosts != 1 and (hosts or head.http_version == "1.1"):
        raise BadRequest("HTTP/1.1 requires exactly one Host field")
    if coding is not None:
        if length is not None:
            raise BadRequest("both Content-Length and Transfer-Encoding")
        if coding.strip().lower() != b"chunked":
            raise MethodNotImplemented("only Transfer-Encoding: chunked is supported")
        if head.http_version == "1.0":
            raise BadRequest("Transfer-Encoding in an HTTP/1.0 request")
    if not head.target.startswith(b"/"):
        _check_other_target_form(head, has_host=hosts == 1)


_HTTP_SCHEMES = frozenset({b"http", b"https"})
_SCHEME_END = b"://"


def _check_other_target_form(head: RequestHead, has_host: bool) -> None:
    """Serve an absolute-form target, refuse other forms where RFC 9112 does.

    Absolute-form (RFC 9112 "absolute-form"): a server MUST accept it, and MUST ignore
    the Host field and use the target's authority instead (RFC 9112 "Reconstructing the
    Target URI"). So the head's target becomes the origin-form the app is routed by
    (`/` for an empty path), and the authority replaces the Host field, or is added to
    an HTTP/1.0 request that had none. The scope's scheme stays the connection's: the
    target's scheme names what the client wanted, not how its bytes came. Refused (400):
    a scheme other than http or https (a proxy request this server cannot serve), an
    empty host (RFC 9110 "http URI Scheme": a recipient MUST reject it), and userinfo
    (RFC 9110 "Deprecation of userinfo in http(s) URIs": treat it as an error).
    Asterisk-form is only for OPTIONS (RFC 9112 "asterisk-form"); authority-form is only
    for CONNECT (RFC 9112 "authority-form"), which this server does not serve.
    """
    target = head.target
    if target == b"*":
        if head.method != b"OPTIONS":
            raise BadRequest("asterisk-form target with a method other than OPTIONS")
        return
    if head.method == b"CONNECT":
        raise BadRequest("CONNECT (authority-form) is not served")
    scheme, sep, rest = target.partition(_SCHEME_END)
    if not sep or scheme.lower() not in _HTTP_SCHEMES:
        raise BadRequest("request target must be origin-form or an http(s) absolute-form")
    path_at = min((at for at in (rest.find(b"/"), rest.find(b"?")) if at >= 0), default=len(rest))
    authority, path = rest[:path_at], rest[path_at:]
    if not authority or authority.startswith(b":") or b"@" in authority or b"#" in target:
        raise BadRequest("absolute-form target without a valid host")
    head.target = path if path.startswith(b"/") else b"/" + path
    host = (b"host", authority)
    if has_host:
        head.headers = [host if field[0] == b"host" else field for field in head.headers]
    else:
        head.headers = [*head.headers, host]  # HTTP/1.0 without Host: the target names it
