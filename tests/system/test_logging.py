"""Logging as operators expect it (issue 14, point 3), through a real `gateway serve`:
`--log-config` files (dictConfig JSON and YAML, fileConfig INI), `access_log_format`
with gunicorn's atoms and ours, `log_format = "json"` parsed back line by line, and
`server_header = false` over a raw socket (an app's reply, our error reply, WebSocket
refusals).
"""

from __future__ import annotations

import importlib.util
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support.deadlines import wait_until
from support.paths import APPS_DIR
from support.processes import GatewayProcess

DEADLINE_S = 30.0
HAS_YAML = importlib.util.find_spec("yaml") is not None
# A WebSocket handshake (RFC 6455 "Opening Handshake"), its key the RFC's own example.
HANDSHAKE = (
    "GET /ws/{route} HTTP/1.1\r\nHost: gateway\r\nUpgrade: websocket\r\n"
    "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Sec-WebSocket-Version: 13\r\n\r\n"
)


def mounts(path: Path, server: str = "") -> Path:
    """A mount file: probe apps, a WebSocket app, and a route of each kind: a fallback
    (/api), a canary that takes every request (/shop), a shadow (/search)."""
    path.write_text(f"""
[server]
pythonpath = [{str(APPS_DIR)!r}]
graceful_timeout = 10
{server}

[[mount]]
prefix = "/asgi"
app = "probe_asgi:app"
interface = "asgi"

[[mount]]
prefix = "/ws"
app = "ws_apps:app"
interface = "asgi"

[[mount]]
prefix = "/api"
app = "migration_new:app"
interface = "asgi"
fallback = "legacy"

[[mount]]
name = "legacy"
app = "migration_legacy:app"
interface = "wsgi"
threads = 2

[[mount]]
prefix = "/shop"
app = "probe_wsgi:app"
interface = "wsgi"
threads = 2
canary = "next"
canary_percent = 100

[[mount]]
prefix = "/search"
app = "shadow_legacy:app"
interface = "wsgi"
threads = 2
shadow = "next"

[[mount]]
name = "next"
app = "shadow_new:app"
interface = "asgi"

[[mount]]
prefix = "/"
app = "probe_wsgi:app"
interface = "wsgi"
""")
    return path


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return mounts(tmp_path / "gateway.toml")


def started(config: Path, *args: str) -> GatewayProcess:
    process = GatewayProcess(config, *args)
    process.wait_for_line("serving on")
    return process


def stopped(process: GatewayProcess) -> GatewayProcess:
    assert process.stop() == 0
    return process


def file_text(path: Path) -> str:
    return path.read_text() if path.exists() else ""


def access_line(lines: list[str], text: str) -> str:
    return next(line for line in lines if text in line)


# -- --log-config --------------------------------------------------------------------

DICT_CONFIG = {
    "version": 1,
    "formatters": {"ops": {"format": "OPS %(levelname)s %(name)s | %(message)s"}},
    "handlers": {"file": {"class": "logging.FileHandler", "filename": "", "formatter": "ops"}},
    "loggers": {
        "gateway": {"handlers": ["file"], "level": "INFO", "propagate": False},
        "gateway.access": {"handlers": ["file"], "level": "INFO", "propagate": False},
    },
}

INI_CONFIG = """
[loggers]
keys = root, gateway, access

[handlers]
keys = file

[formatters]
keys = ops

[logger_root]
level = WARNING
handlers =

[logger_gateway]
level = INFO
handlers = file
qualname = gateway
propagate = 0

[logger_access]
level = INFO
handlers = file
qualname = gateway.access
propagate = 0

[handler_file]
class = FileHandler
formatter = ops
args = ({log!r},)

[formatter_ops]
format = OPS %(levelname)s %(name)s | %(message)s
"""

YAML_CONFIG = """
version: 1
formatters:
  ops:
    format: "OPS %(levelname)s %(name)s | %(message)s"
handlers:
  file:
    class: logging.FileHandler
    filename: {log}
    formatter: ops
loggers:
  gateway: {{handlers: [file], level: INFO, propagate: false}}
  gateway.access: {{handlers: [file], level: INFO, propagate: false}}
"""


