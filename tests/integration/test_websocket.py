"""WebSocket over real sockets (issue 5): the ASGI WebSocket spec and RFC 6455 on the wire.

Two clients. The `websockets` library is the ordinary client a user would have: it
checks the handshake, answers pings and closes properly. `RawClient` is wsproto over a
plain socket, for what a library hides: fragments as sent, hand-made invalid frames,
pings left unanswered, a connection dropped without a Close frame.

The apps are tests/apps/ws_apps.py. The server runs in this process (the `serve`
fixture), so a test reads the apps' module state (`disconnects`, `flood`, `gates`,
`late_sends`, `finished`, `cancelled`) directly. The clients are in tests/support/ws_clients.py.
Every wait is on a condition or a read with a deadline; none is a bare sleep.
"""

from __future__ import annotations

import importlib
import json
import random
import socket
import struct
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from support.deadlines import read_until_closed, wait_until
from support.servers import Server
from support.ws_clients import (
    BINARY,
    CLOSE,
    CONTINUATION,
    DEADLINE_S,
    MIB,
    PING,
    STALL_S,
    TEXT,
    UPGRADE_ACCEPT,
    UPGRADE_FIELDS,
    RawClient,
    client_frame,
    closed_by_server,
    open_raw,
    read_frame,
    read_http_response,
    rejection,
    send_until_stalled,
    small_buffer_socket,
    upgrade_response,
    ws_connect,
)
from wsproto.events import (
    AcceptConnection,
    CloseConnection,
    Message,
    Ping,
    Pong,
    RejectConnection,
    RejectData,
    Request,
)

Serve = Callable[[str], Server]

SMALL_LIMIT_BYTES = 65536
# The server pings often and gives up soon, so keep-alive tests take about a second.
PING_INTERVAL_S = 0.2
PING_TIMEOUT_S = 0.5
KEEPALIVE = (f"ws_ping_interval = {PING_INTERVAL_S}", f"ws_ping_timeout = {PING_TIMEOUT_S}")

MOUNTS = """
[[mount]]
prefix = "/ws"
app = "ws_apps:app"
interface = "asgi"

[[mount]]
prefix = "/deep/ws"
app = "ws_apps:app"
interface = "asgi"

[[mount]]
prefix = "/wsgi"
app = "probe_wsgi:app"
interface = "wsgi"
threads = 2
"""


def mounts(*server_settings: str, graceful_timeout_s: float = 5) -> str:
    """The mount file, with these lines in [server]. No "/" mount: unrouted paths 404.

    A short graceful_timeout: a test that fails with a WebSocket open still stops soon.
    """
    settings = [f"graceful_timeout = {graceful_timeout_s}", *server_settings]
    return "\n".join(["[server]", *settings, MOUNTS])


@pytest.fixture
def server(serve: Serve) -> Server:
    return serve(mounts())


def app_state() -> Any:
    """The ws_apps module the server imported (the same object: one process)."""
    return importlib.import_module("ws_apps")


def new_id() -> str:
    """Names one connection in ws_apps.disconnects."""
    return uuid.uuid4().hex


def recorded_disconnect(key: str) -> dict[str, Any]:
    """The websocket.disconnect the app got for connection `key`, once it has."""
    disconnects = app_state().disconnects
    wait_until(lambda: key in disconnects, DEADLINE_S)
    message: dict[str, Any] = disconnects[key]
    return message


# --- messages ------------------------------------------------------------------------


def test_echo_text_and_binary(server: Server) -> None:
    with ws_connect(server, "/ws/echo") as ws:
        ws.send("héllo")
        assert ws.recv(timeout=DEADLINE_S) == "héllo"
        ws.send(b"\x00\xffbinary")
        assert ws.recv(timeout=DEADLINE_S) == b"\x00\xffbinary"
        ws.send("")
        assert ws.recv(timeout=DEADLINE_S) == ""


def test_one_mebibyte_messages_both_ways(server: Server) -> None:
    data = random.Random(1).randbytes(MIB)
    text = "".join(random.Random(2).choices("abcdéλ\u20ac", k=MIB))
    with ws_connect(server, "/ws/echo") as ws:
        ws.send(data)
        assert ws.recv(timeout=DEADLINE_S) == data
        ws.send(text)
        assert ws.recv(timeout=DEADLINE_S) == text


def test_one_mebibyte_messages_both_ways_raw(server: Server) -> None:
    """As above, each message one frame on the wire, without the library's reassembly."""
    data = random.Random(6).randbytes(MIB)
    text = "".join(random.Random(7).choices("abcdéλ\u20ac", k=MIB))
    with open_raw(server, "/ws/echo") as client:
        client.send(Message(data=data))
        assert client.receive_message() == data
        client.send(Message(data=text))
        assert client.receive_message() == text


