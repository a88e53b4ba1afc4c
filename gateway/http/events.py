"""The events an HTTP session hands to the connection layer.

They are parser-neutral: the connection layer never sees an h11 type.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


@dataclass(slots=True)
class RequestHead:
    """A complete request head (RFC 9112 §3 request line, §5 field lines)."""

    method: bytes
    target: bytes
    headers: list[tuple[bytes, bytes]]  # names lowercased, order and duplicates kept
    http_version: str  # "1.0" or "1.1"
    # Read from the fields by the one scan both sessions run (check_request_head):
    expects_continue: bool = False  # the client sent `Expect: 100-continue` and waits
    wants_close: bool = False  # the client sent `Connection: close` (RFC 9112 §9.6)


@dataclass(slots=True)
class RequestData:
    """A piece of the request body, already de-chunked."""

    data: bytes


class Signal(Enum):
    """Events that carry no data."""

    REQUEST_END = "request-end"  # the request body is complete
    NEED_DATA = "need-data"  # feed more bytes before anything else can happen
    PAUSED = "paused"  # the next pipelined request waits until this cycle ends
    CONNECTION_CLOSED = "connection-closed"  # the peer closed its side cleanly


REQUEST_END = Signal.REQUEST_END
NEED_DATA = Signal.NEED_DATA
PAUSED = Signal.PAUSED
CONNECTION_CLOSED = Signal.CONNECTION_CLOSED

Event = RequestHead | RequestData | Signal
