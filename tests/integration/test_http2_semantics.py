"""HTTP/2 request semantics (RFC 9113 §8), per-stream time bounds and flow control as
backpressure, with a raw h2 client (tests/support/h2_clients.py) against a real server:
each malformed request resets its own stream and the connection goes on (issue 16,
points 2 and 3)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import h2.errors
import h2.events
import hyperframe.frame
import pytest
from support.deadlines import read_until_closed, wait_until
from support.h2_clients import RawH2
from support.servers import Server, write_config

PROTOCOL_ERROR = h2.errors.ErrorCodes.PROTOCOL_ERROR
# Short, so that the timeout tests take seconds; no other test here leaves a body or a
# header block unfinished.
CONFIG = """
[server]
body_timeout = 1
header_timeout = 1

[[mount]]
prefix = "/asgi"
app = "probe_asgi:app"
interface = "asgi"

[[mount]]
prefix = "/wsgi"
app = "probe_wsgi:app"
interface = "wsgi"
threads = 2

[[mount]]
prefix = "/bad"
app = "misbehaving_apps:asgi_app"
interface = "asgi"
"""
REQUEST = [(":method", "GET"), (":scheme", "http"), (":authority", "t"), (":path", "/asgi/scope")]
POST = [(":method", "POST"), *REQUEST[1:3], (":path", "/asgi/echo")]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server for the module: HTTP/2 does not depend on the HTTP/1.1 parser."""
    server = Server(write_config(tmp_path_factory.mktemp("h2sem"), CONFIG)).start()
    yield server
    server.stop()


def goes_on(client: RawH2, stream_id: int) -> None:
    """The connection still serves: a request on a further stream is answered."""
    client.get(stream_id, "/asgi/scope")
    client.read_until(lambda events: client.ended(stream_id))
    assert client.status(stream_id) == b"200"


MALFORMED = {
    "uppercase name": [*REQUEST, ("Accept", "*/*")],
    "unknown pseudo-header": [*REQUEST, (":status", "200")],
    "repeated pseudo-header": [*REQUEST, (":path", "/asgi/echo")],
    "pseudo-header after a regular field": [*REQUEST[:3], ("accept", "*/*"), REQUEST[3]],
    ":method missing": REQUEST[1:],
    ":path missing": REQUEST[:3],
    ":path empty": [*REQUEST[:3], (":path", "")],
    "connection-specific field": [*REQUEST, ("connection", "keep-alive")],
    "TE other than trailers": [*REQUEST, ("te", "gzip")],
    "Host differs from :authority": [*REQUEST, ("host", "other")],
    "Content-Length with END_STREAM": [*POST, ("content-length", "3")],
}


