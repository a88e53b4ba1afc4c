"""WebSocket over HTTP/2 (RFC 8441; issue 16, point 6) over real sockets: an extended
CONNECT opened with the `h2` library as a raw client, wsproto in client mode over the
stream's DATA (tests/support/ws_clients.py `H2Client`, `H2WebSocket`), and a headless
Chromium that opens `new WebSocket` on a page it loaded over TLS h2.

The apps are tests/apps/ws_apps.py (read in this process: the `serve` fixture runs the
server here) and tests/apps/probe_asgi.py. Every wait is on a condition or a read with a
deadline.
"""

from __future__ import annotations

import importlib
import json
import logging
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h2.errors
import h2.settings
import pytest
from hyperframe.frame import DataFrame, Frame, GoAwayFrame
from support.deadlines import wait_until
from support.mount_files import PROBE_MOUNTS, WS_MOUNT
from support.servers import Server
from support.tls_certs import Certs, make_certs
from support.ws_clients import DEADLINE_S, H2Client, H2WebSocket
from wsproto.events import BytesMessage, CloseConnection, Ping, TextMessage

Serve = Callable[[str], Server]
SMALL_LIMIT_BYTES = 65536
MOUNTS = WS_MOUNT + PROBE_MOUNTS


def mounts(*server_settings: str) -> str:
    """A short graceful_timeout: a test that fails with a WebSocket open stops soon."""
    return "\n".join(["[server]", "graceful_timeout = 5", *server_settings, MOUNTS])


@pytest.fixture
def server(serve: Serve) -> Server:
    return serve(mounts())


def client_of(server: Server) -> H2Client:
    """An h2c connection with prior knowledge (RFC 9113 §3.3)."""
    return H2Client(server.connect())


def app_disconnect(key: str) -> dict[str, Any]:
    """The websocket.disconnect ws_apps got for connection `key`, once it has."""
    disconnects = importlib.import_module("ws_apps").disconnects
    wait_until(lambda: key in disconnects, DEADLINE_S)
    message: dict[str, Any] = disconnects[key]
    return message


def opened(client: H2Client, path: str, **options: Any) -> H2WebSocket:
    ws = client.connect_websocket(path, **options)
    ws.accepted()
    return ws


def test_the_server_advertises_extended_connect(server: Server) -> None:
    with client_of(server) as client:
        setting = h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL
        assert client.server_settings.get(setting) == 1  # RFC 8441 §3


def test_echo_text_and_bytes(server: Server) -> None:
    with client_of(server) as client:
        ws = client.connect_websocket("/ws/echo")
        fields = ws.accepted()
        # The request was the handshake: none of HTTP/1.1's upgrade fields (RFC 8441 §5).
        assert not {b"upgrade", b"connection", b"sec-websocket-accept"} & fields.keys()
        ws.send(TextMessage("héllo"))
        assert ws.receive_message() == "héllo"
        ws.send(BytesMessage(b"\x00\xff" * 40_000))  # over one DATA frame's 16 KiB
        assert ws.receive_message() == b"\x00\xff" * 40_000


def test_the_scope_says_http_2_and_ws(server: Server) -> None:
    with client_of(server) as client:
        ws = opened(client, "/ws/scope?x=1", protocols=("chat.v1",))
        scope = json.loads(ws.receive_message())
    assert (scope["type"], scope["http_version"], scope["scheme"]) == ("websocket", "2", "ws")
    assert (scope["root_path"], scope["path"], scope["query_string"]) == ("/ws", "/ws/scope", "x=1")
    assert scope["subprotocols"] == ["chat.v1"]
    assert ["host", "127.0.0.1"] in scope["headers"]  # from :authority (RFC 9113 §8.3.1)


def test_the_app_chooses_the_subprotocol(server: Server) -> None:
    with client_of(server) as client:
        ws = opened(client, "/ws/subprotocol", protocols=("chat.v1", "chat.v2"))
        assert json.loads(ws.receive_message()) == {"chosen": "chat.v2"}
        fields = ws.log.fields
    assert fields is not None
    assert fields[b"sec-websocket-protocol"] == b"chat.v2"
    assert fields[b"x-accepted-by"] == b"ws_apps"


def test_permessage_deflate_is_agreed_and_works(server: Server) -> None:
    with client_of(server) as client:
        ws = opened(client, "/ws/echo", deflate=True)
        assert ws.log.fields is not None
        assert ws.log.fields[b"sec-websocket-extensions"].startswith(b"permessage-deflate")
        ws.send(TextMessage("squeeze " * 10_000))
        assert ws.receive_message() == "squeeze " * 10_000


