"""A raw HTTP/2 client on h2, for what httpx does not let a test hold still: its receive
windows, its concurrency, and the frames themselves, well-formed or not.

Rules:
1. Every read has a deadline (support/deadlines.py): a server that hangs fails the test.
2. Frames the server sent are parsed one by one (`frames`), not through h2's client,
   which refuses any frame after a GOAWAY although RFC 9113 §6.8 lets streams go on.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import Protocol

import h2.config
import h2.connection
import h2.events
import h2.settings
import hpack
import hyperframe.frame

from gateway.http.h2_session import H2Session
from support.deadlines import CLIENT_TIMEOUT_S

Frames = list[hyperframe.frame.Frame]
SessionPair = tuple[h2.connection.H2Connection, H2Session]


class Listening(Protocol):
    """A server a test started: in its process (support/servers.py) or as one."""

    @property
    def port(self) -> int: ...


class RawH2:
    """One HTTP/2 connection to `server`, preface and SETTINGS sent."""

    def __init__(self, server: Listening, window: int | None = None) -> None:
        self.sock = socket.create_connection(("127.0.0.1", server.port), timeout=CLIENT_TIMEOUT_S)
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(header_encoding=None))
        self.conn.initiate_connection()
        if window is not None:  # every stream's receive window, until acknowledged
            self.conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: window})
        self.events: list[h2.events.Event] = []
        self.flush()

    def flush(self) -> None:
        self.sock.sendall(self.conn.data_to_send())

    def get(self, stream_id: int, path: str, end: bool = True, **fields: str) -> None:
        self.conn.send_headers(stream_id, request(path, **fields), end_stream=end)
        self.flush()

    def ignore_stream_limit(self) -> None:
        """Let h2 open streams past the server's MAX_CONCURRENT_STREAMS, which it would
        otherwise hold itself to."""
        self.conn.remote_settings.max_concurrent_streams = 2**31 - 1
        self.conn.remote_settings.acknowledge()

    def read_until(self, done: Callable[[list[h2.events.Event]], bool]) -> None:
        """Read and answer frames until `done(events so far)`, the deadline, or the close."""
        deadline = time.monotonic() + CLIENT_TIMEOUT_S
        while not done(self.events):
            assert time.monotonic() < deadline, f"not done: {self.events}"
            data = self.sock.recv(65536)
            if not data:
                return
            self.events += self.conn.receive_data(data)
            self.flush()

    def ended(self, stream_id: int) -> bool:
        return any(
            isinstance(e, h2.events.StreamEnded) and e.stream_id == stream_id for e in self.events
        )

    def reset_code(self, stream_id: int) -> int | None:
        """The error code of the server's RST_STREAM on `stream_id`, if one came."""
        for event in self.events:
            if isinstance(event, h2.events.StreamReset) and event.stream_id == stream_id:
                return event.error_code
        return None

    def status(self, stream_id: int) -> bytes:
        for event in self.events:
            if isinstance(event, h2.events.ResponseReceived) and event.stream_id == stream_id:
                return dict(event.headers or [])[b":status"]
        return b""


def request(path: str, **fields: str) -> list[tuple[str, str]]:
    """A GET's fields (underscores in `fields`' names become dashes)."""
    head = [(":method", "GET"), (":scheme", "http"), (":authority", "t"), (":path", path)]
    return head + [(name.replace("_", "-"), value) for name, value in fields.items()]


def frames(data: bytes) -> Frames:
    """The whole frames in `data`, in order (rule "frames the server sent")."""
    out = []
    while len(data) >= 9:
        frame, length = hyperframe.frame.Frame.parse_frame_header(memoryview(data[:9]))
        if len(data) < 9 + length:
            break
        frame.parse_body(memoryview(data[9 : 9 + length]))
        out.append(frame)
        data = data[9 + length :]
    return out


def goaway_codes(sent: Frames) -> list[int]:
    return [f.error_code for f in sent if isinstance(f, hyperframe.frame.GoAwayFrame)]


def rapid_reset(first_stream: int, count: int, path: str) -> bytes:
    """`count` streams, each a GET reset at once (CVE-2023-44487), from `first_stream`,
    on a connection whose HPACK state is fresh: the first head teaches the server's
    decoder its fields, every later one is a few indexed bytes. Framed here, as h2's
    client would take seconds to make as many."""
    encoder = hpack.Encoder()
    blocks = [encoder.encode(request(path)), encoder.encode(request(path))]
    wire = bytearray()
    for n in range(count):
        stream_id = first_stream + 2 * n
        flags = ["END_HEADERS", "END_STREAM"]
        head = hyperframe.frame.HeadersFrame(stream_id, data=blocks[min(n, 1)], flags=flags)
        wire += head.serialize() + hyperframe.frame.RstStreamFrame(stream_id).serialize()
    return bytes(wire)


def connected_session(max_header_bytes: int) -> SessionPair:
    """An h2 client and a session, no socket between them, that have exchanged their
    prefaces, settings and the settings' acknowledgements (for unit tests)."""
    client = h2.connection.H2Connection(h2.config.H2Configuration(header_encoding=None))
    client.initiate_connection()
    session = H2Session(max_header_bytes)
    client.receive_data(session.data_to_send())
    session.feed(client.data_to_send())
    client.receive_data(session.data_to_send())
    return client, session
