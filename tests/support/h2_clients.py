"""Raw HTTP/2 clients, for what httpx does not let a test hold still: its receive windows,
the frames themselves, requests h2 would refuse to send, and a graceful stop's GOAWAYs.

Two clients, both writing through h2's client (`H2Writer`, an `H2Socket`), differ in how they read:
`RawH2` feeds what the server sends to h2's client, which answers as a client would and
turns it into events; `FrameClient` parses it frame by frame (`split_frames`) and decodes
heads with its own HPACK decoder, because h2's client refuses any frame after a GOAWAY,
though RFC 9113 §6.8 lets the streams up to its last-stream-id go on.

Rules:
1. Every read has the deadline of tests/support/deadlines.py: `read_until` fails the test
   once it passes, and returns at the server's close (or reset), which `closed` records.
2. What the server sends is answered as a client would answer it: its SETTINGS
   acknowledged and its PINGs answered (a `FrameClient` made with answer_pings=False
   answers one only when told: the graceful GOAWAY waits for that answer). `RawH2`'s
   receive windows open only when a test says so (`acknowledge`), or at once with
   `auto_acknowledge`.
3. Frames the server sent are parsed by one parser (`split_frames`, and `frames` for
   bytes read whole), never through a connection's state.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Callable, Sequence
from typing import Self

import h2.config
import h2.connection
import h2.events
import h2.settings
import hpack
import hyperframe.frame

from gateway.http.h2_session import H2Session
from support.deadlines import CLIENT_TIMEOUT_S, receive

Fields = Sequence[tuple[str, str]]
Events = list[h2.events.Event]
Frame = hyperframe.frame.Frame
Frames = list[Frame]
SessionPair = tuple[h2.connection.H2Connection, H2Session]
FRAME_HEADER_BYTES = 9  # RFC 9113 §4.1


# -- frames as bytes --------------------------------------------------------------------


def split_frames(data: bytes) -> tuple[Frames, bytes]:
    """The whole frames at the start of `data`, in order, and the bytes of the frame not
    yet whole (rule "frames the server sent")."""
    out = []
    while len(data) >= FRAME_HEADER_BYTES:
        frame, length = Frame.parse_frame_header(memoryview(data[:FRAME_HEADER_BYTES]))
        end = FRAME_HEADER_BYTES + length
        if len(data) < end:
            break
        frame.parse_body(memoryview(data[FRAME_HEADER_BYTES:end]))
        out.append(frame)
        data = data[end:]
    return out, data


def frames(data: bytes) -> Frames:
    """The whole frames in `data`, in order (rule "frames the server sent")."""
    return split_frames(data)[0]


def goaways(sent: Frames) -> list[tuple[int, int]]:
    """(last-stream-id, error code) of each GOAWAY in `sent`, in order."""
    return [
        (f.last_stream_id, f.error_code)
        for f in sent
        if isinstance(f, hyperframe.frame.GoAwayFrame)
    ]


def goaway_codes(sent: Frames) -> list[int]:
    return [code for _, code in goaways(sent)]


def request_head(method: str, path: str) -> list[tuple[str, str]]:
    return [(":method", method), (":scheme", "http"), (":authority", "t"), (":path", path)]


def get_fields(path: str, **fields: str) -> list[tuple[str, str]]:
    """A GET's fields (underscores in `fields`' names become dashes)."""
    extra = [(name.replace("_", "-"), value) for name, value in fields.items()]
    return request_head("GET", path) + extra


def rapid_reset(first_stream: int, count: int, path: str) -> bytes:
    """`count` streams, each a GET reset at once (CVE-2023-44487), from `first_stream`,
    on a connection whose HPACK state is fresh: the first head teaches the server's
    decoder its fields, every later one is a few indexed bytes. Framed here, as h2's
    client would take seconds to make as many."""
    encoder = hpack.Encoder()
    blocks = [encoder.encode(get_fields(path)), encoder.encode(get_fields(path))]
    wire = bytearray()
    for n in range(count):
        stream_id = first_stream + 2 * n
        flags = ["END_HEADERS", "END_STREAM"]
        head = hyperframe.frame.HeadersFrame(stream_id, data=blocks[min(n, 1)], flags=flags)
        wire += head.serialize() + hyperframe.frame.RstStreamFrame(stream_id).serialize()
    return bytes(wire)


# -- the clients ------------------------------------------------------------------------


class H2Socket:
    """One HTTP/2 connection to a test server on `sock`, by prior knowledge (RFC 9113
    §3.3), and h2's client to write what goes on it; how the server's bytes are read is
    a subclass's (here, and ws_clients.py's H2Client)."""

    def __init__(
        self, sock: socket.socket, window: int | None = None, checked: bool = True
    ) -> None:
        self.sock = sock
        config = h2.config.H2Configuration(header_encoding=None)
        # Unchecked, it sends what a test asks, malformed or not.
        config.validate_outbound_headers = config.normalize_outbound_headers = checked
        self.conn = h2.connection.H2Connection(config)
        self.conn.initiate_connection()
        if window is not None:  # every stream's receive window, until acknowledged
            self.conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: window})
        self.flush()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    def flush(self) -> None:
        if data := self.conn.data_to_send():
            self.sock.sendall(data)


class H2Writer(H2Socket):
    """An H2Socket to 127.0.0.1:`port`, that notes the server's close in `closed`."""

    def __init__(self, port: int, window: int | None = None, checked: bool = True) -> None:
        self.closed = False
        sock = socket.create_connection(("127.0.0.1", port), timeout=CLIENT_TIMEOUT_S)
        super().__init__(sock, window, checked)

    def get(self, stream_id: int, path: str, end: bool = True, **fields: str) -> None:
        """A GET (underscores in `fields`' names become dashes)."""
        self.conn.send_headers(stream_id, get_fields(path, **fields), end_stream=end)
        self.flush()