FRAGMENTED = pytest.mark.parametrize(
    ("pieces", "whole"),
    [
        (["hel", "", "lo wörld"], "hello wörld"),
        ([b"\x00\x01", b"\x02", b"\x03"], b"\x00\x01\x02\x03"),
    ],
    ids=["text", "binary"],
)


@FRAGMENTED
def test_a_fragmented_message_reaches_the_app_whole(
    server: Server, pieces: list[Any], whole: str | bytes
) -> None:
    """The app gets one websocket.receive; a ping between fragments is answered at once
    (RFC 6455 §5.4: control frames may be injected in the middle of a message)."""
    with open_raw(server, "/ws/echo") as client:
        client.send(Message(data=pieces[0], message_finished=False))
        client.send(Ping(payload=b"mid-message"))
        pong = client.next_event()
        assert isinstance(pong, Pong)
        assert pong.payload == b"mid-message"
        for piece in pieces[1:-1]:
            client.send(Message(data=piece, message_finished=False))
        client.send(Message(data=pieces[-1], message_finished=True))
        # The echo app answers each websocket.receive with one message: two fragments
        # delivered as two receives would come back as two messages, the first partial.
        assert client.receive_message() == whole


@FRAGMENTED
def test_a_fragmented_message_from_the_library_reaches_the_app_whole(
    server: Server, pieces: list[Any], whole: str | bytes
) -> None:
    """websockets sends an iterable as one message in fragments (compressed too, as
    deflate is on by default); the echo app answers each websocket.receive once."""
    with ws_connect(server, "/ws/echo") as ws:
        ws.send(pieces)
        assert ws.recv(timeout=DEADLINE_S) == whole


def test_utf8_split_across_fragments_is_valid(server: Server) -> None:
    """A character may straddle two frames; only the whole message must be UTF-8."""
    euro = "€".encode()
    with open_raw(server, "/ws/echo") as client:
        client.send_raw(client_frame(TEXT, b"price: " + euro[:1], fin=False))
        client.send_raw(client_frame(CONTINUATION, euro[1:] + b"5"))
        assert client.receive_message() == "price: €5"


def test_ping_is_answered_with_pong(server: Server) -> None:
    with open_raw(server, "/ws/echo") as client:
        client.send(Ping(payload=b"are you there"))
        pong = client.next_event()
        assert isinstance(pong, Pong)
        assert pong.payload == b"are you there"
    with ws_connect(server, "/ws/echo") as ws:
        assert ws.ping(b"library ping").wait(DEADLINE_S), "no pong"


def test_two_websockets_at_once(server: Server) -> None:
    with ws_connect(server, "/ws/echo") as first, ws_connect(server, "/ws/echo") as second:
        second.send("to second")
        first.send("to first")
        assert first.recv(timeout=DEADLINE_S) == "to first"
        assert second.recv(timeout=DEADLINE_S) == "to second"
        first.send(b"again")
        assert first.recv(timeout=DEADLINE_S) == b"again"


def test_http_is_served_while_a_websocket_is_open(server: Server) -> None:
    with ws_connect(server, "/ws/echo") as ws:
        ws.send("open")
        assert ws.recv(timeout=DEADLINE_S) == "open"
        plain = httpx.get(server.url + "/ws/echo", timeout=DEADLINE_S)
        assert plain.status_code == 426  # the app's answer to a request without upgrade
        assert httpx.get(server.url + "/wsgi/environ", timeout=DEADLINE_S).status_code == 200
        ws.send("still open")
        assert ws.recv(timeout=DEADLINE_S) == "still open"


# --- the handshake -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("offered", "chosen"),
    [(["chat.v1", "chat.v2"], "chat.v2"), (["chat.v1"], "chat.v1"), (["other"], None)],
)
def test_the_app_chooses_the_subprotocol(
    server: Server, offered: list[str], chosen: str | None
) -> None:
    with ws_connect(server, "/ws/subprotocol", subprotocols=offered) as ws:
        assert json.loads(ws.recv(timeout=DEADLINE_S)) == {"chosen": chosen}
        assert ws.subprotocol == chosen
        assert upgrade_response(ws).headers.get("Sec-WebSocket-Protocol") == chosen


def test_accept_headers_reach_the_client(server: Server) -> None:
    with ws_connect(server, "/ws/subprotocol", subprotocols=["chat.v1"]) as ws:
        assert upgrade_response(ws).status_code == 101
        assert upgrade_response(ws).headers["X-Accepted-By"] == "ws_apps"
        assert upgrade_response(ws).headers["Set-Cookie"] == "ws-session=abc"