def test_the_apps_close_code_reaches_the_client_and_ends_the_stream(server: Server) -> None:
    with client_of(server) as client:
        ws = opened(client, "/ws/close?code=4000&reason=bye")
        close = ws.wait_close()
        assert (close.code, close.reason) == (4000, "bye")
        ws.end()  # our side, after our Close went (RFC 8441 §4: END_STREAM is the FIN)
        ws.wait_stream_over()
        assert ws.log.ended and ws.log.reset is None


def test_the_clients_close_reaches_the_app(server: Server) -> None:
    key = uuid.uuid4().hex
    with client_of(server) as client:
        ws = opened(client, f"/ws/echo?id={key}")
        ws.send(CloseConnection(code=4001, reason="done"))
        answer = ws.next_event()
        assert isinstance(answer, CloseConnection) and answer.code == 4001
        ws.wait_stream_over()  # closing the WebSocket ends the stream
        assert ws.log.ended
    assert app_disconnect(key)["code"] == 4001


def test_a_close_before_accept_is_a_403_on_the_stream(server: Server) -> None:
    with client_of(server) as client:
        stream_id = client.connect_websocket("/ws/reject").stream_id
        assert client.response(stream_id)[0] == 403
        probe = client.get("/asgi/scope")  # the connection goes on
        assert client.response(probe)[0] == 200


def test_a_denial_is_the_apps_own_response(server: Server) -> None:
    with client_of(server) as client:
        stream_id = client.connect_websocket("/ws/deny").stream_id
        status, body = client.response(stream_id)
    assert (status, body) == (401, importlib.import_module("ws_apps").DENIAL_BODY)


def test_a_reset_from_the_client_is_a_disconnect_1006(server: Server) -> None:
    key = uuid.uuid4().hex
    with client_of(server) as client:
        ws = opened(client, f"/ws/wait?id={key}")
        ws.reset()
        assert app_disconnect(key)["code"] == 1006
        probe = client.get("/asgi/scope")
        assert client.response(probe)[0] == 200


def test_the_clients_end_of_stream_without_a_close_is_1006(server: Server) -> None:
    key = uuid.uuid4().hex
    with client_of(server) as client:
        ws = opened(client, f"/ws/wait?id={key}")
        ws.end()  # TCP's FIN, over HTTP/2 (RFC 8441 §4): no Close frame came
        ws.wait_stream_over()
        assert ws.log.ended and ws.log.reset is None  # the server ended its side too
    assert app_disconnect(key)["code"] == 1006  # RFC 6455 §7.1.5


def test_an_app_that_does_not_receive_holds_the_clients_window_shut(server: Server) -> None:
    key = uuid.uuid4().hex
    gates = importlib.import_module("ws_apps").gates
    with client_of(server) as client:
        ws = opened(client, f"/ws/gated-count?id={key}")
        wait_until(lambda: key in gates, DEADLINE_S)
        sent = 0
        for _ in range(MAX_PIECES):  # bounded: a server that reads on takes them all
            if client.conn.local_flow_control_window(ws.stream_id) < FRAME_BYTES:
                if window_stays_shut(client, ws.stream_id):
                    break
                continue
            ws.send(BytesMessage(PIECE))
            sent += len(PIECE)
        # The inbox's mark and one stream window, not the MAX_PIECES on offer.
        assert sent < MAX_PIECES * len(PIECE) // 4, "the server read what nobody received"
        server.loop.call_soon_threadsafe(gates[key].set)
        ws.send(TextMessage("count"))
        assert ws.receive_message() == str(sent)


PIECE = b"p" * 4096
FRAME_BYTES = len(PIECE) + 14  # a masked frame's head is at most 14 bytes (RFC 6455 §5.2)
MAX_PIECES = 1024  # 4 MiB: sixteen times the inbox's mark and a stream window together
# A window that stays shut this long is held by the server: one that read on would
# open it within a round trip.
STALL_S = 0.5


def window_stays_shut(client: H2Client, stream_id: int) -> bool:
    """Read for STALL_S; False as soon as the server opens the stream's window."""
    end = time.monotonic() + STALL_S
    while time.monotonic() < end:
        assert client.pump(end), "the server closed the connection"
        if client.conn.local_flow_control_window(stream_id) >= FRAME_BYTES:
            return False
    return True


