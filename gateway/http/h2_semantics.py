"""The HTTP semantics of an HTTP/2 request and response (RFC 9113 §8), sans I/O and without
h2: what gateway/http/h2_session.py holds a stream's fields and body lengths to.

Rules:
1. A malformed request (RFC 9113 §8.1.1) is a MalformedRequest, which the session
   answers with RST_STREAM PROTOCOL_ERROR on that stream alone; the connection goes
   on. Malformed are: a field name that is empty or uppercase (§8.2.1) or not a token
   (RFC 9110 §5.1, which HTTP/1.1 holds names to as well; §8.2.1 forbids a subset of
   what it forbids), a value with NUL, CR or LF or with whitespace at either end
   (§8.2.1), a pseudo-header field that is unknown, repeated or after a regular field
   (§8.3), :method, :scheme or :path missing or :path empty (§8.3.1; RFC 8441 §4:
   an extended CONNECT has them too), :protocol on a method other than CONNECT, a
   connection-specific field or a TE other than "trailers" (§8.2.2), a Host field that
   differs from :authority (§8.3.1), a Content-Length that is not a number or whose
   values differ (h2 finds these first, and ends the connection), and trailers with a
   pseudo-header field (§8.1).
2. A well-formed request the gateway does not serve gets HTTP/1.1's reply for it, on
   its stream: a field section over `max_header_bytes` (431, sized as RFC 9113 §6.5.2
   sizes it), a method not served or a CONNECT other than RFC 8441's for WebSocket
   (501), a :path
   that is neither origin-form nor OPTIONS' "*" (400), a :scheme other than http or
   https (400).
3. The request's fields, as the scope sees them, are HTTP/1.1's: :authority becomes a
   Host field when the client sent none (RFC 9113 §8.3.1: it takes Host's place), and
   the pseudo-header fields are left out.
4. Content-Length is held to, both ways (RFC 9113 §8.1.1). A request body that goes
   past it, or ends short of it, is malformed (`BodyLength.add`, `BodyLength.end`).
   A response body the app declared is counted as the app sends it: a part past the
   length, or an end short of it, is an AppProtocolError raised before the part is
   framed, as on HTTP/1.1 (gateway/http/response.py, rule "Content-Length is held
   to"); HEAD and the statuses without a body (RFC 9110 §9.3.2, §15.3.5, §15.4.5)
   declare a length no body follows.
5. A request head depends on nothing but its fields and `max_header_bytes`, so
   `RequestHeadReader` remembers the heads of the small field lists it has read (a
   client repeats the same few), as a bounded dict cleared when full; each request
   gets a head and a headers list of its own, since the scope's list is the app's to
   change. Only heads that passed are remembered: a failing list is read again.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from gateway.errors import (
    AppProtocolError,
    BadRequest,
    MethodNotImplemented,
    RequestHeadersTooLarge,
)
from gateway.http.events import RequestHead
from gateway.http.session import NO_BODY_STATUSES, SERVED_METHODS

Field = tuple[bytes, bytes]
# RFC 9113 §6.5.2: a field's size is its name's and value's lengths plus 32.
_FIELD_OVERHEAD = 32
_PSEUDO = frozenset({b":method", b":scheme", b":path", b":authority", b":protocol"})
# RFC 9113 §8.2.2: fields that belong to one HTTP/1.1 connection.
CONNECTION_SPECIFIC = frozenset(
    {b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade"}
)
# RFC 9110 §5.6.2 token characters, lowercase only (RFC 9113 §8.2.1): a name is bad if
# deleting these leaves anything.
_TOKEN_LOWER = b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz"
_SCHEMES = frozenset({b"http", b"https"})
_WHITESPACE = b" \t"
# The regular fields `read_request_head` looks at more closely: the ones `check_regular`
# forbids, and those it reads.
_NOTABLE = CONNECTION_SPECIFIC | {b"te", b"host", b"content-length", b"expect"}


class MalformedRequest(BadRequest):
    """A request RFC 9113 §8.1.1 calls malformed: a stream error of type PROTOCOL_ERROR
    (rule "a malformed request")."""


def check_field(name: bytes, value: bytes) -> None:
    """A field line of a request, held to RFC 9113 §8.2.1 (rule "a malformed request")."""
    if not name or (name[:1] != b":" and name.translate(None, _TOKEN_LOWER)):
        raise MalformedRequest(f"bad field name {name[:40]!r}")
    check_value(name, value)


def check_value(name: bytes, value: bytes) -> None:
    """A field value, held to RFC 9113 §8.2.1 (rule "a malformed request")."""
    if b"\x00" in value or b"\r" in value or b"\n" in value:
        raise MalformedRequest(f"bad value of {name[:40]!r}")
    if value and (value[:1] in _WHITESPACE or value[-1:] in _WHITESPACE):
        raise MalformedRequest(f"whitespace around the value of {name[:40]!r}")


def check_regular(name: bytes, value: bytes) -> None:
    """A regular field that RFC 9113 §8.2.2 forbids (rule "a malformed request")."""
    if name in CONNECTION_SPECIFIC or (name == b"te" and value != b"trailers"):
        raise MalformedRequest(f"connection-specific field {name!r}")


@dataclass(slots=True)
class _Pseudo:
    method: bytes | None = None
    scheme: bytes | None = None
    path: bytes | None = None
    authority: bytes | None = None
    protocol: bytes | None = None  # RFC 8441's extended CONNECT


def read_request_head(
    fields: Iterable[Field], max_header_bytes: int
) -> tuple[RequestHead, int | None]:
    """The head of a request and its Content-Length (rules "a malformed request", "a
    well-formed request the gateway does not serve", "the request's fields")."""
    pseudo: dict[bytes, bytes] = {}
    headers: list[Field] = []
    hosts: set[bytes] = set()
    lengths: set[bytes] = set()
    size = 0
    expects_continue = False
    # One pass, the checks of `check_field` (`check_value`'s only to say why a value
    # fails), `check_regular` and the pseudo-header fields' inline: this runs for every
    # request.
    for name, value in fields:
        size += len(name) + len(value) + _FIELD_OVERHEAD
        if (
            b"\x00" in value
            or b"\r" in value
            or b"\n" in value
            or (value and (value[0] in _WHITESPACE or value[-1] in _WHITESPACE))
        ):
            check_value(name, value)  # it raises, and says why
        if name[:1] == b":":
            if headers:
                raise MalformedRequest(f"{name!r} after a regular field")
            if name not in _PSEUDO:
                raise MalformedRequest(f"unknown pseudo-header field {name[:40]!r}")
            if name in pseudo:
                raise MalformedRequest(f"{name!r} repeated")
            pseudo[name] = value
            continue
        if not name or name.translate(None, _TOKEN_LOWER):
            raise MalformedRequest(f"bad field name {name[:40]!r}")
        if name in _NOTABLE:
            check_regular(name, value)
            if name == b"host":
                hosts.add(value)
            elif name == b"content-length":
                lengths.add(value)
            elif name == b"expect":
                expects_continue = expects_continue or value.lower() == b"100-continue"
        headers.append((name, value))
    get = pseudo.get
    fields_of = _Pseudo(get(b":method"), get(b":scheme"), get(b":path"), get(b":authority"),
                        get(b":protocol"))  # fmt: skip
    method = _check_pseudo(fields_of, hosts)
    length = _content_length(lengths)
    if size > max_header_bytes:
        raise RequestHeadersTooLarge(f"request fields over {max_header_bytes} bytes")
    _check_served(method, fields_of)
    if fields_of.authority and not hosts:
        headers.insert(0, (b"host", fields_of.authority))
    head = RequestHead(
        method, fields_of.path or b"", headers, "2", expects_continue=expects_continue
    )
    return head, length


# Rule "a request head depends on nothing but its fields": how many heads are remembered,
# and the largest field list (RFC 9113 §6.5.2 size) that is.
HEAD_MEMO_ENTRIES = 64
HEAD_MEMO_BYTES = 1024


@dataclass(slots=True, frozen=True)
class _KnownHead:
    method: bytes
    target: bytes
    headers: tuple[Field, ...]
    expects_continue: bool
    length: int | None


class RequestHeadReader:
    """`read_request_head` for one connection, remembering what it read (rule "a request
    head depends on nothing but its fields")."""

    def __init__(self, max_header_bytes: int) -> None:
        self._max_header_bytes = max_header_bytes
        self._known: dict[tuple[Field, ...], _KnownHead] = {}

    def read(self, fields: Iterable[Field]) -> tuple[RequestHead, int | None]:
        """As `read_request_head`, which raises for the same fields as ever."""
        key = tuple(fields)
        known = self._known.get(key)
        if known is None:
            head, length = read_request_head(key, self._max_header_bytes)
            self._remember(key, head, length)
            return head, length
        head = RequestHead(known.method, known.target, list(known.headers), "2",
                           expects_continue=known.expects_continue)  # fmt: skip
        return head, known.length

    def _remember(self, key: tuple[Field, ...], head: RequestHead, length: int | None) -> None:
        if sum(len(name) + len(value) + _FIELD_OVERHEAD for name, value in key) > HEAD_MEMO_BYTES:
            return
        if len(self._known) >= HEAD_MEMO_ENTRIES:
            self._known.clear()
        self._known[key] = _KnownHead(
            head.method, head.target, tuple(head.headers), head.expects_continue, length
        )


def _check_pseudo(pseudo: _Pseudo, hosts: set[bytes]) -> bytes:
    """The method of a request whose pseudo-header fields are all there (RFC 9113
    §8.3.1; a plain CONNECT has neither :scheme nor :path, §8.5, and an extended one
    has both, RFC 8441 §4)."""
    method = pseudo.method
    if method is None:
        raise MalformedRequest(":method missing")
    plain_connect = method == b"CONNECT" and pseudo.protocol is None
    if not plain_connect and (pseudo.scheme is None or not pseudo.path):
        raise MalformedRequest(":scheme or :path missing or empty")
    if pseudo.protocol is not None and method != b"CONNECT":
        raise MalformedRequest(":protocol on a request that is not CONNECT")
    if len(hosts) > 1 or (pseudo.authority is not None and hosts - {pseudo.authority}):
        raise MalformedRequest("Host differs from :authority")
    return method


def _content_length(values: set[bytes]) -> int | None:
    if not values:
        return None
    if len(values) > 1 or not all(value.isdigit() for value in values):
        raise MalformedRequest(f"bad Content-Length {sorted(values)[:2]!r}")
    return int(next(iter(values)))


def _check_served(method: bytes, pseudo: _Pseudo) -> None:
    """Rule "a well-formed request the gateway does not serve"."""
    if method == b"CONNECT":
        if pseudo.protocol != b"websocket":  # RFC 8441 §4; gateway/http/h2_session.py
            protocol = (pseudo.protocol or b"")[:20]
            raise MethodNotImplemented(f"CONNECT for {protocol!r} is not served")
    elif method not in SERVED_METHODS:
        raise MethodNotImplemented(f"method {method[:20]!r} is not served over HTTP/2")
    path = pseudo.path or b""
    if not (path[:1] == b"/" or (path == b"*" and method == b"OPTIONS")):
        raise BadRequest(f"bad :path {path[:40]!r}")
    if pseudo.scheme not in _SCHEMES:
        raise BadRequest(f"bad :scheme {(pseudo.scheme or b'')[:20]!r}")


def check_trailers(fields: Iterable[Field]) -> None:
    """Request trailers (RFC 9113 §8.1): regular fields only. ASGI has no request
    trailers, so the session drops them once they pass."""
    for name, value in fields:
        check_field(name, value)
        if name[:1] == b":":
            raise MalformedRequest(f"pseudo-header field {name!r} in trailers")
        check_regular(name, value)


@dataclass(slots=True)
class BodyLength:
    """A request body held to its Content-Length (rule "Content-Length is held to")."""

    expected: int
    received: int = 0

    def add(self, size: int) -> None:
        self.received += size
        if self.received > self.expected:
            raise MalformedRequest(f"more DATA than the Content-Length {self.expected}")

    def end(self) -> None:
        if self.received != self.expected:
            raise MalformedRequest(f"DATA ends short of the Content-Length {self.expected}")


class ResponseLength:
    """What is left of a response body the app declared (rule "Content-Length is held
    to"): None when it declared none, or when no body is sent at all."""

    __slots__ = ("remaining",)

    def __init__(self, status: int, headers: Iterable[Field], no_body: bool) -> None:
        self.remaining: int | None = None
        if no_body or status in NO_BODY_STATUSES:
            return
        for name, value in headers:
            if isinstance(name, bytes) and name.lower() == b"content-length":
                if not (isinstance(value, bytes) and value.isdigit()):
                    raise AppProtocolError(f"bad Content-Length {value!r}")
                self.remaining = int(value)

    def send(self, size: int, end: bool) -> None:
        """Count a body part before it is framed; raise if it breaks the length."""
        remaining = self.remaining
        if remaining is None:
            return
        if size > remaining:
            raise AppProtocolError("too much data for declared Content-Length")
        if end and size < remaining:
            raise AppProtocolError("too little data for declared Content-Length")
        self.remaining = remaining - size