def write_log_config(tmp_path: Path, kind: str, log: Path) -> Path:
    if kind == "json":
        settings = json.loads(json.dumps(DICT_CONFIG))
        settings["handlers"]["file"]["filename"] = str(log)
        path = tmp_path / "logging.json"
        path.write_text(json.dumps(settings))
    elif kind == "ini":
        path = tmp_path / "logging.ini"
        path.write_text(INI_CONFIG.format(log=str(log)))
    else:
        path = tmp_path / "logging.yaml"
        path.write_text(YAML_CONFIG.format(log=json.dumps(str(log))))
    return path


@pytest.mark.parametrize(
    "kind",
    [
        "json",
        "ini",
        pytest.param("yaml", marks=pytest.mark.skipif(not HAS_YAML, reason="needs PyYAML")),
    ],
)
@pytest.mark.parametrize("how", ["flag", "env"])
def test_log_config_file_replaces_our_handlers(
    config: Path, tmp_path: Path, kind: str, how: str
) -> None:
    log = tmp_path / "ops.log"
    log_config = write_log_config(tmp_path, kind, log)
    if how == "flag":
        process = GatewayProcess(config, "--log-config", str(log_config))
    else:
        process = GatewayProcess(config, env={"GATEWAY_LOG_CONFIG": str(log_config)})
    try:
        wait_until(lambda: "serving on" in file_text(log), DEADLINE_S)
        assert httpx.get(process.url + "/asgi/echo", timeout=DEADLINE_S).status_code == 200
        wait_until(lambda: "/asgi/echo" in file_text(log), DEADLINE_S)
    finally:
        stopped(process)
    lines = file_text(log).splitlines()
    served = access_line(lines, "serving on")
    assert served.startswith("OPS INFO gateway.")
    line = access_line(lines, "/asgi/echo")
    assert line.startswith("OPS INFO gateway.access | 127.0.0.1:")
    assert '"GET /asgi/echo HTTP/1.1" 200' in line and line.endswith("mount=/asgi")
    # Replaced, not added to: our own handlers wrote nothing.
    assert not any("serving on" in x for x in process.all_lines())
    assert not any("/asgi/echo" in x for x in process.stdout)


def test_yaml_log_config_without_pyyaml_says_so(config: Path, tmp_path: Path) -> None:
    """Whether or not PyYAML is installed here: a module of its name that fails to
    import, first on the server's path, stands for a machine without it."""
    blocker = tmp_path / "no_yaml"
    blocker.mkdir()
    (blocker / "yaml.py").write_text("raise ImportError('no PyYAML here')\n")
    log_config = tmp_path / "logging.yaml"
    log_config.write_text("version: 1\n")
    env = {"PYTHONPATH": str(blocker)}
    process = GatewayProcess(config, "--log-config", str(log_config), env=env)
    assert process.proc.wait(DEADLINE_S) == 1
    errors = stopped_lines(process)
    assert len(errors) == 1 and "PyYAML" in errors[0] and "log_config" in errors[0]


def stopped_lines(process: GatewayProcess) -> list[str]:
    process.stop()
    return process.all_lines()


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("bad.yaml", "version: [1"),
        ("bad-handler.json", json.dumps({"version": 1, "handlers": {"h": {"class": "no.Such"}}})),
        ("not-json.json", "{version: 1"),
        ("list.json", "[1, 2]"),
        ("broken.ini", "[loggers]\nkeys = root\n"),
        ("missing.ini", None),
    ],
)
def test_a_bad_log_config_is_one_line_and_exit_1(
    config: Path, tmp_path: Path, name: str, text: str | None
) -> None:
    log_config = tmp_path / name
    if text is not None:
        log_config.write_text(text)
    process = GatewayProcess(config, "--log-config", str(log_config))
    assert process.proc.wait(DEADLINE_S) == 1
    errors = stopped_lines(process)
    assert len(errors) == 1, errors
    assert errors[0].startswith("gateway: ") and "log_config" in errors[0]
    assert name in errors[0]