def test_the_access_line_says_connect_200_over_http_2(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="gateway.access"), client_of(server) as client:
        ws = opened(client, "/ws/close?code=1000")
        ws.wait_close()
        ws.end()
        # Written when the app has returned, in the server's thread: wait for it.
        wait_until(lambda: any("/ws/close" in r.message for r in caplog.records), DEADLINE_S)
    [line] = [r.message for r in caplog.records if "/ws/close" in r.message]
    assert '"CONNECT /ws/close?code=1000 HTTP/2" 200 ' in line and line.endswith(" websocket")


def test_a_peer_that_does_not_answer_pings_is_dropped_with_cancel(serve: Serve) -> None:
    server = serve(mounts("ws_ping_interval = 0.2", "ws_ping_timeout = 0.5"))
    key = uuid.uuid4().hex
    with client_of(server) as client:
        ws = opened(client, f"/ws/wait?id={key}")
        assert isinstance(ws.next_event(), Ping)  # left unanswered
        ws.wait_stream_over()
        assert ws.log.reset == h2.errors.ErrorCodes.CANCEL  # the stream, not the connection
        probe = client.get("/asgi/scope")
        assert client.response(probe)[0] == 200
    assert app_disconnect(key)["code"] == 1006


def test_websockets_and_requests_share_a_connection(server: Server) -> None:
    with client_of(server) as client:
        first = opened(client, "/ws/echo")
        second = opened(client, "/ws/echo")
        request = client.get("/asgi/scope")
        first.send(TextMessage("one"))
        second.send(BytesMessage(b"two"))
        assert client.response(request)[0] == 200
        assert (first.receive_message(), second.receive_message()) == ("one", b"two")
        first.send(CloseConnection(code=1000))
        first.wait_stream_over()
        second.send(TextMessage("still here"))
        assert second.receive_message() == "still here"


def test_ws_max_message_bytes_is_held(serve: Serve) -> None:
    server = serve(mounts(f"ws_max_message_bytes = {SMALL_LIMIT_BYTES}"))
    with client_of(server) as client:
        ws = opened(client, "/ws/echo")
        ws.send(BytesMessage(b"x" * SMALL_LIMIT_BYTES))
        assert ws.receive_message() == b"x" * SMALL_LIMIT_BYTES
        ws.send(BytesMessage(b"x" * (SMALL_LIMIT_BYTES + 1)))
        assert ws.wait_close().code == 1009  # RFC 6455 §7.4.1


def test_a_wsgi_mount_gets_plain_http(server: Server) -> None:
    with client_of(server) as client:
        stream_id = client.connect_websocket("/wsgi/environ").stream_id
        status, body = client.response(stream_id)
    environ = json.loads(body)
    assert status == 200 and environ["REQUEST_METHOD"] == "GET"
    assert (environ["SCRIPT_NAME"], environ["PATH_INFO"]) == ("/wsgi", "/environ")


@pytest.mark.parametrize("protocol", [None, b"not-websocket"])
def test_other_connects_are_not_served(server: Server, protocol: bytes | None) -> None:
    with client_of(server) as client:
        stream_id = client.conn.get_next_available_stream_id()
        fields = [(b":method", b"CONNECT"), (b":authority", b"127.0.0.1:443")]
        if protocol is not None:  # extended: with :scheme and :path (RFC 8441 §4)
            fields += [(b":protocol", protocol), (b":scheme", b"http"), (b":path", b"/ws/echo")]
        client.send_headers(stream_id, fields)
        assert client.status(stream_id) == 501


def test_an_extended_connect_without_a_version_is_400(server: Server) -> None:
    with client_of(server) as client:
        stream_id = client.conn.get_next_available_stream_id()
        fields = [(b":method", b"CONNECT"), (b":protocol", b"websocket"), (b":scheme", b"http")]
        fields += [(b":path", b"/ws/echo"), (b":authority", b"127.0.0.1")]
        client.send_headers(stream_id, fields)  # RFC 8441 §5 keeps RFC 6455's version
        assert client.status(stream_id) == 400


def test_a_graceful_stop_closes_with_1012(server: Server) -> None:
    with client_of(server) as client:
        ws = opened(client, "/ws/echo")
        server.loop.call_soon_threadsafe(server.worker.request_stop)
        # Frame by frame: h2's client takes no frame after a GOAWAY, though RFC 9113
        # §6.8 lets the streams up to its last one go on.
        close, goaway = answer_close_after_goaway(ws)
    assert close.code == 1012 and goaway == (ws.stream_id, 0)


