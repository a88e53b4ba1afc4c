"""A raw HTTP/2 client that keeps reading past a GOAWAY, for the tests of a graceful stop.

h2's client state machine takes no frame after a GOAWAY, though RFC 9113 §6.8 lets the
streams up to its last-stream-id go on. So h2 here only writes what the client sends
(the preface, SETTINGS, request heads) and is never fed; what the server sends is parsed
frame by frame (hyperframe), and its heads decoded with one HPACK decoder, in order.

Rules:
1. The client acknowledges the server's SETTINGS and, unless told not to, answers its
   PINGs, as any client would: the graceful GOAWAY waits for that answer.
2. Every read has the deadline of tests/support/deadlines.py; a read ends at the
   server's close (or reset), which `closed` records.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Callable

import h2.config
import h2.connection
import hpack
import hyperframe.frame

from support.deadlines import CLIENT_TIMEOUT_S

Frame = hyperframe.frame.Frame
_HEADER_BYTES = 9


class FrameClient:
    """One h2c connection (prior knowledge) to 127.0.0.1:`port`."""

    def __init__(self, port: int, answer_pings: bool = True) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=CLIENT_TIMEOUT_S)
        self._h2 = h2.connection.H2Connection(h2.config.H2Configuration(header_encoding=None))
        self._h2.initiate_connection()
        self._answer_pings = answer_pings
        self._decoder = hpack.Decoder()
        self._buffer = b""
        self.frames: list[Frame] = []
        self.heads: dict[int, dict[bytes, bytes]] = {}
        self.closed = False
        self.sock.sendall(self._h2.data_to_send())

    def get(self, stream_id: int, path: str) -> None:
        fields = [(":method", "GET"), (":scheme", "http"), (":authority", "t"), (":path", path)]
        self._h2.send_headers(stream_id, fields, end_stream=True)
        self.sock.sendall(self._h2.data_to_send())

    def read_until(self, done: Callable[[], bool], deadline_s: float = CLIENT_TIMEOUT_S) -> None:
        """Read frames until `done()`, or the server closes; fail at the deadline."""
        end = time.monotonic() + deadline_s
        while not done() and not self.closed:
            left = end - time.monotonic()
            assert left > 0, f"not done before the deadline; frames: {self.frames}"
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except ConnectionResetError:
                data = b""
            if not data:
                self.closed = True
            self._parse(data)

    def _parse(self, data: bytes) -> None:
        self._buffer += data
        while len(self._buffer) >= _HEADER_BYTES:
            frame, length = Frame.parse_frame_header(memoryview(self._buffer[:_HEADER_BYTES]))
            if len(self._buffer) < _HEADER_BYTES + length:
                return
            frame.parse_body(memoryview(self._buffer[_HEADER_BYTES : _HEADER_BYTES + length]))
            self._buffer = self._buffer[_HEADER_BYTES + length :]
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
        return [
            (f.last_stream_id, f.error_code)
            for f in self.frames
            if isinstance(f, hyperframe.frame.GoAwayFrame)
        ]

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

    def close(self) -> None:
        self.sock.close()
