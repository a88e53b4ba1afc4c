"""HTTP/2's two-step graceful GOAWAY (gateway/http/h2_goaway.py, rule "two steps";
gateway/server/h2_connection.py, rule "a graceful `shutdown()`") on a real socket, with a
raw client that reads on past a GOAWAY (tests/support/h2_clients.py FrameClient).

Which of the two ways to the final GOAWAY a test takes (the client's PING ACK, or the
bound when it never answers) is made certain by moving the bound out of the way: an hour
when the ACK alone must end the wait, nothing when it must not be waited for.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import h2.errors
import hyperframe.frame
import pytest
from support.deadlines import wait_until
from support.h2_clients import FrameClient
from support.servers import Server

from gateway.http.h2_goaway import MAX_STREAM_ID
from gateway.server import h2_connection

Serve = Callable[[str], Server]
MOUNT = '[server]\n[[mount]]\nprefix = "/"\napp = "probe_asgi:app"\ninterface = "asgi"\n'
NOTICE = (MAX_STREAM_ID, 0)  # GOAWAY 2^31-1, NO_ERROR
# Long enough that the stream is still running while the test acts on the GOAWAYs.
SLOW_S = 3
AN_HOUR_S = 3600.0


def slow_stream_in_flight(
    serve: Serve, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[Server, FrameClient]:
    """A server, and a client whose stream 1 runs the probe's slow route."""
    probe_log = tmp_path / "probe.log"  # tests/apps/probe_asgi.py notes "sleep-start"
    monkeypatch.setenv("PROBE_LIFESPAN_LOG", str(probe_log))
    server = serve(MOUNT)
    return server, FrameClient(server.port, answer_pings=False)


def start_stop(server: Server, client: FrameClient, probe_log: Path) -> None:
    client.get(1, f"/sleep?{SLOW_S}")
    wait_until(lambda: probe_log.exists() and "sleep-start" in probe_log.read_text())
    server.loop.call_soon_threadsafe(server.worker.request_stop)
    client.read_until(lambda: NOTICE in client.goaways())


def test_the_final_goaway_follows_the_client_s_ping_ack(
    serve: Serve, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(h2_connection, "GOAWAY_ACK_TIMEOUT_S", AN_HOUR_S)
    server, client = slow_stream_in_flight(serve, tmp_path, monkeypatch)
    with client.sock:
        start_stop(server, client, tmp_path / "probe.log")
        ping = client.frames[-1]
        assert isinstance(ping, hyperframe.frame.PingFrame) and "ACK" not in ping.flags
        assert client.goaways() == [NOTICE]
        client.acknowledge(ping)
        client.read_until(lambda: len(client.goaways()) == 2)
        assert client.goaways() == [NOTICE, (1, 0)]
        assert not client.ended(1)  # the final GOAWAY came with stream 1 still running
        client.read_until(lambda: False)  # to the server's close
    assert client.closed
    assert client.status(1) == b"200" and client.ended(1)


def test_a_stream_that_crosses_the_notice_is_served_and_one_after_the_final_is_refused(
    serve: Serve, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The client never answers the PING: the final GOAWAY comes at the bound, here at
    # the next sweep.
    monkeypatch.setattr(h2_connection, "GOAWAY_ACK_TIMEOUT_S", 0.0)
    server, client = slow_stream_in_flight(serve, tmp_path, monkeypatch)
    with client.sock:
        start_stop(server, client, tmp_path / "probe.log")
        client.get(3, "/scope")  # sent after the notice, before the final GOAWAY
        client.read_until(lambda: len(client.goaways()) == 2)
        # RFC 9113 §6.8: the final GOAWAY names the last stream received and served.
        assert client.goaways() == [NOTICE, (3, 0)]
        client.get(5, "/scope")  # after the final GOAWAY: refused, not served
        client.read_until(lambda: bool(client.resets(5)))
        assert client.resets(5) == [h2.errors.ErrorCodes.REFUSED_STREAM]
        client.read_until(lambda: False)
    assert client.closed
    assert (client.status(1), client.status(3), client.status(5)) == (b"200", b"200", b"")
    assert client.ended(1) and client.ended(3)


def test_an_idle_connection_gets_both_goaways_then_the_end(
    serve: Serve, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(h2_connection, "GOAWAY_ACK_TIMEOUT_S", AN_HOUR_S)
    server = serve(MOUNT)
    client = FrameClient(server.port)  # answers the PING
    with client.sock:
        client.get(1, "/scope")
        client.read_until(lambda: client.ended(1))
        server.loop.call_soon_threadsafe(server.worker.request_stop)
        client.read_until(lambda: False)
    assert client.closed
    assert client.goaways() == [NOTICE, (1, 0)]
