"""The HTTP cycle (gateway/server/cycle.py) through the stream seam, with an in-memory
stream (tests/support/streams.py): no socket, no framing, only what the cycle hands
down and what the app sees."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from support.streams import MemoryStream, refuse_fields, settle

from gateway.asgi import ASGIApp as App
from gateway.asgi import Message, Receive, Scope, Send
from gateway.errors import ClientDisconnected, RequestBodyTooLarge, RequestTimeout
from gateway.server.cycle import RequestCycle
from gateway.server.stream import ResponseState

START: Message = {"type": "http.response.start", "status": 200, "headers": [(b"a", b"1")]}


def http_scope(method: str = "GET", path: str = "/") -> dict[str, Any]:
    return {"type": "http", "method": method, "path": path, "headers": [], "client": None}


def new_cycle(stream: MemoryStream, expects_continue: bool = False) -> RequestCycle:
    return RequestCycle(stream, http_scope(), expects_continue, timed=True)


def serve(app: App, stream: MemoryStream | None = None) -> tuple[RequestCycle, MemoryStream]:
    """Run `app` on a fresh cycle to its end, as a connection's task does."""
    stream = stream or MemoryStream()
    cycle = new_cycle(stream)
    asyncio.run(cycle.run(app))
    assert stream.cycle_ended, "every run ends with the stream's end_cycle"
    return cycle, stream


async def hello(scope: Scope, receive: Receive, send: Send) -> None:
    await send(START)
    await send({"type": "http.response.body", "body": b"hello"})


# -- a normal response ---------------------------------------------------------------


def test_a_response_goes_down_as_one_head_with_its_body() -> None:
    cycle, stream = serve(hello)
    assert [(h.status, h.headers) for h in stream.heads] == [(200, [(b"a", b"1")])]
    assert (bytes(stream.body), stream.body_parts, stream.ended) == (b"hello", 1, True)
    assert cycle.response is ResponseState.COMPLETE
    assert (cycle.status, cycle.bytes_sent) == (200, 5)
    assert not stream.errors and not stream.closing


def test_the_head_waits_for_the_first_body_message() -> None:
    seen: list[int] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send(START)
        seen.append(len(stream.heads))  # ASGI: the response has not started yet
        await send({"type": "http.response.body", "body": b"a", "more_body": True})
        seen.append(len(stream.heads))
        await send({"type": "http.response.body", "body": b"b"})

    stream = MemoryStream()
    cycle, _ = serve(app, stream)
    assert seen == [0, 1]
    assert (bytes(stream.body), stream.body_parts, cycle.bytes_sent) == (b"ab", 2, 2)


def test_a_body_message_after_the_last_is_ignored() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await hello(scope, receive, send)
        await send({"type": "http.response.body", "body": b"more"})

    cycle, stream = serve(app)
    assert (bytes(stream.body), cycle.bytes_sent, stream.errors) == (b"hello", 5, [])


# -- backpressure --------------------------------------------------------------------


def test_a_streamed_body_waits_while_writing_is_paused() -> None:
    sent: list[bytes] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send(START)
        for part in (b"1", b"2"):
            await send({"type": "http.response.body", "body": part, "more_body": True})
            sent.append(part)
        await send({"type": "http.response.body", "body": b""})

    async def main() -> None:
        stream = MemoryStream()
        stream.pause_writing()
        cycle = new_cycle(stream)
        task = asyncio.create_task(cycle.run(app))
        await settle(lambda: stream.body_parts == 1)
        # The first part was written, and its `send` waits in the stream's drain.
        for _ in range(10):
            await asyncio.sleep(0)
        assert sent == [] and not task.done()
        stream.resume_writing()
        await asyncio.wait_for(task, 5)
        assert sent == [b"1", b"2"] and bytes(stream.body) == b"12" and stream.ended

    asyncio.run(main())


def test_a_send_waiting_on_a_client_that_left_raises_client_disconnected() -> None:
    raised: list[BaseException] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send(START)
        try:
            await send({"type": "http.response.body", "body": b"1", "more_body": True})
        except ClientDisconnected as exc:
            raised.append(exc)
            raise

    async def main() -> None:
        stream = MemoryStream()
        stream.pause_writing()
        cycle = new_cycle(stream)
        task = asyncio.create_task(cycle.run(app))
        await settle(lambda: stream.body_parts == 1)
        stream.lose()
        await asyncio.wait_for(task, 5)
        # A client that left is no app failure: no reply, no close from the cycle.
        assert len(raised) == 1 and not stream.errors and not stream.closing

    asyncio.run(main())


