"""The HTTP/1.1 session over httptools (llhttp, in C): the fast path.

It offers exactly what the h11 session offers (gateway/http/session.py), so the
connection layer cannot tell them apart. Rules:
1. llhttp parses eagerly: one `feed` may run callbacks for several pipelined requests.
   Their events wait in a queue, and the head of a request is held back (PAUSED) until
   the cycle before it has ended, as h11 does (RFC 9112 §9.3.2).
2. llhttp has no size limits, so this module keeps them: the target (414) as it is
   parsed; the head (431) both as fields complete (`head_size`'s measure, as h11's
   session) and, for a head still incomplete after a feed, by the bytes fed into it, so
   a field without an end cannot grow unbounded. Each byte is counted once, for one
   request, from that request's first byte (`_count_incomplete_head`).
3. Request framing rules shared with h11 (`check_request_head`) run on every head;
   llhttp's own errors are mapped to the same statuses h11 gives.
4. The response is serialised by the shared ResponseWriter (gateway/http/response.py).
5. An Upgrade request (or CONNECT) stops llhttp and comes as an UpgradeRequest; the
   bytes after it are kept. `take_upgraded` hands them to the new protocol; otherwise
   the next cycle parses them with a new parser, so an upgrade that is not taken falls
   back to plain HTTP. An Upgrade request with a body is never taken (a WebSocket
   handshake has none, gateway/http/ws_session.py), but httptools has llhttp skip the
   body of every Upgrade request: llhttp frames that body again, in a parser primed
   with the request's framing field alone (`_read_upgrade_body`), so the app gets it
   and no byte of it is ever parsed as a request (as `Upgrade: h2c` with a POST would be:
   request smuggling).
6. A field value loses its trailing whitespace (RFC 9112 "Field Syntax": OWS is not
   part of the value); llhttp strips only the leading one.
7. An error found in bytes after a complete request waits until that request's cycle
   has ended (PAUSED until then), so the request is answered, and the error is then
   raised, answered and logged like any other.
8. llhttp refuses a method it does not know at its first unknown byte, as it refuses
   garbage. To answer as h11's session does (501 for an unknown token, 400 for what is
   not a token, session.py), the refused request line is read on up to its first space
   (`_read_refused_method`), when its start is known (`_locate_request_start`, or the first
   bytes that rule "llhttp has no size limits" kept); behind a chunked body in the same
   read it is not: 400.
"""

from __future__ import annotations

import re
from collections import deque
from typing import NamedTuple, cast

import httptools

from gateway.errors import (
    BadRequest,
    MethodNotImplemented,
    ProtocolError,
    RequestHeadersTooLarge,
    RequestTargetTooLong,
    VersionNotSupported,
)
from gateway.http.events import (
    CONNECTION_CLOSED,
    NEED_DATA,
    PAUSED,
    REQUEST_END,
    Event,
    RequestData,
    RequestHead,
)
from gateway.http.response import ResponseWriter
from gateway.http.session import (
    FIELD_OVERHEAD_BYTES,
    Headers,
    UpgradeRequest,
    check_request_head,
)

# The bytes of an incomplete head kept for reading its method if llhttp refuses it in a
# later read (rule "llhttp refuses a method"). llhttp refuses a method by the byte after
# its longest known one (UNSUBSCRIBE, 11 bytes), so this many always hold the refused
# part.
_METHOD_PREFIX_BYTES = 32
# A token (RFC 9110 "Tokens"): what a method is made of.
_TOKEN_BYTES = re.compile(rb"[-!#$%&'*+.^_`|~0-9A-Za-z]*")
_HEAD_END = b"\r\n\r\n"
_TAIL_BYTES = len(_HEAD_END) - 1
_NOT_EMPTY_LINE = re.compile(rb"[^\r\n]")
_EMPTY_LINES = b"\r\n"  # skipped before a request line (RFC 9112 "Message Parsing")
_OWS = b" \t"  # optional whitespace (RFC 9110 "Whitespace")

# llhttp's messages for errors h11 answers with another status than 400.
_STATUS_BY_MESSAGE = {
    "Request has invalid `Transfer-Encoding`": MethodNotImplemented,
    "Invalid `Transfer-Encoding` header value": MethodNotImplemented,
    "Empty Transfer-Encoding": MethodNotImplemented,  # h11: not a lone chunked, so 501
    "Pause on PRI/Upgrade": VersionNotSupported,
    "Invalid HTTP version": VersionNotSupported,
}
# llhttp's messages that say how it parses rather than what the client sent: the error
# log gets what an operator reads instead.
_OWN_WORDS = {"Pause on PRI/Upgrade": "an HTTP/2 preface (PRI * HTTP/2.0) on HTTP/1.1"}


