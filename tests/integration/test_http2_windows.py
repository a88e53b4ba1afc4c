"""HTTP/2 request bodies the gateway holds, and the ones it stops: the connection's
receive window (gateway/server/h2_connection.py, rule "flow control is backpressure"),
a complete response ending the request (rule "a complete response ends the request"),
and a connection lost while its apps still run (rule "a connection lost")."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

import h2.errors
import h2.events
import hyperframe.frame
import pytest
from support.deadlines import wait_until
from support.h2_clients import RawH2, request_head
from support.servers import Server

Serve = Callable[[str], Server]
MOUNTS = """
[[mount]]
prefix = "/asgi"
app = "probe_asgi:app"
interface = "asgi"
"""
NO_ERROR = int(h2.errors.ErrorCodes.NO_ERROR)
DEFAULT_WINDOW = 65_535  # RFC 9113 §6.9.2


def window_updated(count: int) -> Callable[[list[h2.events.Event]], bool]:
    """A WINDOW_UPDATE arrived after the first `count` events."""
    return lambda events: any(isinstance(e, h2.events.WindowUpdated) for e in events[count:])


def upload(client: RawH2, stream_id: int, body: bytes) -> None:
    """Send `body` and END_STREAM as fast as the send windows allow, waiting for the
    server's WINDOW_UPDATEs (each wait has RawH2's deadline)."""
    sent = 0
    while sent < len(body):
        window = client.conn.local_flow_control_window(stream_id)
        if window == 0:
            client.read_until(window_updated(len(client.events)))
            continue
        size = min(window, client.conn.max_outbound_frame_size, len(body) - sent)
        client.send_data(stream_id, body[sent : sent + size])
        sent += size
    client.send_data(stream_id, b"", end=True)


def both_ended(client: RawH2, first: int, second: int) -> Callable[[object], bool]:
    return lambda events: client.finished(first) and client.finished(second)


def post(client: RawH2, stream_id: int, path: str) -> None:
    client.send_raw_headers(stream_id, request_head("POST", path), end=False)


def test_a_stream_whose_app_reads_nothing_leaves_room_for_another_upload(
    serve: Serve,
) -> None:
    server = serve("[server]\n" + MOUNTS)
    client = RawH2(server.port)
    client.auto_acknowledge = True
    with client.sock:
        post(client, 1, "/asgi/hold?windows")
        # Its whole stream window: with a connection window as small, nothing is left.
        upload_part = b"h" * DEFAULT_WINDOW
        for start in range(0, DEFAULT_WINDOW, 16384):
            client.send_data(1, upload_part[start : start + 16384])
        assert client.conn.local_flow_control_window(1) == 0
        post(client, 3, "/asgi/echo")
        body = bytes(range(256)) * 512  # 128 KiB: twice a stream's window
        upload(client, 3, body)
        client.read_until(lambda events: client.ended(3))
        assert (client.status(3), client.body(3)) == (b"200", body)
        assert not client.finished(1)
        client.get(5, "/asgi/unhold?windows")
        client.read_until(lambda events: client.ended(5) and client.finished(1))
        assert client.status(1) == b"200"


def test_what_an_ended_cycle_held_unread_goes_back_to_the_connection_window(
    serve: Serve,
) -> None:
    server = serve("[server]\n" + MOUNTS)
    client = RawH2(server.port)
    client.auto_acknowledge = True
    with client.sock:
        # More streams than the connection's window holds, each ending with a full
        # window of body its app never read: what they held must come back.
        for n in range(20):
            held, release = 8 * n + 1, 8 * n + 3
            post(client, held, f"/asgi/hold?unread-{n}")
            for size in (16384, 16384, 16384, 16383):  # the stream's whole window
                client.send_data(held, b"u" * size)
            client.get(release, f"/asgi/unhold?unread-{n}")
            client.read_until(both_ended(client, held, release))
        post(client, 161, "/asgi/echo")
        body = b"e" * (2 * DEFAULT_WINDOW)
        upload(client, 161, body)
        client.read_until(lambda events: client.ended(161))
        assert client.body(161) == body


def raw_data(stream_id: int, data: bytes) -> bytes:
    """A DATA frame framed here: h2's client sends none on a stream it saw reset."""
    return hyperframe.frame.DataFrame(stream_id, data=data).serialize()


def assert_answered_then_stopped(client: RawH2, stream_id: int, status: bytes) -> None:
    """The complete response, then RST_STREAM NO_ERROR; the client's further DATA is
    dropped and the connection goes on."""
    client.read_until(lambda events: client.reset_code(stream_id) is not None)
    assert client.status(stream_id) == status and client.ended(stream_id)
    assert client.reset_code(stream_id) == NO_ERROR
    client.sock.sendall(raw_data(stream_id, b"late" * 1000))
    client.get(stream_id + 2, "/asgi/scope")
    client.read_until(lambda events: client.ended(stream_id + 2))
    assert client.status(stream_id + 2) == b"200" and not client.closed


def test_an_app_that_answers_before_the_body_ends_stops_the_upload(serve: Serve) -> None:
    server = serve("[server]\n" + MOUNTS)
    client = RawH2(server.port)
    with client.sock:
        post(client, 1, "/asgi/no-read")
        client.send_data(1, b"more to come")
        assert_answered_then_stopped(client, 1, b"200")
        assert client.body(1) == b"not reading"


def test_a_refusal_past_limit_concurrency_stops_the_upload(serve: Serve) -> None:
    server = serve("[server]\nlimit_concurrency = 1\n" + MOUNTS)
    client = RawH2(server.port)
    with client.sock:
        client.get(1, "/asgi/sleep?3")  # in flight from its head on: the limit is reached
        post(client, 3, "/asgi/echo")
        client.send_data(3, b"more to come")
        client.read_until(lambda events: client.reset_code(3) is not None)
        assert client.status(3) == b"503" and client.ended(3)
        assert client.reset_code(3) == NO_ERROR
        client.sock.sendall(raw_data(3, b"late" * 1000))
        client.read_until(lambda events: client.ended(1))  # the connection went on
        assert client.body(1) == b"slept" and client.reset_code(1) is None


def test_a_stream_ended_by_its_client_is_not_reset(serve: Serve) -> None:
    server = serve("[server]\n" + MOUNTS)
    client = RawH2(server.port)
    with client.sock:
        post(client, 1, "/asgi/echo")
        client.send_data(1, b"whole", end=True)
        client.get(3, "/asgi/scope")
        client.read_until(lambda events: client.ended(1) and client.ended(3))
        client.round_trip()
        assert client.body(1) == b"whole" and client.reset_code(1) is None


@pytest.mark.parametrize("serve", ["h11"], indirect=True)
def test_a_graceful_stop_waits_for_the_apps_of_a_connection_lost(
    serve: Serve, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    probe_log = tmp_path / "probe.log"  # tests/apps/probe_asgi.py notes sleep's start, end
    monkeypatch.setenv("PROBE_LIFESPAN_LOG", str(probe_log))
    server = serve("[server]\ngraceful_timeout = 30\n" + MOUNTS)
    client = RawH2(server.port)
    client.get(1, "/asgi/sleep?2")
    wait_until(lambda: probe_log.exists() and "sleep-start" in probe_log.read_text())
    client.sock.shutdown(socket.SHUT_RDWR)
    client.sock.close()
    server.stop()
    # The drain waited for the app, then the lifespan's shutdown ran.
    assert probe_log.read_text().split() == ["startup", "sleep-start", "sleep-end", "shutdown"]