def test_close_before_accept_is_403(server: Server) -> None:
    response = rejection(server, "/ws/reject")
    assert response.status_code == 403
    with RawClient(server.connect()) as client:
        refused = client.handshake("/ws/reject")
        assert isinstance(refused, RejectConnection)
        assert refused.status_code == 403


def test_the_app_denies_the_upgrade_with_its_own_response(server: Server) -> None:
    """websocket.http.response.start/body before accept: status, headers and body."""
    response = rejection(server, "/ws/deny")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert response.body == app_state().DENIAL_BODY


def test_denial_body_seen_raw(server: Server) -> None:
    with RawClient(server.connect()) as client:
        refused = client.handshake("/ws/deny")
        assert isinstance(refused, RejectConnection)
        assert refused.status_code == 401
        assert refused.has_body
        body = b""
        for _ in range(100):
            data = client.next_event()
            assert isinstance(data, RejectData)
            body += data.data
            if data.body_finished:
                break
        assert body == app_state().DENIAL_BODY


@pytest.mark.parametrize("how", ["raise", "return", "status", "status-101"])
def test_a_denial_that_fails_before_its_head_is_a_500(server: Server, how: str) -> None:
    """Issue 13, point 15: a denial that raises or returns after its start, or whose
    status is not a final one, answers 500, not a closed socket and nothing."""
    with server.connect() as sock:
        sock.sendall(b"GET /ws/deny-broken?how=%s HTTP/1.1\r\n" % how.encode() + UPGRADE_FIELDS)
        sock.sendall(b"\r\n")
        data, closed = read_until_closed(sock, DEADLINE_S)
    assert data.startswith(b"HTTP/1.1 500 "), data
    assert closed


def test_a_denial_whose_body_breaks_still_sends_its_head(server: Server) -> None:
    """Body shorter than its Content-Length: the head (401) reaches the client, then the
    connection closes, which tells it the body is cut."""
    with server.connect() as sock:
        sock.sendall(b"GET /ws/deny-broken?how=short HTTP/1.1\r\n" + UPGRADE_FIELDS + b"\r\n")
        data, closed = read_until_closed(sock, DEADLINE_S)
    assert data.startswith(b"HTTP/1.1 401 "), data
    assert b"content-length: 100" in data.lower()
    assert closed


@pytest.mark.parametrize("prefix", ["/ws", "/deep/ws"])
def test_scope_under_a_prefix(server: Server, prefix: str) -> None:
    """ASGI path semantics as for HTTP: root_path is the mount, path stays whole."""
    target = f"{prefix}/scope/a%20b?q=1"
    with ws_connect(server, target, subprotocols=["chat.v1", "x"]) as ws:
        scope = json.loads(ws.recv(timeout=DEADLINE_S))
    assert scope["type"] == "websocket"
    # 2.5 (django/asgiref specs/www.rst): websocket.disconnect carries `reason`, as ours do.
    assert scope["asgi"] == {"version": "3.0", "spec_version": "2.5"}
    assert scope["root_path"] == prefix
    assert scope["path"] == f"{prefix}/scope/a b"
    assert scope["raw_path"] == f"{prefix}/scope/a%20b"
    assert scope["query_string"] == "q=1"
    assert scope["scheme"] == "ws"
    assert scope["http_version"] == "1.1"
    assert scope["subprotocols"] == ["chat.v1", "x"]
    assert "websocket.http.response" in scope["extensions"]
    assert scope["server"] == ["127.0.0.1", server.port]
    assert scope["client"][0] == "127.0.0.1"
    headers = dict(scope["headers"])
    assert headers["host"] == f"127.0.0.1:{server.port}"
    assert headers["upgrade"].lower() == "websocket"


def test_no_route_is_404(server: Server) -> None:
    assert rejection(server, "/nowhere/echo").status_code == 404
    assert rejection(server, "/wsx/echo").status_code == 404  # not under /ws
    with RawClient(server.connect()) as client:
        refused = client.handshake("/nowhere")
        assert isinstance(refused, RejectConnection)
        assert refused.status_code == 404