# -- access_log_format ---------------------------------------------------------------

ATOMS = (
    '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(m)s %(U)s %(q)s %(H)s %(s)s %(B)s %(b)s '
    '"%(f)s" "%(a)s" %(T)s %(M)s %(D)s %(L)s %(p)s %({x-probe}i)s %({content-length}o)s '
    "%({GATEWAY_TEST_ENV}e)s %(mount)s %(route)s 100%%"
)


def test_access_log_format_takes_gunicorns_atoms(config: Path) -> None:
    process = GatewayProcess(
        config, "--access-log-format", ATOMS, env={"GATEWAY_TEST_ENV": "from-env"}
    )
    try:
        process.wait_for_line("serving on")
        headers = {
            "x-probe": "probe-value",
            "referer": "http://example.test/from",
            "user-agent": "ua/1.0",
            "authorization": "Basic YWxpY2U6c2VjcmV0",  # alice:secret
        }
        url = process.url + "/asgi/echo?q=1"
        response = httpx.post(url, content=b"hello", headers=headers, timeout=DEADLINE_S)
        assert response.status_code == 200
        wait_until(lambda: any("/asgi/echo" in x for x in process.stdout), DEADLINE_S)
    finally:
        stopped(process)
    line = access_line(process.stdout, "/asgi/echo").rstrip("\n")
    quoted = line.split('"')
    assert quoted[1] == "POST /asgi/echo?q=1 HTTP/1.1"
    assert quoted[3] == "http://example.test/from" and quoted[5] == "ua/1.0"
    host, dash, user, day, zone = quoted[0].split()
    assert (host, dash, user) == ("127.0.0.1", "-", "alice")
    assert time.strptime(f"{day} {zone}", "[%d/%b/%Y:%H:%M:%S %z]")
    method, path, query, protocol, status, size, size_or_dash = quoted[2].split()
    assert (method, path, query, protocol, status) == (
        "POST",
        "/asgi/echo",
        "q=1",
        "HTTP/1.1",
        "200",
    )
    assert size == size_or_dash == str(len(response.content)) != "0"
    rest = quoted[6].split()
    seconds, millis, micros, decimal, pid, probe, length, env = rest[:8]
    assert int(seconds) <= int(millis) // 1000 + 1 and int(millis) <= int(micros) // 1000 + 1
    assert abs(float(decimal) * 1_000_000 - int(micros)) <= 1
    assert pid == f"<{process.proc.pid}>"  # one worker: it serves in the started process
    assert (probe, length, env) == ("probe-value", response.headers["content-length"], "from-env")
    assert rest[8:] == ["/asgi", "-", "100%"]


def test_access_log_format_names_the_route(tmp_path: Path) -> None:
    config = mounts(
        tmp_path / "gateway.toml", 'access_log_format = "%(U)s %(s)s %(mount)s %(route)s"'
    )
    process = started(config)
    try:
        paths = ("/api/orders/1", "/api/users/1", "/shop/x", "/search/items/1", "/nowhere")
        for path in paths:
            httpx.get(process.url + path, timeout=DEADLINE_S)
        wait_until(lambda: len(process.stdout) >= len(paths), DEADLINE_S)
    finally:
        stopped(process)
    lines = [line.rstrip("\n") for line in process.stdout]
    assert "/api/orders/1 200 /api fallback:legacy" in lines  # the new app's 404 fell back
    assert "/api/users/1 200 /api -" in lines
    assert any(
        line.startswith("/shop/x ") and line.endswith(" /shop canary:next") for line in lines
    )
    assert "/search/items/1 200 /search shadow:next" in lines
    assert "/nowhere 404 / -" in lines


@pytest.mark.parametrize(
    ("fmt", "reason"),
    [("%(h)s %(nope)s", "unknown atom %(nope)s"), ("%(h)s 100%", "a lone '%'")],
)
def test_a_bad_access_log_format_is_one_line_and_exit_1(
    config: Path, fmt: str, reason: str
) -> None:
    process = GatewayProcess(config, "--access-log-format", fmt)
    assert process.proc.wait(DEADLINE_S) == 1
    errors = stopped_lines(process)
    assert len(errors) == 1 and "access_log_format" in errors[0] and reason in errors[0]