# -- app failures (DESIGN §5) ----------------------------------------------------------


def failing_after(*messages: Message) -> App:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        for message in messages:
            await send(message)
        raise ValueError("boom")

    return app


def test_an_app_that_fails_before_its_response_gets_a_500() -> None:
    cycle, stream = serve(failing_after())
    assert stream.errors == [500] and not stream.heads and not stream.closing
    assert (cycle.status, cycle.response) == (500, ResponseState.COMPLETE)


def test_an_app_that_fails_after_start_but_before_its_body_still_gets_a_500() -> None:
    cycle, stream = serve(failing_after(START))
    assert stream.errors == [500] and not stream.heads and cycle.status == 500


def test_an_app_that_fails_during_its_response_has_the_stream_closed() -> None:
    body: Message = {"type": "http.response.body", "body": b"half", "more_body": True}
    cycle, stream = serve(failing_after(START, body))
    assert stream.closing and not stream.errors
    assert cycle.response is ResponseState.CUT
    assert (cycle.status, cycle.bytes_sent) == (200, 4)  # what the client got


def test_an_app_that_fails_after_a_complete_response_leaves_it_standing() -> None:
    body: Message = {"type": "http.response.body", "body": b"done"}
    cycle, stream = serve(failing_after(START, body))
    assert not stream.closing and not stream.errors
    assert cycle.response is ResponseState.COMPLETE and bytes(stream.body) == b"done"


def test_an_http_error_the_app_lets_through_is_answered_with_its_status() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        raise RequestBodyTooLarge("over max_body_bytes")

    cycle, stream = serve(app)
    assert stream.errors == [413] and cycle.status == 413


def test_a_head_the_stream_refuses_to_frame_is_replaced_by_a_500() -> None:
    start: Message = {"type": "http.response.start", "status": 200, "headers": [("a", "1")]}
    body: Message = {"type": "http.response.body", "body": b"x"}
    stream = MemoryStream(check_head=refuse_fields)
    cycle, _ = serve(failing_after(start, body), stream)
    assert stream.errors == [500] and not stream.heads and cycle.bytes_sent == 3