class _ReadStart(NamedTuple):
    """The session as a read began: events queued, and whether a head was open."""

    queued: int
    in_head: bool
    last_head: RequestHead | None  # the head before it, whose body may be under way


def _is_chunked(head: RequestHead) -> bool:
    # check_request_head lets Transfer-Encoding through only as a lone `chunked`.
    return any(name == b"transfer-encoding" for name, _ in head.headers)


def _body_framing(head: RequestHead) -> bytes | None:
    """The field that frames a request's body (check_request_head allowed only one), or
    None if it has no body."""
    for name, value in head.headers:
        if name == b"transfer-encoding":
            return b"transfer-encoding: " + value
        if name == b"content-length" and int(value) > 0:
            return b"content-length: " + value
    return None


def _skip_empty_lines(data: bytes, position: int) -> int:
    """The first byte at or after `position` that is not CR or LF (or the end)."""
    found = _NOT_EMPTY_LINE.search(data, position)
    return found.start() if found is not None else len(data)


class HttptoolsSession(ResponseWriter):
    """One connection's HTTP/1.1 state, parsed by httptools."""

    def __init__(self, max_header_bytes: int, max_target_bytes: int) -> None:
        super().__init__()
        self._max_header_bytes = max_header_bytes
        self._max_target_bytes = max_target_bytes
        self._parser = httptools.HttpRequestParser(self)
        self._events: deque[Event] = deque()
        self._error: ProtocolError | None = None
        self._upgraded: bytearray | None = None  # bytes after an upgrade request
        self._peer_closed = False
        # The request being parsed.
        self._url = b""
        self._fields: Headers = []
        self._field_bytes = 0  # of its fields, as `head_size` counts them
        # The bytes of its head fed so far, or -1 if it began in this read (rule "llhttp
        # has no size limits").
        self._raw_head_bytes = 0
        # Rule "llhttp refuses a method" keeps the head's first bytes (`_head_prefix`,
        # None where its start is unknown), the last head parsed and a refused request line.
        self._head_prefix: bytes | None = b""
        self._head_tail = b""  # the last bytes of the last read that ended in a head
        self._last_head: RequestHead | None = None  # the last head parsed
        self._in_head = False
        self._method_sniff: bytearray | None = None  # a refused request line
        self._framing_only = False  # parsing the framing of an Upgrade request's body
        # The current cycle.
        self._cycle_open = False
        self._request_done = False

    # -- bytes in --------------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        if not data:
            self._peer_gone()
        elif self._upgraded is not None:
            self._upgraded += data
        else:
            self._parse(data)

    def _parse(self, data: bytes) -> None:
        """Run llhttp over `data`; an error is kept and raised by `next_event` once the
        events parsed before it are out, as h11 reports it where it happens."""
        if self._error is not None:
            return
        if self._method_sniff is not None:
            self._read_refused_method(data)
            return
        queued, was_in_head, last_head = len(self._events), self._in_head, self._last_head
        try:
            self._parser.feed_data(data)
            if self._in_head:
                self._count_incomplete_head(data, _ReadStart(queued, was_in_head, last_head))
        except httptools.HttpParserUpgrade as upgrade:
            rest = data[upgrade.args[0] :]
            if not self._read_upgrade_body(rest):
                self._upgraded = bytearray(rest)
        except ProtocolError as exc:  # our own size check, after feed_data
            self._error = exc
        except httptools.HttpParserInvalidMethodError as exc:
            self._sniff_refused_method(data, _ReadStart(queued, was_in_head, last_head), str(exc))
        except httptools.HttpParserError as exc:
            self._error = _translate(exc)

    def _read_upgrade_body(self, rest: bytes) -> bool:
        """Give an Upgrade request with a body its body, framed by llhttp (rule "an
        Upgrade request (or CONNECT) stops llhttp"); False if it has none."""
        head = self._last_head
        framing = _body_framing(head) if head is not None else None
        if framing is None:
            return False
        ended = self._events.pop()  # llhttp ended the request at its head
        assert ended is REQUEST_END
        self._parser = httptools.HttpRequestParser(self)
        self._framing_only = True  # its head is not a request of the client's
        self._parser.feed_data(b"POST / HTTP/1.1\r\n" + framing + b"\r\n\r\n")
        self._framing_only = False
        if rest:
            self._parse(rest)
        return True

    def _count_incomplete_head(self, data: bytes, read: _ReadStart) -> None:
        """Add this read's bytes of the head still incomplete after it, each byte once,
        from the head's first byte, after the empty lines llhttp skips (rule "llhttp has
        no size limits")."""
        prefix = self._head_prefix
        if self._raw_head_bytes >= 0:  # the head began in an earlier read: all of this is
            self._raw_head_bytes += len(data)
            if prefix is not None and len(prefix) < _METHOD_PREFIX_BYTES:
                self._head_prefix = prefix + data[: _METHOD_PREFIX_BYTES - len(prefix)]
        else:
            start = self._locate_request_start(data, read)
            if start is not None:
                self._raw_head_bytes = len(data) - start
                self._head_prefix = data[start : start + _METHOD_PREFIX_BYTES]
            else:
                # Where it starts is not known: count what llhttp reported of it. What it
                # did not (a field still open) is within this read; later reads count
                # in full, so the head stays bounded.
                self._raw_head_bytes = len(self._url) + self._field_bytes
                self._head_prefix = None
        # Enough to find an empty line that this read and the next one share.
        self._head_tail = (self._head_tail + data[-_TAIL_BYTES:])[-_TAIL_BYTES:]
        if self._raw_head_bytes > self._max_header_bytes:
            raise RequestHeadersTooLarge("request head too large")

    def _locate_request_start(self, data: bytes, read: _ReadStart) -> int | None:
        """Where in `data` the request that began in this read starts: after the requests
        that ended before it in this read, found from their events (a head ends at its
        first empty line; a body without Transfer-Encoding is the bytes it gave), and
        after the empty lines llhttp skips. None where that cannot be known: behind a
        chunked body."""
        position = 0
        in_head = read.in_head
        events = self._events
        index = read.queued
        head = read.last_head  # a body under way as the read began is its
        while index < len(events):
            if isinstance(events[index], RequestHead):
                head = cast(RequestHead, events[index])
                if in_head:  # its head began in an earlier read, maybe with part of its end
                    tail = self._head_tail
                    found = (tail + data).find(_HEAD_END)
                    end = found - len(tail) if found >= 0 else None
                    in_head = False
                else:
                    found = data.find(_HEAD_END, _skip_empty_lines(data, position))
                    end = found if found >= 0 else None
                if end is None:
                    return None  # no empty line: not a head llhttp took (cannot happen)
                position = end + len(_HEAD_END)
                index += 1
            body = 0
            while index < len(events) and type(events[index]) is RequestData:
                body += len(cast(RequestData, events[index]).data)
                index += 1
            if body and (head is None or _is_chunked(head)):
                return None  # chunked: its framing is not in the events
            position += body
            index += 1  # REQUEST_END
        return _skip_empty_lines(data, position)

    def _sniff_refused_method(self, data: bytes, read: _ReadStart, reason: str) -> None:
        """llhttp refused the method; read the request line from its start (rule "llhttp
        refuses a method")."""
        prefix = self._head_prefix
        if self._raw_head_bytes >= 0:  # it began in an earlier read
            if prefix is None or self._raw_head_bytes > len(prefix):
                self._error = BadRequest(reason)  # its start was not kept
                return
            line = (prefix + data).lstrip(_EMPTY_LINES)
        else:
            start = self._locate_request_start(data, read)
            if start is None:
                self._error = BadRequest(reason)  # where the request line starts is unknown
                return
            line = data[start:]
        self._method_sniff = bytearray(line)
        self._read_refused_method(b"")

    def _read_refused_method(self, data: bytes) -> None:
        """A token then a space is an unknown method (501); anything else that is not a
        token is not a request line (400). Wait for more while all is token (rule "llhttp
        refuses a method")."""
        line = self._method_sniff
        if line is None:
            return
        line += data
        token = _TOKEN_BYTES.match(line)
        length = token.end() if token is not None else 0
        if length < len(line):
            self._method_sniff = None
            if length and line[length] == 0x20:  # SP ends the method (RFC 9112 "Request Line")
                method = bytes(line[: min(length, 20)])  # quoted as check_request_head does
                self._error = MethodNotImplemented(f"unknown method {method!r}")
            else:
                self._error = BadRequest("a request line that does not start with a method")
        elif len(line) > self._max_header_bytes:
            # As the h11 session answers a head over the limit whose line never ended.
            self._method_sniff = None
            self._error = RequestTargetTooLong("request line too long")

    def _peer_gone(self) -> None:
        self._peer_closed = True
        self._keep_alive = False
        if self._in_head or (self._cycle_open and not self._request_done):
            self._error = self._error or BadRequest("the client closed mid-request")

    # -- llhttp callbacks ------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._url = b""
        self._fields = []
        self._field_bytes = 0
        # Counted at the end of this read (rule "llhttp has no size limits").
        self._raw_head_bytes = -1
        self._in_head = True

    def on_url(self, url: bytes) -> None:
        self._url += url
        if len(self._url) > self._max_target_bytes:
            self._fail(RequestTargetTooLong("request target too long"))

    def on_header(self, name: bytes, value: bytes) -> None:
        # Rule "a field value loses its trailing whitespace"; the same object when there is
        # none.
        value = value.rstrip(_OWS)
        self._fields.append((name.lower(), value))
        self._field_bytes += len(name) + len(value) + FIELD_OVERHEAD_BYTES
        if self._field_bytes + len(self._url) > self._max_header_bytes:
            self._fail(RequestHeadersTooLarge("request head too large"))

    def on_headers_complete(self) -> None:
        self._in_head = False
        if self._framing_only:  # rule "an Upgrade request (or CONNECT) stops llhttp"
            return
        version = self._parser.get_http_version()
        method = self._parser.get_method()
        # llhttp stops after a request that asks to switch protocols
        # (gateway/http/session.py, rule "a request that asks to switch protocols"), and
        # after CONNECT, which stays a plain request (its target is refused).
        upgrade = method != b"CONNECT" and self._parser.should_upgrade()
        head = (UpgradeRequest if upgrade else RequestHead)(
            method=method,
            target=self._url,
            headers=self._fields,
            http_version=version,
        )
        self._last_head = head
        try:
            check_request_head(head)
        except ProtocolError as exc:
            self._fail(exc)
        self._events.append(head)

    def on_body(self, body: bytes) -> None:
        self._events.append(RequestData(body))

    def on_message_complete(self) -> None:
        self._events.append(REQUEST_END)

    def _fail(self, error: ProtocolError) -> None:
        """Stop parsing from inside a callback; `_translate` recovers the error."""
        raise error

    # -- events out ------------------------------------------------------------------

    def next_event(self) -> Event:
        if not self._events and self._error is not None:
            if self._cycle_open and self._request_done:
                return PAUSED  # rule "an error found in bytes after a complete request"
            raise self._error
        if self._events:
            event = self._events[0]
            if type(event) is RequestHead or type(event) is UpgradeRequest:
                if self._cycle_open:
                    return PAUSED
                self._begin_cycle(event)
            elif event is REQUEST_END:
                self._request_done = True
            elif type(event) is RequestData:
                self._awaiting_continue = False  # the client sends the body anyway
            return self._events.popleft()
        if self._upgraded is not None and self._cycle_open:
            return PAUSED
        if self._peer_closed:
            return CONNECTION_CLOSED
        return NEED_DATA

    def _begin_cycle(self, head: RequestHead) -> None:
        self._cycle_open = True
        self._request_done = False
        self._expect_response(head)

    # -- cycles ----------------------------------------------------------------------

    @property
    def reusable(self) -> bool:
        return self._finished and self._request_done and self._keep_alive

    def take_upgraded(self) -> bytes:
        rest, self._upgraded = bytes(self._upgraded or b""), None
        return rest

    def start_next_cycle(self) -> None:
        self._cycle_open = False
        self._reset_response()
        # The kept bytes belong to the upgrade request, the last one queued: parse them
        # only once its own cycle has ended, not after a request pipelined before it.
        if self._upgraded is not None and not self._events:
            rest, self._upgraded = bytes(self._upgraded), None
            self._parser = httptools.HttpRequestParser(self)
            if rest:
                self._parse(rest)


def _translate(exc: httptools.HttpParserError) -> ProtocolError:
    # httptools wraps what a callback raised; ours raise the ProtocolError to answer with.
    if isinstance(exc.__context__, ProtocolError):
        return exc.__context__
    message = str(exc)
    error = _STATUS_BY_MESSAGE.get(message, BadRequest)
    return error(_OWN_WORDS.get(message, message))
