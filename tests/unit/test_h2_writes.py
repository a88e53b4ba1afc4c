"""gateway/server/h2_connection.py, what reaches the transport: an H2Connection over an
in-memory transport that records each write, an h2 client's bytes fed in; no socket.
"""

from __future__ import annotations

import asyncio
from typing import Any

import h2.config
import h2.connection
import h2.events

from gateway.asgi import Interface, Receive, Scope, Send
from gateway.config.server_table import ServerConfig
from gateway.routing.router import Mount, Router
from gateway.server.h2_connection import H2Connection
from gateway.server.shared import WorkerShared

STREAMS = 10
# Loop turns a batch of hello responses needs, with room to spare; a bound, not a wait.
MAX_TURNS = 1000
REQUEST = [(b":method", b"GET"), (b":scheme", b"http"), (b":path", b"/"), (b":authority", b"a")]


async def hello(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"hello"})


class RecordingTransport:
    """Keeps each write apart."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def is_closing(self) -> bool:
        return False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default


async def batch_writes() -> tuple[list[bytes], h2.connection.H2Connection]:
    """The writes that answer STREAMS requests sent in one read."""
    state = WorkerShared(Router([Mount("/", hello, 1 << 20, Interface.ASGI)]), ServerConfig())
    conn = H2Connection(state, ("127.0.0.1", 1), ("127.0.0.1", 2), False, None)
    transport = RecordingTransport()
    conn.connection_made(transport)  # type: ignore[arg-type]
    client = h2.connection.H2Connection(h2.config.H2Configuration(header_encoding=None))
    client.initiate_connection()
    for stream_id in range(1, 2 * STREAMS, 2):
        client.send_headers(stream_id, REQUEST, end_stream=True)
    client.receive_data(b"".join(transport.writes))  # the server's SETTINGS
    transport.writes.clear()
    conn.data_received(client.data_to_send())
    for _ in range(MAX_TURNS):
        if not state.in_flight:
            break
        await asyncio.sleep(0)
    await asyncio.sleep(0)  # the turn after the last stream's send
    return transport.writes, client


def test_the_responses_to_one_batch_of_requests_go_out_in_one_write() -> None:
    """Rule "the connection owns the transport": one write for the batch's settings ack,
    one for the ten responses, not one each."""
    writes, client = asyncio.run(batch_writes())
    assert len(writes) == 2
    events = client.receive_data(b"".join(writes))
    ended = [e.stream_id for e in events if isinstance(e, h2.events.StreamEnded)]
    assert sorted(ended) == list(range(1, 2 * STREAMS, 2))