class RawH2(H2Writer):
    """A client whose reads go through h2's client, as `events`."""

    def __init__(self, port: int, window: int | None = None, checked: bool = True) -> None:
        self.events: Events = []
        self.auto_acknowledge = False
        super().__init__(port, window, checked)

    def request(self, stream_id: int, method: str, path: str, *fields: tuple[str, str]) -> None:
        """A request head; its body, if any, is the test's to send."""
        head = request_head(method, path)
        self.conn.send_headers(stream_id, [*head, *fields], end_stream=method in ("GET", "HEAD"))
        self.flush()

    def ignore_stream_limit(self) -> None:
        """Let h2 open streams past the server's MAX_CONCURRENT_STREAMS, which it would
        otherwise hold itself to."""
        self.conn.remote_settings.max_concurrent_streams = 2**31 - 1
        self.conn.remote_settings.acknowledge()

    def send_raw_headers(self, stream_id: int, fields: Fields, end: bool = True) -> None:
        self.conn.send_headers(stream_id, list(fields), end_stream=end)
        self.flush()

    def send_data(self, stream_id: int, data: bytes, end: bool = False) -> None:
        self.conn.send_data(stream_id, data, end_stream=end)
        self.flush()

    def read_until(self, done: Callable[[Events], bool]) -> None:
        """Read and answer frames until `done(events so far)`, the deadline, or the close."""
        deadline = time.monotonic() + CLIENT_TIMEOUT_S
        while not done(self.events):
            assert time.monotonic() < deadline, f"not done: {self.events}"
            data = self.sock.recv(65536)
            if not data:
                self.closed = True
                return
            events = self.conn.receive_data(data)
            self.events += events
            if self.auto_acknowledge:
                for event in events:
                    if isinstance(event, h2.events.DataReceived) and event.stream_id:
                        self.acknowledge(event.stream_id, event.flow_controlled_length or 0)
            self.flush()

    def acknowledge(self, stream_id: int, size: int) -> None:
        """Open the receive windows by `size`, as an app that consumed it would."""
        if size:
            self.conn.acknowledge_received_data(size, stream_id)
            self.flush()

    def round_trip(self) -> None:
        """A PING and its ACK: the server has read everything sent before it."""
        self.conn.ping(b"semantic")
        self.flush()
        count = len(self.events)
        self.read_until(
            lambda events: any(isinstance(e, h2.events.PingAckReceived) for e in events[count:])
        )

    def ended(self, stream_id: int) -> bool:
        return any(
            isinstance(e, h2.events.StreamEnded) and e.stream_id == stream_id for e in self.events
        )

    def reset_code(self, stream_id: int) -> int | None:
        """The error code of the server's RST_STREAM on the stream, if it sent one."""
        for event in self.events:
            if isinstance(event, h2.events.StreamReset) and event.stream_id == stream_id:
                return int(event.error_code) if event.error_code is not None else None
        return None

    def finished(self, stream_id: int) -> bool:
        return self.ended(stream_id) or self.reset_code(stream_id) is not None

    def status(self, stream_id: int) -> bytes:
        for event in self.events:
            if isinstance(event, h2.events.ResponseReceived) and event.stream_id == stream_id:
                return dict(event.headers or [])[b":status"]
        return b""

    def body(self, stream_id: int) -> bytes:
        return b"".join(
            e.data or b""
            for e in self.events
            if isinstance(e, h2.events.DataReceived) and e.stream_id == stream_id
        )


