"""`gateway.TestServer`: the real server in a thread, for users' own tests, serving the
example site, app objects and [[mount]] mappings; and the errors `gateway.run` shares
with the command line (issue 14, point 4).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.deadlines import CLIENT_TIMEOUT_S, START_DEADLINE_S
from support.paths import EXAMPLES_DIR

import gateway
from gateway.errors import ConfigError, StartupError


async def hello(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """An ASGI app object, defined in the test (no module:attribute to import)."""
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    body = f"asgi {scope['root_path']} {scope['path']}".encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


def legacy(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """A WSGI app object."""
    start_response("200 OK", [("content-type", "text/plain")])
    return [f"wsgi {environ['SCRIPT_NAME']} {environ['PATH_INFO']}".encode()]


async def failing_startup(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await receive()
    await send({"type": "lifespan.startup.failed", "message": "no database"})


def refuses_connections(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=CLIENT_TIMEOUT_S).close()
    except ConnectionRefusedError:
        return True
    return False


# The example site, served by TestServer in a process of its own. Django keeps its
# settings in process-global state that tests/unit/test_adapters.py configures its own way
# (see tests/integration/test_frameworks.py), so the site cannot share the test process:
# whichever ran first would decide the other's settings.
EXAMPLE_SITE_CLIENT = """
import sys
import httpx
import gateway

with gateway.TestServer(sys.argv[1]) as server:
    with httpx.Client(base_url=server.url, timeout=float(sys.argv[2])) as client:
        print(client.get("/api/items/7").json())
        print(client.get("/flask/hello").json()["path"])
        print(client.get("/").status_code)
    print(server.port)
"""


def test_the_example_site_through_the_real_server(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "EXAMPLE_DB_PATH": str(tmp_path / "example.sqlite3"),  # never the source tree's
        "DJANGO_SETTINGS_MODULE": "django_site.mysite.settings",
    }
    config, timeout = str(EXAMPLES_DIR / "gateway.toml"), str(CLIENT_TIMEOUT_S)
    result = subprocess.run(
        [sys.executable, "-c", EXAMPLE_SITE_CLIENT, config, timeout],
        env=env,
        capture_output=True,
        text=True,
        timeout=4 * START_DEADLINE_S,  # generous: the first start migrates the database
        check=False,
    )
    assert result.returncode == 0, result.stderr
    api, flask_path, django_status, port = result.stdout.split("\n")[:4]
    assert (api, flask_path, django_status) == ("{'id': 7, 'name': 'item 7'}", "/hello", "200")
    assert refuses_connections(int(port))


def test_an_app_object() -> None:
    with gateway.TestServer(hello, root_path="/app") as server:
        response = httpx.get(server.url + "/x", timeout=CLIENT_TIMEOUT_S)
    assert response.text == "asgi /app /app/x"


def test_mounts_of_app_objects() -> None:
    mounts = [
        {"prefix": "/new", "app": hello, "interface": "asgi"},
        {"prefix": "/", "app": legacy, "interface": "wsgi", "threads": 2},
    ]
    with (
        gateway.TestServer(mounts=mounts) as server,
        httpx.Client(base_url=server.url, timeout=CLIENT_TIMEOUT_S) as client,
    ):
        assert client.get("/new/a").text == "asgi /new /new/a"
        assert client.get("/old/b").text == "wsgi  /old/b"


def test_start_and_stop_without_a_with_block() -> None:
    server = gateway.TestServer(legacy, interface="wsgi").start()
    try:
        assert httpx.get(server.url + "/y", timeout=CLIENT_TIMEOUT_S).text == "wsgi  /y"
    finally:
        server.stop()
    assert refuses_connections(server.port)


def test_a_failed_lifespan_startup_is_a_startup_error() -> None:
    with pytest.raises(StartupError, match="no database"):
        gateway.TestServer(failing_startup, interface="asgi").start()


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: gateway.TestServer(hello, wrokers=2), "unknown command-line setting"),
        (lambda: gateway.TestServer(hello, keep_alive_timeout=0), "must be > 0"),
        (lambda: gateway.TestServer(mounts=[{"prefix": "api", "app": hello}]), "mount #1"),
        (lambda: gateway.TestServer("no_such.toml"), "cannot read the mount file"),
        (lambda: gateway.TestServer(hello, interface="rsgi"), "must be one of asgi, wsgi"),
        (lambda: gateway.run(hello, host="0.0.0.0", bind="127.0.0.1:1"), "use one"),
        (lambda: gateway.run(hello, mounts=[]), "either a target or mounts"),
    ],
)
def test_the_command_lines_validation_and_errors(call: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        call()


def test_a_test_server_binds_its_own_socket() -> None:
    with pytest.raises(TypeError, match="no port"):
        gateway.TestServer(hello, port=8000)