@pytest.mark.parametrize(
    ("messages", "reason"),
    [
        ([], "returned without a response"),
        ([START], "returned without a response"),
        ([{"type": "http.response.body", "body": b"x"}], "sent before http.response.start"),
        ([START, START], "http.response.start sent twice"),
        ([{"type": "http.response.begin"}], "unexpected ASGI message type"),
    ],
)
def test_an_illegal_message_order_is_a_500_that_names_the_mistake(
    messages: list[Message], reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        for message in messages:
            await send(message)

    with caplog.at_level(logging.ERROR, logger="gateway.error"):
        _, stream = serve(app)
    assert stream.errors == [500] and not stream.heads
    logged = [r.exc_info[1] for r in caplog.records if r.exc_info]
    assert any(reason in str(exc) for exc in logged), logged


def test_a_start_in_the_middle_of_a_response_closes_the_stream() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send(START)
        await send({"type": "http.response.body", "body": b"x", "more_body": True})
        await send(START)

    cycle, stream = serve(app)
    assert stream.closing and not stream.errors and cycle.response is ResponseState.CUT


# -- the request side: body, flow control, disconnect ---------------------------------


def test_the_body_is_read_as_it_arrives_and_each_take_reads_on() -> None:
    received: list[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            received.append(message)
            if not message.get("more_body"):
                break
        await hello(scope, receive, send)

    async def main() -> None:
        stream = MemoryStream()
        cycle = new_cycle(stream)
        task = asyncio.create_task(cycle.run(app))
        # What the stream holds is the cycle's to count: the connection pauses reading
        # past its high-water mark on this number.
        assert cycle.body_arrived(b"ab") == 2
        assert cycle.body_arrived(b"cd") == 4
        await settle(lambda: stream.consumed == 1)
        assert received == [{"type": "http.request", "body": b"abcd", "more_body": True}]
        cycle.body_arrived(b"e")
        cycle.body_complete()
        await asyncio.wait_for(task, 5)
        assert received[1:] == [{"type": "http.request", "body": b"e", "more_body": False}]
        assert stream.consumed == 2 and cycle.request_complete

    asyncio.run(main())


def test_receive_reports_a_disconnect_once_the_client_has_gone() -> None:
    received: list[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        received.append(await receive())
        await send(START)  # too late: the client has gone

    async def main() -> None:
        stream = MemoryStream()
        cycle = new_cycle(stream)
        task = asyncio.create_task(cycle.run(app))
        await settle(lambda: cycle.body_stalled(asyncio.get_running_loop().time(), 0))
        cycle.client_gone()
        await asyncio.wait_for(task, 5)
        assert received == [{"type": "http.disconnect"}]
        assert not stream.errors and not stream.heads  # nobody to answer

    asyncio.run(main())


def test_receive_after_the_body_and_the_response_reports_a_disconnect() -> None:
    received: list[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        received.append(await receive())
        await hello(scope, receive, send)
        received.append(await receive())

    stream = MemoryStream()
    cycle = new_cycle(stream)
    cycle.body_complete()
    asyncio.run(cycle.run(app))
    assert received == [
        {"type": "http.request", "body": b"", "more_body": False},
        {"type": "http.disconnect"},
    ]


def test_a_half_closed_client_is_a_disconnect_once_its_body_is_read() -> None:
    received: list[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        received.append(await receive())
        received.append(await receive())
        await hello(scope, receive, send)

    stream = MemoryStream()
    cycle = new_cycle(stream)
    cycle.body_arrived(b"x")
    cycle.body_complete()
    cycle.peer_closed()
    asyncio.run(cycle.run(app))
    assert [m["type"] for m in received] == ["http.request", "http.disconnect"]
    assert bytes(stream.body) == b"hello"  # a response still goes out


def test_100_continue_goes_out_once_the_app_asks_for_the_body() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await asyncio.sleep(0)
        continues.append(stream.continues)
        await receive()
        await hello(scope, receive, send)

    continues: list[int] = []

    async def main() -> None:
        cycle = new_cycle(stream, expects_continue=True)
        task = asyncio.create_task(cycle.run(app))
        await settle(lambda: stream.continues == 1)
        cycle.body_complete()
        await asyncio.wait_for(task, 5)

    stream = MemoryStream()
    asyncio.run(main())
    assert continues == [0] and stream.continues == 1


def test_a_wait_for_body_is_a_stall_and_a_wait_after_the_body_is_not() -> None:
    async def main() -> None:
        stream = MemoryStream()
        cycle = new_cycle(stream)
        waiting = asyncio.create_task(cycle.receive())
        await settle(lambda: cycle.body_stalled(asyncio.get_running_loop().time(), 0))
        assert not cycle.body_stalled(asyncio.get_running_loop().time(), 3600)
        cycle.body_complete()
        assert (await waiting)["more_body"] is False
        waiting = asyncio.create_task(cycle.receive())  # for the disconnect now
        await asyncio.sleep(0)
        assert not cycle.body_stalled(asyncio.get_running_loop().time() + 3600, 0)
        cycle.client_gone()
        assert (await waiting)["type"] == "http.disconnect"

    asyncio.run(main())


# -- the stream giving up (a timeout, bad bytes after the head) -----------------------


def test_a_request_abandoned_before_its_response_gets_the_errors_reply() -> None:
    async def main() -> tuple[RequestCycle, MemoryStream, Message]:
        stream = MemoryStream()
        cycle = new_cycle(stream)
        waiting = asyncio.create_task(cycle.receive())
        await asyncio.sleep(0)
        cycle.abandon(RequestTimeout("no request body"))
        return cycle, stream, await waiting

    cycle, stream, message = asyncio.run(main())
    assert stream.errors == [408] and message == {"type": "http.disconnect"}
    assert (cycle.status, cycle.response) == (408, ResponseState.COMPLETE)


def test_a_request_abandoned_during_its_response_is_cut_without_a_reply() -> None:
    async def main() -> tuple[RequestCycle, MemoryStream]:
        stream = MemoryStream()
        cycle = new_cycle(stream)
        await cycle.send(START)
        await cycle.send({"type": "http.response.body", "body": b"x", "more_body": True})
        cycle.abandon(RequestTimeout("no request body"))
        with pytest.raises(ClientDisconnected):
            await cycle.send({"type": "http.response.body", "body": b"y"})
        return cycle, stream

    cycle, stream = asyncio.run(main())
    assert not stream.errors and cycle.response is ResponseState.CUT and cycle.status == 200