@pytest.mark.parametrize("fields", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_malformed_request_resets_its_stream_only(
    server: Server, fields: list[tuple[str, str]]
) -> None:
    with RawH2(server.port, checked=False) as client:
        client.send_raw_headers(1, fields)
        client.read_until(lambda events: client.finished(1))
        assert client.reset_code(1) == PROTOCOL_ERROR and client.status(1) == b""
        goes_on(client, 3)


def test_what_is_well_formed_but_not_served_gets_http_1_1_s_reply(server: Server) -> None:
    with RawH2(server.port, checked=False) as client:
        client.send_raw_headers(1, [*REQUEST[:3], (":path", "asgi/scope")])
        client.read_until(lambda events: client.ended(1))
        assert client.status(1) == b"400"
        goes_on(client, 3)


def disconnects(server: Server) -> int:
    with RawH2(server.port) as client:
        client.get(1, "/asgi/progress")
        client.read_until(lambda events: client.ended(1))
        return int(json.loads(client.body(1))["disconnects"])


@pytest.mark.parametrize(
    "pieces", [[b"ab", b"cd"], [b"ab"]], ids=["more DATA", "END_STREAM before it"]
)
def test_data_that_breaks_the_content_length_resets_the_stream_and_the_app_sees_a_disconnect(
    server: Server, pieces: list[bytes]
) -> None:
    before = disconnects(server)
    with RawH2(server.port) as client:
        path = (":path", "/asgi/wait-disconnect")
        client.send_raw_headers(1, [*POST[:3], path, ("content-length", "3")], end=False)
        for n, piece in enumerate(pieces):
            client.send_data(1, piece, end=n == len(pieces) - 1)
        client.read_until(lambda events: client.finished(1))
        assert client.reset_code(1) == PROTOCOL_ERROR
        # The app's receive said http.disconnect (tests/apps/probe_asgi.py counts them).
        wait_until(lambda: disconnects(server) == before + 1)
        goes_on(client, 3)


def test_a_request_with_trailers_is_served_and_its_trailers_dropped(server: Server) -> None:
    with RawH2(server.port) as client:
        client.request(1, "POST", "/asgi/echo", ("te", "trailers"))
        client.send_data(1, b"abc")
        client.send_raw_headers(1, [("x-checksum", "900150983cd24fb0")])
        client.read_until(lambda events: client.ended(1))
        assert (client.status(1), client.body(1)) == (b"200", b"abc")


def test_trailers_with_a_pseudo_header_reset_the_stream(server: Server) -> None:
    with RawH2(server.port, checked=False) as client:
        client.send_raw_headers(1, POST, end=False)
        client.send_data(1, b"abc")
        client.send_raw_headers(1, [(":path", "/elsewhere")])
        client.read_until(lambda events: client.finished(1))
        assert client.reset_code(1) == PROTOCOL_ERROR
        goes_on(client, 3)


@pytest.mark.parametrize(
    ("path", "status"),
    [("/bad/short-body", b"500"), ("/bad/long-body", b"500"), ("/bad/ok", b"200")],
)
def test_a_response_that_breaks_its_content_length_before_its_head_is_a_500(
    server: Server, path: str, status: bytes
) -> None:
    with RawH2(server.port) as client:
        client.get(1, path)
        client.read_until(lambda events: client.ended(1))
        assert client.status(1) == status


def test_a_response_that_breaks_its_content_length_midway_is_reset(server: Server) -> None:
    with RawH2(server.port) as client:
        client.get(1, "/bad/short-body-mid-response")
        client.read_until(lambda events: client.finished(1))
        # The head and a part went out; the reset tells the client the rest will not.
        assert (client.status(1), client.body(1)) == (b"200", b"part")
        assert not client.ended(1) and client.reset_code(1) == h2.errors.ErrorCodes.INTERNAL_ERROR
        goes_on(client, 3)


def test_a_stalled_request_body_gets_408_on_its_stream(server: Server) -> None:
    with RawH2(server.port) as client:
        client.request(1, "POST", "/asgi/echo")
        client.send_data(1, b"a part, and then nothing for body_timeout")
        client.read_until(lambda events: client.finished(1) and client.ended(1))
        assert client.status(1) == b"408"
        # RST_STREAM NO_ERROR: the rest of the request is not wanted (RFC 9113 §8.1).
        client.read_until(lambda events: client.reset_code(1) is not None)
        assert client.reset_code(1) == h2.errors.ErrorCodes.NO_ERROR
        goes_on(client, 3)


def test_a_header_block_that_never_ends_ends_the_connection(server: Server) -> None:
    with RawH2(server.port) as client:
        client.round_trip()
        headers = hyperframe.frame.HeadersFrame(1)  # no END_HEADERS: a CONTINUATION is owed
        headers.data = client.conn.encoder.encode(REQUEST)
        client.sock.sendall(headers.serialize())
        received, closed = read_until_closed(client.sock)
    assert closed
    goaway = [f for f in frames(received) if isinstance(f, hyperframe.frame.GoAwayFrame)]
    assert [f.error_code for f in goaway] == [0]


def frames(data: bytes) -> list[hyperframe.frame.Frame]:
    out = []
    while len(data) >= 9:
        frame, length = hyperframe.frame.Frame.parse_frame_header(memoryview(data[:9]))
        frame.parse_body(memoryview(data[9 : 9 + length]))
        out.append(frame)
        data = data[9 + length :]
    return out