def answer_close_after_goaway(ws: H2WebSocket) -> tuple[CloseConnection, tuple[int, int]]:
    """Read raw frames until the server closes the connection: the WebSocket's Close
    (answered, with our END_STREAM) and the GOAWAY's last stream and error code."""
    sock, buffer = ws.client.sock, b""
    close: CloseConnection | None = None
    goaway = (-1, -1)
    deadline = time.monotonic() + DEADLINE_S
    while (data := recv_until(sock, deadline)) is not None:
        buffer += data
        while len(buffer) >= 9:
            frame, length = Frame.parse_frame_header(memoryview(buffer[:9]))
            if len(buffer) < 9 + length:
                break
            frame.parse_body(memoryview(buffer[9 : 9 + length]))
            buffer = buffer[9 + length :]
            if isinstance(frame, GoAwayFrame):
                goaway = (frame.last_stream_id, frame.error_code)
            elif isinstance(frame, DataFrame) and frame.stream_id == ws.stream_id and frame.data:
                assert ws.ws is not None and close is None, "DATA after the Close"
                ws.ws.receive_data(bytes(frame.data))
                for event in ws.ws.events():
                    if isinstance(event, CloseConnection):
                        close = event
                        answer = DataFrame(ws.stream_id, ws.ws.send(event.response()))
                        answer.flags.add("END_STREAM")
                        sock.sendall(answer.serialize())
    assert close is not None, "no Close before the connection closed"
    return close, goaway


def recv_until(sock: socket.socket, deadline: float) -> bytes | None:
    """One read before `deadline`; None once the server has closed."""
    remaining = deadline - time.monotonic()
    assert remaining > 0, "the server did not close before the deadline"
    sock.settimeout(remaining)
    try:
        data = sock.recv(65536)
    except ConnectionResetError:
        return None
    return data or None


def test_a_client_that_does_not_read_holds_the_app_in_send(server: Server) -> None:
    flood = importlib.import_module("ws_apps").flood
    with client_of(server) as client:
        client.holding = True  # no WINDOW_UPDATE: the send windows close (RFC 9113 §6.9)
        ws = opened(client, "/ws/flood")
        # The app waits in `send` once the windows (64 KiB by default) and one message
        # are out: far from the flood's 32 MiB.
        wait_until(lambda: flood.blocked_for() > 0.5, DEADLINE_S)
        client.pump_until(lambda: len(ws.log.data) >= 65_535)  # the stream's whole window
        assert not flood.finished and flood.bytes_sent <= 4 * 64 * 1024


# -- a real browser ---------------------------------------------------------------------

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# Chromium's start on two busy cores, the page, the WebSocket and the report: generous,
# and a browser that never connects still fails the test in under a minute.
BROWSER_DEADLINE_S = 45.0


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (Debian: chromium)")
def test_chromium_opens_its_websocket_over_http2(
    serve: Serve, certs: Certs, tmp_path: Path
) -> None:
    tls = f"certfile = {str(certs.cert)!r}\nkeyfile = {str(certs.key)!r}\n"
    server = serve(f'[server]\n{tls}\n[[mount]]\nprefix = "/"\napp = "browser_ws:app"\n')
    page = importlib.import_module("browser_ws")
    page.seen.clear()
    page.reports.clear()
    assert CHROMIUM is not None
    log = (tmp_path / "chromium.log").open("wb")
    browser = subprocess.Popen(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",  # the tests may run as root, where the sandbox refuses
            "--disable-gpu",
            "--no-first-run",
            "--ignore-certificate-errors",  # the test's own CA
            f"--user-data-dir={tmp_path / 'profile'}",
            f"https://127.0.0.1:{server.port}/",
        ],
        stdout=log,
        stderr=log,
    )
    try:
        wait_until(lambda: bool(page.reports), BROWSER_DEADLINE_S)
    finally:
        browser.terminate()
        try:
            browser.wait(DEADLINE_S)
        except subprocess.TimeoutExpired:
            browser.kill()
            browser.wait(DEADLINE_S)
        log.close()
    assert page.reports == [{"echo": [page.MESSAGE]}]
    # Chromium took the page's HTTP/2 connection for the WebSocket (RFC 8441).
    assert page.seen == ["2"]


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("certs"))