# -- log_format = "json" -------------------------------------------------------------


@pytest.mark.parametrize("how", ["flag", "file"])
def test_json_lines_parse_back(tmp_path: Path, how: str) -> None:
    server = 'log_format = "json"' if how == "file" else ""
    config = mounts(tmp_path / "gateway.toml", server)
    args = ("--log-format", "json") if how == "flag" else ()
    process = started(config, *args)
    try:
        assert httpx.get(process.url + "/asgi/echo?a=b", timeout=DEADLINE_S).status_code == 200
        assert httpx.get(process.url + "/asgi/raise-before", timeout=DEADLINE_S).status_code == 500
        wait_until(lambda: len(process.stdout) >= 2, DEADLINE_S)
    finally:
        stopped(process)
    access = [json.loads(line) for line in process.stdout]  # every line is one object
    echo = next(x for x in access if x["path"] == "/asgi/echo")
    assert echo["logger"] == "gateway.access" and echo["level"] == "INFO"
    assert (echo["method"], echo["query"], echo["status"]) == ("GET", "a=b", 200)
    assert (echo["mount"], echo["route"], echo["client"]) == ("/asgi", "-", "127.0.0.1")
    assert echo["protocol"] == "HTTP/1.1" and echo["websocket"] is False
    assert echo["bytes"] == 0 and echo["duration_ms"] >= 0  # /echo of an empty body
    assert '"GET /asgi/echo?a=b HTTP/1.1" 200' in echo["message"]
    assert echo["time"].endswith("+00:00")
    errors = [json.loads(line) for line in process.all_lines()]  # one object per line
    assert any(x["message"].startswith("serving on") for x in errors)
    failed = next(x for x in errors if "exception" in x)
    assert failed["level"] == "ERROR" and failed["logger"].startswith("gateway")
    assert "Traceback" in failed["exception"] and "secret internal detail" in failed["exception"]


# -- server_header -------------------------------------------------------------------


def read_head(sock: socket.socket) -> bytes:
    """The response head, read until its blank line (or the deadline)."""
    data = b""
    end = time.monotonic() + DEADLINE_S
    while b"\r\n\r\n" not in data and time.monotonic() < end:
        sock.settimeout(max(0.01, end - time.monotonic()))
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data.partition(b"\r\n\r\n")[0]


def heads(process: GatewayProcess) -> Iterator[bytes]:
    """The heads of: an app's answer, our 400, a WebSocket the app refused (403) and
    one it denied with its own 401."""
    port = int(process.url.rsplit(":", 1)[1])
    requests = [
        "GET /asgi/echo HTTP/1.1\r\nHost: gateway\r\n\r\n",
        "GET /asgi/echo HTTP/1.1\r\n\r\n",  # no Host: 400 (RFC 9112 "Request Target")
        HANDSHAKE.format(route="reject"),
        HANDSHAKE.format(route="deny"),
    ]
    for request in requests:
        with socket.create_connection(("127.0.0.1", port), timeout=DEADLINE_S) as sock:
            sock.sendall(request.encode())
            yield read_head(sock)


@pytest.mark.parametrize(
    ("server", "args", "sent"),
    [
        ("", (), True),
        ("", ("--no-server-header",), False),
        ("server_header = false", (), False),
    ],
)
def test_server_header(tmp_path: Path, server: str, args: tuple[str, ...], sent: bool) -> None:
    process = started(mounts(tmp_path / "gateway.toml", server), *args)
    try:
        found = list(heads(process))
    finally:
        stopped(process)
    statuses = [head.split(b"\r\n", 1)[0].split(b" ")[1] for head in found]
    assert statuses == [b"200", b"400", b"403", b"401"]
    for head in found:
        fields = [line.split(b":", 1)[0].lower() for line in head.split(b"\r\n")[1:]]
        assert (b"server" in fields) is sent, head
        assert b"date" in fields
