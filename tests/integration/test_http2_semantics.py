"""HTTP/2 request semantics (RFC 9113 §8), per-stream time bounds and flow control as
backpressure, with a raw h2 client (tests/support/h2_clients.py) against a real server:
each malformed request resets its own stream and the connection goes on (issue 16,
points 2 and 3)."""

from __future__ import annotations

import importlib
import json
from collections.abc import Iterator
from types import ModuleType

import h2.errors
import h2.events
import hyperframe.frame
import pytest
from support.deadlines import read_until_closed, wait_until
from support.h2_clients import RawH2, frames, goaway_codes
from support.mount_files import PROBE_MOUNTS
from support.servers import Server, write_config

PROTOCOL_ERROR = h2.errors.ErrorCodes.PROTOCOL_ERROR
# Short, so that the timeout tests take seconds; no other test here leaves a body or a
# header block unfinished.
CONFIG = (
    """
[server]
body_timeout = 1
header_timeout = 1
"""
    + PROBE_MOUNTS
    + """
[[mount]]
prefix = "/bad"
app = "misbehaving_apps:asgi_app"
interface = "asgi"

[[mount]]
prefix = "/limits"
app = "limits_app:app"
interface = "asgi"

[[mount]]
prefix = "/limits-wsgi"
app = "limits_app:wsgi_app"
interface = "wsgi"
threads = 4
"""
)
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


def test_a_stalled_request_body_resets_a_stream_whose_response_began(server: Server) -> None:
    with RawH2(server.port) as client:
        client.request(1, "POST", "/limits/answer-then-read/h2-stalled")
        client.send_data(1, b"a part, and then nothing for body_timeout")
        client.read_until(lambda events: client.finished(1))
        assert (client.status(1), client.body(1)) == (b"200", b"begun")
        assert not client.ended(1) and client.reset_code(1) is not None
        goes_on(client, 3)
    # The app's receive said http.disconnect.
    wait_until(lambda: limits_app().outcomes.get("h2-stalled") == "http.disconnect")


def test_a_header_block_that_never_ends_ends_the_connection(server: Server) -> None:
    with RawH2(server.port) as client:
        client.round_trip()
        headers = hyperframe.frame.HeadersFrame(1)  # no END_HEADERS: a CONTINUATION is owed
        headers.data = client.conn.encoder.encode(REQUEST)
        client.sock.sendall(headers.serialize())
        received, closed = read_until_closed(client.sock)
    assert closed
    assert goaway_codes(frames(received)) == [0]


# -- flow control is backpressure (issue 16, point 3) -----------------------------------

# The server's initial windows, stream and connection (RFC 9113 §6.9.2): it advertises
# no other.
WINDOW = 65_535
LIMITS = {"asgi": "/limits", "wsgi": "/limits-wsgi"}


def limits_app() -> ModuleType:
    """The limits_app module the server imported (the same object: one process)."""
    return importlib.import_module("limits_app")


def send_what_the_windows_allow(client: RawH2, stream_id: int, body: bytes) -> bytes:
    """Send as much of `body` as the client's send windows allow; the rest."""
    size = min(client.conn.local_flow_control_window(stream_id), len(body))
    for start in range(0, size, 16_384):  # the default SETTINGS_MAX_FRAME_SIZE
        client.conn.send_data(stream_id, body[start : min(size, start + 16_384)])
    if size == len(body):
        client.conn.end_stream(stream_id)
    client.flush()
    return body[size:]


@pytest.mark.parametrize("interface", ["asgi", "wsgi"])
def test_an_app_that_does_not_read_throttles_its_own_upload(server: Server, interface: str) -> None:
    name = f"h2-upload-{interface}"
    body = b"u" * (8 * WINDOW)
    with RawH2(server.port) as client:
        path = f"{LIMITS[interface]}/gated-read/{name}"
        client.request(1, "POST", path, ("content-length", str(len(body))))
        left = send_what_the_windows_allow(client, 1, body)
        wait_until(lambda: limits_app().gate(name).waiting == 1)
        client.round_trip()  # the server has read all of it, and acknowledged what it took
        # What a WINDOW_UPDATE let in: the WSGI adapter takes the body that came before
        # it hands the call to a thread (adapters/wsgi.py, rule "few hand-offs").
        left = send_what_the_windows_allow(client, 1, left)
        client.round_trip()
        # The rest waits in the client: the server holds no more than the window.
        assert len(body) - len(left) <= 2 * WINDOW
        assert client.conn.local_flow_control_window(1) == 0
        limits_app().gate(name).open()
        while left:  # the app reads: the windows open as it does
            client.read_until(lambda events: client.conn.local_flow_control_window(1) > 0)
            left = send_what_the_windows_allow(client, 1, left)
        client.read_until(lambda events: client.ended(1))
        assert client.body(1) == str(len(body)).encode()
    assert limits_app().outcomes[name] == "complete"


@pytest.mark.parametrize("interface", ["asgi", "wsgi"])
def test_an_apps_send_waits_on_the_windows_and_other_streams_go_on(
    server: Server, interface: str
) -> None:
    streamed = limits_app().streamed
    piece = len(limits_app().STREAM_PIECE)
    with RawH2(server.port, window=1024) as client:
        client.get(1, f"{LIMITS[interface]}/stream")  # 64 MiB, its window 1 KiB
        client.read_until(lambda events: len(client.body(1)) == 1024)
        for stream_id in (3, 5, 7):  # the stuck stream holds up no other
            client.get(stream_id, "/asgi/scope")
            client.read_until(lambda events, s=stream_id: client.ended(s))  # type: ignore[misc]
        # The app waits in send (a WSGI app: its thread, in write): a piece or two are
        # held, never the 64 MiB it would have sent by now.
        held = streamed[interface]
        assert held * piece <= 4 * piece, held
        client.acknowledge(1, len(client.body(1)))  # a WINDOW_UPDATE lets it on
        client.auto_acknowledge = True
        client.read_until(lambda events: streamed[interface] > held + 2)