class FrameClient(H2Writer):
    """A client that keeps reading past a GOAWAY, for the tests of a graceful stop: h2's
    client takes no frame after one, so h2 here only writes (the preface, SETTINGS,
    request heads) and is never fed; what the server sends is kept as `frames`."""

    def __init__(self, port: int, answer_pings: bool = True) -> None:
        self._answer_pings = answer_pings
        self._decoder = hpack.Decoder()
        self._buffer = b""
        self.frames: Frames = []
        self.heads: dict[int, dict[bytes, bytes]] = {}
        super().__init__(port)

    def read_until(self, done: Callable[[], bool], deadline_s: float = CLIENT_TIMEOUT_S) -> None:
        """Read frames until `done()`, or the server closes; fail at the deadline."""
        end = time.monotonic() + deadline_s
        while not done() and not self.closed:
            assert time.monotonic() < end, f"not done before the deadline; frames: {self.frames}"
            data = receive(self.sock, end)
            if data == b"":
                self.closed = True
            self._parse(data or b"")

    def _parse(self, data: bytes) -> None:
        parsed, self._buffer = split_frames(self._buffer + data)
        for frame in parsed:
            self.frames.append(frame)
            self._answer(frame)

    def _answer(self, frame: Frame) -> None:
        if isinstance(frame, hyperframe.frame.HeadersFrame):
            assert "END_HEADERS" in frame.flags, "a head in CONTINUATION frames"
            self.heads[frame.stream_id] = dict(self._decoder.decode(frame.data, raw=True))
        elif isinstance(frame, hyperframe.frame.SettingsFrame) and "ACK" not in frame.flags:
            self._send(hyperframe.frame.SettingsFrame(0, flags=["ACK"]))
        elif isinstance(frame, hyperframe.frame.PingFrame) and self._answers(frame):
            self.acknowledge(frame)

    def _answers(self, ping: hyperframe.frame.PingFrame) -> bool:
        return self._answer_pings and "ACK" not in ping.flags

    def acknowledge(self, ping: hyperframe.frame.PingFrame) -> None:
        """Answer a PING now (a client made with answer_pings=False)."""
        self._send(hyperframe.frame.PingFrame(0, ping.opaque_data, flags=["ACK"]))

    def _send(self, frame: Frame) -> None:
        if not self.closed:
            # The server may have closed meanwhile: nothing to answer then.
            with contextlib.suppress(OSError):
                self.sock.sendall(frame.serialize())

    # -- what came ---------------------------------------------------------------------

    def goaways(self) -> list[tuple[int, int]]:
        """(last-stream-id, error code) of each GOAWAY, in order."""
        return goaways(self.frames)

    def status(self, stream_id: int) -> bytes:
        return self.heads.get(stream_id, {}).get(b":status", b"")

    def body(self, stream_id: int) -> bytes:
        return b"".join(
            f.data
            for f in self.frames
            if isinstance(f, hyperframe.frame.DataFrame) and f.stream_id == stream_id
        )

    def ended(self, stream_id: int) -> bool:
        return any(
            f.stream_id == stream_id and "END_STREAM" in f.flags
            for f in self.frames
            if isinstance(f, hyperframe.frame.DataFrame | hyperframe.frame.HeadersFrame)
        )

    def resets(self, stream_id: int) -> list[int]:
        """The error codes of the RST_STREAM frames on `stream_id`."""
        return [
            f.error_code
            for f in self.frames
            if isinstance(f, hyperframe.frame.RstStreamFrame) and f.stream_id == stream_id
        ]

    def index(self, wanted: Callable[[Frame], bool]) -> int:
        """The position of the first frame `wanted` (ValueError if none came)."""
        for position, frame in enumerate(self.frames):
            if wanted(frame):
                return position
        raise ValueError("no such frame came")


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