def test_upgrade_to_a_wsgi_mount_is_plain_http(server: Server) -> None:
    """WSGI cannot speak WebSocket: the app answers the request as any other, and the
    connection goes on as HTTP/1.1 (RFC 9110 §7.8: a server may ignore Upgrade)."""
    with server.connect() as sock:
        sock.sendall(b"GET /wsgi/environ HTTP/1.1\r\n" + UPGRADE_FIELDS + b"\r\n")
        response = read_http_response(sock)
        assert response.status_line == b"HTTP/1.1 200 OK"
        assert b"upgrade" not in response.fields.get(b"connection", b"").lower()
        environ = json.loads(response.body)
        assert (environ["SCRIPT_NAME"], environ["PATH_INFO"]) == ("/wsgi", "/environ")
        assert environ["HTTP_UPGRADE"] == "websocket"
        sock.sendall(b"GET /wsgi/environ?again HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        again = read_http_response(sock)
        assert again.status_line == b"HTTP/1.1 200 OK"
        assert json.loads(again.body)["QUERY_STRING"] == "again"
    assert rejection(server, "/wsgi/environ").status_code == 200


def test_a_frame_sent_with_the_handshake_is_kept(server: Server) -> None:
    """Bytes after the upgrade request in the same read are the first frame: the
    server hands them to the WebSocket, never to the HTTP parser."""
    with RawClient(server.connect()) as client:
        request = client.ws.send(Request(host="127.0.0.1", target="/ws/echo"))
        client.send_raw(request + client_frame(TEXT, b"early"))
        assert isinstance(client.next_event(), AcceptConnection)
        assert client.receive_message() == "early"


def test_an_upgrade_pipelined_behind_a_request(server: Server) -> None:
    """A plain request, then an upgrade and its first frame, all in one write: the
    first is answered, then the upgrade, then the frame is echoed. Both HTTP sessions
    must agree (RFC 9112 §9.3.2 pipelining; the upgrade's leftover bytes are frames)."""
    with RawClient(server.connect()) as client:
        plain = b"GET /wsgi/environ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        upgrade = client.ws.send(Request(host="127.0.0.1", target="/ws/echo"))
        client.send_raw(plain + upgrade + client_frame(TEXT, b"pipelined"))
        first = read_http_response(client.sock)
        assert first.status_line == b"HTTP/1.1 200 OK"
        client.feed(first.rest)  # the 101 and the echo, if they came in the same reads
        accepted = client.next_event()
        assert isinstance(accepted, AcceptConnection), accepted
        assert client.receive_message() == "pipelined"


@pytest.mark.parametrize(
    "fields",
    [
        b"Upgrade: WebSocket\r\nConnection: Upgrade\r\n",  # tokens are case-insensitive
        b"Upgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n",  # as Firefox sends
    ],
    ids=["mixed-case upgrade", "connection list"],
)
def test_browser_style_upgrade_fields(server: Server, fields: bytes) -> None:
    request = (
        b"GET /ws/echo HTTP/1.1\r\nHost: 127.0.0.1\r\n" + fields + b"Sec-WebSocket-Key: "
        b"dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    with server.connect() as sock:
        sock.sendall(request)
        response = read_http_response(sock)
        assert response.status_line == b"HTTP/1.1 101 Switching Protocols"
        assert response.fields[b"sec-websocket-accept"] == UPGRADE_ACCEPT
        sock.sendall(client_frame(TEXT, b"hi"))
        echoed = response.rest
        while len(echoed) < 4:
            chunk = sock.recv(65536)
            assert chunk, "closed before the echo"
            echoed += chunk
        assert echoed == b"\x81\x02hi"  # FIN + text, unmasked, 2 bytes: the echo


def test_an_upgrade_with_content_length_zero_is_accepted(server: Server) -> None:
    """`Content-Length: 0` says there is no body, so frames start right after the head;
    some devices send it on every request (the websockets library accepts it too)."""
    with RawClient(server.connect()) as client:
        request = client.ws.send(Request(host="127.0.0.1", target="/ws/echo"))
        head, _, _ = request.partition(b"\r\n\r\n")
        client.send_raw(head + b"\r\nContent-Length: 0\r\n\r\n")
        accepted = client.next_event()
        assert isinstance(accepted, AcceptConnection), accepted
        client.send(Message(data="no body"))
        assert client.receive_message() == "no body"


MALFORMED_UPGRADES = {
    # RFC 6455 §4.2.1: a handshake that lacks what it must carry is refused (400).
    "no key": (b"GET", b"HTTP/1.1", b"", b"13", b"400"),
    "POST": (b"POST", b"HTTP/1.1", b"dGhlIHNhbXBsZSBub25jZQ==", b"13", b"400"),
    "HTTP/1.0": (b"GET", b"HTTP/1.0", b"dGhlIHNhbXBsZSBub25jZQ==", b"13", b"400"),
    # §4.4: another version is answered 426 with the versions the server speaks.
    "version 8": (b"GET", b"HTTP/1.1", b"dGhlIHNhbXBsZSBub25jZQ==", b"8", b"426"),
}


@pytest.mark.parametrize(
    ("method", "version", "key", "ws_version", "status"),
    MALFORMED_UPGRADES.values(),
    ids=MALFORMED_UPGRADES.keys(),
)
def test_a_malformed_upgrade_is_refused(
    server: Server, method: bytes, version: bytes, key: bytes, ws_version: bytes, status: bytes
) -> None:
    key_field = b"Sec-WebSocket-Key: " + key + b"\r\n" if key else b""
    request = (
        method + b" /ws/echo " + version + b"\r\nHost: 127.0.0.1\r\n"
        b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
        + key_field
        + b"Sec-WebSocket-Version: "
        + ws_version
        + b"\r\n\r\n"
    )
    with server.connect() as sock:
        sock.sendall(request)
        response = read_http_response(sock)
    assert response.status_line.split(b" ")[1] == status
    if status == b"426":
        assert response.fields[b"sec-websocket-version"] == b"13"


# --- closing -------------------------------------------------------------------------


def test_the_app_closes_with_a_code_and_reason(server: Server) -> None:
    with ws_connect(server, "/ws/close?code=4000&reason=bye") as ws:
        close = closed_by_server(ws)
    assert close is not None
    assert (close.code, close.reason) == (4000, "bye")


def test_the_client_close_code_and_reason_reach_the_app(server: Server) -> None:
    key = new_id()
    with ws_connect(server, f"/ws/echo?id={key}") as ws:
        ws.send("before closing")
        assert ws.recv(timeout=DEADLINE_S) == "before closing"
        ws.close(4001, "later")
    disconnect = recorded_disconnect(key)
    assert disconnect["type"] == "websocket.disconnect"
    assert (disconnect["code"], disconnect.get("reason")) == (4001, "later")


def test_close_codes_both_ways_raw(server: Server) -> None:
    """The client's Close reaches the app and is answered (RFC 6455 §5.5.1); the app's
    reaches the client: code and reason, as sent on the wire."""
    key = new_id()
    with open_raw(server, f"/ws/echo?id={key}") as client:
        client.send(CloseConnection(code=4002, reason="raw bye"))
        answer = client.next_frame_event()
    assert isinstance(answer, CloseConnection), answer
    disconnect = recorded_disconnect(key)
    assert (disconnect["code"], disconnect["reason"]) == (4002, "raw bye")
    with open_raw(server, "/ws/close?code=4003&reason=app%20bye") as client:
        close = client.wait_close()
    assert (close.code, close.reason) == (4003, "app bye")


@pytest.mark.parametrize("how", ["fin", "reset"])
def test_a_client_that_vanishes_is_a_1006_disconnect(server: Server, how: str) -> None:
    """No Close frame, only the TCP connection ending (FIN, or RST): the app gets 1006."""
    key = new_id()
    client = open_raw(server, f"/ws/wait?id={key}")
    client.send(Message(data="still here"))
    if how == "reset":
        client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    client.sock.close()
    assert recorded_disconnect(key)["code"] == 1006


def test_a_library_client_that_vanishes_is_a_1006_disconnect(server: Server) -> None:
    """The library's socket is shut without a Close frame: the app gets 1006 again."""
    key = new_id()
    with ws_connect(server, f"/ws/wait?id={key}") as ws:
        ws.send("still here")
        ws.socket.shutdown(socket.SHUT_RDWR)  # FIN now; the library cannot send a Close
        assert recorded_disconnect(key)["code"] == 1006


def test_an_app_that_raises_before_accept_is_a_500(server: Server) -> None:
    response = rejection(server, "/ws/raise-before")
    assert response.status_code == 500
    assert b"secret detail" not in response.body


def test_an_app_that_raises_after_accept_is_closed(server: Server) -> None:
    """DESIGN §5: after the response has started, the connection is closed. A Close
    frame, if any, says 1011 (RFC 6455 §7.4.1) and leaks nothing; uvicorn just drops."""
    with ws_connect(server, "/ws/raise-after") as ws:
        close = closed_by_server(ws)
    if close is not None:
        assert close.code == 1011
        assert "secret detail" not in close.reason


def test_an_app_that_returns_after_accept_is_closed_normally(server: Server) -> None:
    """The server ends the connection for the app; with a Close frame, a normal one."""
    with ws_connect(server, "/ws/return") as ws:
        close = closed_by_server(ws)
    if close is not None:
        assert close.code == 1000


def test_send_after_the_client_left_raises_oserror(server: Server) -> None:
    """ASGI 2.4: `send` on a closed connection raises an OSError subclass."""
    key = new_id()
    with ws_connect(server, f"/ws/send-after-disconnect?id={key}") as ws:
        ws.close(1000)
    late_sends = app_state().late_sends
    wait_until(lambda: key in late_sends, DEADLINE_S)
    assert late_sends[key] == "raised OSError"


INVALID_FRAMES = {
    "reserved opcode": client_frame(0x3, b""),
    "rsv1 without an extension": client_frame(TEXT, b"hi", rsv=0x40),
    "fragmented ping": client_frame(PING, b"", fin=False),
    "control frame over 125 bytes": client_frame(PING, b"x" * 126),
    "unmasked client frame": client_frame(TEXT, b"hi", masked=False),
    "continuation of nothing": client_frame(CONTINUATION, b"hi"),
    "new message inside a fragmented one": client_frame(TEXT, b"a", fin=False)
    + client_frame(TEXT, b"b"),
    "close with a 1-byte payload": client_frame(CLOSE, b"\x03"),
}


@pytest.mark.parametrize("frame", INVALID_FRAMES.values(), ids=INVALID_FRAMES.keys())
def test_an_invalid_frame_closes_with_1002(server: Server, frame: bytes) -> None:
    key = new_id()
    with open_raw(server, f"/ws/echo?id={key}") as client:
        client.send_raw(frame)
        close = client.wait_close()
    assert close.code == 1002
    assert client.received == [], "a partial message reached the app and came back"
    assert recorded_disconnect(key)["type"] == "websocket.disconnect"


INVALID_UTF8 = {
    "in one frame": client_frame(TEXT, b"ok \xff\xfe"),
    "across fragments": client_frame(TEXT, b"\xe2\x82", fin=False)
    + client_frame(CONTINUATION, b"\x28"),
    "in a close reason": client_frame(CLOSE, struct.pack("!H", 1000) + b"\xff"),
}


@pytest.mark.parametrize("frame", INVALID_UTF8.values(), ids=INVALID_UTF8.keys())
def test_invalid_utf8_closes_with_1007(server: Server, frame: bytes) -> None:
    with open_raw(server, "/ws/echo") as client:
        client.send_raw(frame)
        close = client.wait_close()
    assert close.code == 1007
    assert client.received == []


def test_graceful_stop_closes_websockets_with_1012(serve: Serve) -> None:
    """The app is told, the stop waits for it, and does not wait out graceful_timeout."""
    server = serve(mounts(graceful_timeout_s=20))
    key = new_id()
    with ws_connect(server, f"/ws/wait?id={key}") as ws:
        started = time.monotonic()
        server.stop()
        stopped_after_s = time.monotonic() - started
        close = closed_by_server(ws)
    assert close is not None
    assert close.code in (1012, 1001)
    assert recorded_disconnect(key)["code"] in (1012, 1001)
    assert stopped_after_s < 10, "the stop waited out graceful_timeout"


def test_graceful_stop_waits_for_the_app_to_finish(serve: Serve) -> None:
    """DESIGN §4: after the 1012 Close the stop waits, within graceful_timeout, for the
    app to return, not only for the connection to close: the app's work after its
    websocket.disconnect is done by the time the stop returns."""
    server = serve(mounts(graceful_timeout_s=20))
    key = new_id()
    with ws_connect(server, f"/ws/slow-exit?id={key}") as ws:
        server.stop(timeout_s=DEADLINE_S)
        assert key in app_state().finished, "the stop returned before the app finished"
        close = closed_by_server(ws)
    assert close is not None
    assert close.code == 1012
    assert recorded_disconnect(key)["code"] == 1012


def test_graceful_stop_ends_a_handshake_the_app_has_not_answered(serve: Serve) -> None:
    """Issue 13, point 15: the app is told websocket.disconnect (1012) at once, not
    cancelled at graceful_timeout, and the client gets a 503 and a closed connection."""
    server = serve(mounts(graceful_timeout_s=60))
    key = new_id()
    with server.connect() as sock:
        sock.sendall(b"GET /ws/undecided?id=%s HTTP/1.1\r\n" % key.encode() + UPGRADE_FIELDS)
        sock.sendall(b"\r\n")
        wait_until(lambda: key in app_state().undecided_ids, DEADLINE_S)
        server.stop(timeout_s=DEADLINE_S)
        data, closed = read_until_closed(sock, DEADLINE_S)
    assert recorded_disconnect(key)["code"] == 1012
    assert data.startswith(b"HTTP/1.1 503 "), data
    assert closed


def test_graceful_stop_does_not_wait_forever_for_a_silent_client(serve: Serve) -> None:
    """A client that never answers the 1012 Close is dropped within graceful_timeout."""
    server = serve(mounts(graceful_timeout_s=2))
    with open_raw(server, "/ws/wait") as client:
        started = time.monotonic()
        server.stop(timeout_s=DEADLINE_S)
        assert time.monotonic() - started < 2 + DEADLINE_S / 2
        # Whatever came before the drop, the server's last word was a Close 1012/1001.
        first = client.next_frame_event()
        assert isinstance(first, CloseConnection)
        assert first.code in (1012, 1001)


def test_graceful_stop_cancels_an_app_that_never_returns(serve: Serve) -> None:
    """The app ignores the stop: it is cancelled once graceful_timeout has passed, and
    before the stop returns (then lifespan shutdown runs without it)."""
    server = serve(mounts(graceful_timeout_s=1))
    key = new_id()
    with ws_connect(server, f"/ws/ignore?id={key}") as ws:
        started = time.monotonic()
        server.stop(timeout_s=DEADLINE_S)
        assert time.monotonic() - started < 1 + DEADLINE_S / 2
        assert key in app_state().cancelled, "the app was never cancelled"
        close = closed_by_server(ws)
    assert close is not None
    assert close.code in (1012, 1001)


# --- keep-alive ----------------------------------------------------------------------


def test_a_client_that_never_answers_pings_is_closed(serve: Serve) -> None:
    """The peer is given ws_ping_timeout to answer, then dropped: to the app that is a
    connection that ended without a Close, 1006 (RFC 6455 §7.1.5)."""
    server = serve(mounts(*KEEPALIVE))
    key = new_id()
    # From before the handshake: the server's first ping goes out PING_INTERVAL_S after
    # its accept, so no close can come sooner than PING_INTERVAL_S + PING_TIMEOUT_S from
    # here. The bound asserted is the timeout alone, leaving room for timer rounding.
    started = time.monotonic()
    with open_raw(server, f"/ws/wait?id={key}") as client:
        client.wait_close()  # a Close frame (1011, say) or the connection dropped
        closed_after_s = time.monotonic() - started
    assert client.pings, "the server closed without ever pinging"
    assert closed_after_s >= PING_TIMEOUT_S, "closed before the peer's time to answer"
    assert closed_after_s < DEADLINE_S / 2
    assert recorded_disconnect(key)["code"] == 1006


def test_answered_pings_keep_the_connection_open(serve: Serve) -> None:
    server = serve(mounts(*KEEPALIVE))
    with open_raw(server, "/ws/echo") as client:
        client.answers_pings = True
        for _ in range(5):  # five pings 0.2 s apart: well past the 0.5 s timeout
            ping = client.next_event()
            assert isinstance(ping, Ping), ping
            client.send(ping.response())
        client.send(Message(data="still open"))
        assert client.receive_message() == "still open"


# --- limits --------------------------------------------------------------------------


def test_a_message_over_the_limit_closes_with_1009(serve: Serve) -> None:
    server = serve(mounts(f"ws_max_message_bytes = {SMALL_LIMIT_BYTES}"))
    at_limit = random.Random(3).randbytes(SMALL_LIMIT_BYTES)
    with ws_connect(server, "/ws/echo", compression=None) as ws:
        ws.send(at_limit)
        assert ws.recv(timeout=DEADLINE_S) == at_limit
        ws.send(at_limit + b"!")
        close = closed_by_server(ws)
    assert close is not None
    assert close.code == 1009


def test_fragments_over_the_limit_close_with_1009(serve: Serve) -> None:
    """The limit is on the reassembled message, not on each frame."""
    server = serve(mounts(f"ws_max_message_bytes = {SMALL_LIMIT_BYTES}"))
    piece = b"x" * (SMALL_LIMIT_BYTES // 2 + 1)
    with open_raw(server, "/ws/echo") as client:
        client.send(Message(data=piece, message_finished=False))
        client.send(Message(data=piece, message_finished=True))
        close = client.wait_close()
    assert close.code == 1009
    assert client.received == []


def test_a_compressed_message_counts_at_its_inflated_size(serve: Serve) -> None:
    """1 MiB of zeros deflates to about 1 KiB: the limit must still hold (a zip bomb)."""
    server = serve(mounts(f"ws_max_message_bytes = {SMALL_LIMIT_BYTES}"))
    with ws_connect(server, "/ws/echo") as ws:
        assert "permessage-deflate" in upgrade_response(ws).headers.get(
            "Sec-WebSocket-Extensions", ""
        )
        ws.send(bytes(MIB))
        close = closed_by_server(ws)
    assert close is not None
    assert close.code == 1009


# --- compression ---------------------------------------------------------------------


def test_deflate_is_negotiated_when_offered(server: Server) -> None:
    text = "a compressible line of text\n" * 40_000
    with ws_connect(server, "/ws/echo", compression="deflate") as ws:
        assert "permessage-deflate" in upgrade_response(ws).headers["Sec-WebSocket-Extensions"]
        ws.send(text)
        assert ws.recv(timeout=DEADLINE_S) == text
        ws.send(b"\x00" * 1000)
        assert ws.recv(timeout=DEADLINE_S) == b"\x00" * 1000


def test_deflate_negotiated_with_a_raw_client(server: Server) -> None:
    with RawClient(server.connect()) as client:
        accepted = client.handshake("/ws/echo", deflate=True)
        assert isinstance(accepted, AcceptConnection)
        assert [ext.name for ext in accepted.extensions] == ["permessage-deflate"]
        client.send(Message(data="squeeze " * 1000))
        assert client.receive_message() == "squeeze " * 1000


@pytest.mark.parametrize("deflate", [True, False], ids=["deflate on", "deflate off"])
def test_the_server_compresses_what_it_sends_only_with_deflate(serve: Serve, deflate: bool) -> None:
    """RSV1 on the server's data frame says it is compressed (RFC 7692 §6). With deflate
    negotiated the server must really compress, not only accept compressed frames;
    with `ws_per_message_deflate = false` the bit is never set, though the client offers."""
    server = serve(mounts(f"ws_per_message_deflate = {'true' if deflate else 'false'}"))
    text = "squeeze " * 1000
    with RawClient(server.connect()) as client:
        accepted = client.handshake("/ws/echo", deflate=True)
        assert isinstance(accepted, AcceptConnection), accepted
        assert bool(accepted.extensions) is deflate
        client.send(Message(data=text))
        frame = read_frame(client.sock)  # the echo, before wsproto decodes it
        assert frame.opcode == TEXT
        assert frame.rsv1 is deflate
        if deflate:
            assert len(frame.payload) < len(text) // 10, "RSV1 set on an uncompressed body"
        client.feed(frame.wire)
        assert client.receive_message() == text


def test_deflate_off_is_not_negotiated(serve: Serve) -> None:
    server = serve(mounts("ws_per_message_deflate = false"))
    with ws_connect(server, "/ws/echo", compression="deflate") as ws:
        assert "Sec-WebSocket-Extensions" not in upgrade_response(ws).headers
        ws.send("plain")
        assert ws.recv(timeout=DEADLINE_S) == "plain"


# --- flow control --------------------------------------------------------------------


def test_send_waits_for_a_client_that_does_not_read(server: Server) -> None:
    """An app sending to a client that does not read is held in `send`: server memory
    stays bounded. Once the client reads, every byte arrives."""
    flood = app_state().flood
    total = app_state().FLOOD_PIECE_BYTES * app_state().FLOOD_PIECES
    with open_raw(server, "/ws/flood", sock=small_buffer_socket(server)) as client:
        # An unbounded server finishes in a moment; a bounded one parks the app in send.
        wait_until(lambda: flood.finished or flood.blocked_for() > STALL_S, DEADLINE_S)
        assert not flood.finished, "the app sent everything to a client that read nothing"
        assert flood.bytes_sent < total // 2
        received = 0
        for _ in range(app_state().FLOOD_PIECES):
            message = client.receive_message()
            assert isinstance(message, bytes)
            received += len(message)
        close = client.wait_close()
    assert received == total
    assert (close.code, close.reason) == (1000, "flood done")
    assert flood.finished


def test_reading_pauses_while_the_app_does_not_receive(server: Server) -> None:
    """A client sending to an app that does not read fills the socket, not the server's
    memory; once the app reads, every byte reaches it."""
    key = new_id()
    gates = app_state().gates
    frame = client_frame(BINARY, random.Random(4).randbytes(65536))
    stream = frame * 512  # 32 MiB of messages
    with open_raw(server, f"/ws/gated-count?id={key}") as client:
        wait_until(lambda: key in gates, DEADLINE_S)
        sent = send_until_stalled(client.sock, stream)
        assert sent < len(stream) // 2, "the server read messages nobody received"
        server.loop.call_soon_threadsafe(gates[key].set)
        client.sock.settimeout(DEADLINE_S)
        client.send_raw(stream[sent:])
        client.send(Message(data="count"))
        assert client.receive_message() == str(512 * 65536)


def test_many_messages_in_one_burst(server: Server) -> None:
    """Many small frames in one TCP segment all come back, in order."""
    with open_raw(server, "/ws/echo") as client:
        burst = b"".join(client.ws.send(Message(data=f"m{n}")) for n in range(200))
        client.send_raw(burst)
        assert [client.receive_message() for _ in range(200)] == [f"m{n}" for n in range(200)]
