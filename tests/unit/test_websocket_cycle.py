"""The WebSocket cycle (gateway/server/websocket.py) through the stream seam, with an
in-memory stream (tests/support/streams.py) and wsproto as the client: the handshake
head is parsed by the real HTTP session, frames go both ways as bytes, no socket."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from support.streams import MemoryStream, settle
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    CloseConnection,
    Event,
    Request,
    TextMessage,
)

from gateway.asgi import ASGIApp, Message, Receive, Scope, Send
from gateway.errors import ClientDisconnected
from gateway.http.h11_session import H11Session
from gateway.http.session import UpgradeRequest, parse_target
from gateway.http.ws_session import WebSocketLimits, read_handshake
from gateway.server.scopes import websocket_scope
from gateway.server.websocket import WebSocketCycle, WebSocketSettings

# No pings: a test's timing never depends on the keepalive.
SETTINGS = WebSocketSettings(WebSocketLimits(1 << 20, False), 0.0, 10.0)
ACCEPT: Message = {"type": "websocket.accept"}


class Client:
    """A wsproto client on the far side of the memory stream."""

    def __init__(self, stream: MemoryStream) -> None:
        self.stream = stream
        self.ws = WSConnection(ConnectionType.CLIENT)

    def handshake(self) -> UpgradeRequest:
        session = H11Session(8192, 8192)
        session.feed(self.ws.send(Request(host="example.test", target="/chat?room=1")))
        head = session.next_event()
        assert isinstance(head, UpgradeRequest)
        return head

    def events(self) -> list[Event]:
        data = self.stream.take_written()
        if data:  # b"" would tell wsproto that the server closed
            self.ws.receive_data(data)
        return list(self.ws.events())

    def send(self, event: Event) -> bytes:
        return self.ws.send(event)


def start(app: ASGIApp) -> tuple[WebSocketCycle, MemoryStream, Client, asyncio.Task[None]]:
    """A WebSocket cycle for a fresh handshake, its app running (call in a loop)."""
    stream = MemoryStream()
    client = Client(stream)
    head = client.handshake()
    handshake = read_handshake(head)
    target = parse_target(head.target)
    scope = websocket_scope(head, target, handshake, ("127.0.0.1", 5000), None, tls=False)
    cycle = WebSocketCycle(stream, scope, handshake, SETTINGS)
    return cycle, stream, client, asyncio.create_task(cycle.run(app))


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(test(), 10))


# -- accept, send, receive, close ----------------------------------------------------


def test_accept_send_receive_and_close_go_through_the_stream() -> None:
    seen: list[Message] = []

    async def echo(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(await receive())
        await send({"type": "websocket.accept", "subprotocol": None})
        message = await receive()
        seen.append(message)
        await send({"type": "websocket.send", "text": message["text"].upper()})
        await send({"type": "websocket.close", "code": 1000})
        seen.append(await receive())

    async def test() -> None:
        cycle, stream, client, task = start(echo)
        await settle(lambda: bool(stream.written))
        assert [type(e) for e in client.events()] == [AcceptConnection]
        assert cycle.status == 101 and not stream.reading_paused
        cycle.data_received(client.send(TextMessage("hi")))
        await settle(lambda: bool(stream.written))
        events = client.events()
        assert [type(e) for e in events] == [TextMessage, CloseConnection]
        assert isinstance(events[0], TextMessage) and events[0].data == "HI"
        assert isinstance(events[1], CloseConnection)
        cycle.data_received(client.send(events[1].response()))
        await task
        assert stream.closing  # both Close frames passed: the server ends the connection
        assert cycle.bytes_sent == 2

    run(test)
    assert seen == [
        {"type": "websocket.connect"},
        {"type": "websocket.receive", "text": "hi"},
        {"type": "websocket.disconnect", "code": 1000, "reason": ""},
    ]


def test_a_close_from_the_peer_is_the_apps_disconnect_and_send_then_raises() -> None:
    outcome: list[Any] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send(ACCEPT)
        outcome.append(await receive())
        with pytest.raises(ClientDisconnected):
            await send({"type": "websocket.send", "text": "late"})
        outcome.append("raised")

    async def test() -> None:
        cycle, stream, client, task = start(app)
        await settle(lambda: bool(stream.written))
        client.events()
        cycle.data_received(client.send(CloseConnection(code=4001, reason="bye")))
        await task
        assert stream.closing

    run(test)
    assert outcome == [{"type": "websocket.disconnect", "code": 4001, "reason": "bye"}, "raised"]


def test_a_lost_connection_is_a_1006_disconnect() -> None:
    outcome: list[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send(ACCEPT)
        outcome.append(await receive())

    async def test() -> None:
        cycle, stream, _, task = start(app)
        await settle(lambda: bool(stream.written))
        stream.lose()
        cycle.connection_lost()
        await task

    run(test)
    assert outcome == [{"type": "websocket.disconnect", "code": 1006, "reason": ""}]


def test_a_send_waits_while_writing_is_paused() -> None:
    sent: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send(ACCEPT)
        for text in ("a", "b"):
            await send({"type": "websocket.send", "text": text})
            sent.append(text)
        await send({"type": "websocket.close"})

    async def test() -> None:
        _, stream, client, task = start(app)
        stream.pause_writing()
        await settle(lambda: len(client.events()) == 2)  # the 101 and the first message
        for _ in range(10):
            await asyncio.sleep(0)
        assert sent == [] and not task.done()  # the first send waits in drain
        stream.resume_writing()
        await task
        assert sent == ["a", "b"]

    run(test)


# -- denial and failures --------------------------------------------------------------


def denial(messages: list[Message]) -> ASGIApp:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        for message in messages:
            await send(message)

    return app


def test_a_close_before_accept_is_a_403() -> None:
    async def test() -> None:
        cycle, stream, _, task = start(denial([{"type": "websocket.close"}]))
        await task
        assert stream.errors == [403] and stream.closing and cycle.status == 403
        assert not stream.written  # no 101, no frame

    run(test)


def test_a_denial_is_the_apps_own_http_response_and_ends_the_connection() -> None:
    messages: list[Message] = [
        {"type": "websocket.http.response.start", "status": 401, "headers": [(b"a", b"1")]},
        {"type": "websocket.http.response.body", "body": b"no", "more_body": True},
        {"type": "websocket.http.response.body", "body": b"pe"},
    ]

    async def test() -> None:
        cycle, stream, _, task = start(denial(messages))
        await task
        assert [(h.status, h.headers) for h in stream.heads] == [
            (401, [(b"a", b"1"), (b"connection", b"close")])
        ]
        assert bytes(stream.body) == b"nope" and stream.ended and stream.closing
        assert (cycle.status, cycle.bytes_sent, stream.errors) == (401, 4, [])

    run(test)


@pytest.mark.parametrize(
    "messages",
    [
        [],  # returned without an answer
        [{"type": "websocket.send", "text": "x"}],  # send before accept
        [{"type": "websocket.http.response.start", "status": 101}],  # not a final status
        [{"type": "websocket.http.response.start", "status": 403}],  # returned mid-denial
        [{"type": "websocket.http.response.body", "body": b""}],  # body before start
        [{"type": "websocket.bogus"}],
    ],
)
def test_a_handshake_the_app_leaves_or_gets_wrong_is_a_500(messages: list[Message]) -> None:
    async def test() -> None:
        cycle, stream, _, task = start(denial(messages))
        await task
        assert stream.errors == [500] and stream.closing and not stream.heads
        assert cycle.status == 500

    run(test)


@pytest.mark.parametrize(
    ("messages", "code"),
    [
        ([ACCEPT], 1000),  # returned without a close
        ([ACCEPT, ACCEPT], 1011),  # an accept once open is an app failure
        ([ACCEPT, {"type": "websocket.send"}], 1011),  # neither bytes nor text
    ],
)
def test_an_app_that_ends_after_accept_closes_with_its_code(
    messages: list[Message], code: int
) -> None:
    async def test() -> None:
        cycle, stream, client, task = start(denial(messages))
        await task
        events = client.events()
        assert isinstance(events[0], AcceptConnection)
        assert isinstance(events[-1], CloseConnection) and events[-1].code == code
        assert not stream.errors and cycle.status == 101

    run(test)


def test_a_stop_during_the_handshake_refuses_it_with_503_and_tells_the_app() -> None:
    outcome: list[Any] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        outcome.append(await receive())
        with pytest.raises(ClientDisconnected):
            await send(ACCEPT)

    async def test() -> None:
        cycle, stream, _, task = start(app)
        cycle.shutdown()  # before or while the app waits: it hears of it either way
        stream.lose()  # the close the cycle asked for has happened
        await task
        assert stream.errors == [503]

    run(test)
    assert outcome == [
        {"type": "websocket.disconnect", "code": 1012, "reason": "server restarting"}
    ]
